// Convolution weight gradient, NCHW f32, over an image packed by conv_pack_planes.wgsl.

override WG: u32 = 64u;

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
