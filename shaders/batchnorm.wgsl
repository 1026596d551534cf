// Batch normalisation in inference mode, NCHW:
// y = (x - mean[c]) / sqrt(var[c] + eps) * gamma[c] + beta[c].
// Memory bound; the per-channel scale and shift are recomputed per element because the
// four extra loads hit the cache and save a second launch.

override WG: u32 = 256u;

struct Params {
    items: u32,
    channels: u32,
    plane: u32,
    eps: f32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> gamma: array<f32>;
@group(0) @binding(3) var<storage, read> beta: array<f32>;
@group(0) @binding(4) var<storage, read> mean: array<f32>;
@group(0) @binding(5) var<storage, read> variance: array<f32>;
@group(0) @binding(6) var<storage, read_write> y: array<f32>;

@compute @workgroup_size(WG)
fn batch_norm(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * WG;
    if i >= p.items {
        return;
    }
    let c = (i / p.plane) % p.channels;
    let scale = gamma[c] / sqrt(variance[c] + p.eps);
    y[i] = (x[i] - mean[c]) * scale + beta[c];
}
