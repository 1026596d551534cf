//! PNG plots drawn directly with `image`: box plots and line curves with axes, ticks and
//! numeric tick labels in a tiny built-in bitmap font. Series are told apart by colour;
//! the HTML report carries the legend.

use image::{Rgb, RgbImage};

/// Distinct series colours (colour-blind-friendly Tableau 10).
pub const PALETTE: [[u8; 3]; 10] = [
    [31, 119, 180],
    [255, 127, 14],
    [44, 160, 44],
    [214, 39, 40],
    [148, 103, 189],
    [140, 86, 75],
    [227, 119, 194],
    [127, 127, 127],
    [188, 189, 34],
    [23, 190, 207],
];

pub fn colour(i: usize) -> Rgb<u8> {
    Rgb(PALETTE[i % PALETTE.len()])
}

/// Hex form of a series colour, for the HTML legend.
pub fn colour_hex(i: usize) -> String {
    let c = PALETTE[i % PALETTE.len()];
    format!("#{:02x}{:02x}{:02x}", c[0], c[1], c[2])
}

/// Five-number summary of a sample (quartiles by linear interpolation).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FiveNumbers {
    pub min: f64,
    pub q1: f64,
    pub median: f64,
    pub q3: f64,
    pub max: f64,
    pub mean: f64,
    pub n: usize,
}

/// None for an empty sample; non-finite values are ignored.
pub fn five_numbers(values: &[f64]) -> Option<FiveNumbers> {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let q = |p: f64| {
        let pos = p * (v.len() - 1) as f64;
        let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
        v[lo] + (v[hi] - v[lo]) * (pos - lo as f64)
    };
    Some(FiveNumbers {
        min: v[0],
        q1: q(0.25),
        median: q(0.5),
        q3: q(0.75),
        max: v[v.len() - 1],
        mean: v.iter().sum::<f64>() / v.len() as f64,
        n: v.len(),
    })
}

const WIDTH: u32 = 640;
const HEIGHT: u32 = 400;
const LEFT: u32 = 80;
const RIGHT: u32 = 16;
const TOP: u32 = 16;
const BOTTOM: u32 = 40;
const BLACK: Rgb<u8> = Rgb([0, 0, 0]);
const GRID: Rgb<u8> = Rgb([225, 225, 225]);

/// One box per sample, in series colours, over a shared y axis.
pub fn box_plot(samples: &[Vec<f64>]) -> RgbImage {
    let stats: Vec<Option<FiveNumbers>> = samples.iter().map(|s| five_numbers(s)).collect();
    let (lo, hi) = range(stats.iter().flatten().flat_map(|s| [s.min, s.max]));
    let mut canvas = Canvas::new(lo, hi, 0.0, samples.len().max(1) as f64);
    canvas.axes(false);
    for (i, s) in stats.iter().enumerate() {
        let Some(s) = s else { continue };
        let c = colour(i);
        let centre = i as f64 + 0.5;
        let (l, r) = (canvas.px(centre - 0.3), canvas.px(centre + 0.3));
        let mid = canvas.px(centre);
        let (y_q1, y_q3) = (canvas.py(s.q1), canvas.py(s.q3));
        canvas.fill_rect(l, y_q3.min(y_q1), r, y_q3.max(y_q1), lighten(c));
        canvas.rect(l, y_q3.min(y_q1), r, y_q3.max(y_q1), c);
        canvas.hline(l, r, canvas.py(s.median), BLACK);
        canvas.vline(mid, canvas.py(s.max), y_q3, c);
        canvas.vline(mid, y_q1, canvas.py(s.min), c);
        let (wl, wr) = (canvas.px(centre - 0.12), canvas.px(centre + 0.12));
        canvas.hline(wl, wr, canvas.py(s.max), c);
        canvas.hline(wl, wr, canvas.py(s.min), c);
        // The mean as a small cross.
        let (mx, my) = (mid as i64, canvas.py(s.mean) as i64);
        for d in -3i64..=3 {
            canvas.put(mx + d, my + d, BLACK);
            canvas.put(mx + d, my - d, BLACK);
        }
        canvas.text(
            &format!("{}", i + 1),
            mid.saturating_sub(GLYPH_SCALE * 2),
            HEIGHT - BOTTOM + 10,
            BLACK,
        );
    }
    canvas.image
}

