mod common;

use common::{activation_input, assert_close, fd_scalar, for_each_profile, rand_tensor, to_f64, Rng};
use fido::gpu::pipelines::{parse_and_validate, reflect_entry};
use fido::ops::conv::{self, reference, Activation, Conv2dOptions, Padding};
use fido::{Gpu, Tensor};

// Forward tolerance: f32 products summed over at most a few hundred terms of size ≤ 1 give
// absolute errors of order 1e-6; 2e-5 leaves room without hiding an indexing bug (those
// produce errors of order 0.1).
const ATOL: f64 = 2e-5;
const RTOL: f64 = 1e-4;

/// Run conv2d on the GPU and compare with the reference.
fn check_forward(
    gpu: &Gpu,
    rng: &mut Rng,
    x_shape: &[usize],
    w_shape: &[usize],
    with_bias: bool,
    opts: &Conv2dOptions,
) {
    let (x, xv) = if opts.input_activation == Activation::None {
        rand_tensor(gpu, rng, x_shape)
    } else {
        activation_input(gpu, rng, x_shape)
    };
    let (w, wv) = rand_tensor(gpu, rng, w_shape);
    let (b, bv) = rand_tensor(gpu, rng, &[w_shape[0]]);
    let bias = with_bias.then_some(&b);
    let y = conv::conv2d(&x, &w, bias, opts).unwrap();
    let bias64 = to_f64(&bv);
    let (shape, want) = reference::conv2d(
        &to_f64(&xv),
        x_shape,
        &to_f64(&wv),
        w_shape,
        with_bias.then_some(&bias64[..]),
        opts,
    );
    assert_eq!(y.shape(), &shape[..], "{x_shape:?} * {w_shape:?} {opts:?}");
    // Activated inputs reach 6 rather than 1.
    let atol = if opts.input_activation == Activation::None {
        ATOL
    } else {
        6.0 * ATOL
    };
    assert_close(
        &format!("conv2d {x_shape:?} * {w_shape:?} bias={with_bias} {opts:?}"),
        &y.to_vec().unwrap(),
        &want,
        atol,
        RTOL,
    );
}

#[test]
fn every_entry_point_of_the_convolution_kernels_reflects_with_naga() {
    use conv::{bias_grad, depthwise, gemm, pack_planes, pack_weights, weight_grad};
    let families: [(fido::gpu::Kernel, &[&str]); 6] = [
        (
            gemm::KERNEL,
            &[
                "gemm",
                "gemm_bias",
                "gemm_masked",
                "gemm_tiled",
                "gemm_tiled_bias",
                "gemm_tiled_masked",
            ],
        ),
        (weight_grad::KERNEL, &["weight_grad"]),
        (bias_grad::KERNEL, &["bias_grad"]),
        (
            depthwise::KERNEL,
            &[
                "depthwise",
                "depthwise_bias",
                "depthwise_masked",
                "depthwise_vec4",
                "depthwise_vec4_bias",
                "depthwise_vec4_masked",
                "depthwise_tiled",
                "depthwise_tiled_bias",
                "depthwise_tiled_masked",
            ],
        ),
        (pack_planes::KERNEL, &["pack_planes"]),
        (pack_weights::KERNEL, &["pack_weights"]),
    ];
    for (kernel, entries) in families {
        let (module, info) = parse_and_validate(kernel.name, kernel.source).unwrap();
        assert_eq!(
            module.entry_points.len(),
            entries.len(),
            "{}: every entry point is listed",
            kernel.name
        );
        for entry in entries {
            let r = reflect_entry(&module, &info, entry, &[]).unwrap();
            assert!(r.workgroup_bytes <= 16 * 1024, "{entry} workgroup storage");
            // The entry points without a bias bind none.
            let binds_bias = r.bindings.iter().any(|b| b.name.ends_with("bias"));
            assert_eq!(binds_bias, entry.ends_with("_bias"), "{}::{entry}", kernel.name);
        }
    }
}

#[test]
fn forward_matches_reference_across_strides_groups_and_bias() {
    for_each_profile(|gpu| {
        let mut rng = Rng::new(11);
        let sym = |s: usize, p: usize| {
            Conv2dOptions::new()
                .stride(s, s)
                .padding(Padding::symmetric(p, p))
        };
        // Stride 2 on odd sizes, batch > 1, Cout not a multiple of the row block.
        check_forward(&gpu, &mut rng, &[2, 3, 9, 11], &[5, 3, 3, 3], true, &sym(2, 1));
        check_forward(&gpu, &mut rng, &[2, 3, 9, 11], &[13, 3, 3, 3], false, &sym(1, 1));
        // Enough pixels and channels for several workgroups along both grid axes.
        check_forward(
            &gpu,
            &mut rng,
            &[2, 16, 19, 21],
            &[24, 16, 3, 3],
            true,
            &sym(1, 1),
        );
        // 1x1, with and without stride.
        check_forward(&gpu, &mut rng, &[3, 16, 5, 7], &[9, 16, 1, 1], true, &sym(1, 0));
        check_forward(&gpu, &mut rng, &[3, 16, 5, 7], &[9, 16, 1, 1], false, &sym(2, 0));
        // 7x7 stride 2 pad 3 (ResNet stem).
        check_forward(&gpu, &mut rng, &[1, 3, 17, 19], &[10, 3, 7, 7], false, &sym(2, 3));
        // Length-1 axes.
        check_forward(&gpu, &mut rng, &[1, 1, 1, 1], &[1, 1, 1, 1], true, &sym(1, 0));
        check_forward(&gpu, &mut rng, &[1, 2, 1, 5], &[3, 2, 1, 3], true, &sym(1, 0));
        // Non-square kernel and stride.
        check_forward(
            &gpu,
            &mut rng,
            &[2, 3, 10, 9],
            &[4, 3, 2, 3],
            true,
            &Conv2dOptions::new()
                .stride(2, 1)
                .padding(Padding::symmetric(1, 0)),
        );
    });
}

