//! CPU reference for the convolution family, in f64, written as the plain definitions
//! (direct loops, scatter for the transposed convolution) so it shares no index algebra
//! with the GPU kernels.

use super::{Activation, Conv2dOptions, ConvGeometry};

/// The activation's definition.
pub fn activate(activation: Activation, v: f64) -> f64 {
    match activation {
        Activation::None => v,
        Activation::Relu => v.max(0.0),
        Activation::Relu6 => v.clamp(0.0, 6.0),
    }
}

/// Forward convolution of `act(x)`, `act` the options' input activation; `x: [N, Cin, H, W]`,
/// `w: [Cout, Cin/groups, KH, KW]`. Returns the output shape and values.
pub fn conv2d(
    x: &[f64],
    x_shape: &[usize],
    w: &[f64],
    w_shape: &[usize],
    bias: Option<&[f64]>,
    opts: &Conv2dOptions,
) -> ([usize; 4], Vec<f64>) {
    let g = ConvGeometry::new(x_shape, w_shape, opts).expect("valid convolution shapes");
    let [n, cin, h, wd] = g.input_shape();
    let [cout, cin_g, kh, kw] = g.weight_shape();
    let (oh, ow) = (g.out_h, g.out_w);
    let cout_g = g.out_per_group();
    let mut out = vec![0.0; n * cout * oh * ow];
    for b in 0..n {
        for co in 0..cout {
            let group = co / cout_g;
            for y in 0..oh {
                for xo in 0..ow {
                    let mut sum = bias.map_or(0.0, |bv| bv[co]);
                    for ci in 0..cin_g {
                        let c = group * cin_g + ci;
                        for ky in 0..kh {
                            let ih =
                                (y * opts.stride[0] + ky * opts.dilation[0]) as i64 - opts.padding.top as i64;
                            if ih < 0 || ih >= h as i64 {
                                continue;
                            }
                            for kx in 0..kw {
                                let iw = (xo * opts.stride[1] + kx * opts.dilation[1]) as i64
                                    - opts.padding.left as i64;
                                if iw < 0 || iw >= wd as i64 {
                                    continue;
                                }
                                sum += activate(
                                    opts.input_activation,
                                    x[((b * cin + c) * h + ih as usize) * wd + iw as usize],
                                ) * w[((co * cin_g + ci) * kh + ky) * kw + kx];
                            }
                        }
                    }
                    out[((b * cout + co) * oh + y) * ow + xo] = sum;
                }
            }
        }
    }
    (g.output_shape(), out)
}

/// PyTorch's `conv_transpose2d` (groups = 1) by scattering every input pixel through the
/// kernel; `w: [Cin, Cout, KH, KW]`.
#[allow(clippy::too_many_arguments)]
pub fn conv_transpose2d(
    x: &[f64],
    x_shape: &[usize],
    w: &[f64],
    w_shape: &[usize],
    bias: Option<&[f64]>,
    stride: [usize; 2],
    padding: [usize; 2],
    output_padding: [usize; 2],
    dilation: [usize; 2],
) -> ([usize; 4], Vec<f64>) {
    let shape =
        super::conv_transpose2d_output_shape(x_shape, w_shape, stride, padding, output_padding, dilation)
            .expect("valid transposed convolution shapes");
    let [n, cin, h, wd] = [x_shape[0], x_shape[1], x_shape[2], x_shape[3]];
    let [_, cout, kh, kw] = [w_shape[0], w_shape[1], w_shape[2], w_shape[3]];
    let [_, _, oh, ow] = shape;
    let mut out = vec![0.0; n * cout * oh * ow];
    for b in 0..n {
        for co in 0..cout {
            let base = bias.map_or(0.0, |bv| bv[co]);
            out[(b * cout + co) * oh * ow..(b * cout + co + 1) * oh * ow].fill(base);
        }
        for ci in 0..cin {
            for iy in 0..h {
                for ix in 0..wd {
                    let v = x[((b * cin + ci) * h + iy) * wd + ix];
                    for co in 0..cout {
                        for ky in 0..kh {
                            let y = (iy * stride[0] + ky * dilation[0]) as i64 - padding[0] as i64;
                            if y < 0 || y >= oh as i64 {
                                continue;
                            }
                            for kx in 0..kw {
                                let xo = (ix * stride[1] + kx * dilation[1]) as i64 - padding[1] as i64;
                                if xo < 0 || xo >= ow as i64 {
                                    continue;
                                }
                                out[((b * cout + co) * oh + y as usize) * ow + xo as usize] +=
                                    v * w[((ci * cout + co) * kh + ky) * kw + kx];
                            }
                        }
                    }
                }
            }
        }
    }
    (shape, out)
}
