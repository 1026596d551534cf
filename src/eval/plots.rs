//! PNG plots drawn with `plotters` on its bitmap backend and lettered in DejaVu Sans, which is
//! embedded so that no system font is needed: box plots and line curves with a title, axis
//! labels, round ticks, category names and a legend, so that each picture reads on its own
//! outside the HTML report.

use std::error::Error;
use std::sync::Once;

use image::{Rgb, RgbImage};
use plotters::chart::MeshStyle;
use plotters::coord::ranged1d::{KeyPointHint, NoDefaultFormatting, ValueFormatter};
use plotters::coord::Shift;
use plotters::prelude::*;

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
    let count = samples.len().max(1);
    let slot = ((WIDTH - LEFT - RIGHT_PLAIN) / count as u32).saturating_sub(6);
    // One size for every name, so that no box looks more important than another.
    let (shown, size) = fit_all(names, slot, &[12.0, 10.0]);
    render(WIDTH, HEIGHT, |root| {
        title(root, labels, RIGHT_PLAIN)?;
        let mut chart = chart(root, RIGHT_PLAIN, Scale::categories(count), y.clone())?;
        // The names are drawn below, with the sample sizes under them.
        house_style(&mut chart.configure_mesh())
            .disable_x_mesh()
            .x_label_formatter(&|_| String::new())
            .draw()?;
        for (i, s) in stats.iter().enumerate() {
            let Some(s) = s else { continue };
            let c = series_colour(i);
            let x = i as f64 + 0.5;
            let quartiles = [(x - 0.3, s.q1), (x + 0.3, s.q3)];
            chart.draw_series([
                Rectangle::new(quartiles, lighten(c).filled()),
                Rectangle::new(quartiles, c.stroke_width(1)),
            ])?;
            let segment = |points: [(f64, f64); 2], style: ShapeStyle| PathElement::new(points, style);
            chart.draw_series([
                segment([(x, s.q3), (x, s.max)], c.into()),
                segment([(x, s.q1), (x, s.min)], c.into()),
                segment([(x - 0.12, s.max), (x + 0.12, s.max)], c.into()),
                segment([(x - 0.12, s.min), (x + 0.12, s.min)], c.into()),
                segment([(x - 0.3, s.median), (x + 0.3, s.median)], BLACK.stroke_width(2)),
            ])?;
            chart.draw_series([Cross::new((x, s.mean), 4, BLACK.stroke_width(2))])?;
            let (centre, bottom) = chart.backend_coord(&(x, y.lo));
            text(
                root,
                &format!("n={}", s.n),
                (centre, bottom + 26),
                10.0,
                GREY,
                Align::Centre,
            )?;
        }
        for (i, name) in shown.iter().enumerate() {
            let (centre, bottom) = chart.backend_coord(&(i as f64 + 0.5, y.lo));
            text(root, name, (centre, bottom + 10), size, BLACK, Align::Centre)?;
        }
        Ok(())
    })
}