#[test]
fn grouped_and_depthwise_forward() {
    for_each_profile(|gpu| {
        let mut rng = Rng::new(12);
        let opts = |s: usize, p: usize, g: usize| {
            Conv2dOptions::new()
                .stride(s, s)
                .padding(Padding::symmetric(p, p))
                .groups(g)
        };
        // groups = 2 with Cin = 4.
        check_forward(&gpu, &mut rng, &[2, 4, 7, 9], &[6, 2, 3, 3], true, &opts(1, 1, 2));
        check_forward(
            &gpu,
            &mut rng,
            &[2, 4, 7, 9],
            &[4, 2, 3, 3],
            false,
            &opts(2, 1, 2),
        );
        // Depthwise 3x3 and 5x5 stride 2, with a channel multiplier of 1 and 2.
        check_forward(
            &gpu,
            &mut rng,
            &[2, 8, 13, 11],
            &[8, 1, 3, 3],
            true,
            &opts(1, 1, 8),
        );
        check_forward(
            &gpu,
            &mut rng,
            &[2, 6, 14, 15],
            &[6, 1, 5, 5],
            false,
            &opts(2, 2, 6),
        );
        check_forward(
            &gpu,
            &mut rng,
            &[1, 5, 9, 7],
            &[10, 1, 3, 3],
            true,
            &opts(1, 1, 5),
        );
        // Widths that are multiples of 4 take the aligned vec4 kernel: block tails, left padding
        // of 1, 2 and 5 (shifts within the first vec4), stride 2, dilation and a multiplier.
        check_forward(
            &gpu,
            &mut rng,
            &[2, 8, 6, 16],
            &[8, 1, 3, 3],
            true,
            &opts(1, 1, 8),
        );
        check_forward(
            &gpu,
            &mut rng,
            &[1, 6, 12, 24],
            &[6, 1, 5, 5],
            true,
            &opts(2, 2, 6),
        );
        check_forward(
            &gpu,
            &mut rng,
            &[1, 3, 5, 12],
            &[6, 1, 3, 3],
            false,
            &opts(1, 1, 3),
        );
        check_forward(&gpu, &mut rng, &[1, 2, 9, 4], &[2, 1, 3, 3], true, &opts(1, 1, 2));
        let wide_pad = Conv2dOptions::new()
            .padding(Padding {
                top: 1,
                bottom: 0,
                left: 5,
                right: 3,
            })
            .dilation(2, 2)
            .groups(4);
        check_forward(&gpu, &mut rng, &[2, 4, 7, 8], &[4, 1, 3, 5], true, &wide_pad);
        // One input channel, groups = 1, is the depthwise case with multiplier Cout.
        check_forward(&gpu, &mut rng, &[2, 1, 6, 7], &[3, 1, 3, 3], true, &opts(1, 0, 1));
    });
}

#[test]
fn dilated_forward_up_to_16() {
    for_each_profile(|gpu| {
        let mut rng = Rng::new(13);
        for d in [2usize, 4, 8, 16] {
            let dense = Conv2dOptions::new()
                .dilation(d, d)
                .padding(Padding::symmetric(d, d));
            check_forward(&gpu, &mut rng, &[2, 3, 5, 6], &[4, 3, 3, 3], true, &dense);
            let strided = dense.stride(2, 2);
            check_forward(&gpu, &mut rng, &[1, 3, 7, 5], &[4, 3, 3, 3], false, &strided);
            let depthwise = dense.groups(3);
            check_forward(&gpu, &mut rng, &[2, 3, 5, 6], &[3, 1, 3, 3], true, &depthwise);
            // 5-wide depthwise with dilation 16 is past the register segment: the GEMM fallback.
            let wide = Conv2dOptions::new()
                .dilation(d, d)
                .padding(Padding::symmetric(2 * d, 2 * d))
                .groups(3);
            check_forward(&gpu, &mut rng, &[1, 3, 4, 5], &[3, 1, 5, 5], true, &wide);
        }
    });
}

#[test]
fn asymmetric_and_tf_same_padding() {
    for_each_profile(|gpu| {
        let mut rng = Rng::new(14);
        let pad = Padding {
            top: 0,
            bottom: 2,
            left: 1,
            right: 0,
        };
        check_forward(
            &gpu,
            &mut rng,
            &[2, 3, 7, 8],
            &[5, 3, 3, 3],
            true,
            &Conv2dOptions::new().padding(pad),
        );
        check_forward(
            &gpu,
            &mut rng,
            &[2, 4, 7, 8],
            &[4, 1, 3, 3],
            false,
            &Conv2dOptions::new().padding(pad).groups(4),
        );
        // TF 'SAME', stride 2 on an even size: the extra row and column go after.
        let same = Padding::tf_same(8, 8, 3, 3, [2, 2], [1, 1]);
        assert_eq!((same.top, same.bottom, same.left, same.right), (0, 1, 0, 1));
        let opts = Conv2dOptions::new().stride(2, 2).padding(same);
        assert_eq!(
            conv::conv2d_output_shape(&[2, 4, 8, 8], &[6, 4, 3, 3], &opts).unwrap(),
            [2, 6, 4, 4]
        );
        check_forward(&gpu, &mut rng, &[2, 4, 8, 8], &[6, 4, 3, 3], true, &opts);
        check_forward(
            &gpu,
            &mut rng,
            &[2, 4, 8, 8],
            &[4, 1, 3, 3],
            true,
            &opts.groups(4),
        );
        // Odd size and 5x5 stride 2: ceil(n / s) outputs.
        for (n, k) in [(9usize, 5usize), (7, 3), (10, 5), (5, 1)] {
            let p = Padding::tf_same(n, n, k, k, [2, 2], [1, 1]);
            let opts = Conv2dOptions::new().stride(2, 2).padding(p);
            let shape = conv::conv2d_output_shape(&[1, 2, n, n], &[3, 2, k, k], &opts).unwrap();
            assert_eq!(shape[2], n.div_ceil(2), "tf_same n={n} k={k}");
            check_forward(&gpu, &mut rng, &[1, 2, n, n], &[3, 2, k, k], true, &opts);
        }
    });
}

// ------------------------------------------------------------------------------------------
// Gradients, checked by central finite differences of L = sum(conv_ref(x, w, b) * R).
// ------------------------------------------------------------------------------------------

/// Central differences with eps 1e-3 (f64, so eps is not a precision issue; L is linear in
/// each argument, so the estimate is exact up to rounding).
fn finite_difference(f: impl Fn(&[f64]) -> f64, at: &[f64]) -> Vec<f64> {
    fd_scalar(f, at, 1e-3)
}

