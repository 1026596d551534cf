// Depthwise convolution, NCHW f32: forward (scalar and vec4 rows for CPUs, workgroup tiles
// for GPUs) and, through the same code, the input gradient. The gradient of a depthwise
// convolution is a depthwise convolution of dy with the taps flipped (DW_FLIP), dy's rows
// and columns spread DW_UP apart with zeros between them where the forward had a stride
// (DW_UP = stride), and the padding mirrored; with a channel multiplier each dx channel
// sums its DW_FAN dy channels. So the input gradient gets the forward's register-held
// segments (or workgroup tiles) instead of a per-element gather.

override WG: u32 = 64u;

// The activation applied to every value of the forward's input as it is read (the
// producer's activation, fused into its consumer) (0: none, 1: ReLU, 2: ReLU6).
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

fn activate4(v: vec4<f32>) -> vec4<f32> {
    if ACT == 1u {
        return max(v, vec4<f32>(0.0));
    }
    if ACT == 2u {
        return clamp(v, vec4<f32>(0.0), vec4<f32>(6.0));
    }
    return v;
}

// The masked entry points' activation (codes as for ACT), whose derivative at the forward's
// input v multiplies the input gradient in its epilogue.
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

fn slope4(v: vec4<f32>) -> vec4<f32> {
    return vec4<f32>(slope(v.x), slope(v.y), slope(v.z), slope(v.w));
}

// ---------------------------------------------------------------------------------------
// Depthwise (one input channel per group, any channel multiplier). Memory bound: each
// invocation computes DW_BLOCK neighbouring outputs of one row and reads each input row
// segment they share once. Kernel size, stride and dilation are constants so the loops
// unroll and the segment lives in registers.
// ---------------------------------------------------------------------------------------

override DW_KH: u32 = 3u;
override DW_KW: u32 = 3u;
override DW_SH: u32 = 1u;
override DW_SW: u32 = 1u;
override DW_DH: u32 = 1u;
override DW_DW: u32 = 1u;
override DW_BLOCK: u32 = 4u;
// Input-gradient form: flipped taps, zero-spread input, DW_FAN source channels per output.
override DW_FLIP: bool = false;
override DW_UP_H: u32 = 1u;
override DW_UP_W: u32 = 1u;
override DW_FAN: u32 = 1u;
// (-pad_left) mod DW_UP_W; the host makes DW_BLOCK a multiple of DW_UP_W so that it holds
// for every block's first column.
override DW_COL_PHASE: u32 = 0u;
// The host keeps (DW_BLOCK - 1) * DW_SW + (DW_KW - 1) * DW_DW + 1 within this.
const DW_MAX_SEGMENT: u32 = 48u;
const DW_MAX_BLOCK: u32 = 8u;

struct DepthwiseParams {
    items: u32,              // N * Cout * OH * blocks_per_row
    channels_in: u32,        // of this kernel's input (dy for the input gradient)
    channels_out: u32,
    // Output channel co reads input channels (co / source_divisor) * source_multiplier + f
    // with the taps of channel co * weight_multiplier + f, for f < DW_FAN.
    source_divisor: u32,
    source_multiplier: u32,
    weight_multiplier: u32,
    in_rows: u32,
    in_cols: u32,
    out_rows: u32,
    out_cols: u32,
    pad_top: i32,
    pad_left: i32,
    blocks_per_row: u32,
}

@group(0) @binding(0) var<uniform> dp: DepthwiseParams;
@group(0) @binding(1) var<storage, read> dw_weight: array<f32>;
@group(0) @binding(2) var<storage, read> dw_input: array<f32>;
@group(0) @binding(4) var<storage, read> dw_bias: array<f32>;
@group(0) @binding(5) var<storage, read_write> dw_out: array<f32>;
// The forward's input, for the input gradient through an input activation.
@group(0) @binding(3) var<storage, read> dw_mask: array<f32>;

// Where invocation i of the forward entry points writes: the block of one output row of
// one channel of one image.
struct Site {
    block: u32,
    oh: u32,
    co: u32,
    n: u32,
}

