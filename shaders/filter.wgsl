// Separable 1-D filters along rows and columns of NCHW planes, for Gaussian blur
// (reflect-101 border) and box sums (zero border). A 2-D filter is a rows pass into a
// scratch tensor followed by a columns pass.
//
// No shared memory. Loads dominate on CPU adapters, so each invocation produces a block
// of eight outputs along the filtered axis from a sliding register window: one load
// (a vec4 in the columns pass when the width allows) per tap for eight outputs.
// Taps come from a storage buffer.

override WG: u32 = 256u;
// Border rule: false = reflect-101 (OpenCV BORDER_REFLECT_101), true = zeros.
override ZERO_BORDER: bool = false;

struct Params {
    total: u32,     // invocations
    h: u32,
    w: u32,
    radius: u32,    // taps = 2·radius + 1, centred
    quads: u32,     // ceil(w / 4): vec4 columns per row
    blocks: u32,    // eight-output blocks per row (rows pass) or per column (columns pass)
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

// Eight outputs of one row per invocation: a sliding window of eight loaded values
// (two vec4 registers) takes one new load per tap.
@compute @workgroup_size(WG)
fn rows(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let id = linear_id(gid, nwg);
    if id >= p.total { return; }
    let block = id % p.blocks;
    let row = id / p.blocks;
    let base = row * p.w;
    let x0 = i32(block * 8u);
    let first = x0 - i32(p.radius);
    let n_taps = 2u * p.radius + 1u;
    var lo = vec4<f32>(0.0);
    var hi = vec4<f32>(0.0);
    var acc_lo = vec4<f32>(0.0);
    var acc_hi = vec4<f32>(0.0);
    // Windows clear of both borders skip the border rule on every load.
    if first >= 0 && first + i32(n_taps) + 7 <= i32(p.w) {
        let start = base + u32(first);
        lo = vec4<f32>(x[start], x[start + 1u], x[start + 2u], x[start + 3u]);
        hi = vec4<f32>(x[start + 4u], x[start + 5u], x[start + 6u], 0.0);
        for (var k = 0u; k < n_taps; k++) {
            hi.w = x[start + k + 7u];
            let t = taps[k];
            acc_lo += t * lo;
            acc_hi += t * hi;
            lo = vec4<f32>(lo.yzw, hi.x);
            hi = vec4<f32>(hi.yzw, 0.0);
        }
    } else {
        lo = vec4<f32>(line_at(base, 1u, first, p.w), line_at(base, 1u, first + 1, p.w),
                       line_at(base, 1u, first + 2, p.w), line_at(base, 1u, first + 3, p.w));
        hi = vec4<f32>(line_at(base, 1u, first + 4, p.w), line_at(base, 1u, first + 5, p.w),
                       line_at(base, 1u, first + 6, p.w), 0.0);
        for (var k = 0u; k < n_taps; k++) {
            hi.w = line_at(base, 1u, first + i32(k) + 7, p.w);
            let t = taps[k];
            acc_lo += t * lo;
            acc_hi += t * hi;
            lo = vec4<f32>(lo.yzw, hi.x);
            hi = vec4<f32>(hi.yzw, 0.0);
        }
    }
    let o = base + u32(x0);
    let left = p.w - u32(x0);
    out[o] = acc_lo.x;
    if left > 1u { out[o + 1u] = acc_lo.y; }
    if left > 2u { out[o + 2u] = acc_lo.z; }
    if left > 3u { out[o + 3u] = acc_lo.w; }
    if left > 4u { out[o + 4u] = acc_hi.x; }
    if left > 5u { out[o + 5u] = acc_hi.y; }
    if left > 6u { out[o + 6u] = acc_hi.z; }
    if left > 7u { out[o + 7u] = acc_hi.w; }
}

// Row `yy` (any integer) of the vec4 column `col_base` under the border rule.
fn column_at(col_base: u32, yy: i32) -> vec4<f32> {
    if ZERO_BORDER {
        if yy < 0 || yy >= i32(p.h) { return vec4<f32>(0.0); }
        return x4[col_base + u32(yy) * p.quads];
    }
    return x4[col_base + reflect101(yy, p.h) * p.quads];
}

// Columns pass for widths divisible by four: a 4-wide, 8-tall block per invocation,
// with a sliding window of eight vec4 rows, so each tap costs one vec4 load.
@compute @workgroup_size(WG)
fn cols_vec4(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let id = linear_id(gid, nwg);
    if id >= p.total { return; }
    let quad = id % p.quads;
    let rest = id / p.quads;
    let block = rest % p.blocks;
    let plane = rest / p.blocks;
    let col = plane * p.h * p.quads + quad;
    let y0 = block * 8u;
    let first = i32(y0) - i32(p.radius);
    let n_taps = 2u * p.radius + 1u;
    var v0 = column_at(col, first);
    var v1 = column_at(col, first + 1);
    var v2 = column_at(col, first + 2);
    var v3 = column_at(col, first + 3);
    var v4 = column_at(col, first + 4);
    var v5 = column_at(col, first + 5);
    var v6 = column_at(col, first + 6);
    var a0 = vec4<f32>(0.0);
    var a1 = vec4<f32>(0.0);
    var a2 = vec4<f32>(0.0);
    var a3 = vec4<f32>(0.0);
    var a4 = vec4<f32>(0.0);
    var a5 = vec4<f32>(0.0);
    var a6 = vec4<f32>(0.0);
    var a7 = vec4<f32>(0.0);
    let interior = first >= 0 && first + i32(n_taps) + 7 <= i32(p.h);
    for (var k = 0u; k < n_taps; k++) {
        let yy = first + i32(k) + 7;
        var v7: vec4<f32>;
        if interior {
            v7 = x4[col + u32(yy) * p.quads];
        } else {
            v7 = column_at(col, yy);
        }
        let t = taps[k];
        a0 += t * v0;
        a1 += t * v1;
        a2 += t * v2;
        a3 += t * v3;
        a4 += t * v4;
        a5 += t * v5;
        a6 += t * v6;
        a7 += t * v7;
        v0 = v1;
        v1 = v2;
        v2 = v3;
        v3 = v4;
        v4 = v5;
        v5 = v6;
        v6 = v7;
    }
    let o = col + y0 * p.quads;
    let left = p.h - y0;
    out4[o] = a0;
    if left > 1u { out4[o + p.quads] = a1; }
    if left > 2u { out4[o + 2u * p.quads] = a2; }
    if left > 3u { out4[o + 3u * p.quads] = a3; }
    if left > 4u { out4[o + 4u * p.quads] = a4; }
    if left > 5u { out4[o + 5u * p.quads] = a5; }
    if left > 6u { out4[o + 6u * p.quads] = a6; }
    if left > 7u { out4[o + 7u * p.quads] = a7; }
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
