// Convolution bias gradient, NCHW f32.

// ---------------------------------------------------------------------------------------
// Bias gradient: one workgroup per channel sums dy over (n, h, w) with a tree reduction.
// ---------------------------------------------------------------------------------------

const RED_WG: u32 = 256u;

struct BiasGradParams {
    images: u32,
    channels: u32,
    plane: u32,
}

@group(0) @binding(0) var<uniform> bgp: BiasGradParams;
@group(0) @binding(2) var<storage, read> bg_dy: array<f32>;
@group(0) @binding(5) var<storage, read_write> bg_out: array<f32>;

var<workgroup> partial: array<f32, RED_WG>;

@compute @workgroup_size(RED_WG)
fn bias_grad(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32) {
    let channel = wid.x + wid.y * nwg.x;
    var sum = 0.0;
    if channel < bgp.channels {
        for (var n = 0u; n < bgp.images; n++) {
            let base = (n * bgp.channels + channel) * bgp.plane;
            for (var i = lid; i < bgp.plane; i += RED_WG) {
                sum += bg_dy[base + i];
            }
        }
    }
    partial[lid] = sum;
    workgroupBarrier();
    for (var half = RED_WG / 2u; half > 0u; half = half / 2u) {
        if lid < half {
            partial[lid] += partial[lid + half];
        }
        workgroupBarrier();
    }
    if lid == 0u && channel < bgp.channels {
        bg_out[channel] = partial[0];
    }
}
