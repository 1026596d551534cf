// Convolution weight packing: a weight tensor becomes [groups * rows][tap][ceil(reduction/4)]
// vec4s, reduction channels past the end being zero.

override WG: u32 = 64u;

@group(0) @binding(1) var<storage, read> pack_in: array<f32>;
@group(0) @binding(2) var<storage, read_write> pack_out: array<vec4<f32>>;

struct PackWeightParams {
    items: u32,
    rows_per_group: u32,
    taps: u32,               // KH * KW
    reduction: u32,          // reduction channels per group
    quads: u32,
    group_stride: u32,       // source strides in scalars
    row_stride: u32,
    reduction_stride: u32,
}

@group(0) @binding(0) var<uniform> pw: PackWeightParams;

@compute @workgroup_size(WG)
fn pack_weights(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * WG;
    if i >= pw.items {
        return;
    }
    let q4 = i % pw.quads;
    let tap = (i / pw.quads) % pw.taps;
    let row = i / (pw.quads * pw.taps);
    let group = row / pw.rows_per_group;
    let r = row % pw.rows_per_group;
    let base = group * pw.group_stride + r * pw.row_stride + tap;
    var v = vec4<f32>(0.0);
    for (var e = 0u; e < 4u; e++) {
        let q = q4 * 4u + e;
        if q < pw.reduction {
            v[e] = pack_in[base + q * pw.reduction_stride];
        }
    }
    pack_out[i] = v;
}
