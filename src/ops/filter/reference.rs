//! CPU reference for the filters: direct 2-D windows in f64, no separation.

/// OpenCV BORDER_REFLECT_101, applied repeatedly until the index lands inside.
pub fn reflect101(mut i: isize, n: usize) -> usize {
    let n = n as isize;
    if n == 1 {
        return 0;
    }
    while i < 0 || i >= n {
        i = if i < 0 { -i } else { 2 * (n - 1) - i };
    }
    i as usize
}

/// Direct 2-D Gaussian blur of each of `planes` planes, weights `g[dy]·g[dx]` from
/// [`super::gaussian_taps`], reflect-101 border.
pub fn gaussian_blur(x: &[f64], planes: usize, h: usize, w: usize, sigma: f64) -> Vec<f64> {
    let taps = super::gaussian_taps(sigma);
    let r = (taps.len() / 2) as isize;
    let mut out = Vec::with_capacity(x.len());
    for plane in 0..planes {
        let base = plane * h * w;
        for y in 0..h as isize {
            for xx in 0..w as isize {
                let mut acc = 0.0;
                for dy in -r..=r {
                    let row = base + reflect101(y + dy, h) * w;
                    let wy = taps[(dy + r) as usize];
                    for dx in -r..=r {
                        acc += wy * taps[(dx + r) as usize] * x[row + reflect101(xx + dx, w)];
                    }
                }
                out.push(acc);
            }
        }
    }
    out
}

/// Sum over the `size`×`size` window centred on each pixel, zeros outside.
pub fn box_sum(x: &[f64], planes: usize, h: usize, w: usize, size: usize) -> Vec<f64> {
    let r = (size / 2) as isize;
    let mut out = Vec::with_capacity(x.len());
    for plane in 0..planes {
        let base = plane * h * w;
        for y in 0..h as isize {
            for xx in 0..w as isize {
                let mut acc = 0.0;
                for yy in (y - r).max(0)..(y + r + 1).min(h as isize) {
                    for xc in (xx - r).max(0)..(xx + r + 1).min(w as isize) {
                        acc += x[base + yy as usize * w + xc as usize];
                    }
                }
                out.push(acc);
            }
        }
    }
    out
}