/// Polylines `(x, y)` per series, over shared axes.
pub fn line_plot(series: &[Vec<(f64, f64)>]) -> RgbImage {
    let points = || {
        series
            .iter()
            .flatten()
            .filter(|(x, y)| x.is_finite() && y.is_finite())
    };
    let (x_lo, x_hi) = range(points().map(|p| p.0));
    let (y_lo, y_hi) = range(points().map(|p| p.1));
    let mut canvas = Canvas::new(y_lo, y_hi, x_lo, x_hi);
    canvas.axes(true);
    for (i, s) in series.iter().enumerate() {
        let c = colour(i);
        let pts: Vec<(i64, i64)> = s
            .iter()
            .filter(|(x, y)| x.is_finite() && y.is_finite())
            .map(|&(x, y)| (canvas.px(x) as i64, canvas.py(y) as i64))
            .collect();
        for w in pts.windows(2) {
            canvas.line(w[0], w[1], c);
        }
        for &(x, y) in &pts {
            for dy in -2..=2 {
                for dx in -2..=2 {
                    canvas.put(x + dx, y + dy, c);
                }
            }
        }
    }
    canvas.image
}

fn lighten(c: Rgb<u8>) -> Rgb<u8> {
    Rgb(c.0.map(|v| (v as u16 + 2 * 255).div_euclid(3) as u8))
}

/// A padded data range that never collapses to a point.
fn range(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (lo, hi) = values
        .filter(|v| v.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| {
            (a.min(v), b.max(v))
        });
    if !lo.is_finite() {
        return (0.0, 1.0);
    }
    if hi - lo < 1e-12 {
        return (lo - 0.5, hi + 0.5);
    }
    let pad = 0.05 * (hi - lo);
    (lo - pad, hi + pad)
}

struct Canvas {
    image: RgbImage,
    y_lo: f64,
    y_hi: f64,
    x_lo: f64,
    x_hi: f64,
}

