// Layout ops: constant padding, cropping, slicing, concatenation and axis permutation, as
// index maps.
//
// `window` gathers: output coordinate c reads input coordinate c − offset, or `value` where
// that falls outside the input (pad, crop, slice, and their backward passes).
// `place` copies a whole input into a region of a larger output at coordinate c + offset;
// concatenation places each part into its own disjoint region, so every output element is
// written by exactly one invocation.
// `permute` gathers: output coordinate c reads the input at Σ c_d · other_strides[d], where
// other_strides[d] is the input stride of the axis that output axis d takes.

const WG: u32 = 256u;
const MAX_RANK: u32 = 8u;

struct Params {
    n: u32,                             // invocations: output (window, permute) or input (place) elements
    rank: u32,
    value: f32,                         // window: fill outside the input
    iter_shape: array<vec4<u32>, 2>,    // the shape iterated over, innermost last (at byte 16)
    other_shape: array<vec4<u32>, 2>,   // window: input shape
    other_strides: array<vec4<u32>, 2>, // window: input strides; place: output strides;
                                        // permute: input stride of each output axis
    offset: array<vec4<i32>, 2>,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> src: array<f32>;
@group(0) @binding(2) var<storage, read_write> dst: array<f32>;

fn dim_u(arr: array<vec4<u32>, 2>, d: u32) -> u32 {
    return arr[d / 4u][d % 4u];
}

fn dim_i(arr: array<vec4<i32>, 2>, d: u32) -> i32 {
    return arr[d / 4u][d % 4u];
}

fn linear_id(gid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return gid.x + gid.y * nwg.x * WG;
}

@compute @workgroup_size(WG)
fn window(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = linear_id(gid, nwg);
    if i >= p.n { return; }
    var rest = i;
    var source = 0u;
    var inside = true;
    for (var d = i32(p.rank) - 1; d >= 0; d--) {
        let axis = u32(d);
        let extent = dim_u(p.iter_shape, axis);
        let coord = i32(rest % extent) - dim_i(p.offset, axis);
        rest = rest / extent;
        inside = inside && coord >= 0 && coord < i32(dim_u(p.other_shape, axis));
        source += u32(max(coord, 0)) * dim_u(p.other_strides, axis);
    }
    dst[i] = select(p.value, src[min(source, arrayLength(&src) - 1u)], inside);
}

@compute @workgroup_size(WG)
fn place(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = linear_id(gid, nwg);
    if i >= p.n { return; }
    var rest = i;
    var dest = 0u;
    for (var d = i32(p.rank) - 1; d >= 0; d--) {
        let axis = u32(d);
        let extent = dim_u(p.iter_shape, axis);
        let coord = i32(rest % extent) + dim_i(p.offset, axis);
        rest = rest / extent;
        dest += u32(coord) * dim_u(p.other_strides, axis);
    }
    dst[dest] = src[i];
}

@compute @workgroup_size(WG)
fn permute(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = linear_id(gid, nwg);
    if i >= p.n { return; }
    var rest = i;
    var source = 0u;
    for (var d = i32(p.rank) - 1; d >= 0; d--) {
        let axis = u32(d);
        let extent = dim_u(p.iter_shape, axis);
        source += (rest % extent) * dim_u(p.other_strides, axis);
        rest = rest / extent;
    }
    dst[i] = src[source];
}
