// Softmax, log-softmax and logsumexp over the last axis, one workgroup per row.
// Max-shifted so that large logits never overflow; the row max and the sum of
// exponentials are combined across the workgroup in shared memory.
// The `gpu` kernel profile runs 256 wide, and its forward entries (`*_online`) find the row
// max and sum in one pass; softmax_subgroup.wgsl has the same entries combining lanes with
// subgroup operations.

override MODE: u32 = 0u;   // 0 softmax, 1 log-softmax, 2 logsumexp (one value per row)
override WG: u32 = 64u;    // a power of two, for the tree

struct Params {
    rows: u32,
    len: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;

var<workgroup> scratch: array<f32, WG>;

fn workgroup_max(v: f32, lane: u32) -> f32 {
    scratch[lane] = v;
    workgroupBarrier();
    for (var half = WG / 2u; half > 0u; half /= 2u) {
        if lane < half { scratch[lane] = max(scratch[lane], scratch[lane + half]); }
        workgroupBarrier();
    }
    let r = scratch[0];
    workgroupBarrier();
    return r;
}

fn workgroup_sum(v: f32, lane: u32) -> f32 {
    scratch[lane] = v;
    workgroupBarrier();
    for (var half = WG / 2u; half > 0u; half /= 2u) {
        if lane < half { scratch[lane] += scratch[lane + half]; }
        workgroupBarrier();
    }
    let r = scratch[0];
    workgroupBarrier();
    return r;
}

@compute @workgroup_size(WG)
fn softmax_rows(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                @builtin(local_invocation_id) lid: vec3<u32>) {
    let row = wid.x + wid.y * nwg.x;
    if row >= p.rows { return; }
    let base = row * p.len;
    var m = -3.4028235e38;
    for (var i = lid.x; i < p.len; i += WG) { m = max(m, x[base + i]); }
    m = workgroup_max(m, lid.x);
    var s = 0.0;
    for (var i = lid.x; i < p.len; i += WG) { s += exp(x[base + i] - m); }
    s = workgroup_sum(s, lid.x);
    let log_s = log(s);
    if MODE == 2u {
        if lid.x == 0u { out[row] = m + log_s; }
        return;
    }
    for (var i = lid.x; i < p.len; i += WG) {
        let shifted = x[base + i] - m;
        if MODE == 1u {
            out[base + i] = shifted - log_s;
        } else {
            out[base + i] = exp(shifted) / s;
        }
    }
}

@group(0) @binding(3) var<storage, read> dy: array<f32>;
@group(0) @binding(4) var<storage, read_write> dx: array<f32>;

// Log-softmax backward from its output y: dx = dy − exp(y)·Σdy over the row.
@compute @workgroup_size(WG)
fn log_softmax_backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                        @builtin(local_invocation_id) lid: vec3<u32>) {
    let row = wid.x + wid.y * nwg.x;
    if row >= p.rows { return; }
    let base = row * p.len;
    var s = 0.0;
    for (var i = lid.x; i < p.len; i += WG) { s += dy[base + i]; }
    s = workgroup_sum(s, lid.x);
    for (var i = lid.x; i < p.len; i += WG) {
        dx[base + i] = dy[base + i] - exp(x[base + i]) * s;
    }
}

// Softmax backward from its output y: dx = y·(dy − Σ y·dy).
@compute @workgroup_size(WG)
fn softmax_backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                    @builtin(local_invocation_id) lid: vec3<u32>) {
    let row = wid.x + wid.y * nwg.x;
    if row >= p.rows { return; }
    let base = row * p.len;
    var s = 0.0;
    for (var i = lid.x; i < p.len; i += WG) { s += x[base + i] * dy[base + i]; }
    s = workgroup_sum(s, lid.x);
    for (var i = lid.x; i < p.len; i += WG) {
        dx[base + i] = x[base + i] * (dy[base + i] - s);
    }
}

@group(0) @binding(5) var<storage, read> labels: array<u32>;
@group(0) @binding(6) var<storage, read_write> scores: array<f32>;
@group(0) @binding(7) var<storage, read> dscores: array<f32>;

// Log-sum-exp of a row over every class but `skip`; shared by the log-odds entries.
fn logsumexp_without(base: u32, skip: u32, lane: u32) -> f32 {
    var m = -3.4028235e38;
    for (var i = lane; i < p.len; i += WG) {
        if i != skip { m = max(m, x[base + i]); }
    }
    m = workgroup_max(m, lane);
    var s = 0.0;
    for (var i = lane; i < p.len; i += WG) {
        if i != skip { s += exp(x[base + i] - m); }
    }
    s = workgroup_sum(s, lane);
    return m + log(s);
}

