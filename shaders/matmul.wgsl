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
//
// The accumulators are eight named vectors rather than an array: CPU adapters keep a private
// array that is indexed inside a loop in memory, and named values stay in registers. Rows
// beyond TM are dead code once the override is applied.
fn a_row4(base: u32, row: u32, kk: u32) -> vec4<f32> {
    if TRANS_A {
        return vec4<f32>(a_at(base, row, kk), a_at(base, row, kk + 1u), a_at(base, row, kk + 2u), a_at(base, row, kk + 3u));
    }
    return a4[(base + row * p.k + kk) / 4u];
}

fn step4(acc: vec4<f32>, av: vec4<f32>, b0: vec4<f32>, b1: vec4<f32>, b2: vec4<f32>, b3: vec4<f32>) -> vec4<f32> {
    var r = fma(vec4<f32>(av.x), b0, acc);
    r = fma(vec4<f32>(av.y), b1, r);
    r = fma(vec4<f32>(av.z), b2, r);
    return fma(vec4<f32>(av.w), b3, r);
}

fn store4(batch: u32, row: u32, col4: u32, n4: u32, acc: vec4<f32>) {
    if row >= p.m { return; }
    let at = batch * p.c_batch_stride / 4u + row * n4 + col4;
    var v = acc * p.alpha;
    if p.accumulate != 0u { v += c4[at]; }
    c4[at] = v;
}

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
    let last = p.m - 1u;
    let r0 = min(row0, last);
    let r1 = min(row0 + 1u, last);
    let r2 = min(row0 + 2u, last);
    let r3 = min(row0 + 3u, last);
    let r4 = min(row0 + 4u, last);
    let r5 = min(row0 + 5u, last);
    let r6 = min(row0 + 6u, last);
    let r7 = min(row0 + 7u, last);
    var c0 = vec4<f32>(); var c1 = vec4<f32>(); var c2 = vec4<f32>(); var c3 = vec4<f32>();
    var c5 = vec4<f32>(); var c4_ = vec4<f32>(); var c6 = vec4<f32>(); var c7 = vec4<f32>();
    var bi = b_base4 + col4c;
    let bstep = n4;
    for (var kk = 0u; kk < p.k; kk += 4u) {
        let b0 = b4[bi];
        let b1 = b4[bi + bstep];
        let b2 = b4[bi + 2u * bstep];
        let b3 = b4[bi + 3u * bstep];
        bi += 4u * bstep;
        c0 = step4(c0, a_row4(a_base, r0, kk), b0, b1, b2, b3);
        if TM > 1u { c1 = step4(c1, a_row4(a_base, r1, kk), b0, b1, b2, b3); }
        if TM > 2u { c2 = step4(c2, a_row4(a_base, r2, kk), b0, b1, b2, b3); }
        if TM > 3u { c3 = step4(c3, a_row4(a_base, r3, kk), b0, b1, b2, b3); }
        if TM > 4u { c4_ = step4(c4_, a_row4(a_base, r4, kk), b0, b1, b2, b3); }
        if TM > 5u { c5 = step4(c5, a_row4(a_base, r5, kk), b0, b1, b2, b3); }
        if TM > 6u { c6 = step4(c6, a_row4(a_base, r6, kk), b0, b1, b2, b3); }
        if TM > 7u { c7 = step4(c7, a_row4(a_base, r7, kk), b0, b1, b2, b3); }
    }
    if col4 >= n4 { return; }
    store4(batch, row0, col4, n4, c0);
    if TM > 1u { store4(batch, row0 + 1u, col4, n4, c1); }
    if TM > 2u { store4(batch, row0 + 2u, col4, n4, c2); }
    if TM > 3u { store4(batch, row0 + 3u, col4, n4, c3); }
    if TM > 4u { store4(batch, row0 + 4u, col4, n4, c4_); }
    if TM > 5u { store4(batch, row0 + 5u, col4, n4, c5); }
    if TM > 6u { store4(batch, row0 + 6u, col4, n4, c6); }
    if TM > 7u { store4(batch, row0 + 7u, col4, n4, c7); }
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
