//! `fido::render` against its CPU references: a panel of the map over the image is
//! `explain`'s overlay.png, a map alone its heatmap.png, an image alone the de-normalised
//! picture, ink blends by coverage, and the curve passes through its end points. Drawn into
//! an `Rgba8Unorm` texture on odd-sized random inputs and read back.
//!
//! Tolerance: one level of 255. The references round each channel once from f32; the GPU
//! computes the same expressions in f32 and rounds once on store, so they may differ by one
//! where a value falls within f32 error of a half level.

mod common;

use common::{gpu, Rng};
use fido::explain::report;
use fido::imageio::Normalize;
use fido::render::{ColorMap, Painter, Panel, Rect};
use fido::{Gpu, Tensor};

fn target(gpu: &Gpu, width: u32, height: u32) -> wgpu::Texture {
    fido::render::offscreen_target(gpu, width, height)
}

/// Draw `panels` (the first clears to black) and read the texture back as RGB.
fn draw(gpu: &Gpu, width: u32, height: u32, panels: &[Panel]) -> image::RgbaImage {
    let texture = target(gpu, width, height);
    let view = texture.create_view(&Default::default());
    let painter = Painter::new(gpu, wgpu::TextureFormat::Rgba8Unorm).unwrap();
    gpu.flush();
    let mut encoder = gpu.device().create_command_encoder(&Default::default());
    for (k, panel) in panels.iter().enumerate() {
        let clear = (k == 0).then_some(wgpu::Color::BLACK);
        painter.draw(&mut encoder, &view, panel, clear).unwrap();
    }
    gpu.queue().submit([encoder.finish()]);
    fido::render::read_rgba(gpu, &texture).unwrap()
}

/// Whether the point (x, y) lies in `rect`, its left and top edges included.
fn holds(rect: Rect, x: f32, y: f32) -> bool {
    x >= rect.x && x < rect.x + rect.width && y >= rect.y && y < rect.y + rect.height
}

#[track_caller]
fn assert_within_one(what: &str, got: &image::RgbaImage, x0: u32, y0: u32, want: &image::RgbImage) {
    let mut worst = 0i32;
    for (x, y, w) in want.enumerate_pixels() {
        let g = got.get_pixel(x0 + x, y0 + y);
        for c in 0..3 {
            let d = (g[c] as i32 - w[c] as i32).abs();
            assert!(
                d <= 1,
                "{what}: pixel ({x}, {y}) channel {c}: {} against {}",
                g[c],
                w[c]
            );
            worst = worst.max(d);
        }
    }
    eprintln!("{what}: worst difference {worst}/255");
}

/// A normalised image tensor `[n, 3, h, w]` and each sample's 0..255 picture.
fn random_images(
    gpu: &Gpu,
    rng: &mut Rng,
    n: usize,
    h: usize,
    w: usize,
    norm: Normalize,
) -> (Tensor, Vec<image::RgbImage>) {
    let mut values = Vec::with_capacity(n * 3 * h * w);
    let mut pictures = Vec::new();
    for _ in 0..n {
        let units: Vec<f32> = rng.vec(3 * h * w, 0.0, 1.0);
        values.extend((0..3 * h * w).map(|i| norm.apply(i / (h * w), units[i])));
        pictures.push(image::RgbImage::from_fn(w as u32, h as u32, |x, y| {
            let at = |c: usize| units[c * h * w + y as usize * w + x as usize];
            image::Rgb([0, 1, 2].map(|c| (at(c) * 255.0).round() as u8))
        }));
    }
    (Tensor::from_slice(gpu, &[n, 3, h, w], &values).unwrap(), pictures)
}

