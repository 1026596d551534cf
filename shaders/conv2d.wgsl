// Convolution family, NCHW f32: an implicit-GEMM kernel shared by the forward pass, the
// input gradient and the transposed convolution; the weight gradient; a depthwise kernel;
// zero padding; the bias gradient.
//
// The GEMM form is out[m, p] = sum_k A[row(m) + tap(k).x] * B[base(p) + tap(k).y]. A is the
// weight tensor, B a zero-padded copy of the image (forward) or of dy (input gradient), so the
// inner loop needs no bounds checks. A host-built tap table gives the two offsets of every k.
// Each invocation owns BLOCK rows (output channels) x 4 pixels held in vec4 accumulators: one
// load of A serves 4 pixels and one load of B serves BLOCK rows. Rows come from the workgroup
// id, so A and table loads are uniform across the workgroup (scalar loads on CPU adapters).
// The 4 pixels of an invocation are WG apart, so neighbouring invocations read neighbouring
// addresses.

override WG: u32 = 64u;
// Rows per invocation, 1..=MAX_BLOCK; a constant loop bound, so the accumulators stay in registers.
override BLOCK: u32 = 8u;
const MAX_BLOCK: u32 = 8u;
const PIX: u32 = 4u;

// ---------------------------------------------------------------------------------------
// Implicit GEMM (forward, input gradient, transposed convolution)
// ---------------------------------------------------------------------------------------

struct GemmParams {
    images: u32,
    rows_per_group: u32,     // output channels per group (M)
    blocks_per_group: u32,   // ceil(rows_per_group / BLOCK)
    has_bias: u32,
    a_group_stride: u32,
    a_row_stride: u32,
    b_group_stride: u32,
    b_image_stride: u32,
    b_row_stride: u32,       // B offset per pixel row of the phase
    b_col_stride: u32,       // B offset per pixel column of the phase
    out_image_stride: u32,
    out_channel_stride: u32,
    out_row_stride: u32,
    out_col_stride: u32,
}