fn check_gradients(gpu: &Gpu, rng: &mut Rng, x_shape: &[usize], w_shape: &[usize], opts: &Conv2dOptions) {
    let (x, xv) = if opts.input_activation == Activation::None {
        rand_tensor(gpu, rng, x_shape)
    } else {
        activation_input(gpu, rng, x_shape)
    };
    let (w, wv) = rand_tensor(gpu, rng, w_shape);
    let bv = rng.vec(w_shape[0], -1.0, 1.0);
    let y_shape = conv::conv2d_output_shape(x_shape, w_shape, opts).unwrap();
    let (dy, rv) = rand_tensor(gpu, rng, &y_shape);
    let (x64, w64, b64, r64) = (to_f64(&xv), to_f64(&wv), to_f64(&bv), to_f64(&rv));
    let loss = |x: &[f64], w: &[f64], b: &[f64]| -> f64 {
        let (_, y) = reference::conv2d(x, x_shape, w, w_shape, Some(b), opts);
        y.iter().zip(&r64).map(|(a, r)| a * r).sum()
    };
    let what = format!("{x_shape:?} * {w_shape:?} {opts:?}");
    // Gradients are sums of up to a few hundred f32 products: rtol 1e-3 plus atol 1e-4.
    let dx = if opts.input_activation == Activation::None {
        conv::conv2d_backward_input(&dy, &w, opts, x_shape).unwrap()
    } else {
        conv::conv2d_backward_input_activated(&dy, &w, opts, &x).unwrap()
    };
    assert_eq!(dx.shape(), x_shape);
    let want = finite_difference(|p| loss(p, &w64, &b64), &x64);
    assert_close(&format!("dx {what}"), &dx.to_vec().unwrap(), &want, 1e-4, 1e-3);

    let dw = conv::conv2d_backward_weight(&x, &dy, opts, w_shape).unwrap();
    assert_eq!(dw.shape(), w_shape);
    let want = finite_difference(|p| loss(&x64, p, &b64), &w64);
    assert_close(&format!("dw {what}"), &dw.to_vec().unwrap(), &want, 1e-4, 1e-3);

    let db = conv::conv2d_backward_bias(&dy).unwrap();
    assert_eq!(db.shape(), &[w_shape[0]]);
    let want = finite_difference(|p| loss(&x64, &w64, p), &b64);
    assert_close(&format!("db {what}"), &db.to_vec().unwrap(), &want, 1e-4, 1e-3);
}

#[test]
fn gradients_match_finite_differences_dense() {
    for_each_profile(|gpu| {
        let mut rng = Rng::new(21);
        let sym = |s: usize, p: usize| {
            Conv2dOptions::new()
                .stride(s, s)
                .padding(Padding::symmetric(p, p))
        };
        check_gradients(&gpu, &mut rng, &[2, 3, 6, 7], &[4, 3, 3, 3], &sym(1, 1));
        // Stride 2 on odd sizes: dx pixels fall into four phases with different tap sets.
        check_gradients(&gpu, &mut rng, &[2, 3, 7, 9], &[5, 3, 3, 3], &sym(2, 1));
        // 1x1 stride 2: odd dx pixels receive nothing.
        check_gradients(&gpu, &mut rng, &[1, 4, 5, 6], &[3, 4, 1, 1], &sym(2, 0));
        // Stride 3 with a 2x2 kernel, no padding: trailing rows are never read.
        check_gradients(&gpu, &mut rng, &[1, 2, 8, 7], &[3, 2, 2, 2], &sym(3, 0));
        // Dilation, with and without stride.
        check_gradients(
            &gpu,
            &mut rng,
            &[1, 2, 7, 6],
            &[3, 2, 3, 3],
            &Conv2dOptions::new()
                .dilation(2, 2)
                .padding(Padding::symmetric(2, 2)),
        );
        check_gradients(
            &gpu,
            &mut rng,
            &[1, 2, 9, 8],
            &[3, 2, 3, 2],
            &Conv2dOptions::new()
                .dilation(2, 3)
                .stride(2, 2)
                .padding(Padding::symmetric(1, 2)),
        );
        // Asymmetric padding, including TF 'SAME' stride 2 on an even size.
        let pad = Padding {
            top: 2,
            bottom: 0,
            left: 0,
            right: 1,
        };
        check_gradients(
            &gpu,
            &mut rng,
            &[2, 2, 5, 6],
            &[3, 2, 3, 3],
            &Conv2dOptions::new().padding(pad),
        );
        let same = Padding::tf_same(8, 6, 3, 3, [2, 2], [1, 1]);
        check_gradients(
            &gpu,
            &mut rng,
            &[1, 3, 8, 6],
            &[2, 3, 3, 3],
            &Conv2dOptions::new().stride(2, 2).padding(same),
        );
        // Padding larger than the kernel reach: some dy pixels see only padding.
        check_gradients(&gpu, &mut rng, &[1, 2, 3, 4], &[2, 2, 2, 2], &sym(1, 3));
    });
}

#[test]
fn gradients_match_finite_differences_grouped_and_depthwise() {
    for_each_profile(|gpu| {
        let mut rng = Rng::new(22);
        let opts = |s: usize, p: usize, g: usize| {
            Conv2dOptions::new()
                .stride(s, s)
                .padding(Padding::symmetric(p, p))
                .groups(g)
        };
        check_gradients(&gpu, &mut rng, &[2, 4, 5, 6], &[6, 2, 3, 3], &opts(1, 1, 2));
        check_gradients(&gpu, &mut rng, &[1, 4, 7, 7], &[4, 2, 3, 3], &opts(2, 1, 2));
        check_gradients(&gpu, &mut rng, &[2, 3, 6, 5], &[3, 1, 3, 3], &opts(1, 1, 3));
        check_gradients(&gpu, &mut rng, &[1, 3, 9, 8], &[6, 1, 5, 5], &opts(2, 2, 3));
        check_gradients(
            &gpu,
            &mut rng,
            &[1, 2, 6, 7],
            &[2, 1, 3, 3],
            &Conv2dOptions::new()
                .dilation(2, 2)
                .padding(Padding {
                    top: 1,
                    bottom: 3,
                    left: 2,
                    right: 0,
                })
                .groups(2),
        );
    });
}

