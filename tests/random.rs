mod common;

use fido::Tape;

use common::{assert_close, fd_scalar, gpu, to_f64, Rng};
use fido::ops::random::{self as rnd, reference};
use fido::{Error, Tensor};

/// Bounds on sample statistics are this many standard errors: a correct generator fails
/// one of them with probability below 1e-5 per check.
const SIGMAS: f64 = 5.0;

fn mean(x: &[f64]) -> f64 {
    x.iter().sum::<f64>() / x.len() as f64
}

fn variance(x: &[f64]) -> f64 {
    let m = mean(x);
    x.iter().map(|v| (v - m) * (v - m)).sum::<f64>() / (x.len() - 1) as f64
}

/// Pearson correlation of two equally long series.
fn correlation(a: &[f64], b: &[f64]) -> f64 {
    let (ma, mb) = (mean(a), mean(b));
    let cov: f64 = a.iter().zip(b).map(|(x, y)| (x - ma) * (y - mb)).sum();
    let va: f64 = a.iter().map(|x| (x - ma) * (x - ma)).sum();
    let vb: f64 = b.iter().map(|y| (y - mb) * (y - mb)).sum();
    cov / (va * vb).sqrt()
}

#[test]
fn reference_philox_matches_random123_known_answers() {
    // Random123's tests/kat_vectors, the three philox4x32 10 lines: counter, key, expected.
    let cases: [([u32; 4], [u32; 2], [u32; 4]); 3] = [
        ([0; 4], [0; 2], [0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8]),
        (
            [u32::MAX; 4],
            [u32::MAX; 2],
            [0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd],
        ),
        (
            [0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344],
            [0xa4093822, 0x299f31d0],
            [0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1],
        ),
    ];
    for (counter, key, want) in cases {
        assert_eq!(reference::philox4x32_10(counter, key), want, "{counter:x?}");
    }
}

#[test]
fn gpu_words_equal_reference_bit_for_bit() {
    let gpu = gpu();
    // Lengths that end mid-block and mid-workgroup; seeds that use both halves of the key.
    for &(n, seed, stream) in &[
        (1usize, 0u64, 0u32),
        (7, 1, 0),
        (1021, 0xDEAD_BEEF_0123_4567, 3),
        (4099, u64::MAX, u32::MAX),
    ] {
        let words = rnd::random_bits(&gpu, n, seed, stream).unwrap();
        assert_eq!(words.shape(), &[n]);
        let words = words.to_vec_u32().unwrap();
        assert_eq!(
            words,
            reference::random_bits(n, seed, stream),
            "n={n} seed={seed:x}"
        );
        // The first block of seed 0, stream 0 is Philox of the zero counter and key.
        if seed == 0 && stream == 0 {
            assert_eq!(words[0], reference::philox4x32_10([0; 4], [0; 2])[0]);
        }
        let u = rnd::uniform(&gpu, &[n], seed, stream).unwrap().to_vec().unwrap();
        let want = reference::uniform(n, seed, stream);
        let same_bits = u.iter().zip(&want).all(|(a, b)| a.to_bits() == b.to_bits());
        assert!(same_bits, "uniform floats differ from the reference, n={n}");
    }
}

#[test]
fn uniform_moments_range_and_independence() {
    let gpu = gpu();
    let n = 1 << 20;
    let u = rnd::uniform(&gpu, &[256, 4096], 42, 7).unwrap();
    assert_eq!(u.shape(), &[256, 4096]);
    let u = to_f64(&u.to_vec().unwrap());
    // U(0,1): mean 1/2 with standard error sqrt(1/12/n); the variance 1/12 has standard
    // error sqrt((1/80 − 1/144)/n) = sqrt(1/180/n).
    let nf = n as f64;
    assert!(
        (mean(&u) - 0.5).abs() < SIGMAS * (1.0 / 12.0 / nf).sqrt(),
        "mean {}",
        mean(&u)
    );
    assert!(
        (variance(&u) - 1.0 / 12.0).abs() < SIGMAS * (1.0 / 180.0 / nf).sqrt(),
        "variance {}",
        variance(&u)
    );
    let (lo, hi) = u.iter().fold((1.0f64, 0.0f64), |(a, b), &v| (a.min(v), b.max(v)));
    assert!(lo > 0.0 && hi < 1.0, "outside the open interval: [{lo}, {hi}]");
    // P(min > 20/n) = (1 − 20/n)^n ≈ e^−20.
    assert!(lo < 20.0 / nf && hi > 1.0 - 20.0 / nf, "range [{lo}, {hi}]");
    // Neighbours within a block (lag 1) and across blocks (lag 4): a correlation estimate
    // of independent values has standard error 1/sqrt(n).
    for lag in [1, 4] {
        let r = correlation(&u[..n - lag], &u[lag..]);
        assert!(r.abs() < SIGMAS / nf.sqrt(), "lag {lag} correlation {r}");
    }
    // Ten equal bins each hold n/10 ± 5·sqrt(n·0.1·0.9).
    let mut bins = [0usize; 10];
    for &v in &u {
        bins[(v * 10.0) as usize] += 1;
    }
    let sd = (nf * 0.1 * 0.9).sqrt();
    for (b, &count) in bins.iter().enumerate() {
        assert!((count as f64 - nf / 10.0).abs() < SIGMAS * sd, "bin {b}: {count}");
    }
}

