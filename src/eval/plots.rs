//! PNG plots drawn directly with `image`: box plots and line curves with a title, axis
//! labels, rounded ticks, category names and a legend, in a small built-in 5×7 bitmap
//! font, so that each picture reads on its own outside the HTML report.

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

/// The words around a plot.
#[derive(Clone, Copy, Debug, Default)]
pub struct Labels<'a> {
    pub title: &'a str,
    pub x: &'a str,
    pub y: &'a str,
}

/// One box per named sample (quartile box, median line, min–max whiskers, mean as a cross),
/// over a shared y axis.
pub fn box_plot(labels: Labels, names: &[String], samples: &[Vec<f64>]) -> RgbImage {
    let stats: Vec<Option<FiveNumbers>> = samples.iter().map(|s| five_numbers(s)).collect();
    let (lo, hi) = range(stats.iter().flatten().flat_map(|s| [s.min, s.max]));
    let y = Scale::nice(lo, hi);
    let x = Scale::plain(0.0, samples.len().max(1) as f64);
    let mut canvas = Canvas::new(labels, RIGHT_PLAIN, x, y);
    canvas.axes(false);
    let slot = (canvas.frame.width() / samples.len().max(1) as u32).saturating_sub(6);
    // One scale for every name, so that no box looks more important than another.
    let scale = names.iter().map(|n| fit(n, slot).1).min().unwrap_or(2);
    for (i, s) in stats.iter().enumerate() {
        let c = colour(i);
        let centre = i as f64 + 0.5;
        let mid = canvas.px(centre);
        let name = names.get(i).map(String::as_str).unwrap_or("");
        let text = shorten(name, slot, scale);
        let w = text_width(&text, scale);
        canvas.text(
            &text,
            mid.saturating_sub(w / 2),
            canvas.frame.bottom + 10,
            scale,
            BLACK,
        );
        let Some(s) = s else { continue };
        let (l, r) = (canvas.px(centre - 0.3), canvas.px(centre + 0.3));
        let (y_q1, y_q3) = (canvas.py(s.q1), canvas.py(s.q3));
        canvas.fill_rect(l, y_q3.min(y_q1), r, y_q3.max(y_q1), lighten(c));
        canvas.rect(l, y_q3.min(y_q1), r, y_q3.max(y_q1), c);
        canvas.hline(l, r, canvas.py(s.median), BLACK);
        canvas.vline(mid, canvas.py(s.max), y_q3, c);
        canvas.vline(mid, y_q1, canvas.py(s.min), c);
        let (wl, wr) = (canvas.px(centre - 0.12), canvas.px(centre + 0.12));
        canvas.hline(wl, wr, canvas.py(s.max), c);
        canvas.hline(wl, wr, canvas.py(s.min), c);
        let (mx, my) = (mid as i64, canvas.py(s.mean) as i64);
        for d in -3i64..=3 {
            canvas.put(mx + d, my + d, BLACK);
            canvas.put(mx + d, my - d, BLACK);
        }
        let n = format!("n={}", s.n);
        let w = text_width(&n, 1);
        canvas.text(&n, mid.saturating_sub(w / 2), canvas.frame.bottom + 22, 1, GREY);
    }
    canvas.image
}

/// Polylines `(x, y)` per named series over shared axes, with a legend on the right.
pub fn line_plot(labels: Labels, names: &[String], series: &[Vec<(f64, f64)>]) -> RgbImage {
    let points = || {
        series
            .iter()
            .flatten()
            .filter(|(x, y)| x.is_finite() && y.is_finite())
    };
    let (x_lo, x_hi) = range(points().map(|p| p.0));
    let (y_lo, y_hi) = range(points().map(|p| p.1));
    let mut canvas = Canvas::new(
        labels,
        RIGHT_LEGEND,
        Scale::nice(x_lo, x_hi),
        Scale::nice(y_lo, y_hi),
    );
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
            canvas.dot(x, y, c);
        }
    }
    canvas.legend(names);
    canvas.image
}

