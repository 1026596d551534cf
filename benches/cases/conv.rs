//! Convolutions at ResNet-50 and EfficientNet-Lite0 shapes, batch 8: forward and backward to
//! the input. Validated on sampled outputs against the f64 reference.

use fido::ops::conv::{self, reference, Conv2dOptions, Padding};
use fido::Tensor;

use super::{check_close, pseudo_random, to_f64};
use crate::Bench;

struct Shape {
    name: &'static str,
    cin: usize,
    cout: usize,
    size: usize,
    k: usize,
    stride: usize,
    groups: usize,
}

const SHAPES: &[Shape] = &[
    Shape {
        name: "resnet50 7x7 s2 3->64 @224",
        cin: 3,
        cout: 64,
        size: 224,
        k: 7,
        stride: 2,
        groups: 1,
    },
    Shape {
        name: "resnet50 1x1 256->64 @56",
        cin: 256,
        cout: 64,
        size: 56,
        k: 1,
        stride: 1,
        groups: 1,
    },
    Shape {
        name: "resnet50 3x3 64->64 @56",
        cin: 64,
        cout: 64,
        size: 56,
        k: 3,
        stride: 1,
        groups: 1,
    },
    Shape {
        name: "resnet50 3x3 s2 128->128 @56",
        cin: 128,
        cout: 128,
        size: 56,
        k: 3,
        stride: 2,
        groups: 1,
    },
    Shape {
        name: "resnet50 1x1 1024->256 @14",
        cin: 1024,
        cout: 256,
        size: 14,
        k: 1,
        stride: 1,
        groups: 1,
    },
    Shape {
        name: "lite0 dw 3x3 32 @112",
        cin: 32,
        cout: 32,
        size: 112,
        k: 3,
        stride: 1,
        groups: 32,
    },
    Shape {
        name: "lite0 dw 3x3 s2 96 @112",
        cin: 96,
        cout: 96,
        size: 112,
        k: 3,
        stride: 2,
        groups: 96,
    },
    Shape {
        name: "lite0 dw 5x5 s2 144 @56",
        cin: 144,
        cout: 144,
        size: 56,
        k: 5,
        stride: 2,
        groups: 144,
    },
    Shape {
        name: "lite0 dw 5x5 672 @14",
        cin: 672,
        cout: 672,
        size: 14,
        k: 5,
        stride: 1,
        groups: 672,
    },
    Shape {
        name: "lite0 dw 3x3 480 @14",
        cin: 480,
        cout: 480,
        size: 14,
        k: 3,
        stride: 1,
        groups: 480,
    },
];

pub fn run(bench: &mut Bench) {
    let batch = 8;
    for s in SHAPES {
        let fwd = format!("conv {} b8 fwd", s.name);
        let bwd = format!("conv {} b8 bwd-input", s.name);
        if !bench.wants(&fwd) && !bench.wants(&bwd) {
            continue;
        }
        let gpu = bench.gpu.clone();
        let opts = Conv2dOptions::new()
            .stride(s.stride, s.stride)
            .padding(Padding::symmetric(s.k / 2, s.k / 2))
            .groups(s.groups);
        let x_shape = [batch, s.cin, s.size, s.size];
        let w_shape = [s.cout, s.cin / s.groups, s.k, s.k];
        let x_host = pseudo_random(x_shape.iter().product(), 21);
        let w_host = pseudo_random(w_shape.iter().product(), 22);
        let x = Tensor::from_slice(&gpu, &x_shape, &x_host).unwrap();
        let w = Tensor::from_slice(&gpu, &w_shape, &w_host).unwrap();
        let cost = conv::conv2d_cost(&x_shape, &w_shape, &opts).unwrap();
        let out_shape = conv::conv2d_output_shape(&x_shape, &w_shape, &opts).unwrap();
        // Validate on the first image only: the reference is a direct f64 loop.
        let x1 = to_f64(&x_host[..s.cin * s.size * s.size]);
        let (_, want) = reference::conv2d(
            &x1,
            &[1, s.cin, s.size, s.size],
            &to_f64(&w_host),
            &w_shape,
            None,
            &opts,
        );
        let opts_f = opts;
        bench.case(
            &fwd,
            cost,
            |_| {
                let got = conv::conv2d(&x, &w, None, &opts_f)
                    .and_then(|t| t.to_vec())
                    .map_err(|e| e.to_string())?;
                let step = (want.len() / 500).max(1);
                check_close(
                    &fwd,
                    (0..want.len()).step_by(step).map(|i| (got[i], want[i])),
                    1e-4,
                    1e-4,
                )
            },
            |_| conv::conv2d(&x, &w, None, &opts_f).map(drop),
        );
        let dy_host = pseudo_random(out_shape.iter().product(), 23);
        let dy = Tensor::from_slice(&gpu, &out_shape, &dy_host).unwrap();
        bench.case(
            &bwd,
            cost,
            |_| {
                let got = conv::conv2d_backward_input(&dy, &w, &opts_f, &x_shape)
                    .and_then(|t| t.to_vec())
                    .map_err(|e| e.to_string())?;
                // Check sampled input positions of image 0 by the definition: dx = Σ w·dy.
                let plane = s.size * s.size;
                let [_, _, oh, ow] = out_shape;
                let samples = (0..200).map(|j| (j * 7919) % (s.cin * plane));
                check_close(
                    &bwd,
                    samples.map(|idx| {
                        let (ci, p) = (idx / plane, idx % plane);
                        let (iy, ix) = (p / s.size, p % s.size);
                        let (cin_g, cout_g) = (s.cin / s.groups, s.cout / s.groups);
                        let g = ci / cin_g;
                        let mut acc = 0.0f64;
                        for co in g * cout_g..(g + 1) * cout_g {
                            for ky in 0..s.k {
                                for kx in 0..s.k {
                                    let (ny, nx) = (iy + s.k / 2, ix + s.k / 2);
                                    if ny < ky
                                        || nx < kx
                                        || (ny - ky) % s.stride != 0
                                        || (nx - kx) % s.stride != 0
                                    {
                                        continue;
                                    }
                                    let (oy, ox) = ((ny - ky) / s.stride, (nx - kx) / s.stride);
                                    if oy >= oh || ox >= ow {
                                        continue;
                                    }
                                    let wv = w_host[((co * cin_g + ci % cin_g) * s.k + ky) * s.k + kx] as f64;
                                    acc += wv * dy_host[(co * oh + oy) * ow + ox] as f64;
                                }
                            }
                        }
                        (got[idx], acc)
                    }),
                    1e-4,
                    1e-4,
                )
            },
            |_| conv::conv2d_backward_input(&dy, &w, &opts_f, &x_shape).map(drop),
        );
    }
}
