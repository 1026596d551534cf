// Convolution operand packing: [N, C, H, W] becomes [N, groups, ceil(C/groups/4), rows, cols]
// vec4s of four channels, shifted by (row_offset, col_offset) and zero outside the input
// (padding, or cropping when an offset is positive).

override WG: u32 = 64u;

// The activation applied to every value as it is read: the producer's activation fused
// into its consumer (0: none, 1: ReLU, 2: ReLU6).
override ACT: u32 = 0u;

fn activate(v: f32) -> f32 {
    if ACT == 1u {
        return max(v, 0.0);
    }
    if ACT == 2u {
        return clamp(v, 0.0, 6.0);
    }
    return v;
}

struct PackParams {
    items: u32,              // output vec4s
    groups: u32,
    channels_per_group: u32,
    quads: u32,
    in_rows: u32,
    in_cols: u32,
    out_rows: u32,
    out_cols: u32,
    row_offset: i32,
    col_offset: i32,
}

@group(0) @binding(0) var<uniform> pk: PackParams;
@group(0) @binding(2) var<storage, read> pack_in: array<f32>;
@group(0) @binding(6) var<storage, read_write> pack_out: array<vec4<f32>>;

@compute @workgroup_size(WG)
fn pack_planes(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * WG;
    if i >= pk.items {
        return;
    }
    let c = i % pk.out_cols;
    var rest = i / pk.out_cols;
    let r = rest % pk.out_rows;
    rest = rest / pk.out_rows;
    let q4 = rest % pk.quads;
    rest = rest / pk.quads;
    let group = rest % pk.groups;
    let n = rest / pk.groups;
    let sr = i32(r) + pk.row_offset;
    let sc = i32(c) + pk.col_offset;
    let inside = sr >= 0 && sr < i32(pk.in_rows) && sc >= 0 && sc < i32(pk.in_cols);
    let plane = pk.in_rows * pk.in_cols;
    let pixel = u32(select(0, sr * i32(pk.in_cols) + sc, inside));
    let channel0 = (n * pk.groups + group) * pk.channels_per_group + q4 * 4u;
    var v = vec4<f32>(0.0);
    for (var e = 0u; e < 4u; e++) {
        if inside && q4 * 4u + e < pk.channels_per_group {
            v[e] = activate(pack_in[(channel0 + e) * plane + pixel]);
        }
    }
    pack_out[i] = v;
}