/// A grid of pictures: one column per name, one row per labelled row of pictures (None:
/// a grey cell), each picture scaled to `cell`×`cell`.
pub fn picture_grid(names: &[String], rows: &[(String, Vec<Option<RgbImage>>)], cell: u32) -> RgbImage {
    const GAP: u32 = 6;
    const HEADER: u32 = 22;
    const ROW_LABEL: u32 = 14;
    let columns = names.len().max(1) as u32;
    let width = GAP + columns * (cell + GAP);
    let height = HEADER + rows.len() as u32 * (ROW_LABEL + cell + GAP);
    let mut canvas = Canvas {
        image: RgbImage::from_pixel(width, height, Rgb([255, 255, 255])),
        frame: Frame {
            left: 0,
            right: width,
            top: 0,
            bottom: height,
        },
        x: Scale::plain(0.0, 1.0),
        y: Scale::plain(0.0, 1.0),
    };
    let column_x = |k: u32| GAP + k * (cell + GAP);
    let scale = names.iter().map(|n| fit(n, cell).1).min().unwrap_or(2);
    for (k, name) in names.iter().enumerate() {
        let text = shorten(name, cell, scale);
        let w = text_width(&text, scale);
        let x = column_x(k as u32) + (cell - w.min(cell)) / 2;
        canvas.text(&text, x, 4, scale, BLACK);
    }
    for (r, (label, pictures)) in rows.iter().enumerate() {
        let top = HEADER + r as u32 * (ROW_LABEL + cell + GAP);
        canvas.text(&shorten(label, width - 2 * GAP, 1), GAP, top + 3, 1, GREY);
        for (k, picture) in pictures.iter().enumerate().take(columns as usize) {
            let (x0, y0) = (column_x(k as u32), top + ROW_LABEL);
            match picture {
                Some(p) => {
                    let small = image::imageops::resize(p, cell, cell, image::imageops::FilterType::Triangle);
                    image::imageops::replace(&mut canvas.image, &small, x0 as i64, y0 as i64);
                }
                None => canvas.fill_rect(x0, y0, x0 + cell - 1, y0 + cell - 1, GRID),
            }
        }
    }
    canvas.image
}

const WIDTH: u32 = 760;
const HEIGHT: u32 = 460;
const LEFT: u32 = 72;
const TOP: u32 = 52;
const BOTTOM: u32 = 58;
const RIGHT_PLAIN: u32 = 20;
const RIGHT_LEGEND: u32 = 170;
const BLACK: Rgb<u8> = Rgb([0, 0, 0]);
const GREY: Rgb<u8> = Rgb([110, 110, 110]);
const GRID: Rgb<u8> = Rgb([225, 225, 225]);

fn lighten(c: Rgb<u8>) -> Rgb<u8> {
    Rgb(c.0.map(|v| (v as u16 + 2 * 255).div_euclid(3) as u8))
}

/// The data range, never collapsed to a point.
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
        let pad = 0.5 * lo.abs().max(1e-3);
        return (lo - pad, hi + pad);
    }
    (lo, hi)
}

/// An axis: its limits and, for a value axis, ticks at round numbers.
#[derive(Clone, Debug)]
struct Scale {
    lo: f64,
    hi: f64,
    ticks: Vec<f64>,
    decimals: usize,
}

impl Scale {
    fn plain(lo: f64, hi: f64) -> Scale {
        Scale {
            lo,
            hi,
            ticks: Vec::new(),
            decimals: 0,
        }
    }