fn forward_site(i: u32) -> Site {
    let rows = i / dp.blocks_per_row;
    let planes = rows / dp.out_rows;
    return Site(i % dp.blocks_per_row, rows % dp.out_rows, planes % dp.channels_out, planes / dp.channels_out);
}

// Each kernel has an entry point per epilogue: plain, plus a bias, or times the input
// activation's slope (the input gradient through it). Each binds only what it reads.
@compute @workgroup_size(WG)
fn depthwise(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * WG;
    if i < dp.items {
        let b = depthwise_block(i);
        for (var j = 0u; j < DW_BLOCK; j++) {
            if b.ow0 + j < dp.out_cols {
                dw_out[b.out_row + b.ow0 + j] = b.acc[j];
            }
        }
    }
}

@compute @workgroup_size(WG)
fn depthwise_bias(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * WG;
    if i < dp.items {
        let b = depthwise_block(i);
        let shift = dw_bias[forward_site(i).co];
        for (var j = 0u; j < DW_BLOCK; j++) {
            if b.ow0 + j < dp.out_cols {
                dw_out[b.out_row + b.ow0 + j] = b.acc[j] + shift;
            }
        }
    }
}

@compute @workgroup_size(WG)
fn depthwise_masked(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * WG;
    if i < dp.items {
        let b = depthwise_block(i);
        for (var j = 0u; j < DW_BLOCK; j++) {
            let o = b.out_row + b.ow0 + j;
            if b.ow0 + j < dp.out_cols {
                dw_out[o] = b.acc[j] * slope(dw_mask[o]);
            }
        }
    }
}

// One invocation's sums and where they go.
struct Block {
    acc: array<f32, DW_MAX_BLOCK>,
    out_row: u32,
    ow0: u32,
}

fn depthwise_block(i: u32) -> Block {
    let site = forward_site(i);
    let ow0 = site.block * DW_BLOCK;
    let col0 = i32(ow0 * DW_SW) - dp.pad_left;
    let seg_len = (DW_BLOCK - 1u) * DW_SW + (DW_KW - 1u) * DW_DW + 1u;

    var acc: array<f32, DW_MAX_BLOCK>;
    for (var j = 0u; j < DW_MAX_BLOCK; j++) {
        acc[j] = 0.0;
    }
    for (var f = 0u; f < DW_FAN; f++) {
        let ci = site.co / dp.source_divisor * dp.source_multiplier + f;
        let plane = (site.n * dp.channels_in + ci) * dp.in_rows * dp.in_cols;
        let w0 = (site.co * dp.weight_multiplier + f) * DW_KH * DW_KW;
        for (var ky = 0u; ky < DW_KH; ky++) {
            // Row and columns of the zero-spread input; only every DW_UP-th one is stored.
            let vrow = i32(site.oh * DW_SH + ky * DW_DH) - dp.pad_top;
            let row = vrow / i32(DW_UP_H);
            if vrow < 0 || vrow % i32(DW_UP_H) != 0 || row >= i32(dp.in_rows) {
                continue; // a padding row, or one of the zeros between spread rows
            }
            let row_base = i32(plane) + row * i32(dp.in_cols);
            var seg: array<f32, DW_MAX_SEGMENT>;
            for (var s = 0u; s < seg_len; s++) {
                // col0 ≡ DW_COL_PHASE (mod DW_UP_W) for every block, so which segment
                // entries are spread zeros is known when the loop unrolls: no load for them.
                if (s + DW_COL_PHASE) % DW_UP_W != 0 {
                    seg[s] = 0.0;
                    continue;
                }
                let vcol = col0 + i32(s);
                let col = vcol / i32(DW_UP_W);
                let ok = vcol >= 0 && col < i32(dp.in_cols);
                seg[s] = activate(select(0.0, dw_input[u32(select(0, row_base + col, ok))], ok));
            }
            for (var kx = 0u; kx < DW_KW; kx++) {
                let wv = dw_weight[w0 + tap(ky, kx)];
                for (var j = 0u; j < DW_BLOCK; j++) {
                    acc[j] = fma(wv, seg[j * DW_SW + kx * DW_DW], acc[j]);
                }
            }
        }
    }
    let out_row = ((site.n * dp.channels_out + site.co) * dp.out_rows + site.oh) * dp.out_cols;
    return Block(acc, out_row, ow0);
}

