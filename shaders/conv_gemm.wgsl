// Convolution, NCHW f32: the implicit-GEMM kernel shared by the forward pass, the input
// gradient and the transposed convolution. Its operands come from conv_pack_planes.wgsl and
// conv_pack_weights.wgsl.
//
// The GEMM form is out[m, p] = sum_k dot(A[row(m) + tap(k).x], B[base(p) + tap(k).y]) over
// vec4s of four reduction channels. A is the weight tensor packed as [row][tap][channel/4]
// and B a zero-padded copy of the image (forward) or of dy (input gradient) packed as
// [n][group][channel/4][row][col] vec4s, so the inner loop needs no bounds checks and every
// load brings four channels. A host-built tap table gives the two offsets of every k.
// Each invocation owns BLOCK rows (output channels) x 4 pixels. Rows come from the
// workgroup id, so loads of A and of the table are uniform across the workgroup (one scalar
// load on CPU adapters, a broadcast on GPUs); B loads differ per invocation, and each one
// serves BLOCK rows. The 4 pixels of an invocation are WG apart, so neighbouring invocations
// read neighbouring addresses.

override WG: u32 = 64u;
// Rows per invocation, 1..=8. Each row is written out below under a constant condition
// rather than as a loop over an array, which CPU compilers keep in memory.
override BLOCK: u32 = 8u;
const PIX: u32 = 4u;
// The activation the forward applied to its input (0: none, 1: ReLU, 2: ReLU6); the masked
// entry point multiplies the input gradient by its slope there.
override SLOPE_ACT: u32 = 0u;

// The activation's derivative at its input v, for the input gradient's epilogue.
fn slope(v: f32) -> f32 {
    if SLOPE_ACT == 1u {
        return select(0.0, 1.0, v > 0.0);
    }
    if SLOPE_ACT == 2u {
        return select(0.0, 1.0, v > 0.0 && v < 6.0);
    }
    return 1.0;
}

// ---------------------------------------------------------------------------------------
// Implicit GEMM (forward, input gradient, transposed convolution)
// ---------------------------------------------------------------------------------------

struct GemmParams {
    images: u32,
    rows_per_group: u32,     // output channels per group (M)
    blocks_per_group: u32,   // ceil(rows_per_group / BLOCK)
    a_group_stride: u32,     // vec4 units from here on
    a_row_stride: u32,
    b_group_stride: u32,
    b_image_stride: u32,
    b_row_stride: u32,       // B offset per pixel row of the phase
    b_col_stride: u32,       // B offset per pixel column of the phase
    b_channel_stride: u32,   // DIRECT only: scalar offset from one channel to the next
    out_image_stride: u32,   // scalar units
    out_channel_stride: u32,
    out_row_stride: u32,
    out_col_stride: u32,
}

@group(0) @binding(0) var<uniform> gp: GemmParams;
@group(0) @binding(1) var<storage, read> mat_a: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> mat_b: array<vec4<f32>>;
// Per phase z, entries 3z..3z+2 are (first tap, tap count), (rows, cols), (output origin, 0);
// the taps follow as (A offset, B offset).
@group(0) @binding(3) var<storage, read> taps: array<vec2<u32>>;
@group(0) @binding(4) var<storage, read> bias: array<f32>;
@group(0) @binding(5) var<storage, read_write> out: array<f32>;
// With DIRECT, B is the NCHW tensor itself (1×1 convolutions with no padding, channels per
// group a multiple of 4) and its strides are in scalars: four scalar loads per pixel and
// tap replace one vec4 load from a packed copy. CPU adapters issue the same number of
// load instructions either way (a vec4 load is four lanes' gathers), so the packing pass is
// saved outright; GPUs may prefer the packed vec4s. The launcher binds the tensor to both
// names, as both are statically used.
override DIRECT: bool = false;
@group(0) @binding(7) var<storage, read> mat_b_direct: array<f32>;
// The activation DIRECT applies to B as it reads it (0: none, 1: ReLU, 2: ReLU6); the
// packed form is activated by its packing pass.
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

// Channel `offset` of the four pixels at `at`.
fn direct4(at: vec4<u32>, offset: u32) -> vec4<f32> {
    return vec4<f32>(activate(mat_b_direct[at.x + offset]), activate(mat_b_direct[at.y + offset]),
        activate(mat_b_direct[at.z + offset]), activate(mat_b_direct[at.w + offset]));
}
// The forward's input, for the input gradient through an input activation.
@group(0) @binding(6) var<storage, read> gemm_mask: array<f32>;

