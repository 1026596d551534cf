//! Times the convolution kernels on ResNet-50 and EfficientNet-Lite0 shapes at batch 8.
//! `cargo run --release --example conv_timing [filter]`

use fido::ops::conv::{self, Conv2dOptions, Padding};
use fido::ops::elementwise;
use fido::{AdapterChoice, Gpu, Tensor};

fn time(gpu: &Gpu, reps: usize, mut f: impl FnMut()) -> f64 {
    f();
    gpu.sync().unwrap();
    let mut ms: Vec<f64> = (0..reps)
        .map(|_| {
            f();
            let t = gpu.flush_timed().unwrap();
            t.gpu_ms.unwrap_or(t.wall_ms)
        })
        .collect();
    ms.sort_by(f64::total_cmp);
    ms[ms.len() / 2]
}

fn filled(gpu: &Gpu, shape: &[usize]) -> Tensor {
    let n: usize = shape.iter().product();
    let v: Vec<f32> = (0..n).map(|i| ((i * 7919) % 1000) as f32 * 1e-3 - 0.5).collect();
    Tensor::from_slice(gpu, shape, &v).unwrap()
}

fn main() {
    if std::env::var_os("XDG_RUNTIME_DIR").is_none() {
        std::env::set_var("XDG_RUNTIME_DIR", std::env::temp_dir());
    }
    let filter = std::env::args().nth(1).unwrap_or_default();
    let gpu = Gpu::new(&AdapterChoice::default()).unwrap();
    println!("{}", gpu.adapter_name());

    let big = filled(&gpu, &[8, 32, 112, 112]);
    let copy_ms = time(&gpu, 5, || {
        big.deep_clone().unwrap();
    });
    let copy_gbs = 2.0 * big.bytes() as f64 / copy_ms / 1e6;
    let ew_ms = time(&gpu, 5, || {
        elementwise::mul_scalar(&big, 2.0).unwrap();
    });
    let ew_gbs = 2.0 * big.bytes() as f64 / ew_ms / 1e6;
    println!("copy: {copy_gbs:.1} GB/s (buffer copy), {ew_gbs:.1} GB/s (elementwise kernel)");

    let sym = |s: usize, p: usize| {
        Conv2dOptions::new()
            .stride(s, s)
            .padding(Padding::symmetric(p, p))
    };
    let cases: Vec<(&str, [usize; 4], [usize; 4], Conv2dOptions, bool)> = vec![
        ("3x3 64->64 @56", [8, 64, 56, 56], [64, 64, 3, 3], sym(1, 1), true),
        (
            "7x7 s2 3->64 @224",
            [8, 3, 224, 224],
            [64, 3, 7, 7],
            sym(2, 3),
            false,
        ),
        (
            "1x1 256->64 @56",
            [8, 256, 56, 56],
            [64, 256, 1, 1],
            sym(1, 0),
            false,
        ),
        (
            "3x3 s2 128->128 @56",
            [8, 128, 56, 56],
            [128, 128, 3, 3],
            sym(2, 1),
            true,
        ),
        (
            "1x1 1024->256 @14",
            [8, 1024, 14, 14],
            [256, 1024, 1, 1],
            sym(1, 0),
            false,
        ),
        (
            "dw 3x3 32 @112",
            [8, 32, 112, 112],
            [32, 1, 3, 3],
            sym(1, 1).groups(32),
            true,
        ),
        (
            "dw 5x5 s2 144 @56",
            [8, 144, 56, 56],
            [144, 1, 5, 5],
            sym(2, 2).groups(144),
            false,
        ),
        (
            "dw 5x5 672 @14",
            [8, 672, 14, 14],
            [672, 1, 5, 5],
            sym(1, 2).groups(672),
            false,
        ),
    ];
    for (name, xs, ws, opts, backward) in cases {
        if !name.contains(&filter) {
            continue;
        }
        let x = filled(&gpu, &xs);
        let w = filled(&gpu, &ws);
        let cost = conv::conv2d_cost(&xs, &ws, &opts).unwrap();
        let reps = if cost.flops > 5e9 { 3 } else { 5 };
        let fwd = time(&gpu, reps, || {
            conv::conv2d(&x, &w, None, &opts).unwrap();
        });
        print!(
            "{name:22} fwd {fwd:8.1} ms {:6.2} GFLOP/s {:6.2} GB/s",
            cost.flops / fwd / 1e6,
            cost.bytes / fwd / 1e6
        );
        if backward {
            let y = conv::conv2d(&x, &w, None, &opts).unwrap();
            let bi = time(&gpu, reps, || {
                conv::conv2d_backward_input(&y, &w, &opts, &xs).unwrap();
            });
            let bw = time(&gpu, reps, || {
                conv::conv2d_backward_weight(&x, &y, &opts, &ws).unwrap();
            });
            print!(
                " | dx {bi:8.1} ms ({:.2}x fwd) | dw {bw:8.1} ms ({:.2}x fwd)",
                bi / fwd,
                bw / fwd
            );
        }
        println!();
    }
}