#[test]
fn same_seed_and_stream_repeat_and_others_differ() {
    let gpu = gpu();
    let n = 1 << 16;
    let draw = |seed, stream| to_f64(&rnd::uniform(&gpu, &[n], seed, stream).unwrap().to_vec().unwrap());
    let base = draw(5, 0);
    assert_eq!(base, draw(5, 0), "same seed and stream");
    for (seed, stream) in [(6, 0), (5, 1), (5 + (1 << 32), 0)] {
        let other = draw(seed, stream);
        let equal = base.iter().zip(&other).filter(|(a, b)| a == b).count();
        // Equal 23-bit levels happen with probability 2^-23 each.
        assert!(equal < 4, "seed {seed} stream {stream}: {equal} equal values");
        let r = correlation(&base, &other);
        assert!(
            r.abs() < SIGMAS / (n as f64).sqrt(),
            "seed {seed} stream {stream}: r {r}"
        );
    }
}

#[test]
fn normal_moments_and_reference() {
    let gpu = gpu();
    let n = 1 << 18;
    let (mu, sigma) = (1.5f32, 2.0f32);
    let x = rnd::normal(&gpu, &[n], 9, 2, mu, sigma)
        .unwrap()
        .to_vec()
        .unwrap();
    let x = to_f64(&x);
    let nf = n as f64;
    let s2 = (sigma as f64).powi(2);
    // Mean: standard error σ/sqrt(n). Sample variance of a normal: σ²·sqrt(2/(n−1)).
    assert!(
        (mean(&x) - mu as f64).abs() < SIGMAS * (s2 / nf).sqrt(),
        "mean {}",
        mean(&x)
    );
    assert!(
        (variance(&x) - s2).abs() < SIGMAS * s2 * (2.0 / (nf - 1.0)).sqrt(),
        "variance {}",
        variance(&x)
    );
    assert!(x.iter().all(|v| v.is_finite()));
    // Same uniforms as the reference; the GPU's log, sqrt, cos and sin are f32 approximations
    // (a few ulp), and the radius is at most sqrt(2·ln 2^24) ≈ 5.8, so 2e-5·σ bounds the error.
    let m = 4099;
    let got = rnd::normal(&gpu, &[m], 9, 2, mu, sigma)
        .unwrap()
        .to_vec()
        .unwrap();
    let want = reference::normal(m, 9, 2, mu as f64, sigma as f64);
    assert_close("normal vs reference", &got, &want, 2e-5 * sigma as f64, 1e-5);
}

#[test]
fn concrete_matches_reference_and_shapes() {
    let gpu = gpu();
    let mut rng = Rng::new(11);
    for (shape, samples, want_shape) in [
        (vec![1usize, 1, 5, 7], 3usize, vec![3usize, 1, 5, 7]),
        (vec![5, 7], 4, vec![4, 5, 7]),
        (vec![1], 9, vec![9]),
        (vec![2, 3], 1, vec![1, 2, 3]),
    ] {
        let n: usize = shape.iter().product();
        let logits = rng.vec(n, -6.0, 6.0);
        let t = Tensor::from_slice(&gpu, &shape, &logits).unwrap();
        for temperature in [0.1f32, 0.7] {
            let z = rnd::concrete_sample(&t, samples, temperature, 77, 1).unwrap();
            assert_eq!(z.shape(), &want_shape[..]);
            let want = reference::concrete_sample(&to_f64(&logits), samples, temperature as f64, 77, 1);
            // Same uniforms; the GPU's log has a few ulp error on noise of magnitude ≤ 16.7,
            // amplified by 1/t ≤ 10 and damped by the sigmoid's slope ≤ 1/4.
            assert_close(
                &format!("concrete {shape:?}×{samples} t={temperature}"),
                &z.to_vec().unwrap(),
                &want,
                5e-5,
                0.0,
            );
        }
    }
}

