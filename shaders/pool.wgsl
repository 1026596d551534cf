// 2-D max and average pooling over NCHW planes, forward and backward.
//
// Forward entries run one invocation per output element. Backward entries are gathers:
// one invocation per input element visits every window that contains it, so no two
// invocations write the same gradient element and no atomics are needed. Max pooling
// recomputes each window's argmax instead of storing indices; the scan order and the
// strict comparison are shared with the forward, so both agree on ties (first maximum).

override WG: u32 = 256u;

struct Params {
    total: u32,        // invocations: outputs (forward) or inputs (backward)
    in_h: u32,
    in_w: u32,
    out_h: u32,
    out_w: u32,
    kh: u32,
    kw: u32,
    sh: u32,
    sw: u32,
    ph: u32,
    pw: u32,
    include_pad: u32,  // average pooling: 1 divides by the padded window size
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> dy: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

fn linear_id(gid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return gid.x + gid.y * nwg.x * WG;
}

struct WindowMax {
    value: f32,
    index: i32,   // flat index inside the plane, -1 if the window held no real element
}

// First maximum in row-major scan order; NaN wins, as in PyTorch. Padding acts as -inf.
fn window_max(plane_base: u32, oh: u32, ow: u32) -> WindowMax {
    let h0 = i32(oh * p.sh) - i32(p.ph);
    let w0 = i32(ow * p.sw) - i32(p.pw);
    var best = WindowMax(0.0, -1);
    for (var r = 0u; r < p.kh; r++) {
        let h = h0 + i32(r);
        if h < 0 || h >= i32(p.in_h) { continue; }
        for (var c = 0u; c < p.kw; c++) {
            let w = w0 + i32(c);
            if w < 0 || w >= i32(p.in_w) { continue; }
            let idx = h * i32(p.in_w) + w;
            let v = x[plane_base + u32(idx)];
            if best.index < 0 || v > best.value || (v != v && best.value == best.value) {
                best = WindowMax(v, idx);
            }
        }
    }
    return best;
}

fn window_divisor(oh: u32, ow: u32) -> f32 {
    let h0 = i32(oh * p.sh) - i32(p.ph);
    let w0 = i32(ow * p.sw) - i32(p.pw);
    let h1 = min(h0 + i32(p.kh), i32(p.in_h + p.ph));
    let w1 = min(w0 + i32(p.kw), i32(p.in_w + p.pw));
    if p.include_pad != 0u {
        return f32((h1 - h0) * (w1 - w0));
    }
    let rows = min(h1, i32(p.in_h)) - max(h0, 0);
    let cols = min(w1, i32(p.in_w)) - max(w0, 0);
    return f32(max(rows * cols, 1));
}

@compute @workgroup_size(WG)
fn max_forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = linear_id(gid, nwg);
    if i >= p.total { return; }
    let ow = i % p.out_w;
    let rest = i / p.out_w;
    let oh = rest % p.out_h;
    let plane = rest / p.out_h;
    let m = window_max(plane * p.in_h * p.in_w, oh, ow);
    out[i] = m.value;
}

// Output windows along one axis that contain input coordinate `ix`: [first, last].
fn covering_range(ix: u32, k: u32, s: u32, pad: u32, n_out: u32) -> vec2<i32> {
    let shifted = i32(ix + pad);
    var first = 0;
    if shifted >= i32(k) {
        first = (shifted - i32(k)) / i32(s) + 1;
    }
    let last = min(shifted / i32(s), i32(n_out) - 1);
    return vec2<i32>(first, last);
}

@compute @workgroup_size(WG)
fn max_backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = linear_id(gid, nwg);
    if i >= p.total { return; }
    let iw = i % p.in_w;
    let rest = i / p.in_w;
    let ih = rest % p.in_h;
    let plane = rest / p.in_h;
    let own = i32(ih * p.in_w + iw);
    let plane_base = plane * p.in_h * p.in_w;
    let dy_base = plane * p.out_h * p.out_w;
    let rows = covering_range(ih, p.kh, p.sh, p.ph, p.out_h);
    let cols = covering_range(iw, p.kw, p.sw, p.pw, p.out_w);
    var acc = 0.0;
    for (var oh = rows.x; oh <= rows.y; oh++) {
        for (var ow = cols.x; ow <= cols.y; ow++) {
            let m = window_max(plane_base, u32(oh), u32(ow));
            if m.index == own {
                acc += dy[dy_base + u32(oh) * p.out_w + u32(ow)];
            }
        }
    }
    out[i] = acc;
}