// Log-odds of the labelled class, log p_c − log(1 − p_c) = x_c − logsumexp_{k≠c} x_k: the
// normaliser cancels, so nothing is computed as a difference of nearly equal numbers.
@compute @workgroup_size(WG)
fn log_odds_rows(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                 @builtin(local_invocation_id) lid: vec3<u32>) {
    let row = wid.x + wid.y * nwg.x;
    if row >= p.rows { return; }
    let base = row * p.len;
    let c = labels[row];
    let lse = logsumexp_without(base, c, lid.x);
    if lid.x == 0u { scores[row] = x[base + c] - lse; }
}

// ∂s/∂x_c = 1 and ∂s/∂x_k = −exp(x_k − logsumexp_{j≠c} x_j) for k ≠ c.
@compute @workgroup_size(WG)
fn log_odds_backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                     @builtin(local_invocation_id) lid: vec3<u32>) {
    let row = wid.x + wid.y * nwg.x;
    if row >= p.rows { return; }
    let base = row * p.len;
    let c = labels[row];
    let lse = logsumexp_without(base, c, lid.x);
    let g = dscores[row];
    for (var i = lid.x; i < p.len; i += WG) {
        dx[base + i] = select(-g * exp(x[base + i] - lse), g, i == c);
    }
}

// ---------------------------------------------------------------------------------------
// The `gpu` profile's forward entries. Each invocation keeps a running max m and a sum s of
// exp(v − m), rescaled when the max grows (one exp per element: the smaller of the two
// exponents is always the one computed). The lanes' (m, s) pairs then combine as
// M = max m, S = Σ s·exp(m − M). That reads the row twice (once here, once to write the
// output) instead of three times; the result is the same max-shifted sum.

const NO_SKIP: u32 = 0xffffffffu;

// (max, Σ exp(x − max)) of the row at `base`, leaving out column `skip`.
fn online_max_and_sum(base: u32, skip: u32, lane: u32) -> vec2<f32> {
    var m = -3.4028235e38;
    var s = 0.0;
    for (var i = lane; i < p.len; i += WG) {
        if i != skip {
            let v = x[base + i];
            let d = v - m;
            let e = exp(-abs(d));
            let grows = d > 0.0;
            s = select(s + e, s * e + 1.0, grows);
            m = select(m, v, grows);
        }
    }
    let row_max = workgroup_max(m, lane);
    // A lane that saw nothing has s = 0, and exp of its very negative m − row_max is 0.
    let row_sum = workgroup_sum(s * exp(m - row_max), lane);
    return vec2<f32>(row_max, row_sum);
}

@compute @workgroup_size(WG)
fn softmax_rows_online(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                       @builtin(local_invocation_id) lid: vec3<u32>) {
    let row = wid.x + wid.y * nwg.x;
    if row >= p.rows { return; }
    let base = row * p.len;
    let ms = online_max_and_sum(base, NO_SKIP, lid.x);
    let log_s = log(ms.y);
    if MODE == 2u {
        if lid.x == 0u { out[row] = ms.x + log_s; }
        return;
    }
    for (var i = lid.x; i < p.len; i += WG) {
        let shifted = x[base + i] - ms.x;
        if MODE == 1u {
            out[base + i] = shifted - log_s;
        } else {
            out[base + i] = exp(shifted) / ms.y;
        }
    }
}

@compute @workgroup_size(WG)
fn log_odds_rows_online(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                        @builtin(local_invocation_id) lid: vec3<u32>) {
    let row = wid.x + wid.y * nwg.x;
    if row >= p.rows { return; }
    let base = row * p.len;
    let c = labels[row];
    let ms = online_max_and_sum(base, c, lid.x);
    if lid.x == 0u { scores[row] = x[base + c] - (ms.x + log(ms.y)); }
}

@compute @workgroup_size(WG)
fn log_odds_backward_online(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                            @builtin(local_invocation_id) lid: vec3<u32>) {
    let row = wid.x + wid.y * nwg.x;
    if row >= p.rows { return; }
    let base = row * p.len;
    let c = labels[row];
    let ms = online_max_and_sum(base, c, lid.x);
    let lse = ms.x + log(ms.y);
    let g = dscores[row];
    for (var i = lid.x; i < p.len; i += WG) {
        dx[base + i] = select(-g * exp(x[base + i] - lse), g, i == c);
    }
}
