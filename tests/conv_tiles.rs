//! The workgroup-tiled implicit GEMM (the `gpu` kernel profile's convolution) under explicit
//! tile shapes: every stage count, row and pixel tails, several phases, the direct 1×1 read
//! and each epilogue, against the f64 reference. `tests/conv.rs` runs the default tile
//! under both profiles; here each tuning a host may set is checked too.

mod common;

use common::{activation_input, assert_close, fd_scalar, gpu, rand_tensor, to_f64, Rng};
use fido::gpu::KernelProfile;
use fido::ops::conv::gemm::GemmTiles;
use fido::ops::conv::{self, reference, Activation, Conv2dOptions, Padding};
use fido::Gpu;

// Sums of at most a few hundred f32 products of values ≤ 1 (≤ 6 once activated): errors
// of order 1e-6; an indexing or staging bug gives errors of order 0.1.
const ATOL: f64 = 1e-4;
const RTOL: f64 = 1e-4;

const TILES: [GemmTiles; 4] = [
    // The defaults for many channels, with 4 and 8 taps a stage.
    GemmTiles {
        rows: 64,
        pixels: 64,
        taps: 4,
        thread_rows: 4,
    },
    GemmTiles {
        rows: 32,
        pixels: 64,
        taps: 8,
        thread_rows: 2,
    },
    // One row per invocation; one tap a stage, so every tap is its own step.
    GemmTiles {
        rows: 16,
        pixels: 64,
        taps: 1,
        thread_rows: 1,
    },
    // Eight rows per invocation on a narrow pixel tile.
    GemmTiles {
        rows: 64,
        pixels: 32,
        taps: 3,
        thread_rows: 8,
    },
];

fn forward_and_input_gradient(
    gpu: &Gpu,
    rng: &mut Rng,
    x_shape: &[usize],
    w_shape: &[usize],
    opts: &Conv2dOptions,
) {
    let what = format!(
        "{x_shape:?} * {w_shape:?} {opts:?} tiles {:?}",
        gpu.tuning::<GemmTiles>()
    );
    let (x, xv) = if opts.input_activation == Activation::None {
        rand_tensor(gpu, rng, x_shape)
    } else {
        activation_input(gpu, rng, x_shape)
    };
    let (w, wv) = rand_tensor(gpu, rng, w_shape);
    let (b, bv) = rand_tensor(gpu, rng, &[w_shape[0]]);
    let (x64, w64, b64) = (to_f64(&xv), to_f64(&wv), to_f64(&bv));
    let activated = |x: &[f64]| -> Vec<f64> {
        x.iter()
            .map(|&v| reference::activate(opts.input_activation, v))
            .collect()
    };

    let y = conv::conv2d(&x, &w, Some(&b), opts).unwrap();
    let plain = Conv2dOptions {
        input_activation: Activation::None,
        ..*opts
    };
    let (shape, want) = reference::conv2d(&activated(&x64), x_shape, &w64, w_shape, Some(&b64), &plain);
    assert_eq!(y.shape(), &shape[..], "{what}");
    assert_close(
        &format!("forward {what}"),
        &y.to_vec().unwrap(),
        &want,
        6.0 * ATOL,
        RTOL,
    );

    // The input gradient of Σ y·r, through the activation's slope where there is one.
    let (dy, rv) = rand_tensor(gpu, rng, &shape);
    let r64 = to_f64(&rv);
    let loss = |x: &[f64]| -> f64 {
        let (_, y) = reference::conv2d(&activated(x), x_shape, &w64, w_shape, None, &plain);
        y.iter().zip(&r64).map(|(a, r)| a * r).sum()
    };
    let dx = if opts.input_activation == Activation::None {
        conv::conv2d_backward_input(&dy, &w, opts, x_shape).unwrap()
    } else {
        conv::conv2d_backward_input_activated(&dy, &w, opts, &x).unwrap()
    };
    // Central differences of a function piecewise linear in x, never across a kink, are
    // exact up to rounding.
    let want = fd_scalar(loss, &x64, 1e-3);
    assert_close(
        &format!("input gradient {what}"),
        &dx.to_vec().unwrap(),
        &want,
        1e-3,
        1e-3,
    );
}