/// The depthwise input gradient runs the forward kernel on dy with flipped taps: each form
/// it can take (scalar and vec4 rows, dy spread by a stride, cropping where the padding
/// exceeds the kernel's reach, a channel multiplier summed per dx channel, dilation) and the
/// GEMM fallback past the register segment.
#[test]
fn depthwise_input_gradient_forms_match_finite_differences() {
    for_each_profile(|gpu| {
        let mut rng = Rng::new(23);
        let dw = |s: usize, p: Padding, g: usize| Conv2dOptions::new().stride(s, s).padding(p).groups(g);
        let sym = Padding::symmetric;
        // Widths 8 → 8: vec4 rows; with a multiplier of 2 and of 3.
        check_gradients(&gpu, &mut rng, &[2, 3, 5, 8], &[3, 1, 3, 3], &dw(1, sym(1, 1), 3));
        check_gradients(&gpu, &mut rng, &[1, 2, 4, 8], &[4, 1, 3, 3], &dw(1, sym(1, 1), 2));
        check_gradients(
            &gpu,
            &mut rng,
            &[1, 2, 3, 12],
            &[6, 1, 5, 5],
            &dw(1, sym(2, 2), 2),
        );
        // vec4 rows with a left padding that is not a multiple of 4 in the mirrored form.
        check_gradients(
            &gpu,
            &mut rng,
            &[1, 2, 4, 8],
            &[2, 1, 5, 5],
            &dw(
                1,
                Padding {
                    top: 1,
                    bottom: 3,
                    left: 3,
                    right: 1,
                },
                2,
            ),
        );
        // Stride 2 (dy spread by 2) on even and odd widths, TF 'SAME' on an even size.
        check_gradients(&gpu, &mut rng, &[1, 3, 8, 8], &[3, 1, 3, 3], &dw(2, sym(1, 1), 3));
        check_gradients(&gpu, &mut rng, &[2, 2, 7, 9], &[2, 1, 5, 5], &dw(2, sym(2, 2), 2));
        let same = Padding::tf_same(8, 8, 3, 3, [2, 2], [1, 1]);
        check_gradients(&gpu, &mut rng, &[1, 2, 8, 8], &[2, 1, 3, 3], &dw(2, same, 2));
        // Stride 3 and 2 × 1 strides, with trailing rows the forward never reads.
        check_gradients(&gpu, &mut rng, &[1, 2, 8, 7], &[2, 1, 2, 2], &dw(3, sym(0, 0), 2));
        check_gradients(
            &gpu,
            &mut rng,
            &[1, 2, 7, 8],
            &[2, 1, 3, 3],
            &Conv2dOptions::new().stride(2, 1).padding(sym(1, 1)).groups(2),
        );
        // Padding past the kernel's reach: the mirrored padding is negative (a crop).
        check_gradients(&gpu, &mut rng, &[1, 2, 4, 8], &[2, 1, 3, 3], &dw(1, sym(3, 3), 2));
        check_gradients(&gpu, &mut rng, &[1, 2, 4, 5], &[2, 1, 1, 1], &dw(1, sym(1, 1), 2));
        // Dilation on vec4 rows and with a stride.
        check_gradients(
            &gpu,
            &mut rng,
            &[1, 2, 6, 8],
            &[2, 1, 3, 3],
            &Conv2dOptions::new().dilation(2, 2).padding(sym(2, 2)).groups(2),
        );
        check_gradients(
            &gpu,
            &mut rng,
            &[1, 2, 9, 9],
            &[4, 1, 3, 3],
            &Conv2dOptions::new()
                .dilation(2, 2)
                .stride(2, 2)
                .padding(sym(1, 2))
                .groups(2),
        );
        // Dilation 16 on a 5-wide kernel is past the register segment: the GEMM form.
        let wide = Conv2dOptions::new().dilation(1, 16).padding(sym(0, 32)).groups(2);
        let g = conv::ConvGeometry::new(&[1, 2, 3, 5], &[2, 1, 1, 5], &wide).unwrap();
        assert!(!conv::depthwise::handles_backward(&g));
        check_gradients(&gpu, &mut rng, &[1, 2, 3, 5], &[2, 1, 1, 5], &wide);
    });
}

/// Inputs for an input activation: spread over [−8, 8] so ReLU6 clamps both ways, and kept
/// 0.05 from its kinks at 0 and 6 so that central differences with eps 1e-3 stay on one side.

/// `conv(act(x))` forward on every path that reads the input (the packed GEMM and both
/// depthwise row kernels) and its gradients, whose dx multiplies by act' in the epilogue of
/// the GEMM and of both depthwise row kernels.
#[test]
fn input_activation_forward_and_gradients() {
    for_each_profile(|gpu| {
        let mut rng = Rng::new(24);
        let sym = Padding::symmetric;
        for act in [Activation::Relu, Activation::Relu6] {
            let dense = Conv2dOptions::new().padding(sym(1, 1)).input_activation(act);
            let pointwise = Conv2dOptions::new().input_activation(act);
            let dw = |s: usize, g: usize| dense.stride(s, s).groups(g);
            let wide = Conv2dOptions::new()
                .dilation(1, 16)
                .padding(sym(0, 32))
                .groups(2)
                .input_activation(act);
            for (x_shape, w_shape, opts) in [
                (&[2, 3, 5, 7][..], &[4, 3, 3, 3][..], dense),
                (&[1, 8, 4, 6], &[5, 8, 1, 1], pointwise),
                (&[2, 3, 5, 7], &[3, 1, 3, 3], dw(1, 3)),
                (&[2, 3, 5, 8], &[6, 1, 3, 3], dw(1, 3)),
                (&[1, 2, 8, 8], &[2, 1, 3, 3], dw(2, 2)),
                (&[1, 2, 3, 5], &[2, 1, 1, 5], wide),
            ] {
                for bias in [false, true] {
                    let (x, xv) = activation_input(&gpu, &mut rng, x_shape);
                    let (w, wv) = rand_tensor(&gpu, &mut rng, w_shape);
                    let (b, bv) = rand_tensor(&gpu, &mut rng, &[w_shape[0]]);
                    let y = conv::conv2d(&x, &w, bias.then_some(&b), &opts).unwrap();
                    let b64 = to_f64(&bv);
                    let (_, want) = reference::conv2d(
                        &to_f64(&xv),
                        x_shape,
                        &to_f64(&wv),
                        w_shape,
                        bias.then_some(&b64[..]),
                        &opts,
                    );
                    assert_close(
                        &format!("conv2d(act(x)) {x_shape:?} * {w_shape:?} {opts:?}"),
                        &y.to_vec().unwrap(),
                        &want,
                        ATOL * 8.0,
                        RTOL,
                    );
                }
                check_gradients(&gpu, &mut rng, x_shape, w_shape, &opts);
            }
        }
        // Without the input, the gradient through an activation cannot be formed.
        let z = |s: &[usize]| Tensor::zeros(&gpu, s).unwrap();
        let act = Conv2dOptions::new().input_activation(Activation::Relu);
        let e = conv::conv2d_backward_input(&z(&[1, 2, 3, 3]), &z(&[2, 2, 1, 1]), &act, &[1, 2, 3, 3])
            .unwrap_err()
            .to_string();
        assert!(e.contains("conv2d_backward_input_activated"), "{e}");
    });
}

/// 1×1 convolutions with whole channel quads read their input (or dy) straight from the
/// NCHW tensor: forward with and without a bias, strides, groups and an input activation,
/// and the stride-1 input gradient, plain and masked; odd pixel counts leave idle lanes.
#[test]
fn pointwise_convolutions_read_nchw_directly() {
    for_each_profile(|gpu| {
        let mut rng = Rng::new(25);
        let one = Conv2dOptions::new();
        for (x_shape, w_shape, opts) in [
            (&[2, 8, 5, 7][..], &[12, 8, 1, 1][..], one),
            (&[1, 4, 7, 9], &[8, 4, 1, 1], one.stride(2, 2)),
            (&[2, 8, 3, 5], &[8, 4, 1, 1], one.groups(2)),
            (
                &[1, 12, 5, 3],
                &[4, 12, 1, 1],
                one.input_activation(Activation::Relu6),
            ),
            (
                &[1, 8, 3, 7],
                &[16, 4, 1, 1],
                one.groups(2).input_activation(Activation::Relu),
            ),
        ] {
            for bias in [false, true] {
                check_forward(&gpu, &mut rng, x_shape, w_shape, bias, &opts);
            }
            check_gradients(&gpu, &mut rng, x_shape, w_shape, &opts);
        }
    });
}

