// Convolution family, NCHW f32: an implicit-GEMM kernel shared by the forward pass, the
// input gradient and the transposed convolution; the weight gradient; a depthwise kernel;
// packing; the bias gradient.
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

// ---------------------------------------------------------------------------------------
// Implicit GEMM (forward, input gradient, transposed convolution)
// ---------------------------------------------------------------------------------------

struct GemmParams {
    images: u32,
    rows_per_group: u32,     // output channels per group (M)
    blocks_per_group: u32,   // ceil(rows_per_group / BLOCK)
    has_bias: u32,
    a_group_stride: u32,     // vec4 units from here on
    a_row_stride: u32,
    b_group_stride: u32,
    b_image_stride: u32,
    b_row_stride: u32,       // B offset per pixel row of the phase
    b_col_stride: u32,       // B offset per pixel column of the phase
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

fn gemm_store(group: u32, m: u32, acc: vec4<f32>, o: vec4<u32>, live: vec4<bool>) {
    if m >= gp.rows_per_group {
        return;
    }
    let channel = group * gp.rows_per_group + m;
    var shift = 0.0;
    if gp.has_bias != 0u {
        shift = bias[channel];
    }
    let v = acc + shift;
    let off = channel * gp.out_channel_stride;
    if live.x { out[o.x + off] = v.x; }
    if live.y { out[o.y + off] = v.y; }
    if live.z { out[o.z + off] = v.z; }
    if live.w { out[o.w + off] = v.w; }
}

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
        let q = quad(mat_b[b.x + t.y], mat_b[b.y + t.y], mat_b[b.z + t.y], mat_b[b.w + t.y]);
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
    gemm_store(group, m0, acc0, o, live);
    if BLOCK > 1u { gemm_store(group, m0 + 1u, acc1, o, live); }
    if BLOCK > 2u { gemm_store(group, m0 + 2u, acc2, o, live); }
    if BLOCK > 3u { gemm_store(group, m0 + 3u, acc3, o, live); }
    if BLOCK > 4u { gemm_store(group, m0 + 4u, acc4, o, live); }
    if BLOCK > 5u { gemm_store(group, m0 + 5u, acc5, o, live); }
    if BLOCK > 6u { gemm_store(group, m0 + 6u, acc6, o, live); }
    if BLOCK > 7u { gemm_store(group, m0 + 7u, acc7, o, live); }
}

// ---------------------------------------------------------------------------------------
// Weight gradient: dw[co, ci, ky, kx] = sum over (n, oh, ow) of dy * x, a reduction per
// output element. Rows are output channels (dy loads are uniform); each invocation owns two
// columns, a column being four input channels (one packed vec4) at one tap (ky, kx). x is the
// packed, zero-padded image. Rows per invocation: WG_ROWS (1..=4).
// ---------------------------------------------------------------------------------------

override WG_ROWS: u32 = 4u;