#[test]
fn concrete_hard_fraction_tracks_sigmoid_of_the_logit() {
    let gpu = gpu();
    let logits = [-3.0f32, -1.0, 0.0, 1.0, 3.0];
    let samples = 40_000;
    let t = Tensor::from_slice(&gpu, &[1, 1, 1, 5], &logits).unwrap();
    let z = rnd::concrete_sample(&t, samples, 0.1, 123, 0).unwrap();
    assert_eq!(z.shape(), &[samples, 1, 1, 5]);
    let z = z.to_vec().unwrap();
    for (j, &l) in logits.iter().enumerate() {
        // z > 1/2 exactly when logit + logistic noise > 0, a Bernoulli(sigmoid(logit)) event.
        let p = reference::sigmoid(l as f64);
        let hits = (0..samples).filter(|&s| z[s * 5 + j] > 0.5).count();
        let frac = hits as f64 / samples as f64;
        let se = (p * (1.0 - p) / samples as f64).sqrt();
        assert!(
            (frac - p).abs() < SIGMAS * se,
            "logit {l}: fraction {frac} vs {p}"
        );
    }
}

#[test]
fn concrete_at_low_temperature_is_nearly_binary() {
    let gpu = gpu();
    let (samples, t) = (50_000usize, 0.01f64);
    let logits = Tensor::from_slice(&gpu, &[1], &[0.0]).unwrap();
    let z = rnd::concrete_sample(&logits, samples, t as f32, 8, 0)
        .unwrap()
        .to_vec()
        .unwrap();
    // z lies in (δ, 1 − δ) when the logistic noise lies within ±t·logit(1 − δ), which has
    // probability 2·sigmoid(t·logit(1 − δ)) − 1 (about 2.3% for δ = 0.01, t = 0.01).
    let delta = 0.01f64;
    let c = t * ((1.0 - delta) / delta).ln();
    let p = 2.0 * reference::sigmoid(c) - 1.0;
    let middle = z
        .iter()
        .filter(|&&v| (v as f64) > delta && (v as f64) < 1.0 - delta)
        .count();
    let frac = middle as f64 / samples as f64;
    let se = (p * (1.0 - p) / samples as f64).sqrt();
    assert!(
        (frac - p).abs() < SIGMAS * se,
        "fraction in the middle {frac} vs {p}"
    );
    assert!(frac < 0.05);
}

#[test]
fn concrete_is_finite_for_extreme_logits() {
    let gpu = gpu();
    let logits = [-80.0f32, -30.0, 30.0, 80.0, 1e6, -1e6];
    let t = Tensor::from_slice(&gpu, &[6], &logits).unwrap();
    for temperature in [0.1f32, 1.0, 1e-3] {
        let z = rnd::concrete_sample(&t, 1000, temperature, 3, 0)
            .unwrap()
            .to_vec()
            .unwrap();
        for (o, &v) in z.iter().enumerate() {
            assert!((0.0..=1.0).contains(&v), "z[{o}] = {v} at t = {temperature}");
            // The noise is bounded by ±16.7, so |logit| ≥ 30 fixes the side.
            let l = logits[o % 6];
            assert_eq!(v > 0.5, l > 0.0, "z[{o}] = {v} for logit {l}");
        }
        let ones = vec![1.0f32; z.len()];
        let dy = Tensor::from_slice(&gpu, &[1000, 6], &ones).unwrap();
        let zt = Tensor::from_slice(&gpu, &[1000, 6], &z).unwrap();
        let g = rnd::concrete_backward(&zt, &dy, temperature, &[6])
            .unwrap()
            .to_vec()
            .unwrap();
        assert!(g.iter().all(|v| v.is_finite()), "{g:?}");
    }
}

