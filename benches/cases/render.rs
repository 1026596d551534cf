//! The frame `fido view` draws after every step (`render::Dashboard`): the image, the map
//! over it, the in-filled sample and the score curve in four panels, then the text layer
//! over the whole window, at the window's first size (600×666), from 224×224 engine tensors. Validated against the
//! report's pictures first (the map panel must be `explain`'s heatmap, the overlay panel its
//! overlay.png, within one level), then timed by wall clock around submit and a blocking
//! poll: render passes are not in the engine's timestamped compute batches.
//!
//! Bytes: what the draws must move, per pixel they cover: every pass loads and stores its
//! colour target (4 + 4 bytes, blended), an image panel reads 3 f32 and a map 1 f32, and
//! the clear writes the target once. FLOPs are not counted (a few per pixel; the frame is
//! bound by memory traffic), so the fraction reported is of the copy peak.

use std::time::Instant;

use fido::explain::report;
use fido::imageio::Normalize;
use fido::ops::Cost;
use fido::render::{ColorMap, Dashboard, Painter, Panel, Rect};
use fido::Tensor;

use crate::{Bench, Timing};

const WIDTH: u32 = 600;
const HEIGHT: u32 = 666;
const SIDE: usize = 224;
const STEPS: usize = 300;
/// The text band's share of the window's height (cli/view.rs: 66 of 666 pixels).
const BAND: f32 = 66.0 / 666.0;

pub fn run(bench: &mut Bench) {
    let name = "view frame 4 panels + text 600x666";
    if !bench.wants(name) {
        return;
    }
    let gpu = bench.gpu.clone();
    let norm = Normalize::IMAGENET;
    // A picture with structure, its normalised tensor, a map, a second image for the
    // in-filled sample, scores for the curve and a text coverage layer.
    let picture = image::RgbImage::from_fn(SIDE as u32, SIDE as u32, |x, y| {
        image::Rgb([x as u8, y as u8, ((x * y) % 251) as u8])
    });
    let plane = SIDE * SIDE;
    let chw: Vec<f32> = (0..3 * plane)
        .map(|i| {
            let (c, p) = (i / plane, i % plane);
            norm.apply(c, picture.as_raw()[3 * p + c] as f32 / 255.0)
        })
        .collect();
    let values: Vec<f32> = (0..plane)
        .map(|p| ((p % SIDE) as f32 / SIDE as f32 * 0.7 + (p / SIDE) as f32 / SIDE as f32 * 0.3).fract())
        .collect();
    let text_values: Vec<f32> = (0..(WIDTH * HEIGHT) as usize)
        .map(|p| if p % 7 == 0 { 1.0 } else { 0.0 })
        .collect();
    let scores: Vec<f32> = (0..STEPS).map(|s| (s as f32 * 0.05).sin()).collect();
    let built = (|| -> fido::Result<_> {
        let image = Tensor::from_slice(&gpu, &[1, 3, SIDE, SIDE], &chw)?;
        let seen = Tensor::from_slice(
            &gpu,
            &[1, 3, SIDE, SIDE],
            &chw.iter().map(|v| -v).collect::<Vec<_>>(),
        )?;
        let map = Tensor::from_slice(&gpu, &[SIDE, SIDE], &values)?;
        let text = Tensor::from_slice(&gpu, &[HEIGHT as usize, WIDTH as usize], &text_values)?;
        let curve = Tensor::from_slice(&gpu, &[STEPS], &scores)?;
        let painter = Painter::new(&gpu, wgpu::TextureFormat::Rgba8Unorm)?;
        Ok((image, seen, map, text, curve, painter))
    })();
    let (image, seen, map, text, curve, painter) = match built {
        Ok(b) => b,
        Err(e) => {
            eprintln!("{name}: failed: {e}");
            bench.failures += 1;
            return;
        }
    };
    let texture = fido::render::offscreen_target(&gpu, WIDTH, HEIGHT);
    let view = texture.create_view(&Default::default());

    let dashboard = Dashboard {
        image: &image,
        norm,
        importance: &map,
        seen: &seen,
        scores: curve.buffer(),
        points: STEPS as u32,
        text: &text,
        band: BAND,
    };
    let frame = || -> fido::Result<()> {
        gpu.flush();
        let mut encoder = gpu.device().create_command_encoder(&Default::default());
        dashboard.draw(&painter, &mut encoder, &view, (WIDTH, HEIGHT))?;
        gpu.queue().submit([encoder.finish()]);
        gpu.device()
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| fido::Error::Gpu(e.to_string()))?;
        Ok(())
    };

    if let Err(e) = validate(&gpu, &painter, &image, &map, &picture, &values, norm) {
        eprintln!("{name}: VALIDATION FAILED: {e}");
        bench.failures += 1;
        return;
    }
    let timing = match time_frames(&frame) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("{name}: failed: {e}");
            bench.failures += 1;
            return;
        }
    };
    let cell = Dashboard::cell((WIDTH, HEIGHT), BAND, 0, 0);
    let panel_pixels = (cell.width * cell.height) as f64;
    let window_pixels = (WIDTH * HEIGHT) as f64;
    let blend = 8.0;
    let bytes = window_pixels * 4.0 // the clear
        + 3.0 * panel_pixels * (blend + 12.0) // image, overlay, sample: 3 f32 each
        + panel_pixels * 4.0 // the overlay's map value
        + window_pixels * (blend + 4.0); // the text layer
    bench.report(name, Cost { flops: 0.0, bytes }, &timing);
    eprintln!(
        "{name}: {:.2} ms a frame, {:.0} frames/s",
        timing.median,
        1e3 / timing.median
    );
}