    /// Limits widened to multiples of a 1, 2, 2.5 or 5 × 10^k step giving 4–8 ticks.
    fn nice(lo: f64, hi: f64) -> Scale {
        let raw = (hi - lo) / 5.0;
        let magnitude = 10f64.powf(raw.log10().floor());
        let step = [1.0, 2.0, 2.5, 5.0, 10.0]
            .iter()
            .map(|m| m * magnitude)
            .find(|s| *s >= raw * 0.999)
            .unwrap_or(10.0 * magnitude);
        let first = (lo / step + 1e-9).floor();
        let last = (hi / step - 1e-9).ceil();
        let ticks: Vec<f64> = (0..=(last - first) as i64)
            .map(|k| (first + k as f64) * step)
            .collect();
        let decimals = (0..7)
            .find(|&d| {
                let scaled = step * 10f64.powi(d as i32);
                (scaled - scaled.round()).abs() < 1e-6 * scaled.max(1.0)
            })
            .unwrap_or(6);
        Scale {
            lo: first * step,
            hi: last * step,
            ticks,
            decimals,
        }
    }

    fn label(&self, v: f64) -> String {
        // A tick that should be zero but carries rounding error reads "0", not "-0.00".
        let v = if v.abs() < 0.5 * 10f64.powi(-(self.decimals as i32)) {
            0.0
        } else {
            v
        };
        let a = v.abs();
        if a >= 1e5 || (a != 0.0 && a < 1e-4) {
            return format!("{v:.1e}");
        }
        format!("{v:.*}", self.decimals)
    }
}

/// The plot area in pixels.
#[derive(Clone, Copy, Debug)]
struct Frame {
    left: u32,
    right: u32,
    top: u32,
    bottom: u32,
}

impl Frame {
    fn width(&self) -> u32 {
        self.right - self.left
    }
}

struct Canvas {
    image: RgbImage,
    frame: Frame,
    x: Scale,
    y: Scale,
}

impl Canvas {
    fn new(labels: Labels, right_margin: u32, x: Scale, y: Scale) -> Canvas {
        let frame = Frame {
            left: LEFT,
            right: WIDTH - right_margin,
            top: TOP,
            bottom: HEIGHT - BOTTOM,
        };
        let mut canvas = Canvas {
            image: RgbImage::from_pixel(WIDTH, HEIGHT, Rgb([255, 255, 255])),
            frame,
            x,
            y,
        };
        let (title, scale) = fit(labels.title, WIDTH - 16);
        canvas.text(&title, 8, 10, scale, BLACK);
        let y_label = shorten(labels.y, WIDTH - 16, 1);
        canvas.text(&y_label, 8, TOP - 16, 1, BLACK);
        let x_label = shorten(labels.x, frame.width(), 1);
        let w = text_width(&x_label, 1);
        let centre = (frame.left + frame.right) / 2;
        canvas.text(&x_label, centre.saturating_sub(w / 2), HEIGHT - 18, 1, BLACK);
        canvas
    }

    fn px(&self, x: f64) -> u32 {
        let t = (x - self.x.lo) / (self.x.hi - self.x.lo);
        self.frame.left + (t.clamp(0.0, 1.0) * self.frame.width() as f64).round() as u32
    }

    fn py(&self, y: f64) -> u32 {
        let t = (y - self.y.lo) / (self.y.hi - self.y.lo);
        let height = (self.frame.bottom - self.frame.top) as f64;
        self.frame.bottom - (t.clamp(0.0, 1.0) * height).round() as u32
    }