// Four pixels' vec4s transposed: column i holds reduction channel i of each pixel.
struct Quad {
    c0: vec4<f32>,
    c1: vec4<f32>,
    c2: vec4<f32>,
    c3: vec4<f32>,
}

fn quad(x0: vec4<f32>, x1: vec4<f32>, x2: vec4<f32>, x3: vec4<f32>) -> Quad {
    return Quad(vec4<f32>(x0.x, x1.x, x2.x, x3.x), vec4<f32>(x0.y, x1.y, x2.y, x3.y),
        vec4<f32>(x0.z, x1.z, x2.z, x3.z), vec4<f32>(x0.w, x1.w, x2.w, x3.w));
}

// acc[j] += dot(w, pixel j)
fn quad_fma(acc: vec4<f32>, w: vec4<f32>, q: Quad) -> vec4<f32> {
    return fma(vec4<f32>(w.w), q.c3, fma(vec4<f32>(w.z), q.c2, fma(vec4<f32>(w.y), q.c1,
        fma(vec4<f32>(w.x), q.c0, acc))));
}

fn gemm_pixel(p: u32, per_image: u32, cols: u32) -> vec3<u32> {
    let n = p / per_image;
    let rem = p - n * per_image;
    let r = rem / cols;
    return vec3<u32>(n, r, rem - r * cols);
}

fn gemm_store(group: u32, m: u32, v: vec4<f32>, o: vec4<u32>, live: vec4<bool>) {
    if m >= gp.rows_per_group {
        return;
    }
    let off = (group * gp.rows_per_group + m) * gp.out_channel_stride;
    if live.x { out[o.x + off] = v.x; }
    if live.y { out[o.y + off] = v.y; }
    if live.z { out[o.z + off] = v.z; }
    if live.w { out[o.w + off] = v.w; }
}

// The bias of row m of the group; rows past the end read the last one and are not stored.
fn row_bias(group: u32, m: u32) -> f32 {
    return bias[group * gp.rows_per_group + min(m, gp.rows_per_group - 1u)];
}

// One invocation's BLOCK rows x 4 pixels, before the store. The two entry points differ only
// in the epilogue, so the one without a bias binds no bias buffer.
struct Tile {
    acc0: vec4<f32>,
    acc1: vec4<f32>,
    acc2: vec4<f32>,
    acc3: vec4<f32>,
    acc4: vec4<f32>,
    acc5: vec4<f32>,
    acc6: vec4<f32>,
    acc7: vec4<f32>,
    o: vec4<u32>,
    live: vec4<bool>,
    group: u32,
    m0: u32,
    valid: bool,
}