// Index of tap (ky, kx) in one channel's weights, flipped for the input gradient.
fn tap(ky: u32, kx: u32) -> u32 {
    if DW_FLIP {
        return (DW_KH - 1u - ky) * DW_KW + (DW_KW - 1u - kx);
    }
    return ky * DW_KW + kx;
}

// The same with aligned vec4 loads and stores, for rows whose input and output widths are
// multiples of 4 and no zero-spreading (DW_UP_W = 1); DW_BLOCK is 8, two vec4 accumulators (CPU compilers keep arrays that are
// indexed in loops in memory, so accumulators are named vectors): a block's segment starts DW_SHIFT columns
// into an aligned vec4, and a vec4 lies wholly inside the row or wholly in the padding.
override DW_SHIFT: u32 = 0u;     // 4 * ceil(pad_left / 4) - pad_left
override DW_PAD_QUADS: u32 = 0u; // ceil(pad_left / 4)
const DW_MAX_QUADS: u32 = 16u;

@group(0) @binding(7) var<storage, read> dw_input4: array<vec4<f32>>;
@group(0) @binding(8) var<storage, read_write> dw_out4: array<vec4<f32>>;

@group(0) @binding(9) var<storage, read> dw_mask4: array<vec4<f32>>;

@compute @workgroup_size(WG)
fn depthwise_vec4(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * WG;
    if i < dp.items {
        let b = depthwise_vec4_block(i);
        dw_out4[b.at] = b.lo;
        if b.hi_live {
            dw_out4[b.at + 1u] = b.hi;
        }
    }
}

@compute @workgroup_size(WG)
fn depthwise_vec4_bias(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * WG;
    if i < dp.items {
        let b = depthwise_vec4_block(i);
        let shift = dw_bias[forward_site(i).co];
        dw_out4[b.at] = b.lo + shift;
        if b.hi_live {
            dw_out4[b.at + 1u] = b.hi + shift;
        }
    }
}

@compute @workgroup_size(WG)
fn depthwise_vec4_masked(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * WG;
    if i < dp.items {
        let b = depthwise_vec4_block(i);
        dw_out4[b.at] = b.lo * slope4(dw_mask4[b.at]);
        if b.hi_live {
            dw_out4[b.at + 1u] = b.hi * slope4(dw_mask4[b.at + 1u]);
        }
    }
}

// One invocation's eight sums as two vec4s, and the vec4 index of the first.
struct Block4 {
    lo: vec4<f32>,
    hi: vec4<f32>,
    at: u32,
    hi_live: bool,
}

fn depthwise_vec4_block(i: u32) -> Block4 {
    let site = forward_site(i);
    let row_quads = dp.in_cols / 4u;
    let ow0 = site.block * DW_BLOCK;
    let quad0 = i32(ow0 * DW_SW / 4u) - i32(DW_PAD_QUADS);
    let seg_len = (DW_BLOCK - 1u) * DW_SW + (DW_KW - 1u) * DW_DW + 1u;
    let quads = (DW_SHIFT + seg_len + 3u) / 4u;

    var acc_lo = vec4<f32>(0.0);
    var acc_hi = vec4<f32>(0.0);
    for (var f = 0u; f < DW_FAN; f++) {
        let ci = site.co / dp.source_divisor * dp.source_multiplier + f;
        let plane = (site.n * dp.channels_in + ci) * dp.in_rows * row_quads;
        let w0 = (site.co * dp.weight_multiplier + f) * DW_KH * DW_KW;
        for (var ky = 0u; ky < DW_KH; ky++) {
            let vrow = i32(site.oh * DW_SH + ky * DW_DH) - dp.pad_top;
            let row = vrow / i32(DW_UP_H);
            if vrow < 0 || vrow % i32(DW_UP_H) != 0 || row >= i32(dp.in_rows) {
                continue;
            }
            let row_base = i32(plane) + row * i32(row_quads);
            var seg: array<vec4<f32>, DW_MAX_QUADS>;
            for (var t = 0u; t < quads; t++) {
                let q = quad0 + i32(t);
                let ok = q >= 0 && q < i32(row_quads);
                seg[t] = activate4(select(vec4<f32>(0.0), dw_input4[u32(select(0, row_base + q, ok))], ok));
            }
            for (var kx = 0u; kx < DW_KW; kx++) {
                let wv = vec4<f32>(dw_weight[w0 + tap(ky, kx)]);
                let c = DW_SHIFT + kx * DW_DW;
                acc_lo = fma(wv, pick4(seg, c), acc_lo);
                acc_hi = fma(wv, pick4(seg, c + 4u * DW_SW), acc_hi);
            }
        }
    }
    let out_row = (((site.n * dp.channels_out + site.co) * dp.out_rows + site.oh) * dp.out_cols + ow0) / 4u;
    return Block4(acc_lo, acc_hi, out_row, ow0 + 4u < dp.out_cols);
}