#[test]
fn backward_input_on_a_larger_shape_matches_sampled_differences() {
    // Enough rows and pixels for several workgroups and full row blocks; check a sample.
    for_each_profile(|gpu| {
        let mut rng = Rng::new(23);
        let (x_shape, w_shape) = ([2usize, 16, 12, 13], [20usize, 16, 3, 3]);
        let opts = Conv2dOptions::new()
            .stride(2, 2)
            .padding(Padding::symmetric(1, 1));
        let y_shape = conv::conv2d_output_shape(&x_shape, &w_shape, &opts).unwrap();
        let (w, wv) = rand_tensor(&gpu, &mut rng, &w_shape);
        let (dy, rv) = rand_tensor(&gpu, &mut rng, &y_shape);
        let xv = rng.vec(x_shape.iter().product(), -1.0, 1.0);
        let dx = conv::conv2d_backward_input(&dy, &w, &opts, &x_shape)
            .unwrap()
            .to_vec()
            .unwrap();
        let (x64, w64, r64) = (to_f64(&xv), to_f64(&wv), to_f64(&rv));
        let loss = |x: &[f64]| -> f64 {
            let (_, y) = reference::conv2d(x, &x_shape, &w64, &w_shape, None, &opts);
            y.iter().zip(&r64).map(|(a, r)| a * r).sum()
        };
        let mut got = Vec::new();
        let mut want = Vec::new();
        let mut p = x64.clone();
        for _ in 0..40 {
            let i = rng.below(x64.len());
            p[i] = x64[i] + 1e-3;
            let up = loss(&p);
            p[i] = x64[i] - 1e-3;
            let down = loss(&p);
            p[i] = x64[i];
            got.push(dx[i]);
            want.push((up - down) / 2e-3);
        }
        assert_close("dx sampled", &got, &want, 1e-4, 1e-3);
    });
}

// ------------------------------------------------------------------------------------------
// Transposed convolution and batch norm
// ------------------------------------------------------------------------------------------

#[test]
fn conv_transpose2d_matches_scatter_reference() {
    for_each_profile(|gpu| {
        let mut rng = Rng::new(31);
        type Case = (
            [usize; 4],
            [usize; 4],
            [usize; 2],
            [usize; 2],
            [usize; 2],
            [usize; 2],
            bool,
        );
        let cases: &[Case] = &[
            ([2, 3, 5, 6], [3, 4, 3, 3], [2, 2], [1, 1], [1, 1], [1, 1], true),
            ([1, 4, 4, 3], [4, 2, 4, 4], [2, 2], [1, 1], [0, 0], [1, 1], false),
            ([2, 2, 5, 5], [2, 3, 3, 3], [1, 1], [0, 0], [0, 0], [2, 2], true),
            ([1, 3, 3, 4], [3, 5, 3, 2], [3, 2], [1, 0], [2, 1], [1, 1], true),
            ([1, 9, 6, 7], [9, 10, 1, 1], [1, 1], [0, 0], [0, 0], [1, 1], false),
        ];
        for &(xs, ws, stride, padding, output_padding, dilation, with_bias) in cases {
            let (x, xv) = rand_tensor(&gpu, &mut rng, &xs);
            let (w, wv) = rand_tensor(&gpu, &mut rng, &ws);
            let (b, bv) = rand_tensor(&gpu, &mut rng, &[ws[1]]);
            let y = conv::conv_transpose2d(
                &x,
                &w,
                with_bias.then_some(&b),
                stride,
                padding,
                output_padding,
                dilation,
            )
            .unwrap();
            let b64 = to_f64(&bv);
            let (shape, want) = reference::conv_transpose2d(
                &to_f64(&xv),
                &xs,
                &to_f64(&wv),
                &ws,
                with_bias.then_some(&b64[..]),
                stride,
                padding,
                output_padding,
                dilation,
            );
            assert_eq!(y.shape(), &shape[..]);
            assert_close(
                &format!(
                    "conv_transpose2d {xs:?} {ws:?} s{stride:?} p{padding:?} op{output_padding:?} d{dilation:?}"
                ),
                &y.to_vec().unwrap(),
                &want,
                ATOL,
                RTOL,
            );
        }
    });
}

// ------------------------------------------------------------------------------------------
// Errors
// ------------------------------------------------------------------------------------------

#[test]
fn bad_shapes_are_errors_not_panics() {
    for_each_profile(|gpu| {
        let z = |s: &[usize]| Tensor::zeros(&gpu, s).unwrap();
        let pad1 = Conv2dOptions::new().padding(Padding::symmetric(1, 1));
        let msg = |r: fido::Result<Tensor>| r.unwrap_err().to_string();
        // Mismatched Cin.
        let e = msg(conv::conv2d(&z(&[1, 3, 8, 8]), &z(&[4, 2, 3, 3]), None, &pad1));
        assert!(e.contains("[1, 3, 8, 8]") && e.contains("[4, 2, 3, 3]"), "{e}");
        // Groups that do not divide the channels.
        let e = msg(conv::conv2d(
            &z(&[1, 4, 8, 8]),
            &z(&[6, 1, 3, 3]),
            None,
            &pad1.groups(3),
        ));
        assert!(e.contains("groups"), "{e}");
        let e = msg(conv::conv2d(
            &z(&[1, 4, 8, 8]),
            &z(&[5, 2, 3, 3]),
            None,
            &pad1.groups(2),
        ));
        assert!(e.contains("groups"), "{e}");
        // Kernel larger than the padded input.
        let e = msg(conv::conv2d(
            &z(&[1, 2, 3, 3]),
            &z(&[2, 2, 5, 5]),
            None,
            &Conv2dOptions::new(),
        ));
        assert!(e.contains("larger than the padded input"), "{e}");
        let dil = Conv2dOptions::new()
            .dilation(4, 4)
            .padding(Padding::symmetric(1, 1));
        assert!(conv::conv2d(&z(&[1, 2, 5, 5]), &z(&[2, 2, 3, 3]), None, &dil).is_err());
        // Zero stride or groups, wrong ranks, wrong bias.
        assert!(conv::conv2d(&z(&[1, 2, 5, 5]), &z(&[2, 2, 3, 3]), None, &pad1.stride(0, 1)).is_err());
        assert!(conv::conv2d(&z(&[1, 2, 5, 5]), &z(&[2, 2, 3, 3]), None, &pad1.groups(0)).is_err());
        assert!(conv::conv2d(&z(&[2, 5, 5]), &z(&[2, 2, 3, 3]), None, &pad1).is_err());
        assert!(conv::conv2d(&z(&[1, 2, 5, 5]), &z(&[2, 2, 3, 3]), Some(&z(&[3])), &pad1).is_err());
        // Gradients whose dy does not match the convolution output.
        assert!(
            conv::conv2d_backward_input(&z(&[1, 2, 4, 5]), &z(&[2, 2, 3, 3]), &pad1, &[1, 2, 5, 5]).is_err()
        );
        assert!(
            conv::conv2d_backward_weight(&z(&[1, 2, 5, 5]), &z(&[1, 3, 5, 5]), &pad1, &[2, 2, 3, 3]).is_err()
        );
        assert!(conv::conv2d_backward_bias(&z(&[2, 5, 5])).is_err());
        // Transposed convolution: channel mismatch and too large an output padding.
        assert!(conv::conv_transpose2d(
            &z(&[1, 2, 4, 4]),
            &z(&[3, 2, 3, 3]),
            None,
            [2, 2],
            [1, 1],
            [0, 0],
            [1, 1]
        )
        .is_err());
        assert!(conv::conv_transpose2d(
            &z(&[1, 2, 4, 4]),
            &z(&[2, 2, 3, 3]),
            None,
            [2, 2],
            [1, 1],
            [2, 0],
            [1, 1]
        )
        .is_err());
    });
}