// The grid is (row blocks, pixel blocks, phases) with row blocks fastest: workgroups that run
// one after another share their B pixels, which stay in cache, where the opposite order
// streams all of B from memory once per row block.
fn gemm_tile(wid: vec3<u32>, lid: u32) -> Tile {
    let head = taps[3u * wid.z];
    let extent = taps[3u * wid.z + 1u];
    let origin = taps[3u * wid.z + 2u].x;
    let per_image = extent.x * extent.y;
    let total = per_image * gp.images;
    let first_pixel = wid.y * WG * PIX;
    if first_pixel >= total {
        let z = vec4<f32>(0.0);
        return Tile(z, z, z, z, z, z, z, z, vec4<u32>(0u), vec4<bool>(false), 0u, 0u, false);
    }
    let group = wid.x / gp.blocks_per_group;
    let m0 = (wid.x % gp.blocks_per_group) * BLOCK;

    let pix = vec4<u32>(first_pixel + lid) + vec4<u32>(0u, 1u, 2u, 3u) * WG;
    let live = pix < vec4<u32>(total);
    let pc = min(pix, vec4<u32>(total - 1u));
    let q0 = gemm_pixel(pc.x, per_image, extent.y);
    let q1 = gemm_pixel(pc.y, per_image, extent.y);
    let q2 = gemm_pixel(pc.z, per_image, extent.y);
    let q3 = gemm_pixel(pc.w, per_image, extent.y);
    let ns = vec4<u32>(q0.x, q1.x, q2.x, q3.x);
    let rs = vec4<u32>(q0.y, q1.y, q2.y, q3.y);
    let cs = vec4<u32>(q0.z, q1.z, q2.z, q3.z);
    let b = vec4<u32>(group * gp.b_group_stride) + ns * gp.b_image_stride + rs * gp.b_row_stride
        + cs * gp.b_col_stride;

    // Rows past the group's end repeat its last row; their results are not stored.
    let a0 = group * gp.a_group_stride;
    let last = gp.rows_per_group - 1u;
    let r0 = a0 + min(m0, last) * gp.a_row_stride;
    let r1 = a0 + min(m0 + 1u, last) * gp.a_row_stride;
    let r2 = a0 + min(m0 + 2u, last) * gp.a_row_stride;
    let r3 = a0 + min(m0 + 3u, last) * gp.a_row_stride;
    let r4 = a0 + min(m0 + 4u, last) * gp.a_row_stride;
    let r5 = a0 + min(m0 + 5u, last) * gp.a_row_stride;
    let r6 = a0 + min(m0 + 6u, last) * gp.a_row_stride;
    let r7 = a0 + min(m0 + 7u, last) * gp.a_row_stride;
    var acc0 = vec4<f32>(0.0);
    var acc1 = vec4<f32>(0.0);
    var acc2 = vec4<f32>(0.0);
    var acc3 = vec4<f32>(0.0);
    var acc4 = vec4<f32>(0.0);
    var acc5 = vec4<f32>(0.0);
    var acc6 = vec4<f32>(0.0);
    var acc7 = vec4<f32>(0.0);

    let k_end = head.x + head.y;
    for (var k = head.x; k < k_end; k++) {
        let t = taps[k];
        var q: Quad;
        if DIRECT {
            let cs = gp.b_channel_stride;
            q = Quad(direct4(b, t.y), direct4(b, t.y + cs), direct4(b, t.y + 2u * cs), direct4(b, t.y + 3u * cs));
        } else {
            q = quad(mat_b[b.x + t.y], mat_b[b.y + t.y], mat_b[b.z + t.y], mat_b[b.w + t.y]);
        }
        acc0 = quad_fma(acc0, mat_a[r0 + t.x], q);
        if BLOCK > 1u { acc1 = quad_fma(acc1, mat_a[r1 + t.x], q); }
        if BLOCK > 2u { acc2 = quad_fma(acc2, mat_a[r2 + t.x], q); }
        if BLOCK > 3u { acc3 = quad_fma(acc3, mat_a[r3 + t.x], q); }
        if BLOCK > 4u { acc4 = quad_fma(acc4, mat_a[r4 + t.x], q); }
        if BLOCK > 5u { acc5 = quad_fma(acc5, mat_a[r5 + t.x], q); }
        if BLOCK > 6u { acc6 = quad_fma(acc6, mat_a[r6 + t.x], q); }
        if BLOCK > 7u { acc7 = quad_fma(acc7, mat_a[r7 + t.x], q); }
    }

    let o = ns * gp.out_image_stride + vec4<u32>(origin) + rs * gp.out_row_stride
        + cs * gp.out_col_stride;
    return Tile(acc0, acc1, acc2, acc3, acc4, acc5, acc6, acc7, o, live, group, m0, true);
}

@compute @workgroup_size(WG)
fn gemm(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let t = gemm_tile(wid, lid);
    if !t.valid {
        return;
    }
    gemm_store(t.group, t.m0, t.acc0, t.o, t.live);
    if BLOCK > 1u { gemm_store(t.group, t.m0 + 1u, t.acc1, t.o, t.live); }
    if BLOCK > 2u { gemm_store(t.group, t.m0 + 2u, t.acc2, t.o, t.live); }
    if BLOCK > 3u { gemm_store(t.group, t.m0 + 3u, t.acc3, t.o, t.live); }
    if BLOCK > 4u { gemm_store(t.group, t.m0 + 4u, t.acc4, t.o, t.live); }
    if BLOCK > 5u { gemm_store(t.group, t.m0 + 5u, t.acc5, t.o, t.live); }
    if BLOCK > 6u { gemm_store(t.group, t.m0 + 6u, t.acc6, t.o, t.live); }
    if BLOCK > 7u { gemm_store(t.group, t.m0 + 7u, t.acc7, t.o, t.live); }
}

