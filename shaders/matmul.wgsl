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

// ---------------------------------------------------------------------------------------
// `matmul_tiled`: the `gpu` kernel profile's form, built like a GPU SGEMM.
//
// A workgroup owns a TILE_M×TILE_N block of C and walks K in TILE_K-deep steps. Each step's
// slices of A (TILE_M×TILE_K) and B (TILE_K×TILE_N) are staged in workgroup memory, so a
// value fetched from global memory serves TILE_N (for A) or TILE_M (for B) outputs instead
// of one invocation's few. Both slices are kept k-major, A transposed on the way in, so the
// inner loop reads one vec4 of four consecutive rows of A and of four consecutive columns
// of B per k.
//
// Double buffering with register prefetch: each invocation issues its global loads for step
// t+1, computes step t from workgroup memory while those loads are in flight, then writes
// them to the other buffer. The buffer it writes was last read before the previous barrier,
// so one barrier per step is enough.
//
// Global loads are coalesced: consecutive invocations fetch consecutive addresses along the
// operand's contiguous axis (k for A, n for B, or m / k when transposed), as vec4s where
// that axis is a multiple of 4 (VEC4_A, VEC4_B) and scalars otherwise.
//
// Each invocation accumulates THREAD_M×THREAD_N outputs in vec4s. Its rows are THREAD_M/4
// groups of four consecutive rows, ROW_THREADS·4 rows apart; its columns likewise. So in
// one k step the invocations of a row of the workgroup read consecutive vec4s of the B tile
// (no bank conflicts) and one broadcast vec4 of the A tile, and stores are contiguous.
//
// The host (`SharedTiles::check`) keeps the tile within the adapter's invocation and
// workgroup-storage limits and within MAX_STAGED loads per invocation.

override TILE_M: u32 = 64u;     // rows of C per workgroup, a multiple of THREAD_M
override TILE_N: u32 = 64u;     // columns of C per workgroup, a multiple of THREAD_N
override TILE_K: u32 = 16u;     // k per step, a multiple of 4
override THREAD_M: u32 = 4u;    // rows per invocation: 4 or 8
override THREAD_N: u32 = 4u;    // columns per invocation: 4 or 8
override VEC4_A: bool = false;  // A's contiguous axis (k, or m when TRANS_A) is a multiple of 4
override VEC4_B: bool = false;  // B's contiguous axis (n, or k when TRANS_B) is a multiple of 4
override ROW_THREADS: u32 = TILE_M / THREAD_M;
override COL_THREADS: u32 = TILE_N / THREAD_N;
override TILED_WG: u32 = ROW_THREADS * COL_THREADS;
override TILE_M4: u32 = TILE_M / 4u;
override TILE_N4: u32 = TILE_N / 4u;
// Loads one invocation may stage per operand and step (the host checks the tile against it).
const MAX_STAGED: u32 = 16u;
// Accumulator vec4s of the largest thread tile, 8×8.
const MAX_THREAD_ACC: u32 = 16u;

var<workgroup> tile_a: array<vec4<f32>, 2u * TILE_K * TILE_M4>;
var<workgroup> tile_b: array<vec4<f32>, 2u * TILE_K * TILE_N4>;
var<private> staged_a: array<vec4<f32>, MAX_STAGED>;
var<private> staged_b: array<vec4<f32>, MAX_STAGED>;
var<private> tiled_acc: array<vec4<f32>, MAX_THREAD_ACC>;

// The tile coordinates of a load unit's first element: its k within the step and its row
// (of A) or column (of B) within the tile.
struct TileUnit {
    kk: u32,
    r: u32,
}

// Unit `i` of a step's slice. Units run along the operand's contiguous axis first, so that
// consecutive invocations load consecutive addresses; a wide unit is four elements.
fn tile_unit(i: u32, k_contiguous: bool, wide: bool, tile_r: u32) -> TileUnit {
    let width = select(1u, 4u, wide);
    if k_contiguous {
        let per_r = TILE_K / width;
        return TileUnit(i % per_r * width, i / per_r);
    }
    let per_k = tile_r / width;
    return TileUnit(i / per_k, i % per_k * width);
}

fn tile_units(wide: bool, tile_r: u32) -> u32 {
    return TILE_K * tile_r / select(1u, 4u, wide);
}

// Offset of element (k, r) of an operand whose other axis has `r_len` entries.
fn operand_offset(k: u32, r: u32, k_contiguous: bool, r_len: u32) -> u32 {
    if k_contiguous { return r * p.k + k; }
    return k * r_len + r;
}

