// Separable 1-D filters along rows and columns of NCHW planes, for Gaussian blur
// (reflect-101 border) and box sums (zero border). A 2-D filter is a rows pass into a
// scratch tensor followed by a columns pass.
//
// No shared memory: each invocation produces four adjacent outputs of a row. The rows
// pass slides a four-wide register window along the row (one load per tap); the columns
// pass loads a vec4 per tap when the width allows it. Taps come from a storage buffer.

override WG: u32 = 256u;
// Border rule: false = reflect-101 (OpenCV BORDER_REFLECT_101), true = zeros.
override ZERO_BORDER: bool = false;

struct Params {
    total: u32,     // invocations
    h: u32,
    w: u32,
    radius: u32,    // taps = 2·radius + 1, centred
    quads: u32,     // ceil(w / 4): four-output groups per row
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> taps: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
@group(0) @binding(4) var<storage, read> x4: array<vec4<f32>>;
@group(0) @binding(5) var<storage, read_write> out4: array<vec4<f32>>;

fn linear_id(gid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return gid.x + gid.y * nwg.x * WG;
}

// Reflect-101 with period 2(n − 1), so radii larger than the image keep reflecting.
fn reflect101(i: i32, n: u32) -> u32 {
    if i >= 0 && i < i32(n) { return u32(i); }
    if n == 1u { return 0u; }
    let period = 2u * (n - 1u);
    var m = u32(abs(i)) % period;
    if m >= n { m = period - m; }
    return m;
}

// Element `i` of a line of `n` values at `base` with stride `stride`, under the border rule.
fn line_at(base: u32, stride: u32, i: i32, n: u32) -> f32 {
    if ZERO_BORDER {
        if i < 0 || i >= i32(n) { return 0.0; }
        return x[base + u32(i) * stride];
    }
    return x[base + reflect101(i, n) * stride];
}

@compute @workgroup_size(WG)
fn rows(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let id = linear_id(gid, nwg);
    if id >= p.total { return; }
    let quad = id % p.quads;
    let row = id / p.quads;
    let base = row * p.w;
    let x0 = i32(quad * 4u);
    let r = i32(p.radius);
    var v0 = line_at(base, 1u, x0 - r, p.w);
    var v1 = line_at(base, 1u, x0 - r + 1, p.w);
    var v2 = line_at(base, 1u, x0 - r + 2, p.w);
    var v3 = line_at(base, 1u, x0 - r + 3, p.w);
    var acc = vec4<f32>(0.0);
    let n_taps = 2u * p.radius + 1u;
    for (var k = 0u; k < n_taps; k++) {
        acc += taps[k] * vec4<f32>(v0, v1, v2, v3);
        v0 = v1;
        v1 = v2;
        v2 = v3;
        v3 = line_at(base, 1u, x0 - r + i32(k) + 4, p.w);
    }
    let o = base + u32(x0);
    let left = p.w - u32(x0);
    out[o] = acc.x;
    if left > 1u { out[o + 1u] = acc.y; }
    if left > 2u { out[o + 2u] = acc.z; }
    if left > 3u { out[o + 3u] = acc.w; }
}

// Columns pass for widths divisible by four: one vec4 load per tap.
@compute @workgroup_size(WG)
fn cols_vec4(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let id = linear_id(gid, nwg);
    if id >= p.total { return; }
    let quad = id % p.quads;
    let rest = id / p.quads;
    let y = rest % p.h;
    let plane = rest / p.h;
    let base = plane * p.h * p.quads + quad;
    let y0 = i32(y) - i32(p.radius);
    var acc = vec4<f32>(0.0);
    let n_taps = 2u * p.radius + 1u;
    for (var k = 0u; k < n_taps; k++) {
        let yy = y0 + i32(k);
        if ZERO_BORDER {
            if yy < 0 || yy >= i32(p.h) { continue; }
            acc += taps[k] * x4[base + u32(yy) * p.quads];
        } else {
            acc += taps[k] * x4[base + reflect101(yy, p.h) * p.quads];
        }
    }
    out4[id] = acc;
}

// Columns pass for any width: one output per invocation.
@compute @workgroup_size(WG)
fn cols(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let id = linear_id(gid, nwg);
    if id >= p.total { return; }
    let col = id % p.w;
    let rest = id / p.w;
    let y = rest % p.h;
    let plane = rest / p.h;
    let base = plane * p.h * p.w + col;
    let y0 = i32(y) - i32(p.radius);
    var acc = 0.0;
    let n_taps = 2u * p.radius + 1u;
    for (var k = 0u; k < n_taps; k++) {
        acc += taps[k] * line_at(base, p.w, y0 + i32(k), p.h);
    }
    out[id] = acc;
}
