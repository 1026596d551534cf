mod common;

use common::{assert_close, gpu, to_f64, Rng};
use fido::ops::filter::{self, reference};
use fido::Tensor;

#[test]
fn reflect101_matches_opencv_rule() {
    // -1 -> 1 and n -> n - 2, and repeated reflection for far-out indices.
    assert_eq!(reference::reflect101(-1, 5), 1);
    assert_eq!(reference::reflect101(5, 5), 3);
    assert_eq!(reference::reflect101(-6, 5), 2);
    assert_eq!(reference::reflect101(13, 5), 3);
    assert_eq!(reference::reflect101(-4, 1), 0);
    assert_eq!(reference::reflect101(-3, 2), 1);
}

#[test]
fn gaussian_taps_are_normalised_with_radius_three_sigma() {
    for sigma in [0.3, 1.0, 2.5, 10.0] {
        let taps = filter::gaussian_taps(sigma);
        assert_eq!(taps.len(), 2 * (3.0 * sigma).ceil() as usize + 1);
        assert!((taps.iter().sum::<f64>() - 1.0).abs() < 1e-12);
        let r = taps.len() / 2;
        assert!((taps[r + 1] / taps[r] - (-1.0 / (2.0 * sigma * sigma)).exp()).abs() < 1e-12);
    }
}

#[test]
fn blur_sigma_10_on_224_matches_direct_2d_reference() {
    let gpu = gpu();
    let mut rng = Rng::new(30);
    let (h, w) = (224, 224);
    let x = rng.vec(2 * h * w, 0.0, 1.0);
    let t = Tensor::from_slice(&gpu, &[1, 2, h, w], &x).unwrap();
    let y = filter::gaussian_blur(&t, 10.0).unwrap();
    assert_eq!(y.shape(), &[1, 2, h, w]);
    let y = y.to_vec().unwrap();
    // The direct 2-D reference costs 61² taps per pixel: check one plane fully and the
    // other on sampled rows, including the borders.
    let want = reference::gaussian_blur(&to_f64(&x[..h * w]), 1, h, w, 10.0);
    // Two passes of 61 f32 taps on values in [0, 1]; f32 tap rounding is ~1e-7 relative.
    assert_close("blur σ=10 plane 0", &y[..h * w], &want, 2e-6, 1e-5);
    let plane1 = to_f64(&x[h * w..]);
    for row in [0usize, 1, 29, 30, 111, 193, 222, 223] {
        let got = &y[h * w + row * w..h * w + (row + 1) * w];
        let want = blur_row(&plane1, h, w, 10.0, row);
        assert_close(&format!("blur σ=10 plane 1 row {row}"), got, &want, 2e-6, 1e-5);
    }
}

/// One output row of the direct 2-D reference blur.
fn blur_row(x: &[f64], h: usize, w: usize, sigma: f64, row: usize) -> Vec<f64> {
    let taps = filter::gaussian_taps(sigma);
    let r = (taps.len() / 2) as isize;
    (0..w as isize)
        .map(|col| {
            let mut acc = 0.0;
            for dy in -r..=r {
                let yy = reference::reflect101(row as isize + dy, h);
                for dx in -r..=r {
                    let xx = reference::reflect101(col + dx, w);
                    acc += taps[(dy + r) as usize] * taps[(dx + r) as usize] * x[yy * w + xx];
                }
            }
            acc
        })
        .collect()
}

#[test]
fn blur_with_radius_beyond_the_image_reflects_repeatedly() {
    let gpu = gpu();
    let mut rng = Rng::new(31);
    // Radius 30 (σ = 10) and 9 (σ = 3) against planes of 1 to 9 pixels a side, with
    // widths both divisible and not divisible by four.
    for (shape, sigma) in [
        ([2usize, 3, 5, 7], 10.0f32),
        ([1, 1, 1, 1], 10.0),
        ([1, 2, 3, 8], 3.0),
        ([1, 1, 9, 2], 3.0),
        ([1, 1, 1, 6], 1.5),
    ] {
        let (planes, h, w) = (shape[0] * shape[1], shape[2], shape[3]);
        let x = rng.vec(shape.iter().product(), -1.0, 1.0);
        let t = Tensor::from_slice(&gpu, &shape, &x).unwrap();
        let y = filter::gaussian_blur(&t, sigma).unwrap();
        let want = reference::gaussian_blur(&to_f64(&x), planes, h, w, sigma as f64);
        assert_close(
            &format!("blur σ={sigma} {shape:?}"),
            &y.to_vec().unwrap(),
            &want,
            2e-6,
            1e-5,
        );
    }
}

#[test]
fn blur_of_a_constant_image_is_the_constant() {
    let gpu = gpu();
    let t = Tensor::full(&gpu, &[1, 3, 17, 20], 0.75).unwrap();
    let y = filter::gaussian_blur(&t, 4.0).unwrap().to_vec().unwrap();
    assert_close("constant", &y, &vec![0.75; y.len()], 1e-6, 1e-6);
}

#[test]
fn box_sum_matches_direct_reference() {
    let gpu = gpu();
    let mut rng = Rng::new(32);
    for (shape, size) in [
        ([2usize, 3, 37, 29], 15usize),
        ([1, 2, 37, 28], 15),
        ([2, 1, 11, 13], 3),
        ([1, 1, 1, 9], 3),
        ([1, 1, 7, 5], 15),
        ([1, 1, 6, 4], 1),
    ] {
        let (planes, h, w) = (shape[0] * shape[1], shape[2], shape[3]);
        let x = rng.vec(shape.iter().product(), -1.0, 1.0);
        let t = Tensor::from_slice(&gpu, &shape, &x).unwrap();
        let y = filter::box_sum(&t, size).unwrap();
        assert_eq!(y.shape(), &shape);
        let want = reference::box_sum(&to_f64(&x), planes, h, w, size);
        // Up to 225 f32 additions of values in [-1, 1].
        assert_close(
            &format!("box {size} {shape:?}"),
            &y.to_vec().unwrap(),
            &want,
            1e-5,
            1e-5,
        );
    }
}

#[test]
fn box_sum_counts_kept_pixels_exactly() {
    // The Local in-filler divides by a box count of a 0/1 mask: that count must be exact.
    let gpu = gpu();
    let mut rng = Rng::new(33);
    let (h, w) = (23, 31);
    let mask: Vec<f32> = (0..h * w).map(|_| (rng.below(3) == 0) as u8 as f32).collect();
    let t = Tensor::from_slice(&gpu, &[1, 1, h, w], &mask).unwrap();
    let y = filter::box_sum(&t, 15).unwrap().to_vec().unwrap();
    let want = reference::box_sum(&to_f64(&mask), 1, h, w, 15);
    assert_close("mask count", &y, &want, 0.0, 0.0);
}

#[test]
fn bad_arguments_are_errors() {
    let gpu = gpu();
    let x = Tensor::zeros(&gpu, &[1, 1, 5, 5]).unwrap();
    assert!(filter::box_sum(&x, 4).is_err());
    assert!(filter::box_sum(&x, 0).is_err());
    assert!(filter::gaussian_blur(&x, 0.0).is_err());
    assert!(filter::gaussian_blur(&x, f32::NAN).is_err());
    let flat = Tensor::zeros(&gpu, &[5, 5]).unwrap();
    let e = filter::box_sum(&flat, 3).unwrap_err().to_string();
    assert!(e.contains("NCHW"), "{e}");
}