/// The overlay panel is overlay.png and a map panel heatmap.png, drawn at 1:1 scale.
fn validate(
    gpu: &fido::Gpu,
    painter: &Painter,
    image: &Tensor,
    map: &Tensor,
    picture: &image::RgbImage,
    values: &[f32],
    norm: Normalize,
) -> Result<(), String> {
    let side = SIDE as u32;
    let texture = fido::render::offscreen_target(gpu, 2 * side, side);
    let view = texture.create_view(&Default::default());
    let draw = || -> fido::Result<image::RgbaImage> {
        gpu.flush();
        let mut encoder = gpu.device().create_command_encoder(&Default::default());
        let left = Rect::new(0.0, 0.0, SIDE as f32, SIDE as f32);
        let right = Rect::new(SIDE as f32, 0.0, SIDE as f32, SIDE as f32);
        let over = Panel::image(left, image, 0, norm)?.with_map(map, ColorMap::Diverging)?;
        painter.draw(&mut encoder, &view, &over, Some(wgpu::Color::BLACK))?;
        painter.draw(
            &mut encoder,
            &view,
            &Panel::map(right, map, ColorMap::Diverging)?,
            None,
        )?;
        gpu.queue().submit([encoder.finish()]);
        fido::render::read_rgba(gpu, &texture)
    };
    let got = draw().map_err(|e| e.to_string())?;
    let heat = report::heatmap(values, side, side);
    let overlay = report::overlay(picture, &heat, values);
    for (what, x0, want) in [("overlay", 0, &overlay), ("heatmap", side, &heat)] {
        for (x, y, w) in want.enumerate_pixels() {
            let g = got.get_pixel(x0 + x, y);
            for c in 0..3 {
                // One level: both sides round once from f32 (see tests/render.rs).
                if (g[c] as i32 - w[c] as i32).abs() > 1 {
                    return Err(format!(
                        "{what} pixel ({x}, {y}) channel {c}: {} against {}",
                        g[c], w[c]
                    ));
                }
            }
        }
    }
    Ok(())
}

/// Warm up, then repeat for about 1.5 s (between 5 and 200 frames).
fn time_frames(frame: &dyn Fn() -> fido::Result<()>) -> fido::Result<Timing> {
    for _ in 0..3 {
        frame()?;
    }
    let start = Instant::now();
    let mut samples = Vec::new();
    while samples.len() < 5 || (samples.len() < 200 && start.elapsed().as_secs_f64() < 1.5) {
        let t = Instant::now();
        frame()?;
        samples.push(t.elapsed().as_secs_f64() * 1e3);
    }
    samples.sort_by(f64::total_cmp);
    Ok(Timing {
        median: samples[samples.len() / 2],
        min: samples[0],
        max: *samples.last().unwrap(),
    })
}