#[test]
fn panels_match_the_report_pictures() {
    let gpu = gpu();
    let mut rng = Rng::new(71);
    let (h, w) = (23usize, 37usize);
    for norm in [Normalize::IMAGENET, Normalize::CENTERED_255] {
        let (images, pictures) = random_images(&gpu, &mut rng, 3, h, w, norm);
        let values = rng.vec(h * w, -0.1, 1.1); // out of range too: both clamp
        let map = Tensor::from_slice(&gpu, &[1, 1, h, w], &values).unwrap();
        // Three panels side by side at odd offsets, each exactly the tensors' size.
        let at = |k: u32| Rect::new(3.0 + k as f32 * 41.0, 5.0, w as f32, h as f32);
        let sample = 2;
        let got = draw(
            &gpu,
            3 * 41 + 7,
            h as u32 + 9,
            &[
                Panel::image(at(0), &images, sample, norm).unwrap(),
                Panel::map(at(1), &map, ColorMap::Diverging).unwrap(),
                Panel::image(at(2), &images, sample, norm)
                    .unwrap()
                    .with_map(&map, ColorMap::Diverging)
                    .unwrap(),
            ],
        );
        // The picture de-normalised (the CPU rounds the unit values the same way).
        let picture = &pictures[sample];
        assert_within_one("image", &got, 3, 5, picture);
        let heat = report::heatmap(&values, w as u32, h as u32);
        assert_within_one("heatmap", &got, 44, 5, &heat);
        let overlay = report::overlay(picture, &heat, &values);
        assert_within_one("overlay", &got, 85, 5, &overlay);
        // Outside the panels: the clear colour, untouched.
        assert_eq!(got.get_pixel(0, 0).0, [0, 0, 0, 255]);
        assert_eq!(got.get_pixel(42, 10).0[..3], [0, 0, 0]);
    }
}

/// `Dashboard`, the frame `fido view` draws: its cells tile the target above the band, and
/// at a size where each cell is exactly the tensors' size, the image, overlay and seen
/// panels are the report's pictures, the curve is drawn in its cell, and an empty text
/// layer changes nothing.
#[test]
fn the_dashboard_lays_out_the_report_pictures_and_the_curve() {
    use fido::render::Dashboard;
    let gpu = gpu();
    let mut rng = Rng::new(29);
    let (h, w) = (19usize, 31usize);
    let norm = Normalize::IMAGENET;
    let (images, pictures) = random_images(&gpu, &mut rng, 2, h, w, norm);
    let (seen, seen_pictures) = random_images(&gpu, &mut rng, 3, h, w, norm);
    let values = rng.vec(h * w, 0.0, 1.0);
    let importance = Tensor::from_slice(&gpu, &[h, w], &values).unwrap();
    let scores = Tensor::from_slice(&gpu, &[9], &rng.vec(9, -3.0, 3.0)).unwrap();
    let target = (2 * (w as u32 + 8), 2 * (h as u32 + 26));
    let text = Tensor::zeros(&gpu, &[7, 5]).unwrap();
    // Each cell is the tensors' size when there is no band.
    for (col, row) in [(0, 0), (1, 0), (0, 1), (1, 1)] {
        let cell = Dashboard::cell(target, 0.0, col, row);
        assert_eq!((cell.width, cell.height), (w as f32, h as f32));
        assert!(cell.x + cell.width <= target.0 as f32 && cell.y + cell.height <= target.1 as f32);
    }
    // With a band, the cells end above it.
    let low = Dashboard::cell((600, 666), 0.1, 1, 1);
    assert!(low.y + low.height <= 666.0 * 0.9, "{low:?}");
    let frame = Dashboard {
        image: &images,
        norm,
        importance: &importance,
        seen: &seen,
        scores: scores.buffer(),
        points: 9,
        text: &text,
        band: 0.0,
    };
    let texture = fido::render::offscreen_target(&gpu, target.0, target.1);
    let view = texture.create_view(&Default::default());
    let painter = Painter::new(&gpu, wgpu::TextureFormat::Rgba8Unorm).unwrap();
    gpu.flush();
    let mut encoder = gpu.device().create_command_encoder(&Default::default());
    frame.draw(&painter, &mut encoder, &view, target).unwrap();
    gpu.queue().submit([encoder.finish()]);
    let got = fido::render::read_rgba(&gpu, &texture).unwrap();
    let origin = |col, row| {
        let c = Dashboard::cell(target, 0.0, col, row);
        (c.x as u32, c.y as u32)
    };
    let (x, y) = origin(0, 0);
    assert_within_one("image", &got, x, y, &pictures[0]);
    let heat = report::heatmap(&values, w as u32, h as u32);
    let (x, y) = origin(1, 0);
    assert_within_one(
        "overlay",
        &got,
        x,
        y,
        &report::overlay(&pictures[0], &heat, &values),
    );
    let (x, y) = origin(0, 1);
    assert_within_one("seen", &got, x, y, &seen_pictures[0]);
    let curve = Dashboard::cell(target, 0.0, 1, 1);
    let background = got.get_pixel(0, 0).0;
    let mut drawn = 0;
    for (px, py, p) in got.enumerate_pixels() {
        if holds(curve, px as f32, py as f32) && p.0 != background {
            drawn += 1;
        }
    }
    assert!(drawn >= w, "the curve drew {drawn} pixels in its cell");
}

