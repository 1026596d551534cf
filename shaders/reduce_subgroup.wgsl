// `reduce_rows` of reduce.wgsl for devices with subgroup operations (the `gpu` kernel
// profile where the device has wgpu::Features::SUBGROUP; see ops::reduce::LaneCombine).
//
// Each invocation walks the row with a stride of the workgroup size, so the workgroup's
// loads are coalesced, and keeps a Kahan-compensated sum. The partials are then combined by
// subgroupAdd/subgroupMax, one value per subgroup goes through workgroup memory, and every
// subgroup folds those few values itself: one barrier instead of log2(WG) for the tree.
// Nothing assumes a subgroup size (4 to 128 across devices); the builtins say it.
//
// This file stands alone because a module that uses subgroup operations is refused where
// the feature is missing. naga 30 rejects `enable subgroups;` (gfx-rs/wgpu#5555) and takes
// the builtins without it; wgpu checks the device feature instead.

override OP: u32 = 0u;   // 0 sum, 1 max
override WG: u32 = 256u;

struct Params {
    rows: u32,
    len: u32,
    inner: u32,
    total: u32,      // valid input elements; the last row may be short
    scale: f32,      // applied to sums (1/len for a mean)
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;

// One partial per subgroup; a subgroup has at least one invocation.
var<workgroup> partial: array<f32, WG>;

fn identity() -> f32 {
    if OP == 1u { return -3.4028235e38; }
    return 0.0;
}

fn combine(a: f32, b: f32) -> f32 {
    if OP == 1u { return max(a, b); }
    return a + b;
}

fn subgroup_combine(v: f32) -> f32 {
    if OP == 1u { return subgroupMax(v); }
    return subgroupAdd(v);
}

struct Lanes {
    @builtin(local_invocation_index) index: u32,
    @builtin(subgroup_invocation_id) lane: u32,
    @builtin(subgroup_size) width: u32,
    @builtin(subgroup_id) subgroup: u32,
    @builtin(num_subgroups) subgroups: u32,
}

@compute @workgroup_size(WG)
fn reduce_rows(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               lanes: Lanes) {
    let row = wid.x + wid.y * nwg.x;
    // Whole workgroups leave together, so the barrier and subgroup operations stay uniform.
    if row >= p.rows { return; }
    let start = row * p.len;
    let end = min(start + p.len, p.total);
    var acc = identity();
    var comp = 0.0;
    for (var i = start + lanes.index; i < end; i += WG) {
        let v = x[i];
        if OP == 1u {
            acc = max(acc, v);
        } else {
            let y = v - comp;
            let t = acc + y;
            comp = (t - acc) - y;
            acc = t;
        }
    }
    let mine = subgroup_combine(acc);
    if lanes.lane == 0u { partial[lanes.subgroup] = mine; }
    workgroupBarrier();
    var folded = identity();
    for (var i = lanes.lane; i < lanes.subgroups; i += lanes.width) {
        folded = combine(folded, partial[i]);
    }
    let total = subgroup_combine(folded);
    if lanes.index == 0u {
        if OP == 1u { out[row] = total; } else { out[row] = total * p.scale; }
    }
}