#[test]
fn every_tile_shape_matches_the_reference() {
    let gpu = gpu();
    gpu.set_kernel_profile(KernelProfile::Gpu);
    let mut rng = Rng::new(41);
    let sym = |s: usize, p: usize| {
        Conv2dOptions::new()
            .stride(s, s)
            .padding(Padding::symmetric(p, p))
    };
    for tiles in TILES {
        gpu.set_tuning(Some(tiles));
        // 3×3 with enough channels for a row tail in every tile and 9·2 = 18 taps (a tail
        // stage for 4, 8 and 3 taps a stage).
        forward_and_input_gradient(&gpu, &mut rng, &[2, 8, 9, 11], &[37, 8, 3, 3], &sym(1, 1));
        // Stride 2: four input-gradient phases of different sizes; grouped.
        forward_and_input_gradient(
            &gpu,
            &mut rng,
            &[1, 8, 11, 9],
            &[6, 4, 3, 3],
            &sym(2, 1).groups(2),
        );
        // 1×1 reads the NCHW input directly, here through a fused ReLU6.
        forward_and_input_gradient(
            &gpu,
            &mut rng,
            &[3, 12, 5, 7],
            &[70, 12, 1, 1],
            &sym(1, 0).input_activation(Activation::Relu6),
        );
        // Channels that are not whole quads: the packed form pads them with zeros.
        forward_and_input_gradient(&gpu, &mut rng, &[2, 3, 7, 6], &[5, 3, 2, 3], &sym(1, 0));
    }
}

#[test]
fn a_tile_the_adapter_cannot_run_is_a_clear_error() {
    let gpu = gpu();
    gpu.set_kernel_profile(KernelProfile::Gpu);
    let mut rng = Rng::new(42);
    let (x, _) = rand_tensor(&gpu, &mut rng, &[1, 4, 6, 6]);
    let (w, _) = rand_tensor(&gpu, &mut rng, &[8, 4, 3, 3]);
    let opts = Conv2dOptions::new().padding(Padding::symmetric(1, 1));
    let storage = gpu.limits().max_compute_workgroup_storage_size;
    let cases = [
        // Far more workgroup storage than any adapter has.
        (
            GemmTiles {
                rows: 64,
                pixels: 64,
                taps: 4096,
                thread_rows: 4,
            },
            "lower taps",
        ),
        // 64 × 64 = 4096 invocations.
        (
            GemmTiles {
                rows: 64,
                pixels: 256,
                taps: 1,
                thread_rows: 1,
            },
            "invocations exceed",
        ),
        (
            GemmTiles {
                rows: 64,
                pixels: 62,
                taps: 4,
                thread_rows: 4,
            },
            "multiple of 4",
        ),
        (
            GemmTiles {
                rows: 64,
                pixels: 64,
                taps: 4,
                thread_rows: 9,
            },
            "thread_rows must be",
        ),
        // A valid tile (8 × 8 invocations for 32 pixels), for contrast.
        (
            GemmTiles {
                rows: 64,
                pixels: 32,
                taps: 1,
                thread_rows: 8,
            },
            "",
        ),
    ];
    for (tiles, needle) in cases {
        if needle.is_empty() {
            // A valid tile for contrast: it runs.
            gpu.set_tuning(Some(tiles));
            conv::conv2d(&x, &w, None, &opts).unwrap();
            continue;
        }
        gpu.set_tuning(Some(tiles));
        let err = conv::conv2d(&x, &w, None, &opts).unwrap_err().to_string();
        assert!(err.contains(needle), "{tiles:?} (storage limit {storage}): {err}");
        assert!(!err.contains('\n'), "one line: {err}");
    }
    gpu.set_tuning::<GemmTiles>(None);
    conv::conv2d(&x, &w, None, &opts).unwrap();
}

#[test]
fn the_default_tile_fits_the_portable_limits() {
    // WebGPU's minimum and GL's slightly smaller one.
    let portable = wgpu::Limits::default();
    for limits in [portable.clone(), wgpu::Limits::downlevel_defaults()] {
        for rows in [1, 15, 16, 33, 64, 1000] {
            let tiles = GemmTiles::for_rows(rows, &limits);
            tiles.check(&limits).unwrap();
            assert!(tiles.workgroup_bytes() <= u64::from(limits.max_compute_workgroup_storage_size));
        }
    }
    // An adapter with more workgroup storage gets deeper stages.
    let roomy = wgpu::Limits {
        max_compute_workgroup_storage_size: 48 * 1024,
        ..portable.clone()
    };
    assert!(GemmTiles::for_rows(64, &roomy).taps > GemmTiles::for_rows(64, &portable).taps);
}