impl Canvas {
    fn new(y_lo: f64, y_hi: f64, x_lo: f64, x_hi: f64) -> Canvas {
        Canvas {
            image: RgbImage::from_pixel(WIDTH, HEIGHT, Rgb([255, 255, 255])),
            y_lo,
            y_hi,
            x_lo,
            x_hi,
        }
    }
    fn px(&self, x: f64) -> u32 {
        let t = (x - self.x_lo) / (self.x_hi - self.x_lo);
        LEFT + (t.clamp(0.0, 1.0) * (WIDTH - LEFT - RIGHT) as f64).round() as u32
    }
    fn py(&self, y: f64) -> u32 {
        let t = (y - self.y_lo) / (self.y_hi - self.y_lo);
        HEIGHT - BOTTOM - (t.clamp(0.0, 1.0) * (HEIGHT - TOP - BOTTOM) as f64).round() as u32
    }
    fn put(&mut self, x: i64, y: i64, c: Rgb<u8>) {
        if x >= 0 && y >= 0 && (x as u32) < WIDTH && (y as u32) < HEIGHT {
            self.image.put_pixel(x as u32, y as u32, c);
        }
    }
    fn hline(&mut self, x0: u32, x1: u32, y: u32, c: Rgb<u8>) {
        for x in x0.min(x1)..=x0.max(x1) {
            self.put(x as i64, y as i64, c);
        }
    }
    fn vline(&mut self, x: u32, y0: u32, y1: u32, c: Rgb<u8>) {
        for y in y0.min(y1)..=y0.max(y1) {
            self.put(x as i64, y as i64, c);
        }
    }
    fn rect(&mut self, x0: u32, y0: u32, x1: u32, y1: u32, c: Rgb<u8>) {
        self.hline(x0, x1, y0, c);
        self.hline(x0, x1, y1, c);
        self.vline(x0, y0, y1, c);
        self.vline(x1, y0, y1, c);
    }
    fn fill_rect(&mut self, x0: u32, y0: u32, x1: u32, y1: u32, c: Rgb<u8>) {
        for y in y0..=y1 {
            self.hline(x0, x1, y, c);
        }
    }
    fn line(&mut self, (x0, y0): (i64, i64), (x1, y1): (i64, i64), c: Rgb<u8>) {
        let steps = (x1 - x0).abs().max((y1 - y0).abs()).max(1);
        for s in 0..=steps {
            let x = x0 + (x1 - x0) * s / steps;
            let y = y0 + (y1 - y0) * s / steps;
            for d in 0..2 {
                self.put(x, y + d, c);
            }
        }
    }
    /// Axes with five labelled ticks on y (and on x when `x_ticks`), and light grid lines.
    fn axes(&mut self, x_ticks: bool) {
        for i in 0..=4 {
            let v = self.y_lo + (self.y_hi - self.y_lo) * i as f64 / 4.0;
            let y = self.py(v);
            self.hline(LEFT + 1, WIDTH - RIGHT, y, GRID);
            self.hline(LEFT - 4, LEFT, y, BLACK);
            let label = tick_label(v, (self.y_hi - self.y_lo) / 4.0);
            let w = label.len() as u32 * GLYPH_ADVANCE;
            self.text(&label, LEFT.saturating_sub(6 + w), y.saturating_sub(5), BLACK);
            if x_ticks {
                let v = self.x_lo + (self.x_hi - self.x_lo) * i as f64 / 4.0;
                let x = self.px(v);
                self.vline(x, TOP, HEIGHT - BOTTOM - 1, GRID);
                self.vline(x, HEIGHT - BOTTOM, HEIGHT - BOTTOM + 4, BLACK);
                let label = tick_label(v, (self.x_hi - self.x_lo) / 4.0);
                let w = label.len() as u32 * GLYPH_ADVANCE;
                self.text(&label, x.saturating_sub(w / 2), HEIGHT - BOTTOM + 10, BLACK);
            }
        }
        self.vline(LEFT, TOP, HEIGHT - BOTTOM, BLACK);
        self.hline(LEFT, WIDTH - RIGHT, HEIGHT - BOTTOM, BLACK);
    }
    /// Digits, '.', '-' and 'e' in a 3×5 font, each dot drawn as a square of
    /// `GLYPH_SCALE` pixels.
    fn text(&mut self, s: &str, x: u32, y: u32, c: Rgb<u8>) {
        for (k, ch) in s.chars().enumerate() {
            let Some(rows) = glyph(ch) else { continue };
            for (r, bits) in rows.iter().enumerate() {
                for b in 0..3u32 {
                    if bits & (0b100 >> b) == 0 {
                        continue;
                    }
                    let px = x + k as u32 * GLYPH_ADVANCE + b * GLYPH_SCALE;
                    let py = y + r as u32 * GLYPH_SCALE;
                    for dy in 0..GLYPH_SCALE {
                        for dx in 0..GLYPH_SCALE {
                            self.put((px + dx) as i64, (py + dy) as i64, c);
                        }
                    }
                }
            }
        }
    }
}

const GLYPH_SCALE: u32 = 2;
const GLYPH_ADVANCE: u32 = 4 * GLYPH_SCALE;

/// Enough decimals to tell ticks `step` apart.
fn tick_label(v: f64, step: f64) -> String {
    let a = v.abs();
    if a >= 1e5 || (a != 0.0 && a < 1e-4) {
        return format!("{v:.1e}");
    }
    let decimals = if step > 0.0 {
        (1.0 - step.log10().floor()).clamp(0.0, 5.0) as usize
    } else {
        2
    };
    format!("{v:.decimals$}")
}

fn glyph(c: char) -> Option<[u8; 5]> {
    Some(match c {
        '0' => [0b111, 0b101, 0b101, 0b101, 0b111],
        '1' => [0b010, 0b110, 0b010, 0b010, 0b111],
        '2' => [0b111, 0b001, 0b111, 0b100, 0b111],
        '3' => [0b111, 0b001, 0b111, 0b001, 0b111],
        '4' => [0b101, 0b101, 0b111, 0b001, 0b001],
        '5' => [0b111, 0b100, 0b111, 0b001, 0b111],
        '6' => [0b111, 0b100, 0b111, 0b101, 0b111],
        '7' => [0b111, 0b001, 0b010, 0b010, 0b010],
        '8' => [0b111, 0b101, 0b111, 0b101, 0b111],
        '9' => [0b111, 0b101, 0b111, 0b001, 0b111],
        '.' => [0b000, 0b000, 0b000, 0b000, 0b010],
        '-' => [0b000, 0b000, 0b111, 0b000, 0b000],
        'e' => [0b000, 0b111, 0b111, 0b100, 0b111],
        _ => return None,
    })
}