@compute @workgroup_size(WG)
fn gemm_bias(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let t = gemm_tile(wid, lid);
    if !t.valid {
        return;
    }
    let g = t.group;
    gemm_store(g, t.m0, t.acc0 + row_bias(g, t.m0), t.o, t.live);
    if BLOCK > 1u { gemm_store(g, t.m0 + 1u, t.acc1 + row_bias(g, t.m0 + 1u), t.o, t.live); }
    if BLOCK > 2u { gemm_store(g, t.m0 + 2u, t.acc2 + row_bias(g, t.m0 + 2u), t.o, t.live); }
    if BLOCK > 3u { gemm_store(g, t.m0 + 3u, t.acc3 + row_bias(g, t.m0 + 3u), t.o, t.live); }
    if BLOCK > 4u { gemm_store(g, t.m0 + 4u, t.acc4 + row_bias(g, t.m0 + 4u), t.o, t.live); }
    if BLOCK > 5u { gemm_store(g, t.m0 + 5u, t.acc5 + row_bias(g, t.m0 + 5u), t.o, t.live); }
    if BLOCK > 6u { gemm_store(g, t.m0 + 6u, t.acc6 + row_bias(g, t.m0 + 6u), t.o, t.live); }
    if BLOCK > 7u { gemm_store(g, t.m0 + 7u, t.acc7 + row_bias(g, t.m0 + 7u), t.o, t.live); }
}

@compute @workgroup_size(WG)
fn gemm_masked(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let t = gemm_tile(wid, lid);
    if !t.valid {
        return;
    }
    gemm_store_masked(t.group, t.m0, t.acc0, t.o, t.live);
    if BLOCK > 1u { gemm_store_masked(t.group, t.m0 + 1u, t.acc1, t.o, t.live); }
    if BLOCK > 2u { gemm_store_masked(t.group, t.m0 + 2u, t.acc2, t.o, t.live); }
    if BLOCK > 3u { gemm_store_masked(t.group, t.m0 + 3u, t.acc3, t.o, t.live); }
    if BLOCK > 4u { gemm_store_masked(t.group, t.m0 + 4u, t.acc4, t.o, t.live); }
    if BLOCK > 5u { gemm_store_masked(t.group, t.m0 + 5u, t.acc5, t.o, t.live); }
    if BLOCK > 6u { gemm_store_masked(t.group, t.m0 + 6u, t.acc6, t.o, t.live); }
    if BLOCK > 7u { gemm_store_masked(t.group, t.m0 + 7u, t.acc7, t.o, t.live); }
}

// gemm_store times the slope of the input activation at each output's own input value.
fn gemm_store_masked(group: u32, m: u32, v: vec4<f32>, o: vec4<u32>, live: vec4<bool>) {
    if m >= gp.rows_per_group {
        return;
    }
    let off = (group * gp.rows_per_group + m) * gp.out_channel_stride;
    if live.x { out[o.x + off] = v.x * slope(gemm_mask[o.x + off]); }
    if live.y { out[o.y + off] = v.y * slope(gemm_mask[o.y + off]); }
    if live.z { out[o.z + off] = v.z * slope(gemm_mask[o.z + off]); }
    if live.w { out[o.w + off] = v.w * slope(gemm_mask[o.w + off]); }
}

// ---------------------------------------------------------------------------------------
// Workgroup-tiled implicit GEMM, for the gpu kernel profile
// ---------------------------------------------------------------------------------------
// Same GEMM, shaped for GPUs: a workgroup owns TILE_ROWS output channels x TILE_PIXELS
// pixels of one group and phase, and stages TILE_TAPS taps of A and of B (each tap a vec4
// of four reduction channels) in workgroup memory, so that every staged A vec4 serves
// TILE_PIXELS outputs and every B vec4 TILE_ROWS outputs instead of one invocation's.
// There are two stages: the next one loads while this one is computed, so each step costs
// one barrier. Loads are coalesced: consecutive invocations fetch consecutive taps of one
// weight row (A) and consecutive pixels of one tap (B). Each invocation then accumulates
// THREAD_ROWS rows x 4 pixels; its rows are TILE_ROWS / THREAD_ROWS apart and its pixels
// TILE_PIXELS / 4 apart, so the invocations of a row read one broadcast A value and the
// stores of a row are contiguous. The host keeps the invocation count a multiple of
// TILE_PIXELS (each invocation then stages B for one fixed pixel) and the storage within
// the adapter's limit.

