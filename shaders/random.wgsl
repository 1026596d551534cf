// Counter-based random numbers: Philox4x32-10 of (seed, stream, block).
//
// Word w of the stream (seed, stream) is word w % 4 of
// philox(counter = (w / 4, 0, stream, 0), key = (seed_lo, seed_hi)). Nothing is stored
// between launches, so a new seed per optimisation step is only a new parameter value.
// Each invocation computes one Philox block and uses its four words.

const WG: u32 = 256u;
const TWO_PI: f32 = 6.283185307179586;
// Open uniforms keep 23 bits: (k + 0.5) and 2^23 − (k + 0.5) are then both exact in f32,
// so u and 1 − u are exact and strictly inside (0, 1).
const UNIFORM_BITS_DROPPED: u32 = 9u;
const UNIFORM_SCALE: f32 = 1.1920928955078125e-7; // 2^-23
const UNIFORM_LEVELS: f32 = 8388608.0; // 2^23

struct Params {
    n: u32,               // output elements
    seed_lo: u32,
    seed_hi: u32,
    stream: u32,
    mean: f32,            // normal
    std_dev: f32,         // normal: standard deviation
    inv_temperature: f32, // concrete: 1 / temperature
    inner: u32,           // concrete: elements per sample (the logits' size)
    samples: u32,         // concrete backward: number of samples
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> bits_out: array<u32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
@group(0) @binding(3) var<storage, read> logits: array<f32>;
@group(0) @binding(4) var<storage, read> z: array<f32>;
@group(0) @binding(5) var<storage, read> dy: array<f32>;

// The high and low words of the 64-bit product a·b, from 16-bit halves (WGSL has no mulhi).
fn mulhilo(a: u32, b: u32) -> vec2<u32> {
    let a_lo = a & 0xffffu;
    let a_hi = a >> 16u;
    let b_lo = b & 0xffffu;
    let b_hi = b >> 16u;
    let ll = a_lo * b_lo;
    let lh = a_lo * b_hi;
    let hl = a_hi * b_lo;
    let hh = a_hi * b_hi;
    let mid = (ll >> 16u) + (lh & 0xffffu) + (hl & 0xffffu);
    let hi = hh + (lh >> 16u) + (hl >> 16u) + (mid >> 16u);
    return vec2<u32>(hi, a * b);
}

fn philox_round(c: vec4<u32>, k: vec2<u32>) -> vec4<u32> {
    let p0 = mulhilo(0xD2511F53u, c.x);
    let p1 = mulhilo(0xCD9E8D57u, c.z);
    return vec4<u32>(p1.x ^ c.y ^ k.x, p1.y, p0.x ^ c.w ^ k.y, p0.y);
}

fn philox4x32_10(counter: vec4<u32>, key: vec2<u32>) -> vec4<u32> {
    var c = counter;
    var k = key;
    c = philox_round(c, k);
    for (var r = 1u; r < 10u; r++) {
        k += vec2<u32>(0x9E3779B9u, 0xBB67AE85u);
        c = philox_round(c, k);
    }
    return c;
}

fn block(i: u32) -> vec4<u32> {
    return philox4x32_10(vec4<u32>(i, 0u, p.stream, 0u), vec2<u32>(p.seed_lo, p.seed_hi));
}

// k + 0.5 for the top 23 bits k of a word; the open uniform is (k + 0.5)·2^-23.
fn open_level(w: u32) -> f32 {
    return f32(w >> UNIFORM_BITS_DROPPED) + 0.5;
}

fn open_uniform(w: u32) -> f32 {
    return open_level(w) * UNIFORM_SCALE;
}

// log u − log(1 − u), from exact numerators so both tails stay finite (|·| ≤ 16.7).
fn logistic_noise(w: u32) -> f32 {
    let k = open_level(w);
    return log(k / (UNIFORM_LEVELS - k));
}

fn sigmoid(x: f32) -> f32 {
    // exp only ever sees a non-positive argument, so no tail overflows.
    let e = exp(-abs(x));
    return select(e / (1.0 + e), 1.0 / (1.0 + e), x >= 0.0);
}

fn linear_id(gid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return gid.x + gid.y * nwg.x * WG;
}

@compute @workgroup_size(WG)
fn draw_bits(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = linear_id(gid, nwg);
    let first = i * 4u;
    if first >= p.n { return; }
    let w = block(i);
    for (var e = 0u; e < 4u; e++) {
        if first + e < p.n { bits_out[first + e] = w[e]; }
    }
}

@compute @workgroup_size(WG)
fn draw_uniform(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = linear_id(gid, nwg);
    let first = i * 4u;
    if first >= p.n { return; }
    let w = block(i);
    for (var e = 0u; e < 4u; e++) {
        if first + e < p.n { out[first + e] = open_uniform(w[e]); }
    }
}

// Box–Muller: words (0, 1) give outputs 0 and 1, words (2, 3) give outputs 2 and 3.
@compute @workgroup_size(WG)
fn draw_normal(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = linear_id(gid, nwg);
    let first = i * 4u;
    if first >= p.n { return; }
    let w = block(i);
    var v: array<f32, 4>;
    for (var h = 0u; h < 2u; h++) {
        let radius = sqrt(-2.0 * log(open_uniform(w[2u * h])));
        let angle = TWO_PI * open_uniform(w[2u * h + 1u]);
        v[2u * h] = radius * cos(angle);
        v[2u * h + 1u] = radius * sin(angle);
    }
    for (var e = 0u; e < 4u; e++) {
        if first + e < p.n { out[first + e] = p.mean + p.std_dev * v[e]; }
    }
}

// Relaxed Bernoulli: z = sigmoid((logit + log u − log(1 − u)) / t), output element
// s·inner + j drawing from word s·inner + j and reading logits[j].
@compute @workgroup_size(WG)
fn concrete_forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = linear_id(gid, nwg);
    let first = i * 4u;
    if first >= p.n { return; }
    let w = block(i);
    for (var e = 0u; e < 4u; e++) {
        let o = first + e;
        if o < p.n {
            out[o] = sigmoid((logits[o % p.inner] + logistic_noise(w[e])) * p.inv_temperature);
        }
    }
}

// dL/dlogit[j] = Σ_s dy[s, j] · z(1 − z) / t: one invocation gathers over the samples.
@compute @workgroup_size(WG)
fn concrete_backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let j = linear_id(gid, nwg);
    if j >= p.inner { return; }
    var acc = 0.0;
    for (var s = 0u; s < p.samples; s++) {
        let o = s * p.inner + j;
        let zz = z[o];
        acc += dy[o] * zz * (1.0 - zz);
    }
    out[j] = acc * p.inv_temperature;
}
