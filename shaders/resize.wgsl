// Bilinear and nearest resizing of NCHW planes, forward and backward.
//
// Source coordinates follow PyTorch's `F.interpolate` (bilinear, nearest) and TF1's
// align_corners nearest rule, all computed in f32 from a host-computed f32 scale, as those
// libraries do. Backward entries are gathers with no atomics: each input pixel scans the
// output rows and columns whose stencil can reach it (an analytic range with a margin of
// one on each side) and re-evaluates the forward's weights there, so forward and backward
// agree exactly on which pixel each output touches.

override WG: u32 = 256u;

struct Params {
    total: u32,        // invocations: outputs (forward) or inputs (backward)
    in_h: u32,
    in_w: u32,
    out_h: u32,
    out_w: u32,
    scale_h: f32,      // source step per output step, as the reference library computes it
    scale_w: f32,
    mode: u32,         // bilinear: 1 = align_corners; nearest: 0 = torch, 1 = TF align_corners
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
@group(0) @binding(3) var<storage, read> dy: array<f32>;   // backward: the cotangent

fn linear_id(gid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return gid.x + gid.y * nwg.x * WG;
}

// One axis of a bilinear stencil: two source indices and their weights.
struct Taps {
    i0: u32,
    i1: u32,
    w0: f32,
    w1: f32,
}

fn bilinear_source(dst: u32, scale: f32) -> f32 {
    if p.mode == 1u {
        return scale * f32(dst);
    }
    return max(scale * (f32(dst) + 0.5) - 0.5, 0.0);
}

fn bilinear_taps(dst: u32, scale: f32, n_in: u32) -> Taps {
    let src = bilinear_source(dst, scale);
    let i0 = min(u32(src), n_in - 1u);
    let i1 = select(i0, i0 + 1u, i0 < n_in - 1u);
    let w1 = src - f32(i0);
    return Taps(i0, i1, 1.0 - w1, w1);
}

// Weight of input index `i` in the stencil of output index `dst`.
fn bilinear_weight(dst: u32, scale: f32, n_in: u32, i: u32) -> f32 {
    let t = bilinear_taps(dst, scale, n_in);
    return select(0.0, t.w0, t.i0 == i) + select(0.0, t.w1, t.i1 == i);
}

// Outputs [first, last] along one axis whose source coordinate can fall in [lo, hi),
// widened by one on each side so f32 rounding at the ends never drops a contributor.
fn output_range(lo: f32, hi: f32, scale: f32, n_out: u32, centred: bool) -> vec2<u32> {
    if scale <= 0.0 {
        return vec2<u32>(0u, n_out - 1u);
    }
    var a = lo / scale;
    var b = hi / scale;
    if centred {
        a = (lo + 0.5) / scale - 0.5;
        b = (hi + 0.5) / scale - 0.5;
    }
    let first = u32(max(floor(a) - 1.0, 0.0));
    let last = u32(clamp(ceil(b) + 1.0, 0.0, f32(n_out - 1u)));
    return vec2<u32>(first, last);
}

// One of five registers by index, without a dynamically indexed private array
// (which CPU adapters keep in memory).
fn pick5(v: array<f32, 5>, i: u32) -> f32 {
    return select(select(select(select(v[4], v[3], i == 3u), v[2], i == 2u), v[1], i == 1u), v[0], i == 0u);
}

// Four adjacent outputs of one row per invocation. When upsampling along x (scale ≤ 1)
// their stencils span at most five source columns, so two rows of five loads serve all
// four; otherwise each output loads its own four taps.
@compute @workgroup_size(WG)
fn bilinear_forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let id = linear_id(gid, nwg);
    if id >= p.total { return; }
    let quads = (p.out_w + 3u) / 4u;
    let quad = id % quads;
    let rest = id / quads;
    let oh = rest % p.out_h;
    let plane = rest / p.out_h;
    let base = plane * p.in_h * p.in_w;
    let ty = bilinear_taps(oh, p.scale_h, p.in_h);
    let r0 = base + ty.i0 * p.in_w;
    let r1 = base + ty.i1 * p.in_w;
    let x0 = quad * 4u;
    let count = min(4u, p.out_w - x0);
    let o = (plane * p.out_h + oh) * p.out_w + x0;
    if p.scale_w <= 1.0 {
        let c0 = bilinear_taps(x0, p.scale_w, p.in_w).i0;
        let span = bilinear_taps(x0 + count - 1u, p.scale_w, p.in_w).i1 - c0 + 1u;
        var top: array<f32, 5>;
        var bottom: array<f32, 5>;
        for (var j = 0u; j < 5u; j++) {
            if j < span {
                top[j] = x[r0 + c0 + j];
                bottom[j] = x[r1 + c0 + j];
            }
        }
        for (var j = 0u; j < count; j++) {
            let tx = bilinear_taps(x0 + j, p.scale_w, p.in_w);
            let a = tx.i0 - c0;
            let b = tx.i1 - c0;
            let t = tx.w0 * pick5(top, a) + tx.w1 * pick5(top, b);
            let u = tx.w0 * pick5(bottom, a) + tx.w1 * pick5(bottom, b);
            out[o + j] = ty.w0 * t + ty.w1 * u;
        }
    } else {
        for (var j = 0u; j < count; j++) {
            let tx = bilinear_taps(x0 + j, p.scale_w, p.in_w);
            let t = tx.w0 * x[r0 + tx.i0] + tx.w1 * x[r0 + tx.i1];
            let u = tx.w0 * x[r1 + tx.i0] + tx.w1 * x[r1 + tx.i1];
            out[o + j] = ty.w0 * t + ty.w1 * u;
        }
    }
}

