// Batched matrix multiply: C[b] = op(A[b]) · op(B[b]), op = optional transpose.
//
// Register blocking: each workgroup owns TM whole rows of C and WG_X·4 columns; each
// invocation accumulates a TM×4 block in vec4 registers. Rows depend only on the workgroup
// id, so A's loads are uniform across the workgroup: a software rasteriser such as lavapipe
// turns them into scalar broadcasts instead of gathers, and a GPU serves them from cache.
// No shared memory: on CPU adapters barriers cost more than they save. GPUs may want a
// larger TM or WG_X, which are override constants.

override TM: u32 = 8u;          // rows per workgroup, at most MAX_TM
override WG_X: u32 = 64u;       // invocations per workgroup, each owning 4 columns
override TRANS_A: bool = false; // A stored K×M instead of M×K
override TRANS_B: bool = false; // B stored N×K instead of K×N
const MAX_TM: u32 = 8u;

struct Params {
    m: u32,
    n: u32,
    k: u32,
    a_batch_stride: u32,   // 0 broadcasts A over the batch
    b_batch_stride: u32,
    c_batch_stride: u32,
    alpha: f32,
    accumulate: u32,       // 1: C += alpha·AB, 0: C = alpha·AB
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read_write> c: array<f32>;
@group(0) @binding(4) var<storage, read> a4: array<vec4<f32>>;
@group(0) @binding(5) var<storage, read> b4: array<vec4<f32>>;
@group(0) @binding(6) var<storage, read_write> c4: array<vec4<f32>>;

fn a_at(base: u32, row: u32, kk: u32) -> f32 {
    if TRANS_A { return a[base + kk * p.m + row]; }
    return a[base + row * p.k + kk];
}

fn b_at(base: u32, kk: u32, col: u32) -> f32 {
    if TRANS_B { return b[base + col * p.k + kk]; }
    return b[base + kk * p.n + col];
}

// Fast path: B not transposed, N and K multiples of 4.
@compute @workgroup_size(WG_X)
fn matmul_vec4(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let batch = wid.z;
    let row0 = wid.y * TM;
    let n4 = p.n / 4u;
    let col4 = wid.x * WG_X + lid.x;
    // Out-of-range lanes still run the loop on a clamped column so the workgroup stays
    // converged; they just do not store.
    let col4c = min(col4, n4 - 1u);
    let a_base = batch * p.a_batch_stride;
    let b_base4 = batch * p.b_batch_stride / 4u;
    var rows: array<u32, MAX_TM>;
    for (var i = 0u; i < TM; i++) { rows[i] = min(row0 + i, p.m - 1u); }
    var acc: array<vec4<f32>, MAX_TM>;
    for (var kk = 0u; kk < p.k; kk += 4u) {
        let b0 = b4[b_base4 + kk * n4 + col4c];
        let b1 = b4[b_base4 + (kk + 1u) * n4 + col4c];
        let b2 = b4[b_base4 + (kk + 2u) * n4 + col4c];
        let b3 = b4[b_base4 + (kk + 3u) * n4 + col4c];
        for (var i = 0u; i < TM; i++) {
            var av: vec4<f32>;
            if TRANS_A {
                av = vec4<f32>(a_at(a_base, rows[i], kk), a_at(a_base, rows[i], kk + 1u),
                               a_at(a_base, rows[i], kk + 2u), a_at(a_base, rows[i], kk + 3u));
            } else {
                av = a4[(a_base + rows[i] * p.k + kk) / 4u];
            }
            acc[i] = fma(vec4<f32>(av.x), b0, acc[i]);
            acc[i] = fma(vec4<f32>(av.y), b1, acc[i]);
            acc[i] = fma(vec4<f32>(av.z), b2, acc[i]);
            acc[i] = fma(vec4<f32>(av.w), b3, acc[i]);
        }
    }
    if col4 >= n4 { return; }
    let c_base4 = batch * p.c_batch_stride / 4u;
    for (var i = 0u; i < TM; i++) {
        let row = row0 + i;
        if row < p.m {
            let at = c_base4 + row * n4 + col4;
            var v = acc[i] * p.alpha;
            if p.accumulate != 0u { v += c4[at]; }
            c4[at] = v;
        }
    }
}

// General path: any sizes, any transposes. Each invocation owns 4 strided columns.
@compute @workgroup_size(WG_X)
fn matmul_general(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let batch = wid.z;
    let row0 = wid.y * TM;
    let span = WG_X * 4u;
    let a_base = batch * p.a_batch_stride;
    let b_base = batch * p.b_batch_stride;
    var cols: array<u32, 4>;
    for (var j = 0u; j < 4u; j++) { cols[j] = min(wid.x * span + j * WG_X + lid.x, p.n - 1u); }
    var rows: array<u32, MAX_TM>;
    for (var i = 0u; i < TM; i++) { rows[i] = min(row0 + i, p.m - 1u); }
    var acc: array<vec4<f32>, MAX_TM>;
    for (var kk = 0u; kk < p.k; kk++) {
        let bv = vec4<f32>(b_at(b_base, kk, cols[0]), b_at(b_base, kk, cols[1]),
                           b_at(b_base, kk, cols[2]), b_at(b_base, kk, cols[3]));
        for (var i = 0u; i < TM; i++) {
            acc[i] = fma(vec4<f32>(a_at(a_base, rows[i], kk)), bv, acc[i]);
        }
    }
    let c_base = batch * p.c_batch_stride;
    for (var i = 0u; i < TM; i++) {
        let row = row0 + i;
        if row >= p.m { continue; }
        for (var j = 0u; j < 4u; j++) {
            let col = wid.x * span + j * WG_X + lid.x;
            if col < p.n {
                let at = c_base + row * p.n + col;
                var v = acc[i][j] * p.alpha;
                if p.accumulate != 0u { v += c[at]; }
                c[at] = v;
            }
        }
    }
}