override TILE_ROWS: u32 = 64u;
override TILE_PIXELS: u32 = 64u;
override TILE_TAPS: u32 = 4u;
override THREAD_ROWS: u32 = 4u;   // 1..=MAX_THREAD_ROWS
const MAX_THREAD_ROWS: u32 = 8u;
override ROW_THREADS: u32 = TILE_ROWS / THREAD_ROWS;
override PIXEL_THREADS: u32 = TILE_PIXELS / PIX;
override TILED_WG: u32 = ROW_THREADS * PIXEL_THREADS;

var<workgroup> tile_a: array<vec4<f32>, 2u * TILE_TAPS * TILE_ROWS>;
var<workgroup> tile_b: array<vec4<f32>, 2u * TILE_TAPS * TILE_PIXELS>;
var<private> tiled_acc: array<vec4<f32>, MAX_THREAD_ROWS>;

// Where the workgroup's work lies, all of it workgroup-uniform.
struct TiledScope {
    group: u32,
    m0: u32,             // first row of the tile within its group
    first_pixel: u32,
    per_image: u32,
    cols: u32,
    total: u32,          // pixels of the phase
    origin: u32,
    first_tap: u32,
    taps: u32,
}

fn tiled_scope(wid: vec3<u32>) -> TiledScope {
    let head = taps[3u * wid.z];
    let extent = taps[3u * wid.z + 1u];
    let origin = taps[3u * wid.z + 2u].x;
    let per_image = extent.x * extent.y;
    let blocks = gp.blocks_per_group;
    return TiledScope(wid.x / blocks, (wid.x % blocks) * TILE_ROWS, wid.y * TILE_PIXELS,
        per_image, extent.y, per_image * gp.images, origin, head.x, head.y);
}

// B's offset of pixel p (clamped into the phase; the clamped copies are never stored).
fn tiled_b_base(s: TiledScope, p: u32) -> u32 {
    let q = gemm_pixel(min(p, s.total - 1u), s.per_image, s.cols);
    return s.group * gp.b_group_stride + q.x * gp.b_image_stride + q.y * gp.b_row_stride
        + q.z * gp.b_col_stride;
}

fn tiled_b_load(base: u32, offset: u32) -> vec4<f32> {
    if DIRECT {
        let cs = gp.b_channel_stride;
        let at = base + offset;
        return vec4<f32>(activate(mat_b_direct[at]), activate(mat_b_direct[at + cs]),
            activate(mat_b_direct[at + 2u * cs]), activate(mat_b_direct[at + 3u * cs]));
    }
    return mat_b[base + offset];
}

// Stage taps [k0, k0 + TILE_TAPS) of the tile into buffer `buffer`; taps past the end are zero.
fn tiled_stage(s: TiledScope, lid: u32, b_base: u32, k0: u32, buffer: u32) {
    let k_end = s.first_tap + s.taps;
    let a_group = s.group * gp.a_group_stride;
    let last = gp.rows_per_group - 1u;
    for (var i = lid; i < TILE_TAPS * TILE_ROWS; i += TILED_WG) {
        let row = i / TILE_TAPS;
        let kk = i % TILE_TAPS;
        let k = k0 + kk;
        var v = vec4<f32>(0.0);
        if k < k_end {
            v = mat_a[a_group + min(s.m0 + row, last) * gp.a_row_stride + taps[k].x];
        }
        tile_a[(buffer * TILE_TAPS + kk) * TILE_ROWS + row] = v;
    }
    let pixel = lid % TILE_PIXELS;
    for (var kk = lid / TILE_PIXELS; kk < TILE_TAPS; kk += TILED_WG / TILE_PIXELS) {
        let k = k0 + kk;
        var v = vec4<f32>(0.0);
        if k < k_end {
            v = tiled_b_load(b_base, taps[k].y);
        }
        tile_b[(buffer * TILE_TAPS + kk) * TILE_PIXELS + pixel] = v;
    }
}

fn tiled_compute(lid: u32, buffer: u32) {
    let tx = lid % PIXEL_THREADS;
    let ty = lid / PIXEL_THREADS;
    for (var kk = 0u; kk < TILE_TAPS; kk++) {
        let bb = (buffer * TILE_TAPS + kk) * TILE_PIXELS + tx;
        let q = quad(tile_b[bb], tile_b[bb + PIXEL_THREADS], tile_b[bb + 2u * PIXEL_THREADS],
            tile_b[bb + 3u * PIXEL_THREADS]);
        let ab = (buffer * TILE_TAPS + kk) * TILE_ROWS + ty;
        for (var i = 0u; i < THREAD_ROWS; i++) {
            tiled_acc[i] = quad_fma(tiled_acc[i], tile_a[ab + i * ROW_THREADS], q);
        }
    }
}