#[test]
fn cost_counts_multiply_adds() {
    let opts = Conv2dOptions::new().padding(Padding::symmetric(1, 1));
    let c = conv::conv2d_cost(&[8, 64, 56, 56], &[64, 64, 3, 3], &opts).unwrap();
    let macs = 8.0 * 64.0 * 56.0 * 56.0 * 64.0 * 9.0;
    assert_eq!(c.flops, 2.0 * macs);
    assert!(c.bytes > 4.0 * 2.0 * (8.0 * 64.0 * 56.0 * 56.0));
}

/// Each forward entry point of the depthwise and GEMM kernels (with and without a bias;
/// scalar and vec4 depthwise rows) against the reference.
#[test]
fn every_forward_entry_point_matches_reference() {
    for_each_profile(|gpu| {
        let mut rng = Rng::new(19);
        let pad = Padding::symmetric(1, 1);
        for bias in [false, true] {
            // Widths 8 → 8 take the vec4 depthwise rows; 7 → 7 the scalar ones.
            for width in [8usize, 7] {
                let depthwise = Conv2dOptions::new().padding(pad).groups(3);
                check_forward(&gpu, &mut rng, &[2, 3, 5, width], &[6, 1, 3, 3], bias, &depthwise);
            }
            check_forward(
                &gpu,
                &mut rng,
                &[1, 5, 6, 7],
                &[3, 5, 3, 3],
                bias,
                &Conv2dOptions::new().padding(pad),
            );
        }
    });
}

// ------------------------------------------------------------------------------------------
// Depthwise under the `gpu` profile: the tiled kernel, its tile overrides and its fallback.
// ------------------------------------------------------------------------------------------

/// The activation's derivative at the forward's input, as the masked epilogue applies it.
fn activation_slope(act: Activation, v: f64) -> f64 {
    match act {
        Activation::None => 1.0,
        Activation::Relu => f64::from(u8::from(v > 0.0)),
        Activation::Relu6 => f64::from(u8::from(v > 0.0 && v < 6.0)),
    }
}

/// dx of a depthwise convolution by its definition: every dy element scattered back through
/// the taps that produced it, times act'(x) where the convolution activates its input.
fn depthwise_input_gradient_reference(
    dy: &[f64],
    w: &[f64],
    g: &conv::ConvGeometry,
    x_for_slope: Option<&[f64]>,
) -> Vec<f64> {
    let o = &g.opts;
    let multiplier = g.out_channels / g.in_channels;
    let mut dx = vec![0.0; g.input_shape().iter().product()];
    for n in 0..g.batch {
        for co in 0..g.out_channels {
            let ci = co / multiplier;
            for oy in 0..g.out_h {
                for ox in 0..g.out_w {
                    let d = dy[((n * g.out_channels + co) * g.out_h + oy) * g.out_w + ox];
                    for ky in 0..g.kernel_h {
                        let iy = (oy * o.stride[0] + ky * o.dilation[0]) as i64 - o.padding.top as i64;
                        for kx in 0..g.kernel_w {
                            let ix = (ox * o.stride[1] + kx * o.dilation[1]) as i64 - o.padding.left as i64;
                            if iy < 0 || ix < 0 || iy >= g.in_h as i64 || ix >= g.in_w as i64 {
                                continue;
                            }
                            let at = ((n * g.in_channels + ci) * g.in_h + iy as usize) * g.in_w + ix as usize;
                            dx[at] += d * w[(co * g.kernel_h + ky) * g.kernel_w + kx];
                        }
                    }
                }
            }
        }
    }
    if let Some(x) = x_for_slope {
        for (d, &v) in dx.iter_mut().zip(x) {
            *d *= activation_slope(o.input_activation, v);
        }
    }
    dx
}

/// How to run one depthwise launch: the profile's own choice, or the tiled kernel with a
/// given tile.
#[derive(Clone, Copy, Debug)]
enum DepthwiseRoute {
    Automatic,
    Tiled(conv::depthwise::Tile),
}

// Input-gradient tolerance: each dx element sums at most multiplier·KH·KW = 50 products of
// values in [−1, 1], so f32 rounding (2^-24 relative per operation) is of order 1e-6; an
// indexing error (a tap missed, misplaced or flipped the wrong way) is of order 0.1. The
// forward uses the file's ATOL/RTOL through `check_forward`'s argument, six times ATOL for
// activated inputs, which reach 6.
const DX_ATOL: f64 = 2e-5;
const DX_RTOL: f64 = 1e-4;