// Segment values c, c + DW_SW, c + 2 DW_SW, c + 3 DW_SW.
fn pick4(seg: array<vec4<f32>, DW_MAX_QUADS>, c: u32) -> vec4<f32> {
    var v: vec4<f32>;
    for (var j = 0u; j < 4u; j++) {
        let i = c + j * DW_SW;
        v[j] = seg[i / 4u][i % 4u];
    }
    return v;
}

// ---------------------------------------------------------------------------------------
// Tiled form for GPUs (the `gpu` kernel profile), the same sums as `depthwise_block`: a
// workgroup owns a DWT_TH × DWT_TW tile of one output plane. Its lanes first copy the input
// region the tile reads into workgroup memory, one element per lane per pass along the
// rows, so consecutive lanes load consecutive addresses; the activation, the zero padding
// and the input gradient's zero-spreading are applied there, once per element instead of
// once per tap. After one barrier each lane sums DWT_PER vertically neighbouring outputs
// of one column from workgroup memory, so a row's lanes read neighbouring words and store
// a coalesced row. The taps are read at workgroup-uniform addresses (a scalar load on a
// GPU). The backward's zero-spread region keeps its zeros in workgroup memory: with the
// usual stride 2 that is 4× the words but still one load per stored dy element.
// ---------------------------------------------------------------------------------------

override DWT_TH: u32 = 8u;
override DWT_TW: u32 = 32u;
override DWT_PER: u32 = 2u;
// The host sets DWT_TW * DWT_TH / DWT_PER; a workgroup size must be a plain override.
override DWT_WG: u32 = 128u;
// The input region of one tile, in the (zero-spread) input's coordinates.
override DWT_IN_H: u32 = (DWT_TH - 1u) * DW_SH + (DW_KH - 1u) * DW_DH + 1u;
override DWT_IN_W: u32 = (DWT_TW - 1u) * DW_SW + (DW_KW - 1u) * DW_DW + 1u;
// The host keeps DWT_PER within this.
const DWT_MAX_PER: u32 = 8u;

// Sized by the overrides, so each pipeline reserves exactly its region; the host checks the
// bytes against the adapter's limit before choosing a tile.
var<workgroup> dwt_region: array<f32, DWT_IN_H * DWT_IN_W>;

// One lane's sums and where they go. `dp.items` counts workgroups (tiles) here and
// `dp.blocks_per_row` tiles per row of tiles.
struct TiledSums {
    acc: array<f32, DWT_MAX_PER>,
    plane_out: u32,
    oy0: u32,
    ox: u32,
    co: u32,
}