/// Polylines `(x, y)` per named series over shared axes, with a legend on the right.
pub fn line_plot(labels: Labels, names: &[String], series: &[Vec<(f64, f64)>]) -> RgbImage {
    let finite = |s: &Vec<(f64, f64)>| -> Vec<(f64, f64)> {
        s.iter()
            .copied()
            .filter(|(x, y)| x.is_finite() && y.is_finite())
            .collect()
    };
    let series: Vec<Vec<(f64, f64)>> = series.iter().map(finite).collect();
    let (x_lo, x_hi) = range(series.iter().flatten().map(|p| p.0));
    let (y_lo, y_hi) = range(series.iter().flatten().map(|p| p.1));
    let (x, y) = (Scale::nice(x_lo, x_hi), Scale::nice(y_lo, y_hi));
    let legend_width = RIGHT_LEGEND - 14 - LEGEND_SWATCH - 8 - 6;
    let (names, size) = fit_all(names, legend_width, &[12.0, 10.0]);
    render(WIDTH, HEIGHT, |root| {
        title(root, labels, RIGHT_LEGEND)?;
        let mut chart = chart(root, RIGHT_LEGEND, x, y)?;
        house_style(&mut chart.configure_mesh()).draw()?;
        for (i, points) in series.iter().enumerate() {
            let c = series_colour(i);
            chart.draw_series(
                LineSeries::new(points.iter().copied(), c.filled().stroke_width(2)).point_size(3),
            )?;
        }
        // The legend, right of the plot area: a swatch of each line, then its name.
        let left = (WIDTH - RIGHT_LEGEND + 14) as i32;
        for (i, name) in names.iter().enumerate() {
            let (c, y) = (series_colour(i), TOP as i32 + 8 + 20 * i as i32);
            root.draw(&PathElement::new(
                [(left, y), (left + LEGEND_SWATCH as i32, y)],
                c.stroke_width(2),
            ))?;
            root.draw(&Circle::new((left + LEGEND_SWATCH as i32 / 2, y), 3, c.filled()))?;
            text(
                root,
                name,
                (left + LEGEND_SWATCH as i32 + 8, y - 7),
                size,
                BLACK,
                Align::Left,
            )?;
        }
        Ok(())
    })
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
    let column_x = |k: u32| GAP + k * (cell + GAP);
    let row_top = |r: usize| HEADER + r as u32 * (ROW_LABEL + cell + GAP);
    let mut image = RgbImage::from_pixel(width, height, Rgb([255, 255, 255]));
    for (r, (_, pictures)) in rows.iter().enumerate() {
        for (k, picture) in pictures.iter().enumerate().take(columns as usize) {
            let (x0, y0) = (column_x(k as u32), row_top(r) + ROW_LABEL);
            let small = match picture {
                Some(p) => image::imageops::resize(p, cell, cell, image::imageops::FilterType::Triangle),
                None => RgbImage::from_pixel(cell, cell, Rgb(GRID)),
            };
            image::imageops::replace(&mut image, &small, x0 as i64, y0 as i64);
        }
    }
    let (shown, size) = fit_all(names, cell, &[12.0, 10.0]);
    draw_on(&mut image, |root| {
        for (k, name) in shown.iter().enumerate() {
            let centre = (column_x(k as u32) + cell / 2) as i32;
            text(root, name, (centre, 4), size, BLACK, Align::Centre)?;
        }
        for (r, (label, _)) in rows.iter().enumerate() {
            let label = shorten(label, width - 2 * GAP, 10.0);
            text(
                root,
                &label,
                (GAP as i32, row_top(r) as i32 + 1),
                10.0,
                GREY,
                Align::Left,
            )?;
        }
        Ok(())
    });
    image
}

const WIDTH: u32 = 760;
const HEIGHT: u32 = 460;
const LEFT: u32 = 72;
const TOP: u32 = 52;
const BOTTOM: u32 = 62;
const RIGHT_PLAIN: u32 = 20;
const RIGHT_LEGEND: u32 = 170;
const LEGEND_SWATCH: u32 = 18;
const GREY: RGBColor = RGBColor(110, 110, 110);
const GRID: [u8; 3] = [225, 225, 225];

/// The embedded font, under the family name plotters asks for.
const FAMILY: &str = "sans-serif";
static DEJAVU_SANS: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans.ttf");

/// Black text in the embedded font at `size` pixels.
fn font(size: f64) -> TextStyle<'static> {
    static REGISTER: Once = Once::new();
    REGISTER.call_once(|| {
        if plotters::style::register_font(FAMILY, FontStyle::Normal, DEJAVU_SANS).is_err() {
            panic!("the embedded DejaVu Sans font does not parse");
        }
    });
    (FAMILY, size).into_font().color(&BLACK)
}

/// Width in pixels of `s` at `size`.
fn text_width(s: &str, size: f64) -> u32 {
    font(size).font.box_size(s).map_or(0, |(w, _)| w)
}

/// `s`, cut and ended with "…" if it is wider than `width` pixels at `size`.
fn shorten(s: &str, width: u32, size: f64) -> String {
    if text_width(s, size) <= width {
        return s.to_string();
    }
    let chars: Vec<char> = s.chars().collect();
    (0..chars.len())
        .rev()
        .map(|keep| format!("{}…", chars[..keep].iter().collect::<String>()))
        .find(|t| text_width(t, size) <= width)
        .unwrap_or_default()
}