/// One depthwise convolution's forward (plain and with a bias) and input gradient (plain,
/// or masked when `opts` activates its input) against the references, by `route`.
fn check_depthwise(
    gpu: &Gpu,
    rng: &mut Rng,
    x_shape: &[usize],
    w_shape: &[usize],
    opts: &Conv2dOptions,
    route: DepthwiseRoute,
) {
    use conv::depthwise;
    let g = conv::ConvGeometry::new(x_shape, w_shape, opts).unwrap();
    assert!(
        depthwise::handles(&g) && depthwise::handles_backward(&g),
        "{g:?} is depthwise"
    );
    let act = opts.input_activation;
    let (x, xv) = if act == Activation::None {
        rand_tensor(gpu, rng, x_shape)
    } else {
        activation_input(gpu, rng, x_shape)
    };
    let (w, wv) = rand_tensor(gpu, rng, w_shape);
    let (b, bv) = rand_tensor(gpu, rng, &[w_shape[0]]);
    let (x64, w64, b64) = (to_f64(&xv), to_f64(&wv), to_f64(&bv));
    let what = format!("{x_shape:?} * {w_shape:?} {opts:?} {route:?}");
    let atol = if act == Activation::None { ATOL } else { 6.0 * ATOL };
    for bias in [false, true] {
        let y = match route {
            DepthwiseRoute::Automatic => conv::conv2d(&x, &w, bias.then_some(&b), opts).unwrap(),
            DepthwiseRoute::Tiled(tile) => {
                let y = Tensor::zeros(gpu, &g.output_shape()).unwrap();
                let epilogue = if bias {
                    conv::Epilogue::Bias(&b)
                } else {
                    conv::Epilogue::Plain
                };
                depthwise::forward_tiled(&x, &w, epilogue, &g, tile, &y).unwrap();
                y
            }
        };
        let (_, want) = reference::conv2d(&x64, x_shape, &w64, w_shape, bias.then_some(&b64[..]), opts);
        assert_close(
            &format!("forward bias={bias} {what}"),
            &y.to_vec().unwrap(),
            &want,
            atol,
            RTOL,
        );
    }
    let (dy, dyv) = rand_tensor(gpu, rng, &g.output_shape());
    let masked = act != Activation::None;
    let dx = match route {
        DepthwiseRoute::Automatic if masked => {
            conv::conv2d_backward_input_activated(&dy, &w, opts, &x).unwrap()
        }
        DepthwiseRoute::Automatic => conv::conv2d_backward_input(&dy, &w, opts, x_shape).unwrap(),
        DepthwiseRoute::Tiled(tile) => {
            let dx = Tensor::zeros(gpu, x_shape).unwrap();
            let epilogue = if masked {
                conv::Epilogue::Masked(&x, act)
            } else {
                conv::Epilogue::Plain
            };
            depthwise::backward_input_tiled(&dy, &w, &g, epilogue, tile, &dx).unwrap();
            dx
        }
    };
    let want = depthwise_input_gradient_reference(&to_f64(&dyv), &w64, &g, masked.then_some(&x64[..]));
    assert_close(
        &format!("dx masked={masked} {what}"),
        &dx.to_vec().unwrap(),
        &want,
        DX_ATOL,
        DX_RTOL,
    );
}

/// Odd planes (13×17, so no tile or vec4 row divides them), 3 and 5 channels, multipliers 1
/// and 2, kernels 3×3, 5×5 and 3×1, strides 1 and 2 (dy spread in the gradient), dilation 2,
/// asymmetric padding and each input activation.
fn depthwise_cases() -> Vec<([usize; 4], [usize; 4], Conv2dOptions)> {
    let dw = |s: usize, p: Padding, c: usize| Conv2dOptions::new().stride(s, s).padding(p).groups(c);
    let sym = Padding::symmetric;
    let lopsided = Padding {
        top: 0,
        bottom: 2,
        left: 2,
        right: 1,
    };
    let mut cases = vec![
        ([2, 3, 13, 17], [3, 1, 3, 3], dw(1, sym(1, 1), 3)),
        ([1, 5, 13, 17], [10, 1, 3, 3], dw(1, sym(1, 1), 5)),
        ([2, 3, 13, 17], [3, 1, 5, 5], dw(2, sym(2, 2), 3)),
        ([1, 5, 13, 17], [10, 1, 5, 5], dw(2, sym(2, 2), 5)),
        ([1, 3, 13, 17], [6, 1, 3, 1], dw(2, sym(1, 0), 3)),
        ([1, 5, 13, 17], [5, 1, 3, 3], dw(1, sym(2, 2), 5).dilation(2, 2)),
        ([1, 3, 13, 17], [6, 1, 5, 5], dw(2, lopsided, 3).dilation(2, 2)),
        // EfficientNet's TF 'SAME' stride 2 on an even plane.
        (
            [1, 3, 14, 16],
            [3, 1, 5, 5],
            dw(2, Padding::tf_same(14, 16, 5, 5, [2, 2], [1, 1]), 3),
        ),
    ];
    for act in [Activation::Relu, Activation::Relu6] {
        cases.push((
            [2, 3, 13, 17],
            [3, 1, 3, 3],
            dw(1, sym(1, 1), 3).input_activation(act),
        ));
        cases.push((
            [1, 5, 13, 17],
            [10, 1, 5, 5],
            dw(2, sym(2, 2), 5).input_activation(act),
        ));
    }
    cases
}

/// The pipelines a closure dispatches, by label.
fn dispatched(gpu: &Gpu, f: impl FnOnce()) -> Vec<String> {
    gpu.start_dispatch_profile().unwrap();
    f();
    gpu.finish_dispatch_profile()
        .unwrap()
        .into_iter()
        .map(|p| p.label)
        .collect()
}

#[test]
fn depthwise_forward_and_input_gradient_match_references_under_each_profile() {
    for_each_profile(|gpu| {
        let mut rng = Rng::new(41);
        for (x_shape, w_shape, opts) in depthwise_cases() {
            check_depthwise(
                gpu,
                &mut rng,
                &x_shape,
                &w_shape,
                &opts,
                DepthwiseRoute::Automatic,
            );
        }
    });
}

/// Each tile shape the launcher may pick or a caller may force: the default, a square one,
/// tiles smaller than the plane in both directions with one, three and four rows per lane,
/// and a single column.
#[test]
fn depthwise_tile_overrides_match_references() {
    use conv::depthwise::Tile;
    let gpu = common::gpu();
    let mut rng = Rng::new(42);
    let tiles = [
        Tile::DEFAULT,
        Tile {
            rows: 16,
            cols: 16,
            rows_per_invocation: 2,
        },
        Tile {
            rows: 4,
            cols: 8,
            rows_per_invocation: 1,
        },
        Tile {
            rows: 6,
            cols: 8,
            rows_per_invocation: 3,
        },
        Tile {
            rows: 16,
            cols: 8,
            rows_per_invocation: 4,
        },
        Tile {
            rows: 2,
            cols: 1,
            rows_per_invocation: 2,
        },
    ];
    // Each tile compiles its own pipelines, so each gets the cases that vary the most: a
    // multiplier summed in the gradient with dy spread by stride 2 through ReLU6, dilation
    // with lopsided padding, and a 3×1 kernel.
    let cases = depthwise_cases();
    let varied = [cases[cases.len() - 1], cases[6], cases[4]];
    for tile in tiles {
        for (x_shape, w_shape, opts) in varied {
            check_depthwise(
                &gpu,
                &mut rng,
                &x_shape,
                &w_shape,
                &opts,
                DepthwiseRoute::Tiled(tile),
            );
        }
    }
}