#[test]
fn concrete_backward_matches_finite_differences() {
    let gpu = gpu();
    let mut rng = Rng::new(21);
    let (seed, stream) = (99u64, 4u32);
    for (shape, samples, temperature) in [
        (vec![1usize, 1, 3, 5], 4usize, 0.5f64),
        (vec![7], 3, 1.0),
        (vec![2, 3], 5, 2.0),
    ] {
        let n: usize = shape.iter().product();
        let logits = rng.vec(n, -2.0, 2.0);
        let t = Tensor::from_slice(&gpu, &shape, &logits).unwrap();
        let z = rnd::concrete_sample(&t, samples, temperature as f32, seed, stream).unwrap();
        let r = rng.vec(n * samples, -1.0, 1.0);
        let dy = Tensor::from_slice(&gpu, z.shape(), &r).unwrap();
        let grad = rnd::concrete_backward(&z, &dy, temperature as f32, &shape).unwrap();
        assert_eq!(grad.shape(), &shape[..]);
        // L = Σ z(logits)·R with the uniforms held fixed by the seed.
        let loss = |l: &[f64]| -> f64 {
            reference::concrete_sample(l, samples, temperature, seed, stream)
                .iter()
                .zip(&r)
                .map(|(a, &b)| a * b as f64)
                .sum()
        };
        let fd = fd_scalar(loss, &to_f64(&logits), 1e-4);
        assert_close(
            &format!("concrete backward {shape:?}×{samples}"),
            &grad.to_vec().unwrap(),
            &fd,
            1e-4,
            1e-3,
        );
    }
}

#[test]
fn bad_inputs_are_errors() {
    let gpu = gpu();
    let logits = Tensor::from_slice(&gpu, &[1, 1, 2, 2], &[0.0; 4]).unwrap();
    for t in [0.0f32, -1.0, f32::NAN, f32::INFINITY] {
        assert!(matches!(
            rnd::concrete_sample(&logits, 2, t, 0, 0),
            Err(Error::InvalidArgument(_))
        ));
    }
    assert!(matches!(
        rnd::concrete_sample(&logits, 0, 0.1, 0, 0),
        Err(Error::Shape { .. })
    ));
    let z = rnd::concrete_sample(&logits, 3, 0.1, 0, 0).unwrap();
    let wrong = Tensor::zeros(&gpu, &[3, 1, 2, 3]).unwrap();
    assert!(matches!(
        rnd::concrete_backward(&z, &wrong, 0.1, &[1, 1, 2, 2]),
        Err(Error::Shape { .. })
    ));
    assert!(matches!(
        rnd::concrete_backward(&z, &z, 0.1, &[1, 1, 2, 3]),
        Err(Error::Shape { .. })
    ));
    assert!(matches!(
        rnd::concrete_backward(&z, &z, 0.1, &[2, 2]),
        Err(Error::Shape { .. })
    ));
    let words = rnd::random_bits(&gpu, 4, 0, 0).unwrap();
    assert!(rnd::concrete_sample(&words, 2, 0.1, 0, 0).is_err());
    assert!(matches!(
        rnd::normal(&gpu, &[4], 0, 0, 0.0, -1.0),
        Err(Error::InvalidArgument(_))
    ));
    // An empty draw is an empty tensor, not an error.
    assert_eq!(rnd::uniform(&gpu, &[0, 3], 0, 0).unwrap().numel(), 0);
}

#[test]
fn concrete_rule_flows_to_the_logits() {
    let gpu = gpu();
    let logits = Tensor::from_slice(&gpu, &[1, 1, 2, 3], &[-2.0, -0.5, 0.0, 0.3, 1.0, 2.5]).unwrap();
    let tape = Tape::new();
    let lv = tape.param(logits.clone());
    let z = lv.concrete_sample(4, 0.5, 9, 0).unwrap();
    let loss = z.sum().unwrap();
    let grads = tape.backward(&loss).unwrap();
    // Same draws from the same seed: the rule is Σ_s z(1−z)/t per logit.
    let zs = fido::ops::random::concrete_sample(&logits, 4, 0.5, 9, 0)
        .unwrap()
        .to_vec()
        .unwrap();
    let want: Vec<f64> = (0..6)
        .map(|i| {
            (0..4)
                .map(|s| {
                    let v = zs[s * 6 + i] as f64;
                    v * (1.0 - v) / 0.5
                })
                .sum()
        })
        .collect();
    assert_close(
        "concrete",
        &grads.get(&lv).unwrap().to_vec().unwrap(),
        &want,
        1e-6,
        1e-5,
    );
}
