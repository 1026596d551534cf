// Elementwise unary and binary ops with broadcasting.
//
// The op is an override constant, so every (op, entry) pair compiles to its own
// branch-free pipeline. Contiguous inputs whose length is a multiple of 4 take the
// vec4 entries; everything else, including broadcasting, takes the strided ones.

override OP: u32 = 0u;
const WG: u32 = 256u;

struct Params {
    n: u32,            // output elements (vec4 entries: output vec4s)
    s0: f32,           // scalar operand: alpha, lower bound, addend, factor ...
    s1: f32,           // second scalar: upper bound, offset
    rank: u32,
    out_shape: array<vec4<u32>, 2>,  // up to 8 dims, innermost last
    a_strides: array<vec4<u32>, 2>,  // element strides of a, 0 on broadcast dims
    b_strides: array<vec4<u32>, 2>,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
@group(0) @binding(4) var<storage, read> a4: array<vec4<f32>>;
@group(0) @binding(5) var<storage, read> b4: array<vec4<f32>>;
@group(0) @binding(6) var<storage, read_write> out4: array<vec4<f32>>;

// Stable on both tails: exp only ever sees a non-positive argument.
fn stable_sigmoid(x: f32) -> f32 {
    let e = exp(-abs(x));
    return select(e / (1.0 + e), 1.0 / (1.0 + e), x >= 0.0);
}

// WGSL has no erf. Below |x| = 1 it is the Maclaurin series x·Σ cₙx²ⁿ through n = 11
// (truncation under 1e-10), written as x + x·(c₀ − 1 + …) so that the large leading
// coefficient is never rounded. From 1 on, erfc is Numerical Recipes' `erfcc`, a Chebyshev
// fit exp(−z² + P(t)), t = 1/(1 + z/2), with fractional error under 1.2e-7, whose value there
// is at most erfc(1) = 0.157. Evaluated in f32 with fma (Python emulation, every operation
// rounded, 200001 points on [−6, 6]), erf is within 7.5e-8 absolute of the true value, and
// within 7.5e-8 relative below |x| = 1 (the series needs no exp). A driver's exp, which
// Vulkan lets be 3 + 2|x| ulp off, adds under 1e-7 more past 1.

// erf(x) for |x| < 1; the coefficients are cₙ = (2/√π)·(−1)ⁿ/(n!·(2n+1)), c₀ less 1, unrolled
// so that they are immediates rather than loads.
fn erf_series(x: f32) -> f32 {
    let s = x * x;
    var acc = -1.22905553e-09;
    acc = fma(acc, s, 1.48071928e-08);
    acc = fma(acc, s, -1.63658447e-07);
    acc = fma(acc, s, 1.64621144e-06);
    acc = fma(acc, s, -1.49256504e-05);
    acc = fma(acc, s, 0.00012055333);
    acc = fma(acc, s, -0.000854832702);
    acc = fma(acc, s, 0.00522397763);
    acc = fma(acc, s, -0.0268661706);
    acc = fma(acc, s, 0.112837917);
    acc = fma(acc, s, -0.376126389);
    acc = fma(acc, s, 0.128379167);
    return fma(x, acc, x);
}

// erfc(z) for z ≥ 1 (accurate for z ≥ 0; it underflows to 0 past z ≈ 10).
fn erfc_tail(z: f32) -> f32 {
    let t = 1.0 / (1.0 + 0.5 * z);
    var poly = 0.17087277;
    poly = fma(poly, t, -0.82215223);
    poly = fma(poly, t, 1.48851587);
    poly = fma(poly, t, -1.13520398);
    poly = fma(poly, t, 0.27886807);
    poly = fma(poly, t, -0.18628806);
    poly = fma(poly, t, 0.09678418);
    poly = fma(poly, t, 0.37409196);
    poly = fma(poly, t, 1.00002368);
    poly = fma(poly, t, -1.26551223);
    return t * exp(poly - z * z);
}

fn erf_approx(x: f32) -> f32 {
    if abs(x) < 1.0 { return erf_series(x); }
    return sign(x) * (1.0 - erfc_tail(abs(x)));
}

// Φ(x) = (1 + erf(x/√2))/2; the lower tail comes from erfc, so it keeps its relative
// accuracy where Φ is tiny and GELU's output with it.
fn normal_cdf(x: f32) -> f32 {
    let u = x * 0.707106781;
    if abs(u) < 1.0 { return 0.5 + 0.5 * erf_series(u); }
    let tail = 0.5 * erfc_tail(abs(u));
    return select(1.0 - tail, tail, u < 0.0);
}

// √(2/π)·(x + 0.044715·x³), the argument of GELU's tanh approximation.
fn gelu_tanh_arg(x: f32) -> f32 {
    return 0.797884561 * x * fma(0.044715 * x, x, 1.0);
}

// Unary op codes; keep in step with `UnaryOp` in src/ops/elementwise/mod.rs.
fn unary(x: f32) -> f32 {
    switch OP {
        case 0u: { return -x; }
        case 1u: { return exp(x); }
        case 2u: { return log(x); }
        case 3u: { return stable_sigmoid(x); }
        case 4u: { return max(x, 0.0); }
        case 5u: { return clamp(x, 0.0, 6.0); }
        case 6u: { return select(p.s0 * (exp(x) - 1.0), x, x > 0.0); }
        case 7u: { return clamp(x, p.s0, p.s1); }
        case 8u: { return x + p.s0; }
        case 9u: { return x * p.s0; }
        case 10u: { return p.s0 - x; }
        case 11u: { return p.s0 / x; }
        case 12u: { return x * p.s0 + p.s1; }
        case 13u: { return x * x; }
        case 14u: { return sqrt(x); }
        case 15u: { return abs(x); }
        case 16u: { return tanh(x); }
        case 17u: { return pow(x, p.s0); }
        case 18u: { return select(0.0, 1.0, x > p.s0); }
        case 19u: { return select(p.s0 * x, x, x > 0.0); }
        case 20u: { return clamp(p.s0 * x + p.s1, 0.0, 1.0); }
        case 21u: { return x * clamp(x * (1.0 / 6.0) + 0.5, 0.0, 1.0); }
        case 22u: { return erf_approx(x); }
        case 23u: { return x * normal_cdf(x); }
        // 0.5·(1 + tanh(u)) = sigmoid(2u): no cancellation on the negative tail.
        case 24u: { return x * stable_sigmoid(2.0 * gelu_tanh_arg(x)); }
        default: { return x; }
    }
}

// Binary op codes; keep in step with `BinaryOp`.
fn binary(x: f32, y: f32) -> f32 {
    switch OP {
        case 0u: { return x + y; }
        case 1u: { return x - y; }
        case 2u: { return x * y; }
        case 3u: { return x / y; }
        case 4u: { return max(x, y); }
        case 5u: { return min(x, y); }
        default: { return x; }
    }
}

fn linear_id(gid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return gid.x + gid.y * nwg.x * WG;
}

@compute @workgroup_size(WG)
fn unary_vec4(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = linear_id(gid, nwg);
    if i >= p.n { return; }
    let v = a4[i];
    out4[i] = vec4<f32>(unary(v.x), unary(v.y), unary(v.z), unary(v.w));
}

@compute @workgroup_size(WG)
fn unary_scalar(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = linear_id(gid, nwg);
    if i >= p.n { return; }
    out[i] = unary(a[i]);
}

@compute @workgroup_size(WG)
fn binary_vec4(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = linear_id(gid, nwg);
    if i >= p.n { return; }
    let x = a4[i];
    let y = b4[i];
    out4[i] = vec4<f32>(binary(x.x, y.x), binary(x.y, y.y), binary(x.z, y.z), binary(x.w, y.w));
}

fn dim(arr: array<vec4<u32>, 2>, d: u32) -> u32 {
    return arr[d / 4u][d % 4u];
}

@compute @workgroup_size(WG)
fn binary_broadcast(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = linear_id(gid, nwg);
    if i >= p.n { return; }
    var rest = i;
    var ia = 0u;
    var ib = 0u;
    for (var d = i32(p.rank) - 1; d >= 0; d--) {
        let extent = dim(p.out_shape, u32(d));
        let coord = rest % extent;
        rest = rest / extent;
        ia += coord * dim(p.a_strides, u32(d));
        ib += coord * dim(p.b_strides, u32(d));
    }
    out[i] = binary(a[ia], b[ib]);
}

// In-place forms: the output is also the (first) input, bound once as read_write.

@compute @workgroup_size(WG)
fn unary_vec4_inplace(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = linear_id(gid, nwg);
    if i >= p.n { return; }
    let v = out4[i];
    out4[i] = vec4<f32>(unary(v.x), unary(v.y), unary(v.z), unary(v.w));
}

@compute @workgroup_size(WG)
fn unary_scalar_inplace(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = linear_id(gid, nwg);
    if i >= p.n { return; }
    out[i] = unary(out[i]);
}

@compute @workgroup_size(WG)
fn binary_vec4_inplace(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = linear_id(gid, nwg);
    if i >= p.n { return; }
    let x = out4[i];
    let y = b4[i];
    out4[i] = vec4<f32>(binary(x.x, y.x), binary(x.y, y.y), binary(x.z, y.z), binary(x.w, y.w));
}

@compute @workgroup_size(WG)
fn binary_broadcast_inplace(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = linear_id(gid, nwg);
    if i >= p.n { return; }
    var rest = i;
    var ib = 0u;
    for (var d = i32(p.rank) - 1; d >= 0; d--) {
        let extent = dim(p.out_shape, u32(d));
        let coord = rest % extent;
        rest = rest / extent;
        ib += coord * dim(p.b_strides, u32(d));
    }
    out[i] = binary(out[i], b[ib]);
}

// Broadcast `a` to the output shape (a copy that repeats along broadcast axes).
@compute @workgroup_size(WG)
fn broadcast_to(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = linear_id(gid, nwg);
    if i >= p.n { return; }
    var rest = i;
    var ia = 0u;
    for (var d = i32(p.rank) - 1; d >= 0; d--) {
        let extent = dim(p.out_shape, u32(d));
        let coord = rest % extent;
        rest = rest / extent;
        ia += coord * dim(p.a_strides, u32(d));
    }
    out[i] = a[ia];
}

@group(0) @binding(7) var<storage, read> dy: array<f32>;

// Gradient of a unary op: dx = dy · f'(x), using the saved input x (binding 1) and output
// y (binding 2) whichever is cheaper or more accurate.
@compute @workgroup_size(WG)
fn unary_backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = linear_id(gid, nwg);
    if i >= p.n { return; }
    let x = a[i];
    let y = b[i];
    let g = dy[i];
    var d: f32;
    switch OP {
        case 0u: { d = -g; }
        case 1u: { d = g * y; }
        case 2u: { d = g / x; }
        case 3u: { d = g * y * (1.0 - y); }
        case 4u: { d = select(0.0, g, x > 0.0); }
        case 5u: { d = select(0.0, g, x > 0.0 && x < 6.0); }
        case 6u: { d = select(g * (y + p.s0), g, x > 0.0); }
        case 7u: { d = select(0.0, g, x >= p.s0 && x <= p.s1); }
        case 8u: { d = g; }
        case 9u: { d = g * p.s0; }
        case 10u: { d = -g; }
        case 11u: { d = -g * y / x; }
        case 12u: { d = g * p.s0; }
        case 13u: { d = 2.0 * x * g; }
        case 14u: { d = 0.5 * g / y; }
        case 15u: { d = g * sign(x); }
        case 16u: { d = g * (1.0 - y * y); }
        case 17u: { d = g * p.s0 * pow(x, p.s0 - 1.0); }
        case 18u: { d = 0.0; }
        case 19u: { d = select(g * p.s0, g, x > 0.0); }
        case 20u: {
            let v = p.s0 * x + p.s1;
            d = select(0.0, g * p.s0, v > 0.0 && v < 1.0);
        }
        case 21u: { d = g * select(select(x * (1.0 / 3.0) + 0.5, 1.0, x >= 3.0), 0.0, x <= -3.0); }
        // d erf/dx = (2/√π)·exp(−x²)
        case 22u: { d = g * 1.12837917 * exp(-x * x); }
        // d(x·Φ(x))/dx = Φ(x) + x·φ(x), φ the standard normal density
        case 23u: { d = g * (normal_cdf(x) + x * 0.398942280 * exp(-0.5 * x * x)); }
        // d(x·σ(2u))/dx = σ + x·σ(1 − σ)·2u′, u′ = √(2/π)·(1 + 3·0.044715·x²)
        case 24u: {
            let s = stable_sigmoid(2.0 * gelu_tanh_arg(x));
            let du = 0.797884561 * fma(0.134145 * x, x, 1.0);
            d = g * (s + x * s * (1.0 - s) * 2.0 * du);
        }
        default: { d = g; }
    }
    out[i] = d;
}