/// The `gpu` profile runs the tiled entry points (each epilogue) and the `cpu` profile none
/// of them, so the comparisons above check both kernels.
#[test]
fn depthwise_kernel_follows_the_profile() {
    for_each_profile(|gpu| {
        let mut rng = Rng::new(43);
        let opts = Conv2dOptions::new()
            .padding(Padding::symmetric(1, 1))
            .groups(3)
            .input_activation(Activation::Relu6);
        let (x, _) = activation_input(gpu, &mut rng, &[1, 3, 13, 17]);
        let (w, _) = rand_tensor(gpu, &mut rng, &[6, 1, 3, 3]);
        let (b, _) = rand_tensor(gpu, &mut rng, &[6]);
        let labels = dispatched(gpu, || {
            let y = conv::conv2d(&x, &w, None, &opts).unwrap();
            conv::conv2d(&x, &w, Some(&b), &opts).unwrap();
            conv::conv2d_backward_input_activated(&y, &w, &opts, &x).unwrap();
        });
        let tiled = [
            "depthwise_tiled",
            "depthwise_tiled_bias",
            "depthwise_tiled_masked",
        ];
        let ran = |entry: &str| labels.iter().any(|l| l == &format!("conv_depthwise::{entry}"));
        match gpu.kernel_profile() {
            fido::gpu::KernelProfile::Gpu => {
                assert!(tiled.iter().all(|e| ran(e)), "{labels:?}")
            }
            fido::gpu::KernelProfile::Cpu => {
                assert!(labels.iter().all(|l| !l.contains("tiled")), "{labels:?}");
                assert!(
                    ran("depthwise") && ran("depthwise_bias") && ran("depthwise_masked"),
                    "{labels:?}"
                );
            }
        }
    });
}

/// The launcher shrinks the tile until its input region fits the adapter's workgroup
/// storage; where nothing fits it gives the reason and takes the row kernels, and a forced
/// tile that does not fit is an error, not a panic.
#[test]
fn depthwise_tiles_shrink_to_the_workgroup_storage_limit_or_fall_back() {
    use conv::depthwise::{self, Pass, Tile};
    let gpu = common::gpu();
    gpu.set_kernel_profile(fido::gpu::KernelProfile::Gpu);
    let limits = gpu.limits().clone();
    // EfficientNet-Lite0's kernels at its plane sizes fit the portable 16 KiB with the
    // default tile, narrowed to planes under 32 wide.
    let portable = wgpu::Limits {
        max_compute_workgroup_storage_size: 16 * 1024,
        ..limits.clone()
    };
    for (size, k, s) in [
        (112usize, 3usize, 1usize),
        (112, 3, 2),
        (56, 5, 2),
        (28, 3, 2),
        (14, 5, 1),
        (7, 5, 1),
    ] {
        let p = Padding::tf_same(size, size, k, k, [s, s], [1, 1]);
        let opts = Conv2dOptions::new().stride(s, s).padding(p).groups(8);
        let g = conv::ConvGeometry::new(&[1, 8, size, size], &[8, 1, k, k], &opts).unwrap();
        for (pass, plane) in [(Pass::Forward, size.div_ceil(s)), (Pass::InputGradient, size)] {
            let tile = depthwise::tile_for(&g, pass, &portable).unwrap();
            let cols = plane.next_power_of_two().clamp(8, 32);
            let rows = (256 / cols).min(plane.next_multiple_of(2));
            let want = Tile {
                rows,
                cols,
                rows_per_invocation: 2,
            };
            assert_eq!(tile, want, "{size}² {k}×{k} stride {s} {pass:?}");
        }
    }
    // A 5×5 stride-2 tile of 8×32 reads 19×67 words (5092 bytes): under a 2 KiB limit the
    // rows halve until 7×67 words fit.
    let small = wgpu::Limits {
        max_compute_workgroup_storage_size: 2048,
        ..limits.clone()
    };
    let opts = Conv2dOptions::new()
        .stride(2, 2)
        .padding(Padding::symmetric(2, 2))
        .groups(2);
    let g = conv::ConvGeometry::new(&[1, 2, 128, 128], &[2, 1, 5, 5], &opts).unwrap();
    assert_eq!(
        depthwise::tile_for(&g, Pass::Forward, &small).unwrap(),
        Tile {
            rows: 2,
            cols: 32,
            rows_per_invocation: 2
        }
    );
    // A 3×1 kernel dilated past the limit: even one output needs more rows than fit.
    let words = limits.max_compute_workgroup_storage_size as usize / 4;
    let reach = words / 2 + 1;
    let tall = Conv2dOptions::new()
        .dilation(reach, 1)
        .padding(Padding {
            top: reach,
            bottom: reach,
            left: 1,
            right: 1,
        })
        .groups(2);
    let (x_shape, w_shape) = ([1usize, 2, 2, 5], [2usize, 1, 3, 3]);
    let g = conv::ConvGeometry::new(&x_shape, &w_shape, &tall).unwrap();
    for pass in [Pass::Forward, Pass::InputGradient] {
        let reason = depthwise::tile_for(&g, pass, &limits).unwrap_err();
        assert!(reason.contains("workgroup storage"), "{reason}");
    }
    let mut rng = Rng::new(44);
    let labels = dispatched(&gpu, || {
        check_depthwise(
            &gpu,
            &mut rng,
            &x_shape,
            &w_shape,
            &tall,
            DepthwiseRoute::Automatic,
        )
    });
    assert!(labels.iter().all(|l| !l.contains("tiled")), "{labels:?}");
    let z = |s: &[usize]| Tensor::zeros(&gpu, s).unwrap();
    let forced = depthwise::forward_tiled(
        &z(&x_shape),
        &z(&w_shape),
        conv::Epilogue::Plain,
        &g,
        Tile::DEFAULT,
        &z(&g.output_shape()),
    );
    assert!(forced.unwrap_err().to_string().contains("workgroup storage"));
    // Tiles the kernel cannot form, and tensors of the wrong shape.
    let g = conv::ConvGeometry::new(&[1, 2, 5, 5], &[2, 1, 3, 3], &Conv2dOptions::new().groups(2)).unwrap();
    let (x, w, y) = (z(&[1, 2, 5, 5]), z(&[2, 1, 3, 3]), z(&[1, 2, 3, 3]));
    for bad in [
        Tile {
            rows: 3,
            cols: 8,
            rows_per_invocation: 2,
        },
        Tile {
            rows: 0,
            cols: 8,
            rows_per_invocation: 1,
        },
        Tile {
            rows: 16,
            cols: 8,
            rows_per_invocation: 16,
        },
        Tile {
            rows: 64,
            cols: 64,
            rows_per_invocation: 1,
        },
    ] {
        let e = depthwise::forward_tiled(&x, &w, conv::Epilogue::Plain, &g, bad, &y).unwrap_err();
        assert!(e.to_string().contains("tile"), "{bad:?}: {e}");
    }
    assert!(depthwise::forward_tiled(&x, &w, conv::Epilogue::Plain, &g, Tile::DEFAULT, &x).is_err());
    assert!(depthwise::backward_input_tiled(&y, &w, &g, conv::Epilogue::Plain, Tile::DEFAULT, &y).is_err());
}
