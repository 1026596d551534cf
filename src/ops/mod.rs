//! Kernel families. Each module pairs one WGSL file in `shaders/` with its launcher
//! (shape checks, FLOP and byte counts) and a plain CPU reference in `reference.rs`.

pub mod attention;
pub mod batchnorm;
pub mod conv;
pub mod elementwise;
pub mod filter;
pub mod layout;
pub mod matmul;
pub mod mix;
pub mod optim;
pub mod pool;
pub mod probe;
pub mod random;
pub mod reduce;
pub mod resize;
pub mod softmax;

use crate::gpu::{Kernel, ParamsLayout};

/// Every kernel family compiled into the library.
pub const ALL_KERNELS: &[Kernel] = &[
    attention::KERNEL,
    batchnorm::KERNEL,
    conv::bias_grad::KERNEL,
    conv::depthwise::KERNEL,
    conv::gemm::KERNEL,
    conv::pack_planes::KERNEL,
    conv::pack_weights::KERNEL,
    conv::weight_grad::KERNEL,
    elementwise::KERNEL,
    filter::KERNEL,
    layout::KERNEL,
    matmul::KERNEL,
    mix::KERNEL,
    optim::KERNEL,
    pool::KERNEL,
    probe::KERNEL,
    random::KERNEL,
    reduce::KERNEL,
    reduce::subgroup::KERNEL,
    resize::KERNEL,
    softmax::KERNEL,
    softmax::subgroup::KERNEL,
];

/// Every kernel parameter block, for the test that compares each with its WGSL struct.
pub fn all_params() -> Vec<ParamsLayout> {
    vec![
        ParamsLayout::of::<batchnorm::BatchNormParams>(batchnorm::KERNEL),
        ParamsLayout::of::<conv::bias_grad::BiasGradParams>(conv::bias_grad::KERNEL),
        ParamsLayout::of::<conv::depthwise::DepthwiseParams>(conv::depthwise::KERNEL),
        ParamsLayout::of::<conv::gemm::GemmParams>(conv::gemm::KERNEL),
        ParamsLayout::of::<conv::pack_planes::PackPlanesParams>(conv::pack_planes::KERNEL),
        ParamsLayout::of::<conv::pack_weights::PackWeightsParams>(conv::pack_weights::KERNEL),
        ParamsLayout::of::<conv::weight_grad::WeightGradParams>(conv::weight_grad::KERNEL),
        ParamsLayout::of::<elementwise::ElementwiseParams>(elementwise::KERNEL),
        ParamsLayout::of::<matmul::MatmulParams>(matmul::KERNEL),
        ParamsLayout::of::<reduce::ReduceParams>(reduce::KERNEL),
        ParamsLayout::of::<reduce::ReduceParams>(reduce::subgroup::KERNEL),
        ParamsLayout::of::<softmax::SoftmaxParams>(softmax::KERNEL),
        ParamsLayout::of::<softmax::SoftmaxParams>(softmax::subgroup::KERNEL),
        ParamsLayout::of::<filter::FilterParams>(filter::KERNEL),
        ParamsLayout::of::<layout::LayoutParams>(layout::KERNEL),
        ParamsLayout::of::<optim::OptimParams>(optim::KERNEL),
        ParamsLayout::of::<pool::PoolParams>(pool::KERNEL),
        ParamsLayout::of::<probe::ProbeParams>(probe::KERNEL),
        ParamsLayout::of::<random::RandomParams>(random::KERNEL),
        ParamsLayout::of::<resize::ResizeParams>(resize::KERNEL),
        ParamsLayout::of::<attention::AttentionParams>(attention::KERNEL),
        ParamsLayout::of::<mix::MixParams>(mix::KERNEL),
    ]
}

/// Work done by one kernel launch, for benchmark reports.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Cost {
    pub flops: f64,
    pub bytes: f64,
}

/// Axes the index-mapping kernels (elementwise broadcasting, layout) take.
pub const MAX_RANK: usize = 8;

/// Up to [`MAX_RANK`] per-axis values as the WGSL `array<vec4<T>, 2>` of the index-mapping
/// kernels, innermost last, with `fill` on the axes past the list's end.
pub(crate) fn pack_axes<T: Copy>(values: impl IntoIterator<Item = T>, fill: T) -> [[T; 4]; 2] {
    let mut out = [[fill; 4]; 2];
    for (d, v) in values.into_iter().take(MAX_RANK).enumerate() {
        out[d / 4][d % 4] = v;
    }
    out
}

/// Row-major strides of a contiguous tensor.
pub fn contiguous_strides(shape: &[usize]) -> Vec<usize> {
    let mut strides = vec![1; shape.len()];
    for d in (0..shape.len().saturating_sub(1)).rev() {
        strides[d] = strides[d + 1] * shape[d + 1];
    }
    strides
}

/// NumPy broadcasting of two shapes, right-aligned.
pub fn broadcast_shapes(a: &[usize], b: &[usize]) -> Option<Vec<usize>> {
    let rank = a.len().max(b.len());
    let mut out = vec![0; rank];
    for i in 0..rank {
        let da = if i < rank - a.len() {
            1
        } else {
            a[i - (rank - a.len())]
        };
        let db = if i < rank - b.len() {
            1
        } else {
            b[i - (rank - b.len())]
        };
        out[i] = match (da, db) {
            (x, y) if x == y => x,
            (1, y) => y,
            (x, 1) => x,
            _ => return None,
        };
    }
    Some(out)
}
