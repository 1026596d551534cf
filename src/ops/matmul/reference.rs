//! CPU reference for matmul, accumulating in f64.

use super::MatmulShape;

/// Returns C as `[batch, m, n]`, row-major.
pub fn matmul(a: &[f32], b: &[f32], s: &MatmulShape, trans_a: bool, trans_b: bool) -> Vec<f64> {
    let wide = |v: &[f32]| -> Vec<f64> { v.iter().map(|&x| x as f64).collect() };
    matmul_f64(&wide(a), &wide(b), s, trans_a, trans_b)
}

/// [`matmul`] of f64 operands, for finite differences.
pub fn matmul_f64(a: &[f64], b: &[f64], s: &MatmulShape, trans_a: bool, trans_b: bool) -> Vec<f64> {
    let mut c = vec![0.0; s.batch * s.m * s.n];
    for bi in 0..s.batch {
        let ab = if s.a_batched { bi * s.m * s.k } else { 0 };
        let bb = if s.b_batched { bi * s.k * s.n } else { 0 };
        for i in 0..s.m {
            for j in 0..s.n {
                let mut acc = 0.0f64;
                for kk in 0..s.k {
                    let av = if trans_a {
                        a[ab + kk * s.m + i]
                    } else {
                        a[ab + i * s.k + kk]
                    };
                    let bv = if trans_b {
                        b[bb + j * s.k + kk]
                    } else {
                        b[bb + kk * s.n + j]
                    };
                    acc += av * bv;
                }
                c[bi * s.m * s.n + i * s.n + j] = acc;
            }
        }
    }
    c
}