@compute @workgroup_size(WG)
fn avg_forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = linear_id(gid, nwg);
    if i >= p.total { return; }
    let ow = i % p.out_w;
    let rest = i / p.out_w;
    let oh = rest % p.out_h;
    let plane = rest / p.out_h;
    let base = plane * p.in_h * p.in_w;
    let h0 = i32(oh * p.sh) - i32(p.ph);
    let w0 = i32(ow * p.sw) - i32(p.pw);
    let r0 = u32(max(h0, 0));
    let r1 = u32(min(h0 + i32(p.kh), i32(p.in_h)));
    let c0 = u32(max(w0, 0));
    let c1 = u32(min(w0 + i32(p.kw), i32(p.in_w)));
    var acc = 0.0;
    for (var r = r0; r < r1; r++) {
        let row = base + r * p.in_w;
        for (var c = c0; c < c1; c++) {
            acc += x[row + c];
        }
    }
    out[i] = acc / window_divisor(oh, ow);
}

@compute @workgroup_size(WG)
fn avg_backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = linear_id(gid, nwg);
    if i >= p.total { return; }
    let iw = i % p.in_w;
    let rest = i / p.in_w;
    let ih = rest % p.in_h;
    let plane = rest / p.in_h;
    let dy_base = plane * p.out_h * p.out_w;
    let rows = covering_range(ih, p.kh, p.sh, p.ph, p.out_h);
    let cols = covering_range(iw, p.kw, p.sw, p.pw, p.out_w);
    var acc = 0.0;
    for (var oh = rows.x; oh <= rows.y; oh++) {
        for (var ow = cols.x; ow <= cols.y; ow++) {
            acc += dy[dy_base + u32(oh) * p.out_w + u32(ow)] / window_divisor(u32(oh), u32(ow));
        }
    }
    out[i] = acc;
}

// Adaptive average pooling, PyTorch's windows for any input and output size: output row
// `o` averages input rows [floor(o·in/out), ceil((o+1)·in/out)), likewise for columns.
// Windows may overlap by one element when the sizes do not divide.
fn adaptive_start(o: u32, n_in: u32, n_out: u32) -> u32 {
    return (o * n_in) / n_out;
}

fn adaptive_end(o: u32, n_in: u32, n_out: u32) -> u32 {
    return ((o + 1u) * n_in + n_out - 1u) / n_out;
}

fn adaptive_divisor(oh: u32, ow: u32) -> f32 {
    let rows = adaptive_end(oh, p.in_h, p.out_h) - adaptive_start(oh, p.in_h, p.out_h);
    let cols = adaptive_end(ow, p.in_w, p.out_w) - adaptive_start(ow, p.in_w, p.out_w);
    return f32(rows * cols);
}

// Output indices along one axis whose windows contain input coordinate `ix`: [first, last].
// Window o contains ix iff floor(o·in/out) ≤ ix < ceil((o+1)·in/out), which gives
// first = floor(ix·out/in) and last = floor(((ix+1)·out − 1)/in), clamped to the output.
fn adaptive_covering(ix: u32, n_in: u32, n_out: u32) -> vec2<u32> {
    let first = (ix * n_out) / n_in;
    let last = min(((ix + 1u) * n_out - 1u) / n_in, n_out - 1u);
    return vec2<u32>(first, last);
}

@compute @workgroup_size(WG)
fn adaptive_forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = linear_id(gid, nwg);
    if i >= p.total { return; }
    let ow = i % p.out_w;
    let rest = i / p.out_w;
    let oh = rest % p.out_h;
    let plane = rest / p.out_h;
    let base = plane * p.in_h * p.in_w;
    let r0 = adaptive_start(oh, p.in_h, p.out_h);
    let r1 = adaptive_end(oh, p.in_h, p.out_h);
    let c0 = adaptive_start(ow, p.in_w, p.out_w);
    let c1 = adaptive_end(ow, p.in_w, p.out_w);
    var acc = 0.0;
    for (var r = r0; r < r1; r++) {
        let row = base + r * p.in_w;
        for (var c = c0; c < c1; c++) {
            acc += x[row + c];
        }
    }
    out[i] = acc / adaptive_divisor(oh, ow);
}

@compute @workgroup_size(WG)
fn adaptive_backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = linear_id(gid, nwg);
    if i >= p.total { return; }
    let iw = i % p.in_w;
    let rest = i / p.in_w;
    let ih = rest % p.in_h;
    let plane = rest / p.in_h;
    let dy_base = plane * p.out_h * p.out_w;
    let rows = adaptive_covering(ih, p.in_h, p.out_h);
    let cols = adaptive_covering(iw, p.in_w, p.out_w);
    var acc = 0.0;
    for (var oh = rows.x; oh <= rows.y; oh++) {
        for (var ow = cols.x; ow <= cols.y; ow++) {
            acc += dy[dy_base + oh * p.out_w + ow] / adaptive_divisor(oh, ow);
        }
    }
    out[i] = acc;
}