/// `names` at the first of `sizes` at which all fit in `width` pixels, else at the last size,
/// shortened where need be.
fn fit_all(names: &[String], width: u32, sizes: &[f64]) -> (Vec<String>, f64) {
    let size = sizes
        .iter()
        .copied()
        .find(|&size| names.iter().all(|n| text_width(n, size) <= width))
        .unwrap_or(sizes[sizes.len() - 1]);
    (names.iter().map(|n| shorten(n, width, size)).collect(), size)
}

type Area<'a> = DrawingArea<BitMapBackend<'a>, Shift>;
type Drawn = Result<(), Box<dyn Error>>;

/// A white `width`×`height` picture with `draw` drawn on it.
fn render(width: u32, height: u32, draw: impl FnOnce(&Area) -> Drawn) -> RgbImage {
    let mut image = RgbImage::from_pixel(width, height, Rgb([255, 255, 255]));
    draw_on(&mut image, draw);
    image
}

fn draw_on(image: &mut RgbImage, draw: impl FnOnce(&Area) -> Drawn) {
    let size = image.dimensions();
    let root = BitMapBackend::with_buffer(image, size).into_drawing_area();
    // Drawing into memory with an embedded font has no failure a caller could act on.
    draw(&root)
        .and_then(|()| Ok(root.present()?))
        .expect("plots draw into memory");
}

/// The title (smaller when long), the y axis's label above the plot area and the x axis's
/// below it, centred on a plot area ending `right` pixels from the edge.
fn title(root: &Area, labels: Labels, right: u32) -> Drawn {
    let (title, size) = fit_all(&[labels.title.to_string()], WIDTH - 16, &[18.0, 16.0, 14.0]);
    text(root, &title[0], (8, 10), size, BLACK, Align::Left)?;
    let y = shorten(labels.y, WIDTH - 16, 12.0);
    text(root, &y, (8, TOP as i32 - 20), 12.0, BLACK, Align::Left)?;
    let x = shorten(labels.x, WIDTH - LEFT - right, 12.0);
    text(
        root,
        &x,
        ((WIDTH + LEFT - right) as i32 / 2, HEIGHT as i32 - 20),
        12.0,
        BLACK,
        Align::Centre,
    )
}

enum Align {
    Left,
    Centre,
}

/// `s` at `size` pixels in `colour`, its top at `y` and its left edge or centre at `x`, placed
/// glyph by glyph: plotters' renderer drops the whole pixels of each glyph's left side bearing,
/// which puts letters visibly out of line, so each glyph is drawn here where its ink belongs.
fn text(root: &Area, s: &str, (x, y): (i32, i32), size: f64, colour: RGBColor, align: Align) -> Drawn {
    use ab_glyph::{Font, ScaleFont};
    let face = ab_glyph::FontRef::try_from_slice(DEJAVU_SANS)?;
    let face = face.as_scaled(size as f32);
    let left = match align {
        Align::Left => x,
        Align::Centre => x - text_width(s, size) as i32 / 2,
    };
    let (mut pen, mut previous) = (0.0f32, None);
    for c in s.chars() {
        let glyph = face.glyph_id(c);
        if let Some(previous) = previous {
            pen += face.kern(previous, glyph);
        }
        let at = left + (pen + face.h_side_bearing(glyph).floor()).round() as i32;
        root.draw(&Text::new(c.to_string(), (at, y), font(size).color(&colour)))?;
        pen += face.h_advance(glyph);
        previous = Some(glyph);
    }
    Ok(())
}

/// The plot area: `LEFT` pixels for the y ticks, `BOTTOM` below for the x ticks and label.
fn chart<'a, 'b>(
    root: &'a Area<'b>,
    right: u32,
    x: Scale,
    y: Scale,
) -> Result<ChartContext<'a, BitMapBackend<'b>, Cartesian2d<Scale, Scale>>, Box<dyn Error>> {
    Ok(ChartBuilder::on(root)
        .margin_top(TOP)
        .margin_right(right)
        .x_label_area_size(BOTTOM)
        .y_label_area_size(LEFT)
        .build_cartesian_2d(x, y)?)
}