    fn put(&mut self, x: i64, y: i64, c: Rgb<u8>) {
        let (width, height) = self.image.dimensions();
        if x >= 0 && y >= 0 && (x as u32) < width && (y as u32) < height {
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

    fn dot(&mut self, x: i64, y: i64, c: Rgb<u8>) {
        for dy in -2..=2 {
            for dx in -2..=2 {
                self.put(x + dx, y + dy, c);
            }
        }
    }

    /// A two-pixel-thick segment.
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

    /// Axes, grid lines and labelled ticks on y (and on x when `x_ticks`).
    fn axes(&mut self, x_ticks: bool) {
        let f = self.frame;
        for v in self.y.ticks.clone() {
            let y = self.py(v);
            self.hline(f.left + 1, f.right, y, GRID);
            self.hline(f.left - 4, f.left, y, BLACK);
            let label = self.y.label(v);
            let w = text_width(&label, 1);
            self.text(
                &label,
                f.left.saturating_sub(8 + w),
                y.saturating_sub(3),
                1,
                BLACK,
            );
        }
        if x_ticks {
            for v in self.x.ticks.clone() {
                let x = self.px(v);
                self.vline(x, f.top, f.bottom - 1, GRID);
                self.vline(x, f.bottom, f.bottom + 4, BLACK);
                let label = self.x.label(v);
                let w = text_width(&label, 1);
                self.text(&label, x.saturating_sub(w / 2), f.bottom + 10, 1, BLACK);
            }
        }
        self.vline(f.left, f.top, f.bottom, BLACK);
        self.hline(f.left, f.right, f.bottom, BLACK);
    }

    /// Series names beside colour swatches, right of the plot area.
    fn legend(&mut self, names: &[String]) {
        let x = self.frame.right + 14;
        for (i, name) in names.iter().enumerate() {
            let y = self.frame.top + 6 + 16 * i as u32;
            let c = colour(i);
            for d in 0..2 {
                self.hline(x, x + 18, y + 3 + d, c);
            }
            self.dot((x + 9) as i64, (y + 3) as i64, c);
            let text = shorten(name, WIDTH - x - 30, 1);
            self.text(&text, x + 26, y, 1, BLACK);
        }
    }

    /// `s` in the 5×7 font, each dot a `scale`×`scale` square; (x, y) is the top left.
    fn text(&mut self, s: &str, x: u32, y: u32, scale: u32, c: Rgb<u8>) {
        for (k, ch) in s.chars().enumerate() {
            let (rows, drop) = glyph(ch);
            for (r, bits) in rows.iter().enumerate() {
                for b in 0..5u32 {
                    if bits & (0b10000 >> b) == 0 {
                        continue;
                    }
                    let px = x + k as u32 * 6 * scale + b * scale;
                    let py = y + (r as u32 + drop) * scale;
                    for dy in 0..scale {
                        for dx in 0..scale {
                            self.put((px + dx) as i64, (py + dy) as i64, c);
                        }
                    }
                }
            }
        }
    }
}

/// Width in pixels of `s` at `scale`.
fn text_width(s: &str, scale: u32) -> u32 {
    (s.chars().count() as u32 * 6).saturating_sub(1) * scale
}

/// `s` at scale 2 when it fits in `width` pixels, else at scale 1, shortened if need be.
fn fit(s: &str, width: u32) -> (String, u32) {
    let scale = if text_width(s, 2) <= width { 2 } else { 1 };
    (shorten(s, width, scale), scale)
}

/// `s`, cut and ended with ".." if it is wider than `width` pixels at `scale`.
fn shorten(s: &str, width: u32, scale: u32) -> String {
    if text_width(s, scale) <= width {
        return s.to_string();
    }
    let keep = (width / (6 * scale)).saturating_sub(2) as usize;
    format!("{}..", s.chars().take(keep).collect::<String>())
}

/// Rows of a 5×7 glyph, bit 4 leftmost, and how many rows it sits below the top of the cell
/// (g, p, q and y descend below the baseline); characters outside printable ASCII draw as '?'.
fn glyph(c: char) -> ([u8; 7], u32) {
    let code = c as u32;
    let index = if (32..127).contains(&code) {
        code - 32
    } else {
        '?' as u32 - 32
    };
    let drop = if matches!(c, 'g' | 'p' | 'q' | 'y') { 2 } else { 0 };
    (FONT[index as usize], drop)
}

/// Printable ASCII, from ' ' (32) to '~' (126).
#[rustfmt::skip]
const FONT: [[u8; 7]; 95] = [
    [0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00], // ' '
    [0x04, 0x04, 0x04, 0x04, 0x04, 0x00, 0x04], // !
    [0x0A, 0x0A, 0x0A, 0x00, 0x00, 0x00, 0x00], // "
    [0x0A, 0x0A, 0x1F, 0x0A, 0x1F, 0x0A, 0x0A], // #
    [0x04, 0x0F, 0x14, 0x0E, 0x05, 0x1E, 0x04], // $
    [0x18, 0x19, 0x02, 0x04, 0x08, 0x13, 0x03], // %
    [0x0C, 0x12, 0x14, 0x08, 0x15, 0x12, 0x0D], // &
    [0x0C, 0x04, 0x08, 0x00, 0x00, 0x00, 0x00], // '
    [0x02, 0x04, 0x08, 0x08, 0x08, 0x04, 0x02], // (
    [0x08, 0x04, 0x02, 0x02, 0x02, 0x04, 0x08], // )
    [0x00, 0x04, 0x15, 0x0E, 0x15, 0x04, 0x00], // *
    [0x00, 0x04, 0x04, 0x1F, 0x04, 0x04, 0x00], // +
    [0x00, 0x00, 0x00, 0x00, 0x0C, 0x04, 0x08], // ,
    [0x00, 0x00, 0x00, 0x1F, 0x00, 0x00, 0x00], // -
    [0x00, 0x00, 0x00, 0x00, 0x00, 0x0C, 0x0C], // .
    [0x00, 0x01, 0x02, 0x04, 0x08, 0x10, 0x00], // /
    [0x0E, 0x11, 0x13, 0x15, 0x19, 0x11, 0x0E], // 0
    [0x04, 0x0C, 0x04, 0x04, 0x04, 0x04, 0x0E], // 1
    [0x0E, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1F], // 2
    [0x1F, 0x02, 0x04, 0x02, 0x01, 0x11, 0x0E], // 3
    [0x02, 0x06, 0x0A, 0x12, 0x1F, 0x02, 0x02], // 4
    [0x1F, 0x10, 0x1E, 0x01, 0x01, 0x11, 0x0E], // 5
    [0x06, 0x08, 0x10, 0x1E, 0x11, 0x11, 0x0E], // 6
    [0x1F, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08], // 7
    [0x0E, 0x11, 0x11, 0x0E, 0x11, 0x11, 0x0E], // 8
    [0x0E, 0x11, 0x11, 0x0F, 0x01, 0x02, 0x0C], // 9
    [0x00, 0x0C, 0x0C, 0x00, 0x0C, 0x0C, 0x00], // :
    [0x00, 0x0C, 0x0C, 0x00, 0x0C, 0x04, 0x08], // ;
    [0x02, 0x04, 0x08, 0x10, 0x08, 0x04, 0x02], // <
    [0x00, 0x00, 0x1F, 0x00, 0x1F, 0x00, 0x00], // =
    [0x08, 0x04, 0x02, 0x01, 0x02, 0x04, 0x08], // >
    [0x0E, 0x11, 0x01, 0x02, 0x04, 0x00, 0x04], // ?
    [0x0E, 0x11, 0x01, 0x0D, 0x15, 0x15, 0x0E], // @
    [0x0E, 0x11, 0x11, 0x11, 0x1F, 0x11, 0x11], // A
    [0x1E, 0x11, 0x11, 0x1E, 0x11, 0x11, 0x1E], // B
    [0x0E, 0x11, 0x10, 0x10, 0x10, 0x11, 0x0E], // C
    [0x1C, 0x12, 0x11, 0x11, 0x11, 0x12, 0x1C], // D
    [0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x1F], // E
    [0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x10], // F
    [0x0E, 0x11, 0x10, 0x17, 0x11, 0x11, 0x0F], // G
    [0x11, 0x11, 0x11, 0x1F, 0x11, 0x11, 0x11], // H
    [0x0E, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0E], // I
    [0x07, 0x02, 0x02, 0x02, 0x02, 0x12, 0x0C], // J
    [0x11, 0x12, 0x14, 0x18, 0x14, 0x12, 0x11], // K
    [0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x1F], // L
    [0x11, 0x1B, 0x15, 0x15, 0x11, 0x11, 0x11], // M
    [0x11, 0x11, 0x19, 0x15, 0x13, 0x11, 0x11], // N
    [0x0E, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E], // O
    [0x1E, 0x11, 0x11, 0x1E, 0x10, 0x10, 0x10], // P
    [0x0E, 0x11, 0x11, 0x11, 0x15, 0x12, 0x0D], // Q
    [0x1E, 0x11, 0x11, 0x1E, 0x14, 0x12, 0x11], // R
    [0x0F, 0x10, 0x10, 0x0E, 0x01, 0x01, 0x1E], // S
    [0x1F, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04], // T
    [0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E], // U
    [0x11, 0x11, 0x11, 0x11, 0x11, 0x0A, 0x04], // V
    [0x11, 0x11, 0x11, 0x15, 0x15, 0x15, 0x0A], // W
    [0x11, 0x11, 0x0A, 0x04, 0x0A, 0x11, 0x11], // X
    [0x11, 0x11, 0x11, 0x0A, 0x04, 0x04, 0x04], // Y
    [0x1F, 0x01, 0x02, 0x04, 0x08, 0x10, 0x1F], // Z
    [0x0E, 0x08, 0x08, 0x08, 0x08, 0x08, 0x0E], // [
    [0x00, 0x10, 0x08, 0x04, 0x02, 0x01, 0x00], // backslash
    [0x0E, 0x02, 0x02, 0x02, 0x02, 0x02, 0x0E], // ]
    [0x04, 0x0A, 0x11, 0x00, 0x00, 0x00, 0x00], // ^
    [0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x1F], // _
    [0x08, 0x04, 0x02, 0x00, 0x00, 0x00, 0x00], // `
    [0x00, 0x00, 0x0E, 0x01, 0x0F, 0x11, 0x0F], // a
    [0x10, 0x10, 0x16, 0x19, 0x11, 0x11, 0x1E], // b
    [0x00, 0x00, 0x0E, 0x10, 0x10, 0x11, 0x0E], // c
    [0x01, 0x01, 0x0D, 0x13, 0x11, 0x11, 0x0F], // d
    [0x00, 0x00, 0x0E, 0x11, 0x1F, 0x10, 0x0E], // e
    [0x06, 0x09, 0x08, 0x1C, 0x08, 0x08, 0x08], // f
    [0x0F, 0x11, 0x11, 0x11, 0x0F, 0x01, 0x0E], // g (descends)
    [0x10, 0x10, 0x16, 0x19, 0x11, 0x11, 0x11], // h
    [0x04, 0x00, 0x0C, 0x04, 0x04, 0x04, 0x0E], // i
    [0x02, 0x00, 0x06, 0x02, 0x02, 0x12, 0x0C], // j
    [0x10, 0x10, 0x12, 0x14, 0x18, 0x14, 0x12], // k
    [0x0C, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0E], // l
    [0x00, 0x00, 0x1A, 0x15, 0x15, 0x11, 0x11], // m
    [0x00, 0x00, 0x16, 0x19, 0x11, 0x11, 0x11], // n
    [0x00, 0x00, 0x0E, 0x11, 0x11, 0x11, 0x0E], // o
    [0x1E, 0x11, 0x11, 0x11, 0x1E, 0x10, 0x10], // p (descends)
    [0x0F, 0x11, 0x11, 0x11, 0x0F, 0x01, 0x01], // q (descends)
    [0x00, 0x00, 0x16, 0x19, 0x10, 0x10, 0x10], // r
    [0x00, 0x00, 0x0E, 0x10, 0x0E, 0x01, 0x1E], // s
    [0x08, 0x08, 0x1C, 0x08, 0x08, 0x09, 0x06], // t
    [0x00, 0x00, 0x11, 0x11, 0x11, 0x13, 0x0D], // u
    [0x00, 0x00, 0x11, 0x11, 0x11, 0x0A, 0x04], // v
    [0x00, 0x00, 0x11, 0x11, 0x15, 0x15, 0x0A], // w
    [0x00, 0x00, 0x11, 0x0A, 0x04, 0x0A, 0x11], // x
    [0x11, 0x11, 0x11, 0x11, 0x0F, 0x01, 0x0E], // y (descends)
    [0x00, 0x00, 0x1F, 0x02, 0x04, 0x08, 0x1F], // z
    [0x02, 0x04, 0x04, 0x08, 0x04, 0x04, 0x02], // {
    [0x04, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04], // |
    [0x08, 0x04, 0x04, 0x02, 0x04, 0x04, 0x08], // }
    [0x00, 0x00, 0x08, 0x15, 0x02, 0x00, 0x00], // ~
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_round_and_cover_the_data() {
        let s = Scale::nice(0.0, 1.0);
        assert_eq!((s.lo, s.hi), (0.0, 1.0));
        assert_eq!(s.ticks.len(), 6);
        assert_eq!(s.label(0.4), "0.4");
        let s = Scale::nice(0.4093, 0.4918);
        assert!(s.lo <= 0.4093 && s.hi >= 0.4918 && s.ticks.len() >= 4 && s.ticks.len() <= 9);
        assert_eq!(s.label(s.ticks[1]).len(), 4, "two decimals for a 0.02 step");
        let s = Scale::nice(-0.05, 1.55);
        assert!(s.ticks.iter().any(|t| t.abs() < 1e-12));
        assert_eq!(s.label(-1e-17), s.label(0.0));
    }

    #[test]
    fn long_names_are_shortened_to_fit() {
        assert_eq!(fit("ok", 100), ("ok".to_string(), 2));
        let (text, scale) = fit("a-very-long-configuration-name", 60);
        assert_eq!(scale, 1);
        assert!(text.ends_with("..") && text_width(&text, 1) <= 60);
    }

    #[test]
    fn plots_draw_every_series() {
        let names = vec!["fido:local".to_string(), "bbmp:blur".to_string()];
        let labels = Labels {
            title: "t",
            x: "x",
            y: "y",
        };
        let image = box_plot(labels, &names, &[vec![0.1, 0.2, 0.3], vec![]]);
        assert_eq!(image.dimensions(), (WIDTH, HEIGHT));
        let has = |image: &RgbImage, c: Rgb<u8>| image.pixels().any(|p| *p == c);
        assert!(has(&image, colour(0)));
        let image = line_plot(
            labels,
            &names,
            &[vec![(0.0, 0.0), (1.0, 1.0)], vec![(0.0, 1.0), (1.0, 0.5)]],
        );
        assert!(has(&image, colour(0)) && has(&image, colour(1)));
    }

    #[test]
    fn picture_grids_place_each_picture_in_its_cell() {
        let names = vec!["a".to_string(), "b".to_string()];
        let red = RgbImage::from_pixel(50, 50, Rgb([200, 0, 0]));
        let rows = vec![("first".to_string(), vec![Some(red), None])];
        let grid = picture_grid(&names, &rows, 20);
        assert_eq!(grid.dimensions(), (6 + 2 * 26, 22 + 14 + 20 + 6));
        // Centre of the first cell is the picture; of the second, the grey placeholder.
        assert_eq!(*grid.get_pixel(6 + 10, 22 + 14 + 10), Rgb([200, 0, 0]));
        assert_eq!(*grid.get_pixel(6 + 26 + 10, 22 + 14 + 10), GRID);
    }
}
