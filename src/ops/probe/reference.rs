//! CPU reference for the FMA probe, so the benchmark can validate it before timing.

/// The value the probe writes for invocation `i` with `chains` chains (all four lanes are equal).
pub fn fma_loop(i: usize, iterations: u32, chains: usize) -> f64 {
    let seed = (i % 7) as f32 * 0.001;
    let mut total = 0.0f32;
    // The shader writes these offsets as f32 literals; spelling them out keeps the rounding identical.
    let offsets = [
        0.0f32, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.1, 1.2, 1.3, 1.4, 1.5,
    ];
    for offset in offsets.into_iter().take(chains) {
        let mut a = seed + offset;
        for _ in 0..iterations {
            a = a.mul_add(0.999, 0.001);
        }
        total += a;
    }
    total as f64
}