/// A panel larger than its tensor shows each value as a block (nearest texel), and ink
/// blends its colour over what is there by coverage.
#[test]
fn scaled_panels_sample_the_nearest_value_and_ink_blends_by_coverage() {
    let gpu = gpu();
    let mut rng = Rng::new(5);
    let (h, w) = (3usize, 5usize);
    let values = rng.vec(h * w, 0.0, 1.0);
    let map = Tensor::from_slice(&gpu, &[h, w], &values).unwrap();
    let (scale, ink) = (7u32, [0.25f32, 0.5, 1.0]);
    let rect = Rect::new(0.0, 0.0, (w as u32 * scale) as f32, (h as u32 * scale) as f32);
    let got = draw(
        &gpu,
        w as u32 * scale,
        h as u32 * scale,
        &[
            Panel::map(rect, &map, ColorMap::Diverging).unwrap(),
            Panel::map(rect, &map, ColorMap::Ink(ink)).unwrap(),
        ],
    );
    for y in 0..h as u32 * scale {
        for x in 0..w as u32 * scale {
            let v = values[(y / scale) as usize * w + (x / scale) as usize];
            let under = report::diverging(v);
            let g = got.get_pixel(x, y);
            for c in 0..3 {
                let want = (ink[c] * v + under[c] as f32 / 255.0 * (1.0 - v)) * 255.0;
                // The map underneath may already be a level off (see the top), and the blend
                // rounds once more on store.
                assert!(
                    (g[c] as f32 - want).abs() <= 1.5,
                    "({x}, {y}) channel {c}: {} against {want}",
                    g[c]
                );
            }
        }
    }
}

/// A panel covers exactly the pixels whose centres lie inside its rectangle, whether its
/// edges are fractional, it hangs off the target, or it lies wholly outside (the draw
/// clips fragments with a scissor, which must never cut one the rectangle holds).
#[test]
fn panels_cover_the_pixels_whose_centres_they_hold_even_off_the_target() {
    let gpu = gpu();
    let (width, height) = (23u32, 17u32);
    let map = Tensor::from_slice(&gpu, &[1, 1], &[1.0]).unwrap();
    let red = report::diverging(1.0);
    for rect in [
        Rect::new(2.4, 3.6, 7.3, 5.5),
        Rect::new(-4.5, -2.2, 9.0, 8.0),
        Rect::new(15.5, 10.49, 30.0, 30.0),
        Rect::new(-12.0, 2.0, 5.0, 5.0),
        Rect::new(40.0, 40.0, 5.0, 5.0),
        Rect::new(0.0, 0.0, width as f32, height as f32),
    ] {
        let got = draw(
            &gpu,
            width,
            height,
            &[Panel::map(rect, &map, ColorMap::Diverging).unwrap()],
        );
        let mut drawn = 0;
        for (x, y, g) in got.enumerate_pixels() {
            let (cx, cy) = (x as f32 + 0.5, y as f32 + 0.5);
            let inside = holds(rect, cx, cy);
            let want = if inside {
                [red[0], red[1], red[2]]
            } else {
                [0, 0, 0]
            };
            assert_eq!([g[0], g[1], g[2]], want, "{rect:?}: pixel ({x}, {y})");
            drawn += usize::from(inside);
        }
        eprintln!("{rect:?}: {drawn} pixels");
    }
}