// Global loads of A for the step starting at k0, into registers; out-of-range elements are 0.
fn fetch_a(base: u32, m0: u32, k0: u32, lid: u32) {
    let units = tile_units(VEC4_A, TILE_M);
    for (var s = 0u; s < MAX_STAGED; s++) {
        if s * TILED_WG >= units { break; }
        let i = lid + s * TILED_WG;
        var v = vec4<f32>(0.0);
        if i < units {
            let u = tile_unit(i, !TRANS_A, VEC4_A, TILE_M);
            let k = k0 + u.kk;
            let m = m0 + u.r;
            // A wide unit lies wholly inside or outside, its axis being a multiple of 4.
            if k < p.k && m < p.m {
                let at = base + operand_offset(k, m, !TRANS_A, p.m);
                if VEC4_A { v = a4[at / 4u]; } else { v.x = a[at]; }
            }
        }
        staged_a[s] = v;
    }
}

fn fetch_b(base: u32, n0: u32, k0: u32, lid: u32) {
    let units = tile_units(VEC4_B, TILE_N);
    for (var s = 0u; s < MAX_STAGED; s++) {
        if s * TILED_WG >= units { break; }
        let i = lid + s * TILED_WG;
        var v = vec4<f32>(0.0);
        if i < units {
            let u = tile_unit(i, TRANS_B, VEC4_B, TILE_N);
            let k = k0 + u.kk;
            let n = n0 + u.r;
            if k < p.k && n < p.n {
                let at = base + operand_offset(k, n, TRANS_B, p.n);
                if VEC4_B { v = b4[at / 4u]; } else { v.x = b[at]; }
            }
        }
        staged_b[s] = v;
    }
}

// Write the staged loads into buffer `stage` of the k-major tiles. A wide unit along r is one
// vec4 of the tile; a wide unit along k is one component of four consecutive tile rows.
fn deposit_a(lid: u32, stage: u32) {
    let units = tile_units(VEC4_A, TILE_M);
    for (var s = 0u; s < MAX_STAGED; s++) {
        if s * TILED_WG >= units { break; }
        let i = lid + s * TILED_WG;
        if i < units {
            let u = tile_unit(i, !TRANS_A, VEC4_A, TILE_M);
            let v = staged_a[s];
            let q = (stage * TILE_K + u.kk) * TILE_M4 + u.r / 4u;
            let lane = u.r % 4u;
            if !VEC4_A {
                tile_a[q][lane] = v.x;
            } else if TRANS_A {
                tile_a[q] = v;
            } else {
                tile_a[q][lane] = v.x;
                tile_a[q + TILE_M4][lane] = v.y;
                tile_a[q + 2u * TILE_M4][lane] = v.z;
                tile_a[q + 3u * TILE_M4][lane] = v.w;
            }
        }
    }
}

fn deposit_b(lid: u32, stage: u32) {
    let units = tile_units(VEC4_B, TILE_N);
    for (var s = 0u; s < MAX_STAGED; s++) {
        if s * TILED_WG >= units { break; }
        let i = lid + s * TILED_WG;
        if i < units {
            let u = tile_unit(i, TRANS_B, VEC4_B, TILE_N);
            let v = staged_b[s];
            let q = (stage * TILE_K + u.kk) * TILE_N4 + u.r / 4u;
            let lane = u.r % 4u;
            if !VEC4_B {
                tile_b[q][lane] = v.x;
            } else if !TRANS_B {
                tile_b[q] = v;
            } else {
                tile_b[q][lane] = v.x;
                tile_b[q + TILE_N4][lane] = v.y;
                tile_b[q + 2u * TILE_N4][lane] = v.z;
                tile_b[q + 3u * TILE_N4][lane] = v.w;
            }
        }
    }
}

// tiled_acc[(4g + c)·THREAD_N/4 + j] holds row 4·(g·ROW_THREADS + ty) + c and the four
// columns starting at 4·(j·COL_THREADS + tx).
fn tiled_compute(tx: u32, ty: u32, stage: u32) {
    let n4 = THREAD_N / 4u;
    for (var kk = 0u; kk < TILE_K; kk++) {
        let row = stage * TILE_K + kk;
        let b0 = tile_b[row * TILE_N4 + tx];
        let b1 = tile_b[row * TILE_N4 + min(1u, n4 - 1u) * COL_THREADS + tx];
        for (var g = 0u; g < THREAD_M / 4u; g++) {
            let av = tile_a[row * TILE_M4 + g * ROW_THREADS + ty];
            let at = 4u * g * n4;
            tiled_acc[at] = fma(vec4<f32>(av.x), b0, tiled_acc[at]);
            tiled_acc[at + n4] = fma(vec4<f32>(av.y), b0, tiled_acc[at + n4]);
            tiled_acc[at + 2u * n4] = fma(vec4<f32>(av.z), b0, tiled_acc[at + 2u * n4]);
            tiled_acc[at + 3u * n4] = fma(vec4<f32>(av.w), b0, tiled_acc[at + 3u * n4]);
            if n4 > 1u {
                tiled_acc[at + 1u] = fma(vec4<f32>(av.x), b1, tiled_acc[at + 1u]);
                tiled_acc[at + n4 + 1u] = fma(vec4<f32>(av.y), b1, tiled_acc[at + n4 + 1u]);
                tiled_acc[at + 2u * n4 + 1u] = fma(vec4<f32>(av.z), b1, tiled_acc[at + 2u * n4 + 1u]);
                tiled_acc[at + 3u * n4 + 1u] = fma(vec4<f32>(av.w), b1, tiled_acc[at + 3u * n4 + 1u]);
            }
        }
    }
}

