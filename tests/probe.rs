//! The peak probes: every chain count of the FMA loop against its CPU reference, and every
//! copy pattern on a length that leaves a partial last workgroup.

mod common;

use common::gpu;
use fido::ops::probe::{self, reference, CopyPattern};
use fido::Tensor;

#[test]
fn every_chain_count_matches_the_reference() {
    let gpu = gpu();
    for chains in 1..=probe::MAX_CHAINS {
        let got = probe::fma_loop(&gpu, 300, 37, chains).unwrap().to_vec().unwrap();
        for i in 0..300 {
            let want = reference::fma_loop(i, 37, chains);
            // The reference rounds like the shader (f32 fma, then an f32 sum of the chains);
            // the sum's order may differ, a few ulp of values near 1.
            for lane in 0..4 {
                let g = got[4 * i + lane] as f64;
                assert!(
                    (g - want).abs() <= 1e-6 * want.abs().max(1.0),
                    "{chains} chains, {i}: {g} vs {want}"
                );
            }
        }
        assert_eq!(
            probe::fma_cost(300, 37, chains).flops,
            (300 * 37 * chains * 8) as f64
        );
    }
    assert!(probe::fma_loop(&gpu, 4, 1, 0).is_err());
    assert!(probe::fma_loop(&gpu, 4, 1, probe::MAX_CHAINS + 1).is_err());
}

#[test]
fn every_copy_pattern_copies_everything() {
    let gpu = gpu();
    // 4·1237 floats: not a multiple of any workgroup's span.
    let values: Vec<f32> = (0..4 * 1237).map(|i| i as f32 * 0.5 - 7.0).collect();
    let src = Tensor::from_slice(&gpu, &[values.len()], &values).unwrap();
    let patterns = CopyPattern::all();
    assert!(patterns.len() >= 7);
    for pattern in patterns {
        let dst = Tensor::zeros(&gpu, &[values.len()]).unwrap();
        probe::copy(&src, &dst, pattern).unwrap();
        assert_eq!(dst.to_vec().unwrap(), values, "{pattern:?}");
    }
    let odd = Tensor::zeros(&gpu, &[6]).unwrap();
    assert!(probe::copy(&odd, &odd, CopyPattern::all()[0]).is_err());
    let bad = CopyPattern {
        per_invocation: 9,
        strided: false,
    };
    assert!(probe::copy(&src, &src.deep_clone().unwrap(), bad).is_err());
}