fn depthwise_tiled_sums(wid: u32, lid: u32) -> TiledSums {
    let tiles_down = (dp.out_rows + DWT_TH - 1u) / DWT_TH;
    let tile_col = wid % dp.blocks_per_row;
    let rest = wid / dp.blocks_per_row;
    let tile_row = rest % tiles_down;
    let planes = rest / tiles_down;
    let co = planes % dp.channels_out;
    let n = planes / dp.channels_out;

    let tx = lid % DWT_TW;
    let ty = lid / DWT_TW;
    let vrow0 = i32(tile_row * DWT_TH * DW_SH) - dp.pad_top;
    let vcol0 = i32(tile_col * DWT_TW * DW_SW) - dp.pad_left;

    var acc: array<f32, DWT_MAX_PER>;
    for (var j = 0u; j < DWT_MAX_PER; j++) {
        acc[j] = 0.0;
    }
    for (var f = 0u; f < DW_FAN; f++) {
        let ci = co / dp.source_divisor * dp.source_multiplier + f;
        let plane = (n * dp.channels_in + ci) * dp.in_rows * dp.in_cols;
        let w0 = (co * dp.weight_multiplier + f) * DW_KH * DW_KW;
        for (var e = lid; e < DWT_IN_H * DWT_IN_W; e += DWT_WG) {
            let vrow = vrow0 + i32(e / DWT_IN_W);
            let vcol = vcol0 + i32(e % DWT_IN_W);
            let row = vrow / i32(DW_UP_H);
            let col = vcol / i32(DW_UP_W);
            let ok = vrow >= 0 && vcol >= 0 && vrow % i32(DW_UP_H) == 0 && vcol % i32(DW_UP_W) == 0
                && row < i32(dp.in_rows) && col < i32(dp.in_cols);
            let at = u32(select(0, i32(plane) + row * i32(dp.in_cols) + col, ok));
            dwt_region[e] = select(0.0, activate(dw_input[at]), ok);
        }
        workgroupBarrier();
        for (var j = 0u; j < DWT_PER; j++) {
            let r0 = (ty * DWT_PER + j) * DW_SH;
            for (var ky = 0u; ky < DW_KH; ky++) {
                let base = (r0 + ky * DW_DH) * DWT_IN_W + tx * DW_SW;
                for (var kx = 0u; kx < DW_KW; kx++) {
                    acc[j] = fma(dw_weight[w0 + tap(ky, kx)], dwt_region[base + kx * DW_DW], acc[j]);
                }
            }
        }
        // The next source channel overwrites the region.
        if DW_FAN > 1u {
            workgroupBarrier();
        }
    }
    let plane_out = (n * dp.channels_out + co) * dp.out_rows * dp.out_cols;
    return TiledSums(acc, plane_out, tile_row * DWT_TH + ty * DWT_PER, tile_col * DWT_TW + tx, co);
}

// The index of output j of a lane, or none past the plane's edge.
fn tiled_out(s: TiledSums, j: u32) -> i32 {
    if s.ox >= dp.out_cols || s.oy0 + j >= dp.out_rows {
        return -1;
    }
    return i32(s.plane_out + (s.oy0 + j) * dp.out_cols + s.ox);
}

// Workgroups past the last tile (the grid folded into y) leave together, so every barrier
// stays in uniform control flow.
@compute @workgroup_size(DWT_WG)
fn depthwise_tiled(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let wid = wg.x + wg.y * nwg.x;
    if wid >= dp.items {
        return;
    }
    let s = depthwise_tiled_sums(wid, lid);
    for (var j = 0u; j < DWT_PER; j++) {
        let o = tiled_out(s, j);
        if o >= 0 {
            dw_out[o] = s.acc[j];
        }
    }
}

@compute @workgroup_size(DWT_WG)
fn depthwise_tiled_bias(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let wid = wg.x + wg.y * nwg.x;
    if wid >= dp.items {
        return;
    }
    let s = depthwise_tiled_sums(wid, lid);
    let shift = dw_bias[s.co];
    for (var j = 0u; j < DWT_PER; j++) {
        let o = tiled_out(s, j);
        if o >= 0 {
            dw_out[o] = s.acc[j] + shift;
        }
    }
}

@compute @workgroup_size(DWT_WG)
fn depthwise_tiled_masked(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let wid = wg.x + wg.y * nwg.x;
    if wid >= dp.items {
        return;
    }
    let s = depthwise_tiled_sums(wid, lid);
    for (var j = 0u; j < DWT_PER; j++) {
        let o = tiled_out(s, j);
        if o >= 0 {
            dw_out[o] = s.acc[j] * slope(dw_mask[o]);
        }
    }
}
