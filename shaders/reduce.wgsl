// Sum and max reductions over one axis of a tensor viewed as [outer, len, inner].
//
// `reduce_rows` (inner == 1): one workgroup per row. Each invocation walks the row with a
// stride of the workgroup size, accumulating with Kahan compensation, then the workgroup
// combines partials in a tree. Together that keeps the error of a 16M-element sum near
// one ulp of the result rather than growing with the length.
// `reduce_strided` (inner > 1): one invocation per output, walking the axis; consecutive
// invocations read consecutive addresses.
// The `gpu` kernel profile runs both with WG = 256, and `reduce_rows` from
// reduce_subgroup.wgsl where the device has subgroup operations.

override OP: u32 = 0u;   // 0 sum, 1 max
override WG: u32 = 128u; // a power of two, for the tree

struct Params {
    rows: u32,       // outer (reduce_rows: number of rows)
    len: u32,        // elements per row along the reduced axis
    inner: u32,
    total: u32,      // valid input elements; the last row may be short
    scale: f32,      // applied to sums (1/len for a mean)
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;

var<workgroup> partial: array<f32, WG>;

fn identity() -> f32 {
    if OP == 1u { return -3.4028235e38; }
    return 0.0;
}

fn finish(v: f32) -> f32 {
    if OP == 1u { return v; }
    return v * p.scale;
}

@compute @workgroup_size(WG)
fn reduce_rows(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_id) lid: vec3<u32>) {
    let row = wid.x + wid.y * nwg.x;
    // Whole workgroups leave together, so the barriers below stay uniform.
    if row >= p.rows { return; }
    let start = row * p.len;
    let end = min(start + p.len, p.total);
    var acc = identity();
    var comp = 0.0;
    for (var i = start + lid.x; i < end; i += WG) {
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
    partial[lid.x] = acc;
    workgroupBarrier();
    for (var half = WG / 2u; half > 0u; half /= 2u) {
        if lid.x < half {
            let other = partial[lid.x + half];
            if OP == 1u {
                partial[lid.x] = max(partial[lid.x], other);
            } else {
                partial[lid.x] += other;
            }
        }
        workgroupBarrier();
    }
    if lid.x == 0u { out[row] = finish(partial[0]); }
}

@compute @workgroup_size(WG)
fn reduce_strided(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let o = gid.x + gid.y * nwg.x * WG;
    if o >= p.rows * p.inner { return; }
    let outer = o / p.inner;
    let in_ = o % p.inner;
    var at = outer * p.len * p.inner + in_;
    var acc = identity();
    var comp = 0.0;
    for (var i = 0u; i < p.len; i++) {
        let v = x[at];
        if OP == 1u {
            acc = max(acc, v);
        } else {
            let y = v - comp;
            let t = acc + y;
            comp = (t - acc) - y;
            acc = t;
        }
        at += p.inner;
    }
    out[o] = finish(acc);
}