/// Grid, axes and tick labels, shared by every plot.
fn house_style<'m, 'a, 'b, 'c>(
    mesh: &'m mut MeshStyle<'a, 'b, Scale, Scale, BitMapBackend<'c>>,
) -> &'m mut MeshStyle<'a, 'b, Scale, Scale, BitMapBackend<'c>> {
    mesh.bold_line_style(RGBColor(GRID[0], GRID[1], GRID[2]))
        .axis_style(BLACK)
        .set_all_tick_mark_size(4)
        .label_style(font(12.0))
}

fn series_colour(i: usize) -> RGBColor {
    let [r, g, b] = PALETTE[i % PALETTE.len()];
    RGBColor(r, g, b)
}

fn lighten(c: RGBColor) -> RGBColor {
    let mix = |v: u8| ((v as u16 + 2 * 255) / 3) as u8;
    RGBColor(mix(c.0), mix(c.1), mix(c.2))
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
    /// `count` categories, centred on ticks at 0.5, 1.5, …
    fn categories(count: usize) -> Scale {
        Scale {
            lo: 0.0,
            hi: count as f64,
            ticks: (0..count).map(|i| i as f64 + 0.5).collect(),
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

/// The axis plotters draws: linear between the limits, with ticks and labels from the scale.
impl Ranged for Scale {
    type FormatOption = NoDefaultFormatting;
    type ValueType = f64;

    fn map(&self, v: &f64, (from, to): (i32, i32)) -> i32 {
        let t = (v - self.lo) / (self.hi - self.lo);
        from + (t * (to - from) as f64).round() as i32
    }

    fn key_points<Hint: KeyPointHint>(&self, _: Hint) -> Vec<f64> {
        self.ticks.clone()
    }

    fn range(&self) -> std::ops::Range<f64> {
        self.lo..self.hi
    }
}

impl ValueFormatter<f64> for Scale {
    fn format_ext(&self, v: &f64) -> String {
        self.label(*v)
    }
}

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
        let names = ["ok".to_string()];
        assert_eq!(
            fit_all(&names, 100, &[12.0, 10.0]),
            (vec!["ok".to_string()], 12.0)
        );
        let names = ["a-very-long-configuration-name".to_string()];
        let (text, size) = fit_all(&names, 60, &[12.0, 10.0]);
        assert_eq!(size, 10.0);
        assert!(
            text[0].ends_with('…') && text_width(&text[0], 10.0) <= 60,
            "{text:?}"
        );
        assert!(text_width("wide", 12.0) > text_width("wide", 10.0));
    }

    #[test]
    fn plots_draw_every_series() {
        let names = vec!["fido:local".to_string(), "bbmp:blur".to_string()];
        let labels = Labels {
            title: "t",
            x: "x",
            y: "y",
        };
        let has = |image: &RgbImage, c: Rgb<u8>| image.pixels().any(|p| *p == c);
        let image = box_plot(labels, &names, &[vec![0.1, 0.2, 0.3], vec![]]);
        assert_eq!(image.dimensions(), (WIDTH, HEIGHT));
        assert!(has(&image, colour(0)));
        let image = line_plot(
            labels,
            &names,
            &[vec![(0.0, 0.0), (1.0, 1.0)], vec![(0.0, 1.0), (1.0, 0.5)]],
        );
        assert_eq!(image.dimensions(), (WIDTH, HEIGHT));
        assert!(has(&image, colour(0)) && has(&image, colour(1)));
        // Text is drawn: the title's corner is no longer blank.
        let dark = |image: &RgbImage, x0: u32, y0: u32, w: u32, h: u32| {
            (x0..x0 + w).any(|x| (y0..y0 + h).any(|y| image.get_pixel(x, y).0.iter().all(|&v| v < 100)))
        };
        assert!(dark(&image, 8, 8, 20, 20), "title");
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
        assert_eq!(*grid.get_pixel(6 + 26 + 10, 22 + 14 + 10), Rgb(GRID));
    }
}