// Reads dy (shape [.., out_h, out_w]) and writes dx (shape [.., in_h, in_w]) to `out`.
@compute @workgroup_size(WG)
fn bilinear_backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = linear_id(gid, nwg);
    if i >= p.total { return; }
    let iw = i % p.in_w;
    let rest = i / p.in_w;
    let ih = rest % p.in_h;
    let plane = rest / p.in_h;
    let base = plane * p.out_h * p.out_w;
    let centred = p.mode != 1u;
    // An output reaches input i when its source coordinate lies in [i − 1, i + 1);
    // the clamp of negative coordinates to 0 only adds outputs below the first input.
    let rows = output_range(f32(ih) - 1.0, f32(ih) + 1.0, p.scale_h, p.out_h, centred);
    let cols = output_range(f32(iw) - 1.0, f32(iw) + 1.0, p.scale_w, p.out_w, centred);
    var acc = 0.0;
    for (var oh = rows.x; oh <= rows.y; oh++) {
        let wy = bilinear_weight(oh, p.scale_h, p.in_h, ih);
        if wy == 0.0 { continue; }
        var row = 0.0;
        for (var ow = cols.x; ow <= cols.y; ow++) {
            let wx = bilinear_weight(ow, p.scale_w, p.in_w, iw);
            row += wx * dy[base + oh * p.out_w + ow];
        }
        acc += wy * row;
    }
    out[i] = acc;
}

// f32 roundf: half away from zero (WGSL's round() is half to even). `v` is never negative.
fn round_half_away(v: f32) -> f32 {
    let f = floor(v);
    return select(f, f + 1.0, v - f >= 0.5);
}

fn nearest_source(dst: u32, scale: f32, n_in: u32) -> u32 {
    let v = f32(dst) * scale;
    var src: f32;
    if p.mode == 1u {
        src = round_half_away(v);
    } else {
        src = floor(v);
    }
    return min(u32(src), n_in - 1u);
}

@compute @workgroup_size(WG)
fn nearest_forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = linear_id(gid, nwg);
    if i >= p.total { return; }
    let ow = i % p.out_w;
    let rest = i / p.out_w;
    let oh = rest % p.out_h;
    let plane = rest / p.out_h;
    let sy = nearest_source(oh, p.scale_h, p.in_h);
    let sx = nearest_source(ow, p.scale_w, p.in_w);
    out[i] = x[(plane * p.in_h + sy) * p.in_w + sx];
}

// Outputs that can pick input `i`: floor mode covers source [i, i + 1), rounding
// mode [i − 0.5, i + 0.5); the last input also takes every clamped output.
fn nearest_range(i: u32, scale: f32, n_in: u32, n_out: u32) -> vec2<u32> {
    var lo = f32(i);
    if p.mode == 1u {
        lo = lo - 0.5;
    }
    var r = output_range(lo, lo + 1.0, scale, n_out, false);
    if i == n_in - 1u {
        r.y = n_out - 1u;
    }
    return r;
}

// Reads dy and writes dx to `out`.
@compute @workgroup_size(WG)
fn nearest_backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = linear_id(gid, nwg);
    if i >= p.total { return; }
    let iw = i % p.in_w;
    let rest = i / p.in_w;
    let ih = rest % p.in_h;
    let plane = rest / p.in_h;
    let base = plane * p.out_h * p.out_w;
    let rows = nearest_range(ih, p.scale_h, p.in_h, p.out_h);
    let cols = nearest_range(iw, p.scale_w, p.in_w, p.out_w);
    var acc = 0.0;
    for (var oh = rows.x; oh <= rows.y; oh++) {
        if nearest_source(oh, p.scale_h, p.in_h) != ih { continue; }
        for (var ow = cols.x; ow <= cols.y; ow++) {
            if nearest_source(ow, p.scale_w, p.in_w) == iw {
                acc += dy[base + oh * p.out_w + ow];
            }
        }
    }
    out[i] = acc;
}