// Accumulate the invocation's THREAD_ROWS x 4 sums of the workgroup's scope into tiled_acc.
fn tiled_accumulate(s: TiledScope, lid: u32) {
    for (var i = 0u; i < MAX_THREAD_ROWS; i++) {
        tiled_acc[i] = vec4<f32>(0.0);
    }
    let b_base = tiled_b_base(s, s.first_pixel + lid % TILE_PIXELS);
    let stages = (s.taps + TILE_TAPS - 1u) / TILE_TAPS;
    tiled_stage(s, lid, b_base, s.first_tap, 0u);
    workgroupBarrier();
    for (var step = 0u; step < stages; step++) {
        // The other buffer was last read before the barrier that ended the previous step.
        if step + 1u < stages {
            tiled_stage(s, lid, b_base, s.first_tap + (step + 1u) * TILE_TAPS, (step + 1u) % 2u);
        }
        tiled_compute(lid, step % 2u);
        workgroupBarrier();
    }
}

// The output offsets and liveness of the invocation's 4 pixels, and its first row.
struct TiledOutput {
    o: vec4<u32>,
    live: vec4<bool>,
    group: u32,
    m0: u32,
}

fn tiled_output(s: TiledScope, lid: u32) -> TiledOutput {
    let tx = lid % PIXEL_THREADS;
    let pix = vec4<u32>(s.first_pixel + tx) + vec4<u32>(0u, 1u, 2u, 3u) * PIXEL_THREADS;
    let live = pix < vec4<u32>(s.total);
    let pc = min(pix, vec4<u32>(s.total - 1u));
    let q0 = gemm_pixel(pc.x, s.per_image, s.cols);
    let q1 = gemm_pixel(pc.y, s.per_image, s.cols);
    let q2 = gemm_pixel(pc.z, s.per_image, s.cols);
    let q3 = gemm_pixel(pc.w, s.per_image, s.cols);
    let ns = vec4<u32>(q0.x, q1.x, q2.x, q3.x);
    let rs = vec4<u32>(q0.y, q1.y, q2.y, q3.y);
    let cs = vec4<u32>(q0.z, q1.z, q2.z, q3.z);
    let o = ns * gp.out_image_stride + vec4<u32>(s.origin) + rs * gp.out_row_stride
        + cs * gp.out_col_stride;
    return TiledOutput(o, live, s.group, s.m0 + lid / PIXEL_THREADS);
}

@compute @workgroup_size(TILED_WG)
fn gemm_tiled(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let s = tiled_scope(wid);
    // A workgroup past the phase's pixels leaves whole, so the barriers stay uniform.
    if s.first_pixel >= s.total {
        return;
    }
    tiled_accumulate(s, lid);
    let t = tiled_output(s, lid);
    for (var i = 0u; i < THREAD_ROWS; i++) {
        gemm_store(t.group, t.m0 + i * ROW_THREADS, tiled_acc[i], t.o, t.live);
    }
}

@compute @workgroup_size(TILED_WG)
fn gemm_tiled_bias(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let s = tiled_scope(wid);
    // A workgroup past the phase's pixels leaves whole, so the barriers stay uniform.
    if s.first_pixel >= s.total {
        return;
    }
    tiled_accumulate(s, lid);
    let t = tiled_output(s, lid);
    for (var i = 0u; i < THREAD_ROWS; i++) {
        let m = t.m0 + i * ROW_THREADS;
        gemm_store(t.group, m, tiled_acc[i] + row_bias(t.group, m), t.o, t.live);
    }
}

@compute @workgroup_size(TILED_WG)
fn gemm_tiled_masked(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let s = tiled_scope(wid);
    // A workgroup past the phase's pixels leaves whole, so the barriers stay uniform.
    if s.first_pixel >= s.total {
        return;
    }
    tiled_accumulate(s, lid);
    let t = tiled_output(s, lid);
    for (var i = 0u; i < THREAD_ROWS; i++) {
        gemm_store_masked(t.group, t.m0 + i * ROW_THREADS, tiled_acc[i], t.o, t.live);
    }
}
