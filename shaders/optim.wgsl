// Optimiser updates, in place.
//
// The learning rate and the bias corrections are parameters, computed on the host in f64
// for each step, so a schedule that changes them every step reuses one pipeline.

const WG: u32 = 256u;

struct Params {
    n: u32,
    beta1: f32,
    beta2: f32,
    eps: f32,
    step_size: f32,     // lr / (1 − β1^t)
    inv_sqrt_bc2: f32,  // 1 / sqrt(1 − β2^t)
    step: u32,          // t, for the record; the corrections above already use it
    lo: f32,            // clamp: lower bound
    hi: f32,            // clamp: upper bound
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> param: array<f32>;
@group(0) @binding(2) var<storage, read> grad: array<f32>;
@group(0) @binding(3) var<storage, read_write> m: array<f32>;
@group(0) @binding(4) var<storage, read_write> v: array<f32>;

fn linear_id(gid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return gid.x + gid.y * nwg.x * WG;
}

// PyTorch Adam: p −= lr/(1 − β1^t) · m / (sqrt(v)/sqrt(1 − β2^t) + ε).
@compute @workgroup_size(WG)
fn adam_step(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = linear_id(gid, nwg);
    if i >= p.n { return; }
    let g = grad[i];
    let m_new = p.beta1 * m[i] + (1.0 - p.beta1) * g;
    let v_new = p.beta2 * v[i] + (1.0 - p.beta2) * g * g;
    m[i] = m_new;
    v[i] = v_new;
    param[i] -= p.step_size * m_new / (sqrt(v_new) * p.inv_sqrt_bc2 + p.eps);
}

@compute @workgroup_size(WG)
fn clamp_in_place(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = linear_id(gid, nwg);
    if i >= p.n { return; }
    param[i] = clamp(param[i], p.lo, p.hi);
}