// Where tiled_acc[(4g + r)·THREAD_N/4 + j] goes in C: (row, first of its four columns).
fn tiled_position(wid: vec3<u32>, lid: u32, g: u32, r: u32, j: u32) -> vec2<u32> {
    let tx = lid % COL_THREADS;
    let ty = lid / COL_THREADS;
    return vec2<u32>(wid.y * TILE_M + 4u * (g * ROW_THREADS + ty) + r,
                     wid.x * TILE_N + 4u * (j * COL_THREADS + tx));
}

// Accumulate the invocation's THREAD_M×THREAD_N block of op(A)·op(B) into tiled_acc.
fn tiled_accumulate(wid: vec3<u32>, lid: u32) {
    let batch = wid.z;
    let m0 = wid.y * TILE_M;
    let n0 = wid.x * TILE_N;
    let a_base = batch * p.a_batch_stride;
    let b_base = batch * p.b_batch_stride;
    let tx = lid % COL_THREADS;
    let ty = lid / COL_THREADS;
    for (var i = 0u; i < MAX_THREAD_ACC; i++) { tiled_acc[i] = vec4<f32>(0.0); }
    let steps = (p.k + TILE_K - 1u) / TILE_K;
    fetch_a(a_base, m0, 0u, lid);
    fetch_b(b_base, n0, 0u, lid);
    deposit_a(lid, 0u);
    deposit_b(lid, 0u);
    workgroupBarrier();
    for (var step = 0u; step < steps; step++) {
        let more = step + 1u < steps;
        if more {
            fetch_a(a_base, m0, (step + 1u) * TILE_K, lid);
            fetch_b(b_base, n0, (step + 1u) * TILE_K, lid);
        }
        tiled_compute(tx, ty, step % 2u);
        if more {
            deposit_a(lid, (step + 1u) % 2u);
            deposit_b(lid, (step + 1u) % 2u);
        }
        workgroupBarrier();
    }
}

// C is stored by two entry points, as scalars or (n a multiple of 4) as vec4s, because a
// written buffer may be bound only once per dispatch.
@compute @workgroup_size(TILED_WG)
fn matmul_tiled(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    tiled_accumulate(wid, lid);
    let n4 = THREAD_N / 4u;
    for (var g = 0u; g < THREAD_M / 4u; g++) {
        for (var r = 0u; r < 4u; r++) {
            for (var j = 0u; j < n4; j++) {
                let at = tiled_position(wid, lid, g, r, j);
                if at.x >= p.m { continue; }
                let v = tiled_acc[(4u * g + r) * n4 + j] * p.alpha;
                let o = wid.z * p.c_batch_stride + at.x * p.n + at.y;
                for (var e = 0u; e < 4u; e++) {
                    if at.y + e < p.n {
                        var s = v[e];
                        if p.accumulate != 0u { s += c[o + e]; }
                        c[o + e] = s;
                    }
                }
            }
        }
    }
}

@compute @workgroup_size(TILED_WG)
fn matmul_tiled_vec4(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    tiled_accumulate(wid, lid);
    let n4 = THREAD_N / 4u;
    for (var g = 0u; g < THREAD_M / 4u; g++) {
        for (var r = 0u; r < 4u; r++) {
            for (var j = 0u; j < n4; j++) {
                let at = tiled_position(wid, lid, g, r, j);
                if at.x >= p.m || at.y >= p.n { continue; }
                var v = tiled_acc[(4u * g + r) * n4 + j] * p.alpha;
                let o = (wid.z * p.c_batch_stride + at.x * p.n + at.y) / 4u;
                if p.accumulate != 0u { v += c4[o]; }
                c4[o] = v;
            }
        }
    }
}
