// Depthwise convolution, NCHW f32: forward (scalar and vec4) and input gradient.

override WG: u32 = 64u;

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
}

@group(0) @binding(0) var<uniform> dp: DepthwiseParams;
@group(0) @binding(1) var<storage, read> dw_weight: array<f32>;
@group(0) @binding(2) var<storage, read> dw_input: array<f32>;
@group(0) @binding(4) var<storage, read> dw_bias: array<f32>;
@group(0) @binding(5) var<storage, read_write> dw_out: array<f32>;

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

// Each forward kernel has an entry point with a bias and one without, which binds none.
@compute @workgroup_size(WG)
fn depthwise(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * WG;
    if i < dp.items {
        depthwise_block(i, 0.0);
    }
}

@compute @workgroup_size(WG)
fn depthwise_bias(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * WG;
    if i < dp.items {
        depthwise_block(i, dw_bias[forward_site(i).co]);
    }
}

fn depthwise_block(i: u32, shift: f32) {
    let site = forward_site(i);
    let ci = site.co / dp.multiplier;
    let plane = (site.n * dp.channels_in + ci) * dp.in_rows * dp.in_cols;
    let ow0 = site.block * DW_BLOCK;
    let col0 = i32(ow0 * DW_SW) - dp.pad_left;
    let seg_len = (DW_BLOCK - 1u) * DW_SW + (DW_KW - 1u) * DW_DW + 1u;
    let w0 = site.co * DW_KH * DW_KW;

    var acc: array<f32, DW_MAX_BLOCK>;
    for (var j = 0u; j < DW_MAX_BLOCK; j++) {
        acc[j] = 0.0;
    }
    for (var ky = 0u; ky < DW_KH; ky++) {
        let row = i32(site.oh * DW_SH + ky * DW_DH) - dp.pad_top;
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
    let out_row = ((site.n * dp.channels_out + site.co) * dp.out_rows + site.oh) * dp.out_cols;
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
    if i < dp.items {
        depthwise_vec4_block(i, 0.0);
    }
}

@compute @workgroup_size(WG)
fn depthwise_vec4_bias(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * WG;
    if i < dp.items {
        depthwise_vec4_block(i, dw_bias[forward_site(i).co]);
    }
}

fn depthwise_vec4_block(i: u32, shift: f32) {
    let site = forward_site(i);
    let ci = site.co / dp.multiplier;
    let row_quads = dp.in_cols / 4u;
    let plane = (site.n * dp.channels_in + ci) * dp.in_rows * row_quads;
    let ow0 = site.block * DW_BLOCK;
    let quad0 = i32(ow0 * DW_SW / 4u) - i32(DW_PAD_QUADS);
    let seg_len = (DW_BLOCK - 1u) * DW_SW + (DW_KW - 1u) * DW_DW + 1u;
    let quads = (DW_SHIFT + seg_len + 3u) / 4u;
    let w0 = site.co * DW_KH * DW_KW;

    var acc_lo = vec4<f32>(0.0);
    var acc_hi = vec4<f32>(0.0);
    for (var ky = 0u; ky < DW_KH; ky++) {
        let row = i32(site.oh * DW_SH + ky * DW_DH) - dp.pad_top;
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
    let out_row = (((site.n * dp.channels_out + site.co) * dp.out_rows + site.oh) * dp.out_cols + ow0) / 4u;
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
