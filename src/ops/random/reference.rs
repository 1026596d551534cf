//! CPU reference for the random family: the same Philox words bit for bit, the same open
//! uniforms bit for bit, and the derived distributions in f64.

/// One Philox4x32-10 block (Salmon et al. 2011, Random123's reference schedule).
pub fn philox4x32_10(counter: [u32; 4], key: [u32; 2]) -> [u32; 4] {
    let mut c = counter;
    let mut k = key;
    for round in 0..10 {
        if round > 0 {
            k[0] = k[0].wrapping_add(0x9E37_79B9);
            k[1] = k[1].wrapping_add(0xBB67_AE85);
        }
        let p0 = 0xD251_1F53u64 * c[0] as u64;
        let p1 = 0xCD9E_8D57u64 * c[2] as u64;
        c = [
            (p1 >> 32) as u32 ^ c[1] ^ k[0],
            p1 as u32,
            (p0 >> 32) as u32 ^ c[3] ^ k[1],
            p0 as u32,
        ];
    }
    c
}

/// Word `index` of the stream `(seed, stream)`.
pub fn word(seed: u64, stream: u32, index: u32) -> u32 {
    block(seed, stream, index / 4)[(index % 4) as usize]
}

/// The four words of block `b` of the stream `(seed, stream)`.
pub fn block(seed: u64, stream: u32, b: u32) -> [u32; 4] {
    philox4x32_10([b, 0, stream, 0], [seed as u32, (seed >> 32) as u32])
}

/// The first `n` words of the stream.
pub fn random_bits(n: usize, seed: u64, stream: u32) -> Vec<u32> {
    (0..n.div_ceil(4) as u32)
        .flat_map(|b| block(seed, stream, b))
        .take(n)
        .collect()
}

/// `k + 0.5` for the top 23 bits `k` of a word, exact in f32.
pub fn open_level(w: u32) -> f32 {
    (w >> 9) as f32 + 0.5
}

/// The open uniform of a word, bit-identical to the GPU's.
pub fn open_uniform(w: u32) -> f32 {
    open_level(w) * (1.0 / (1u32 << 23) as f32)
}

pub fn uniform(n: usize, seed: u64, stream: u32) -> Vec<f32> {
    random_bits(n, seed, stream)
        .into_iter()
        .map(open_uniform)
        .collect()
}

/// `log u − log(1 − u)` of a word's open uniform, in f64.
pub fn logistic_noise(w: u32) -> f64 {
    let k = open_level(w) as f64;
    (k / ((1u32 << 23) as f64 - k)).ln()
}

pub fn normal(n: usize, seed: u64, stream: u32, mean: f64, std: f64) -> Vec<f64> {
    let words = random_bits(n.div_ceil(4) * 4, seed, stream);
    let mut out = Vec::with_capacity(n);
    for pair in words.chunks(2) {
        let radius = (-2.0 * (open_uniform(pair[0]) as f64).ln()).sqrt();
        let angle = std::f64::consts::TAU * open_uniform(pair[1]) as f64;
        out.push(mean + std * radius * angle.cos());
        out.push(mean + std * radius * angle.sin());
    }
    out.truncate(n);
    out
}

pub fn sigmoid(x: f64) -> f64 {
    if x >= 0.0 {
        1.0 / (1.0 + (-x).exp())
    } else {
        let e = x.exp();
        e / (1.0 + e)
    }
}

/// Concrete draws for `samples` samples of `logits` (sample-major), in f64.
pub fn concrete_sample(logits: &[f64], samples: usize, temperature: f64, seed: u64, stream: u32) -> Vec<f64> {
    let words = random_bits(logits.len() * samples, seed, stream);
    words
        .iter()
        .enumerate()
        .map(|(o, &w)| sigmoid((logits[o % logits.len()] + logistic_noise(w)) / temperature))
        .collect()
}

/// `Σ_s dy·z(1 − z)/t` per logit, for `inner` logits.
pub fn concrete_backward(z: &[f32], dy: &[f32], temperature: f64, inner: usize) -> Vec<f64> {
    let mut grad = vec![0.0; inner];
    for (o, (&zz, &g)) in z.iter().zip(dy).enumerate() {
        let zz = zz as f64;
        grad[o % inner] += g as f64 * zz * (1.0 - zz) / temperature;
    }
    grad
}
