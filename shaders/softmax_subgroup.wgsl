// The `gpu` kernel profile's softmax-family entries of softmax.wgsl for devices with
// subgroup operations (wgpu::Features::SUBGROUP; see ops::reduce::LaneCombine): the same
// one-pass online max and sum, the same backward rules, with each workgroup reduction done
// by subgroupMax/subgroupAdd, one partial per subgroup through workgroup memory, and every
// subgroup folding those partials itself. Nothing assumes a subgroup size; the builtins
// say it.
//
// This file stands alone because a module that uses subgroup operations is refused where
// the feature is missing. naga 30 rejects `enable subgroups;` (gfx-rs/wgpu#5555) and takes
// the builtins without it; wgpu checks the device feature instead.

override MODE: u32 = 0u;   // 0 softmax, 1 log-softmax, 2 logsumexp (one value per row)
override WG: u32 = 256u;

struct Params {
    rows: u32,
    len: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
@group(0) @binding(3) var<storage, read> dy: array<f32>;
@group(0) @binding(4) var<storage, read_write> dx: array<f32>;
@group(0) @binding(5) var<storage, read> labels: array<u32>;
@group(0) @binding(6) var<storage, read_write> scores: array<f32>;
@group(0) @binding(7) var<storage, read> dscores: array<f32>;

// One partial per subgroup; a subgroup has at least one invocation.
var<workgroup> partial: array<f32, WG>;

struct Lanes {
    @builtin(local_invocation_index) index: u32,
    @builtin(subgroup_invocation_id) lane: u32,
    @builtin(subgroup_size) width: u32,
    @builtin(subgroup_id) subgroup: u32,
    @builtin(num_subgroups) subgroups: u32,
}

fn workgroup_max(v: f32, l: Lanes) -> f32 {
    let mine = subgroupMax(v);
    if l.lane == 0u { partial[l.subgroup] = mine; }
    workgroupBarrier();
    var folded = -3.4028235e38;
    for (var i = l.lane; i < l.subgroups; i += l.width) { folded = max(folded, partial[i]); }
    let r = subgroupMax(folded);
    // The next reduction overwrites the partials.
    workgroupBarrier();
    return r;
}

fn workgroup_sum(v: f32, l: Lanes) -> f32 {
    let mine = subgroupAdd(v);
    if l.lane == 0u { partial[l.subgroup] = mine; }
    workgroupBarrier();
    var folded = 0.0;
    for (var i = l.lane; i < l.subgroups; i += l.width) { folded += partial[i]; }
    let r = subgroupAdd(folded);
    workgroupBarrier();
    return r;
}

const NO_SKIP: u32 = 0xffffffffu;

// (max, Σ exp(x − max)) of the row at `base`, leaving out column `skip`: a running max and
// rescaled sum per invocation (one exp per element), combined as M = max m,
// S = Σ s·exp(m − M).
fn online_max_and_sum(base: u32, skip: u32, l: Lanes) -> vec2<f32> {
    var m = -3.4028235e38;
    var s = 0.0;
    for (var i = l.index; i < p.len; i += WG) {
        if i != skip {
            let v = x[base + i];
            let d = v - m;
            let e = exp(-abs(d));
            let grows = d > 0.0;
            s = select(s + e, s * e + 1.0, grows);
            m = select(m, v, grows);
        }
    }
    let row_max = workgroup_max(m, l);
    // A lane that saw nothing has s = 0, and exp of its very negative m − row_max is 0.
    let row_sum = workgroup_sum(s * exp(m - row_max), l);
    return vec2<f32>(row_max, row_sum);
}

@compute @workgroup_size(WG)
fn softmax_rows_online(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                       l: Lanes) {
    let row = wid.x + wid.y * nwg.x;
    // Whole workgroups leave together, so barriers and subgroup operations stay uniform.
    if row >= p.rows { return; }
    let base = row * p.len;
    let ms = online_max_and_sum(base, NO_SKIP, l);
    let log_s = log(ms.y);
    if MODE == 2u {
        if l.index == 0u { out[row] = ms.x + log_s; }
        return;
    }
    for (var i = l.index; i < p.len; i += WG) {
        let shifted = x[base + i] - ms.x;
        if MODE == 1u {
            out[base + i] = shifted - log_s;
        } else {
            out[base + i] = exp(shifted) / ms.y;
        }
    }
}

// Log-softmax backward from its output y: dx = dy − exp(y)·Σdy over the row.
@compute @workgroup_size(WG)
fn log_softmax_backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                        l: Lanes) {
    let row = wid.x + wid.y * nwg.x;
    if row >= p.rows { return; }
    let base = row * p.len;
    var s = 0.0;
    for (var i = l.index; i < p.len; i += WG) { s += dy[base + i]; }
    s = workgroup_sum(s, l);
    for (var i = l.index; i < p.len; i += WG) {
        dx[base + i] = dy[base + i] - exp(x[base + i]) * s;
    }
}

// Softmax backward from its output y: dx = y·(dy − Σ y·dy).
@compute @workgroup_size(WG)
fn softmax_backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                    l: Lanes) {
    let row = wid.x + wid.y * nwg.x;
    if row >= p.rows { return; }
    let base = row * p.len;
    var s = 0.0;
    for (var i = l.index; i < p.len; i += WG) { s += x[base + i] * dy[base + i]; }
    s = workgroup_sum(s, l);
    for (var i = l.index; i < p.len; i += WG) {
        dx[base + i] = x[base + i] * (dy[base + i] - s);
    }
}

// Log-odds of the labelled class, x_c − logsumexp_{k≠c} x_k (see softmax.wgsl).
@compute @workgroup_size(WG)
fn log_odds_rows_online(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                        l: Lanes) {
    let row = wid.x + wid.y * nwg.x;
    if row >= p.rows { return; }
    let base = row * p.len;
    let c = labels[row];
    let ms = online_max_and_sum(base, c, l);
    if l.index == 0u { scores[row] = x[base + c] - (ms.x + log(ms.y)); }
}

// ∂s/∂x_c = 1 and ∂s/∂x_k = −exp(x_k − logsumexp_{j≠c} x_j) for k ≠ c.
@compute @workgroup_size(WG)
fn log_odds_backward_online(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                            l: Lanes) {
    let row = wid.x + wid.y * nwg.x;
    if row >= p.rows { return; }
    let base = row * p.len;
    let c = labels[row];
    let ms = online_max_and_sum(base, c, l);
    let lse = ms.x + log(ms.y);
    let g = dscores[row];
    for (var i = l.index; i < p.len; i += WG) {
        dx[base + i] = select(-g * exp(x[base + i] - lse), g, i == c);
    }
}
