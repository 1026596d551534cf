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

// Unary op codes; keep in step with `UnaryOp` in src/ops/elementwise/mod.rs.
fn unary(x: f32) -> f32 {
    switch OP {
        case 0u: { return -x; }
        case 1u: { return exp(x); }
        case 2u: { return log(x); }
        case 3u: {
            // Stable on both tails: exp only ever sees a non-positive argument.
            let e = exp(-abs(x));
            return select(e / (1.0 + e), 1.0 / (1.0 + e), x >= 0.0);
        }
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
        default: { d = g; }
    }
    out[i] = d;
}