/// A rising curve starts at the panel's lower-left margin and ends at its upper right, and
/// draws nothing outside the panel.
#[test]
fn the_curve_spans_its_values_inside_its_panel() {
    let gpu = gpu();
    let values: Vec<f32> = (0..17)
        .map(|i| (i as f32 * 0.37).sin() + i as f32 * 0.5 - 3.0)
        .collect();
    let buffer = Tensor::from_slice(&gpu, &[values.len()], &values).unwrap();
    let (width, height) = (101u32, 61u32);
    let rect = Rect::new(10.0, 5.0, 81.0, 51.0);
    let texture = target(&gpu, width, height);
    let view = texture.create_view(&Default::default());
    let painter = Painter::new(&gpu, wgpu::TextureFormat::Rgba8Unorm).unwrap();
    gpu.flush();
    let mut encoder = gpu.device().create_command_encoder(&Default::default());
    painter
        .draw(
            &mut encoder,
            &view,
            &Panel::map(
                Rect::new(0.0, 0.0, 1.0, 1.0),
                &buffer.reshape(&[1, 17]).unwrap(),
                ColorMap::Ink([0.0; 3]),
            )
            .unwrap(),
            Some(wgpu::Color::BLACK),
        )
        .unwrap();
    painter
        .draw_curve(
            &mut encoder,
            &view,
            (width, height),
            rect,
            buffer.buffer(),
            values.len() as u32,
            [1.0, 1.0, 1.0],
        )
        .unwrap();
    gpu.queue().submit([encoder.finish()]);
    let got = fido::render::read_rgba(&gpu, &texture).unwrap();
    let lit = |x: u32, y: u32| got.get_pixel(x, y)[0] > 128;
    let near = |x: f32, y: f32| {
        let (x, y) = (x.round() as i64, y.round() as i64);
        (-1..=1).any(|dx| (-1..=1).any(|dy| lit((x + dx) as u32, (y + dy) as u32)))
    };
    // The shader's margins: 6% of the panel on each side.
    let (left, right) = (rect.x + rect.width * 0.06, rect.x + rect.width * 0.94);
    let (top, bottom) = (rect.y + rect.height * 0.06, rect.y + rect.height * 0.94);
    assert!(near(left, bottom), "the first (lowest) point");
    assert!(near(right, top), "the last (highest) point");
    let lit_count = (0..height)
        .flat_map(|y| (0..width).map(move |x| (x, y)))
        .filter(|&(x, y)| lit(x, y))
        .count();
    assert!(lit_count > 60, "a line, not dots: {lit_count} pixels");
    for y in 0..height {
        for x in 0..width {
            let inside = holds(rect, x as f32, y as f32);
            assert!(inside || !lit(x, y), "({x}, {y}) lit outside the panel");
        }
    }
    // A count past the buffer is refused, not drawn from beyond it.
    let mut encoder = gpu.device().create_command_encoder(&Default::default());
    let err = painter
        .draw_curve(
            &mut encoder,
            &view,
            (width, height),
            rect,
            buffer.buffer(),
            1 << 20,
            [1.0; 3],
        )
        .unwrap_err();
    assert!(err.to_string().contains("needs"), "{err}");
}

#[test]
fn tensors_of_the_wrong_shape_are_refused_by_name() {
    let gpu = gpu();
    let flat = Tensor::zeros(&gpu, &[2, 3, 4]).unwrap();
    let rect = Rect::new(0.0, 0.0, 4.0, 4.0);
    let err = Panel::map(rect, &flat, ColorMap::Diverging)
        .unwrap_err()
        .to_string();
    assert!(err.contains("a map is [H, W]"), "{err}");
    let err = Panel::image(rect, &flat, 0, Normalize::IMAGENET)
        .unwrap_err()
        .to_string();
    assert!(err.contains("[N, 3, H, W]"), "{err}");
    let images = Tensor::zeros(&gpu, &[2, 3, 4, 4]).unwrap();
    let err = Panel::image(rect, &images, 2, Normalize::IMAGENET)
        .unwrap_err()
        .to_string();
    assert!(err.contains("sample 2 of a batch of 2"), "{err}");
}

/// A tensor's layout says where each element lies in its buffer: checked by copying the
/// buffer out whole and indexing it with the strides.
#[test]
fn a_tensor_layout_locates_every_element_in_its_buffer() {
    let gpu = gpu();
    let mut rng = Rng::new(9);
    let shape = [2usize, 3, 5, 7];
    let values = rng.vec(shape.iter().product(), -1.0, 1.0);
    let t = Tensor::from_slice(&gpu, &shape, &values).unwrap();
    let layout = t.layout();
    assert_eq!(layout.shape, shape);
    assert_eq!(layout.strides, [105, 35, 7, 1]);
    assert_eq!(layout.len_bytes, 4 * values.len() as u64);
    assert!(t.buffer().size() >= layout.offset_bytes + layout.len_bytes);
    let whole = Tensor::empty(&gpu, &[t.buffer().size() as usize / 4], fido::DType::F32).unwrap();
    let mut encoder = gpu.device().create_command_encoder(&Default::default());
    gpu.flush();
    encoder.copy_buffer_to_buffer(t.buffer(), 0, whole.buffer(), 0, t.buffer().size());
    gpu.queue().submit([encoder.finish()]);
    let raw = whole.to_vec().unwrap();
    for (i, &v) in values.iter().enumerate() {
        let index = [i / 105, i / 35 % 3, i / 7 % 5, i % 7];
        let at =
            layout.offset_bytes as usize / 4 + (0..4).map(|d| index[d] * layout.strides[d]).sum::<usize>();
        assert_eq!(raw[at], v, "element {index:?}");
    }
}