struct WeightGradParams {
    images: u32,
    columns_per_group: u32,  // ceil(Cin/groups / 4) * KH * KW
    rows_per_group: u32,     // Cout/groups
    blocks_per_group: u32,
    kernel_area: u32,        // KH * KW
    kernel_w: u32,
    channels_per_group: u32, // Cin/groups
    x_image_stride: u32,     // vec4 units
    x_quad_stride: u32,
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
@group(0) @binding(2) var<storage, read> image: array<vec4<f32>>;
@group(0) @binding(5) var<storage, read_write> grad_weight: array<f32>;

fn weight_grad_base(u: u32, group: u32) -> u32 {
    let q4 = u / wgp.kernel_area;
    let kk = u - q4 * wgp.kernel_area;
    let ky = kk / wgp.kernel_w;
    let kx = kk - ky * wgp.kernel_w;
    return group * wgp.x_group_stride + q4 * wgp.x_quad_stride + ky * wgp.tap_row_step
        + kx * wgp.tap_col_step;
}

fn weight_grad_store(group: u32, m: u32, u: u32, acc: vec4<f32>) {
    if m >= wgp.rows_per_group || u >= wgp.columns_per_group {
        return;
    }
    let q4 = u / wgp.kernel_area;
    let kk = u - q4 * wgp.kernel_area;
    let row = (group * wgp.rows_per_group + m) * wgp.channels_per_group;
    for (var e = 0u; e < 4u; e++) {
        let ci = q4 * 4u + e;
        if ci < wgp.channels_per_group {
            grad_weight[(row + ci) * wgp.kernel_area + kk] = acc[e];
        }
    }
}

@compute @workgroup_size(WG)
fn weight_grad(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let first = wid.x * WG * 2u;
    if first >= wgp.columns_per_group {
        return;
    }
    let group = wid.y / wgp.blocks_per_group;
    let m0 = (wid.y % wgp.blocks_per_group) * WG_ROWS;
    let plane = wgp.out_rows * wgp.out_cols;
    let u0 = first + lid;
    let u1 = first + WG + lid;
    let last = wgp.columns_per_group - 1u;
    let xb0 = weight_grad_base(min(u0, last), group);
    let xb1 = weight_grad_base(min(u1, last), group);
    let rlast = wgp.rows_per_group - 1u;
    let d0 = (group * wgp.rows_per_group + min(m0, rlast)) * plane;
    let d1 = (group * wgp.rows_per_group + min(m0 + 1u, rlast)) * plane;
    let d2 = (group * wgp.rows_per_group + min(m0 + 2u, rlast)) * plane;
    let d3 = (group * wgp.rows_per_group + min(m0 + 3u, rlast)) * plane;

    var a00 = vec4<f32>(0.0);
    var a01 = vec4<f32>(0.0);
    var a10 = vec4<f32>(0.0);
    var a11 = vec4<f32>(0.0);
    var a20 = vec4<f32>(0.0);
    var a21 = vec4<f32>(0.0);
    var a30 = vec4<f32>(0.0);
    var a31 = vec4<f32>(0.0);
    for (var n = 0u; n < wgp.images; n++) {
        for (var oh = 0u; oh < wgp.out_rows; oh++) {
            var xo = n * wgp.x_image_stride + oh * wgp.x_row_step;
            var d = n * wgp.dy_image_stride + oh * wgp.out_cols;
            for (var ow = 0u; ow < wgp.out_cols; ow++) {
                let x0 = image[xb0 + xo];
                let x1 = image[xb1 + xo];
                let g0 = grad_out[d0 + d];
                a00 = fma(vec4<f32>(g0), x0, a00);
                a01 = fma(vec4<f32>(g0), x1, a01);
                if WG_ROWS > 1u {
                    let g1 = grad_out[d1 + d];
                    a10 = fma(vec4<f32>(g1), x0, a10);
                    a11 = fma(vec4<f32>(g1), x1, a11);
                }
                if WG_ROWS > 2u {
                    let g2 = grad_out[d2 + d];
                    a20 = fma(vec4<f32>(g2), x0, a20);
                    a21 = fma(vec4<f32>(g2), x1, a21);
                }
                if WG_ROWS > 3u {
                    let g3 = grad_out[d3 + d];
                    a30 = fma(vec4<f32>(g3), x0, a30);
                    a31 = fma(vec4<f32>(g3), x1, a31);
                }
                xo += wgp.x_col_step;
                d += 1u;
            }
        }
    }
    weight_grad_store(group, m0, u0, a00);
    weight_grad_store(group, m0, u1, a01);
    if WG_ROWS > 1u {
        weight_grad_store(group, m0 + 1u, u0, a10);
        weight_grad_store(group, m0 + 1u, u1, a11);
    }
    if WG_ROWS > 2u {
        weight_grad_store(group, m0 + 2u, u0, a20);
        weight_grad_store(group, m0 + 2u, u1, a21);
    }
    if WG_ROWS > 3u {
        weight_grad_store(group, m0 + 3u, u0, a30);
        weight_grad_store(group, m0 + 3u, u1, a31);
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

// Gradient of the depthwise convolution with respect to its input, as a gather: each dx
// element sums w·dy over the (output channel, ky, kx) whose window covers it. Stride and
// dilation are constants, so the divisibility tests fold and the loops unroll.
@compute @workgroup_size(WG)
fn depthwise_backward_input(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * WG;
    if i >= dp.items {
        return;
    }
    let ix = i % dp.in_cols;
    var rest = i / dp.in_cols;
    let iy = rest % dp.in_rows;
    rest = rest / dp.in_rows;
    let ci = rest % dp.channels_in;
    let n = rest / dp.channels_in;
    var acc = 0.0;
    for (var m = 0u; m < dp.multiplier; m++) {
        let co = ci * dp.multiplier + m;
        let dy_plane = (n * dp.channels_out + co) * dp.out_rows * dp.out_cols;
        for (var ky = 0u; ky < DW_KH; ky++) {
            let oy_scaled = i32(iy) + dp.pad_top - i32(ky * DW_DH);
            if oy_scaled < 0 || oy_scaled % i32(DW_SH) != 0 { continue; }
            let oy = u32(oy_scaled) / DW_SH;
            if oy >= dp.out_rows { continue; }
            for (var kx = 0u; kx < DW_KW; kx++) {
                let ox_scaled = i32(ix) + dp.pad_left - i32(kx * DW_DW);
                if ox_scaled < 0 || ox_scaled % i32(DW_SW) != 0 { continue; }
                let ox = u32(ox_scaled) / DW_SW;
                if ox >= dp.out_cols { continue; }
                acc = fma(dw_weight[(co * DW_KH + ky) * DW_KW + kx], dw_input[dy_plane + oy * dp.out_cols + ox], acc);
            }
        }
    }
    dw_out[i] = acc;
}

// The same with aligned vec4 loads and stores, for rows whose input and output widths are
// multiples of 4; DW_BLOCK is 8, two vec4 accumulators (CPU compilers keep arrays that are
// indexed in loops in memory, so accumulators are named vectors): a block's segment starts DW_SHIFT columns
// into an aligned vec4, and a vec4 lies wholly inside the row or wholly in the padding.
override DW_SHIFT: u32 = 0u;     // 4 * ceil(pad_left / 4) - pad_left
override DW_PAD_QUADS: u32 = 0u; // ceil(pad_left / 4)
const DW_MAX_QUADS: u32 = 16u;

@group(0) @binding(7) var<storage, read> dw_input4: array<vec4<f32>>;
@group(0) @binding(8) var<storage, read_write> dw_out4: array<vec4<f32>>;

@compute @workgroup_size(WG)
fn depthwise_vec4(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
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
    let row_quads = dp.in_cols / 4u;
    let plane = (n * dp.channels_in + ci) * dp.in_rows * row_quads;
    let ow0 = block * DW_BLOCK;
    let quad0 = i32(ow0 * DW_SW / 4u) - i32(DW_PAD_QUADS);
    let seg_len = (DW_BLOCK - 1u) * DW_SW + (DW_KW - 1u) * DW_DW + 1u;
    let quads = (DW_SHIFT + seg_len + 3u) / 4u;
    let w0 = co * DW_KH * DW_KW;

    var acc_lo = vec4<f32>(0.0);
    var acc_hi = vec4<f32>(0.0);
    for (var ky = 0u; ky < DW_KH; ky++) {
        let row = i32(oh * DW_SH + ky * DW_DH) - dp.pad_top;
        let row_ok = row >= 0 && row < i32(dp.in_rows);
        let row_base = i32(plane) + row * i32(row_quads);
        var seg: array<vec4<f32>, DW_MAX_QUADS>;
        for (var t = 0u; t < quads; t++) {
            let q = quad0 + i32(t);
            let ok = row_ok && q >= 0 && q < i32(row_quads);
            seg[t] = select(vec4<f32>(0.0), dw_input4[u32(select(0, row_base + q, ok))], ok);
        }
        for (var kx = 0u; kx < DW_KW; kx++) {
            let wv = vec4<f32>(dw_weight[w0 + ky * DW_KW + kx]);
            let c = DW_SHIFT + kx * DW_DW;
            acc_lo = fma(wv, pick4(seg, c), acc_lo);
            acc_hi = fma(wv, pick4(seg, c + 4u * DW_SW), acc_hi);
        }
    }
    var shift = 0.0;
    if dp.has_bias != 0u {
        shift = dw_bias[co];
    }
    let out_row = (((n * dp.channels_out + co) * dp.out_rows + oh) * dp.out_cols + ow0) / 4u;
    dw_out4[out_row] = acc_lo + shift;
    if ow0 + 4u < dp.out_cols {
        dw_out4[out_row + 1u] = acc_hi + shift;
    }
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
// Packing. pack_planes turns [N, C, H, W] into [N, groups, ceil(C/groups/4), rows, cols]
// vec4s of four channels, shifted by (row_offset, col_offset) and zero outside the input
// (padding, or cropping when an offset is positive). pack_weights turns a weight tensor into
// [groups * rows][tap][ceil(reduction/4)] vec4s, reduction channels past the end being zero.
// ---------------------------------------------------------------------------------------

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
            v[e] = pack_in[(channel0 + e) * plane + pixel];
        }
    }
    pack_out[i] = v;
}

struct PackWeightParams {
    items: u32,
    rows_per_group: u32,
    taps: u32,               // KH * KW
    reduction: u32,          // reduction channels per group
    quads: u32,
    group_stride: u32,       // source strides in scalars
    row_stride: u32,
    reduction_stride: u32,
}

@group(0) @binding(0) var<uniform> pw: PackWeightParams;

@compute @workgroup_size(WG)
fn pack_weights(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * WG;
    if i >= pw.items {
        return;
    }
    let q4 = i % pw.quads;
    let tap = (i / pw.quads) % pw.taps;
    let row = i / (pw.quads * pw.taps);
    let group = row / pw.rows_per_group;
    let r = row % pw.rows_per_group;
    let base = group * pw.group_stride + r * pw.row_stride + tap;
    var v = vec4<f32>(0.0);
    for (var e = 0u; e < 4u; e++) {
        let q = q4 * 4u + e;
        if q < pw.reduction {
            v[e] = pack_in[base + q * pw.reduction_stride];
        }
    }
    pack_out[i] = v;
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