@group(0) @binding(0) var<uniform> gp: GemmParams;
@group(0) @binding(1) var<storage, read> mat_a: array<f32>;
@group(0) @binding(2) var<storage, read> mat_b: array<f32>;
// Per phase z, entries 3z..3z+2 are (first tap, tap count), (rows, cols), (output origin, 0);
// the taps follow as (A offset, B offset).
@group(0) @binding(3) var<storage, read> taps: array<vec2<u32>>;
@group(0) @binding(4) var<storage, read> bias: array<f32>;
@group(0) @binding(5) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(WG)
fn gemm(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let head = taps[3u * wid.z];
    let extent = taps[3u * wid.z + 1u];
    let origin = taps[3u * wid.z + 2u].x;
    let per_image = extent.x * extent.y;
    let total = per_image * gp.images;
    let first_pixel = wid.x * WG * PIX;
    if first_pixel >= total {
        return;
    }
    let group = wid.y / gp.blocks_per_group;
    let m0 = (wid.y % gp.blocks_per_group) * BLOCK;

    var b_base: array<u32, 4>;
    var out_base: array<u32, 4>;
    for (var j = 0u; j < PIX; j++) {
        let p = min(first_pixel + j * WG + lid, total - 1u);
        let n = p / per_image;
        let rem = p - n * per_image;
        let r = rem / extent.y;
        let c = rem - r * extent.y;
        b_base[j] = group * gp.b_group_stride + n * gp.b_image_stride + r * gp.b_row_stride
            + c * gp.b_col_stride;
        out_base[j] = n * gp.out_image_stride + origin + r * gp.out_row_stride + c * gp.out_col_stride;
    }
    var a_row: array<u32, MAX_BLOCK>;
    for (var m = 0u; m < BLOCK; m++) {
        // Rows past the group's end repeat its last row; their results are not stored.
        a_row[m] = group * gp.a_group_stride + min(m0 + m, gp.rows_per_group - 1u) * gp.a_row_stride;
    }

    var acc: array<vec4<f32>, MAX_BLOCK>;
    for (var m = 0u; m < MAX_BLOCK; m++) {
        acc[m] = vec4<f32>(0.0);
    }
    let k_end = head.x + head.y;
    for (var k = head.x; k < k_end; k++) {
        let t = taps[k];
        let xv = vec4<f32>(mat_b[b_base[0] + t.y], mat_b[b_base[1] + t.y], mat_b[b_base[2] + t.y],
            mat_b[b_base[3] + t.y]);
        for (var m = 0u; m < BLOCK; m++) {
            acc[m] = fma(vec4<f32>(mat_a[a_row[m] + t.x]), xv, acc[m]);
        }
    }

    for (var m = 0u; m < BLOCK; m++) {
        if m0 + m >= gp.rows_per_group {
            break;
        }
        let channel = group * gp.rows_per_group + m0 + m;
        var shift = 0.0;
        if gp.has_bias != 0u {
            shift = bias[channel];
        }
        for (var j = 0u; j < PIX; j++) {
            if first_pixel + j * WG + lid < total {
                out[out_base[j] + channel * gp.out_channel_stride] = acc[m][j] + shift;
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// Weight gradient: dw[co, ci, ky, kx] = sum over (n, oh, ow) of dy * x, a reduction per
// output element. Rows are output channels (dy loads are uniform), the 4 columns are taps
// (ci, ky, kx), and x is the zero-padded image.
// ---------------------------------------------------------------------------------------

struct WeightGradParams {
    images: u32,
    taps_per_group: u32,     // Cin/groups * KH * KW
    rows_per_group: u32,     // Cout/groups
    blocks_per_group: u32,
    kernel_area: u32,        // KH * KW
    kernel_w: u32,
    x_image_stride: u32,
    x_channel_stride: u32,
    x_group_stride: u32,
    tap_row_step: u32,       // dilation_h * padded width
    tap_col_step: u32,       // dilation_w
    out_rows: u32,
    out_cols: u32,
    x_row_step: u32,         // stride_h * padded width
    x_col_step: u32,         // stride_w
    dy_image_stride: u32,
}

@group(0) @binding(0) var<uniform> wgp: WeightGradParams;
@group(0) @binding(1) var<storage, read> grad_out: array<f32>;
@group(0) @binding(2) var<storage, read> image: array<f32>;
@group(0) @binding(5) var<storage, read_write> grad_weight: array<f32>;

@compute @workgroup_size(WG)
fn weight_grad(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let first_tap = wid.x * WG * PIX;
    if first_tap >= wgp.taps_per_group {
        return;
    }
    let group = wid.y / wgp.blocks_per_group;
    let m0 = (wid.y % wgp.blocks_per_group) * BLOCK;
    let plane = wgp.out_rows * wgp.out_cols;

    var x_base: array<u32, 4>;
    for (var j = 0u; j < PIX; j++) {
        let t = min(first_tap + j * WG + lid, wgp.taps_per_group - 1u);
        let ci = t / wgp.kernel_area;
        let kk = t - ci * wgp.kernel_area;
        let ky = kk / wgp.kernel_w;
        let kx = kk - ky * wgp.kernel_w;
        x_base[j] = group * wgp.x_group_stride + ci * wgp.x_channel_stride + ky * wgp.tap_row_step
            + kx * wgp.tap_col_step;
    }
    var dy_row: array<u32, MAX_BLOCK>;
    for (var m = 0u; m < BLOCK; m++) {
        dy_row[m] = (group * wgp.rows_per_group + min(m0 + m, wgp.rows_per_group - 1u)) * plane;
    }

    var acc: array<vec4<f32>, MAX_BLOCK>;
    for (var m = 0u; m < MAX_BLOCK; m++) {
        acc[m] = vec4<f32>(0.0);
    }
    for (var n = 0u; n < wgp.images; n++) {
        for (var oh = 0u; oh < wgp.out_rows; oh++) {
            var xo = n * wgp.x_image_stride + oh * wgp.x_row_step;
            var d = n * wgp.dy_image_stride + oh * wgp.out_cols;
            for (var ow = 0u; ow < wgp.out_cols; ow++) {
                let xv = vec4<f32>(image[x_base[0] + xo], image[x_base[1] + xo], image[x_base[2] + xo],
                    image[x_base[3] + xo]);
                for (var m = 0u; m < BLOCK; m++) {
                    acc[m] = fma(vec4<f32>(grad_out[dy_row[m] + d]), xv, acc[m]);
                }
                xo += wgp.x_col_step;
                d += 1u;
            }
        }
    }

    for (var m = 0u; m < BLOCK; m++) {
        if m0 + m >= wgp.rows_per_group {
            break;
        }
        let row = (group * wgp.rows_per_group + m0 + m) * wgp.taps_per_group;
        for (var j = 0u; j < PIX; j++) {
            let t = first_tap + j * WG + lid;
            if t < wgp.taps_per_group {
                grad_weight[row + t] = acc[m][j];
            }
        }
    }
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
// The host keeps (DW_BLOCK - 1) * DW_SW + (DW_KW - 1) * DW_DW + 1 within this.
const DW_MAX_SEGMENT: u32 = 48u;
const DW_MAX_BLOCK: u32 = 8u;

struct DepthwiseParams {
    items: u32,              // N * Cout * OH * blocks_per_row
    channels_in: u32,
    channels_out: u32,
    multiplier: u32,         // Cout / Cin
    in_rows: u32,
    in_cols: u32,
    out_rows: u32,
    out_cols: u32,
    pad_top: i32,
    pad_left: i32,
    blocks_per_row: u32,
    has_bias: u32,
}

@group(0) @binding(0) var<uniform> dp: DepthwiseParams;
@group(0) @binding(1) var<storage, read> dw_weight: array<f32>;
@group(0) @binding(2) var<storage, read> dw_input: array<f32>;
@group(0) @binding(4) var<storage, read> dw_bias: array<f32>;
@group(0) @binding(5) var<storage, read_write> dw_out: array<f32>;

@compute @workgroup_size(WG)
fn depthwise(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * WG;
    if i >= dp.items {
        return;
    }
    let block = i % dp.blocks_per_row;
    var rest = i / dp.blocks_per_row;
    let oh = rest % dp.out_rows;
    rest = rest / dp.out_rows;
    let co = rest % dp.channels_out;
    let n = rest / dp.channels_out;
    let ci = co / dp.multiplier;
    let plane = (n * dp.channels_in + ci) * dp.in_rows * dp.in_cols;
    let ow0 = block * DW_BLOCK;
    let col0 = i32(ow0 * DW_SW) - dp.pad_left;
    let seg_len = (DW_BLOCK - 1u) * DW_SW + (DW_KW - 1u) * DW_DW + 1u;
    let w0 = co * DW_KH * DW_KW;

    var acc: array<f32, DW_MAX_BLOCK>;
    for (var j = 0u; j < DW_MAX_BLOCK; j++) {
        acc[j] = 0.0;
    }
    for (var ky = 0u; ky < DW_KH; ky++) {
        let row = i32(oh * DW_SH + ky * DW_DH) - dp.pad_top;
        let row_ok = row >= 0 && row < i32(dp.in_rows);
        let row_base = i32(plane) + row * i32(dp.in_cols);
        var seg: array<f32, DW_MAX_SEGMENT>;
        for (var s = 0u; s < seg_len; s++) {
            let col = col0 + i32(s);
            let ok = row_ok && col >= 0 && col < i32(dp.in_cols);
            seg[s] = select(0.0, dw_input[u32(select(0, row_base + col, ok))], ok);
        }
        for (var kx = 0u; kx < DW_KW; kx++) {
            let wv = dw_weight[w0 + ky * DW_KW + kx];
            for (var j = 0u; j < DW_BLOCK; j++) {
                acc[j] = fma(wv, seg[j * DW_SW + kx * DW_DW], acc[j]);
            }
        }
    }
    var shift = 0.0;
    if dp.has_bias != 0u {
        shift = dw_bias[co];
    }
    let out_row = ((n * dp.channels_out + co) * dp.out_rows + oh) * dp.out_cols;
    for (var j = 0u; j < DW_BLOCK; j++) {
        if ow0 + j < dp.out_cols {
            dw_out[out_row + ow0 + j] = acc[j] + shift;
        }
    }
}

// ---------------------------------------------------------------------------------------
// Zero padding (or cropping) of each plane: out[r, c] = in[r + row_offset, c + col_offset],
// zero outside the input.
// ---------------------------------------------------------------------------------------

struct PadParams {
    items: u32,
    in_rows: u32,
    in_cols: u32,
    out_rows: u32,
    out_cols: u32,
    row_offset: i32,
    col_offset: i32,
}

@group(0) @binding(0) var<uniform> pp: PadParams;
@group(0) @binding(2) var<storage, read> pad_in: array<f32>;
@group(0) @binding(5) var<storage, read_write> pad_out: array<f32>;

@compute @workgroup_size(WG)
fn pad(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * WG;
    if i >= pp.items {
        return;
    }
    let c = i % pp.out_cols;
    let rest = i / pp.out_cols;
    let r = rest % pp.out_rows;
    let plane = rest / pp.out_rows;
    let sr = i32(r) + pp.row_offset;
    let sc = i32(c) + pp.col_offset;
    let ok = sr >= 0 && sr < i32(pp.in_rows) && sc >= 0 && sc < i32(pp.in_cols);
    let src = plane * pp.in_rows * pp.in_cols + u32(select(0, sr * i32(pp.in_cols) + sc, ok));
    pad_out[i] = select(0.0, pad_in[src], ok);
}

// ---------------------------------------------------------------------------------------
// Bias gradient: one workgroup per channel sums dy over (n, h, w) with a tree reduction.
// ---------------------------------------------------------------------------------------

const RED_WG: u32 = 256u;

struct BiasGradParams {
    images: u32,
    channels: u32,
    plane: u32,
}

@group(0) @binding(0) var<uniform> bgp: BiasGradParams;
@group(0) @binding(2) var<storage, read> bg_dy: array<f32>;
@group(0) @binding(5) var<storage, read_write> bg_out: array<f32>;

var<workgroup> partial: array<f32, RED_WG>;

@compute @workgroup_size(RED_WG)
fn bias_grad(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32) {
    let channel = wid.x + wid.y * nwg.x;
    var sum = 0.0;
    if channel < bgp.channels {
        for (var n = 0u; n < bgp.images; n++) {
            let base = (n * bgp.channels + channel) * bgp.plane;
            for (var i = lid; i < bgp.plane; i += RED_WG) {
                sum += bg_dy[base + i];
            }
        }
    }
    partial[lid] = sum;
    workgroupBarrier();
    for (var half = RED_WG / 2u; half > 0u; half = half / 2u) {
        if lid < half {
            partial[lid] += partial[lid + half];
        }
        workgroupBarrier();
    }
    if lid == 0u && channel < bgp.channels {
        bg_out[channel] = partial[0];
    }
}
