//! The value stream synthetic weights are drawn from: element `i` of a tensor named `name`
//! is `unit(fnv1a64(name), i)`, uniform in [−1, 1). Models and the in-painter scale it by
//! their own rules (`models::synthetic`, `inpaint::synthetic_values`); `tools/` draws the
//! same bits in NumPy.

/// FNV-1a, 64-bit, over the bytes of `s`.
pub fn fnv1a64(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// The splitmix64 output function.
pub fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Element `i` of tensor `name` before scaling, uniform in [−1, 1).
pub fn unit(name_hash: u64, i: u64) -> f64 {
    let x = splitmix64(name_hash ^ i);
    ((x >> 11) as f64 * (1.0 / (1u64 << 53) as f64)) * 2.0 - 1.0
}
