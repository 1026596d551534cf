//! The implicit GEMM behind the dense convolution, its input gradient and the transposed
//! convolution: `out[m, p] = Σ_k dot(A[row(m) + tap(k).x], B[base(p) + tap(k).y])` over
//! packed operands and a host-built tap table (see `shaders/conv_gemm.wgsl`).

use super::{Activation, Epilogue};
use crate::gpu::{groups_for, max_linear_invocations, Grid, Kernel, KernelProfile};
use crate::tensor::Tensor;
use crate::{Error, Result};

pub const KERNEL: Kernel = crate::wgsl_kernel!("conv_gemm");

/// Invocations per workgroup.
const WG: usize = 64;
/// Output pixels per invocation (one vec4 accumulator per row).
const PIX: usize = 4;
/// Largest number of rows (channels) one invocation accumulates.
const MAX_BLOCK: usize = 8;

crate::kernel_params! {
    /// Strides of the packed operands (vec4 units) and of the output (scalars).
    pub struct GemmParams as "GemmParams" {
        images: u32,
        rows_per_group: u32,
        blocks_per_group: u32,
        a_group_stride: u32,
        a_row_stride: u32,
        b_group_stride: u32,
        b_image_stride: u32,
        b_row_stride: u32,
        b_col_stride: u32,
        b_channel_stride: u32,
        out_image_stride: u32,
        out_channel_stride: u32,
        out_row_stride: u32,
        out_col_stride: u32,
    }
}

/// One GEMM launch: the sizes and strides, plus its phase count (input gradients with a
/// stride run one phase per stride offset) and the largest phase's pixel count.
pub struct GemmSpec {
    pub images: usize,
    pub groups: usize,
    pub rows_per_group: usize,
    pub a_group_stride: usize,
    pub a_row_stride: usize,
    pub b_group_stride: usize,
    pub b_image_stride: usize,
    pub b_row_stride: usize,
    pub b_col_stride: usize,
    /// `Some(channel stride)` when B is the NCHW tensor itself, read with `activation`;
    /// all B strides are then in scalars.
    pub direct: Option<(usize, Activation)>,
    pub out_image_stride: usize,
    pub out_channel_stride: usize,
    pub out_row_stride: usize,
    pub out_col_stride: usize,
    pub phases: usize,
    pub max_phase_pixels: usize,
}

/// The workgroup tile of the tiled GEMM the `gpu` kernel profile runs (the `gemm_tiled*`
/// entry points): `rows` output channels × `pixels` pixels per workgroup, `taps` vec4 taps
/// staged per step (twice, for double buffering), `thread_rows` rows per invocation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GemmTiles {
    pub rows: u32,
    pub pixels: u32,
    pub taps: u32,
    pub thread_rows: u32,
}

impl GemmTiles {
    /// The default tile for `rows_per_group` output channels: as many rows as the channels
    /// fill, up to 64, by 64 pixels with 256 invocations; 8 taps a stage where the adapter
    /// has the 32 KiB of workgroup storage that takes, else the most that fit (4 in WebGPU's
    /// 16 KiB, 2 in the 16,352 bytes some GL drivers report).
    pub fn for_rows(rows_per_group: usize, limits: &wgpu::Limits) -> GemmTiles {
        let rows = match rows_per_group {
            r if r >= 64 => 64,
            r if r >= 32 => 32,
            _ => 16,
        };
        let mut tiles = GemmTiles {
            rows,
            pixels: 64,
            taps: 8,
            thread_rows: rows / 16,
        };
        while tiles.taps > 1 && tiles.workgroup_bytes() > u64::from(limits.max_compute_workgroup_storage_size)
        {
            tiles.taps /= 2;
        }
        tiles
    }

    /// Workgroup storage: two stages of A and B vec4s.
    pub fn workgroup_bytes(&self) -> u64 {
        2 * u64::from(self.taps) * u64::from(self.rows + self.pixels) * 16
    }

    /// Invocations per workgroup.
    pub fn invocations(&self) -> u32 {
        (self.rows / self.thread_rows.max(1)) * (self.pixels / PIX as u32)
    }

    /// Whether the kernel can run this tile on an adapter with `limits`; the error names the
    /// field to change.
    pub fn check(&self, limits: &wgpu::Limits) -> Result<()> {
        let bad = |why: String| Err(Error::InvalidArgument(format!("GEMM tile {self:?}: {why}")));
        if self.taps == 0 || self.pixels == 0 || self.pixels % PIX as u32 != 0 {
            return bad(format!(
                "taps must be positive and pixels a positive multiple of {PIX}"
            ));
        }
        if !(1..=MAX_BLOCK as u32).contains(&self.thread_rows) || self.rows % self.thread_rows != 0 {
            return bad(format!("thread_rows must be 1..={MAX_BLOCK} and divide rows"));
        }
        let invocations = self.invocations();
        if invocations % self.pixels != 0 {
            return bad(format!(
                "its {invocations} invocations must be a multiple of pixels; raise rows / thread_rows"
            ));
        }
        let most = max_linear_invocations(limits);
        if invocations > most {
            return bad(format!(
                "{invocations} invocations exceed the adapter's {most} per workgroup; lower rows or pixels, or raise thread_rows"
            ));
        }
        let bytes = self.workgroup_bytes();
        if bytes > u64::from(limits.max_compute_workgroup_storage_size) {
            return bad(format!(
                "it needs {bytes} bytes of workgroup storage and the adapter allows {}; lower taps, rows or pixels",
                limits.max_compute_workgroup_storage_size
            ));
        }
        Ok(())
    }
}

/// Run the GEMM of packed weights `a` and packed planes `b` with the tap `table` into `out`,
/// finishing each sum with `epilogue`. The `gpu` kernel profile runs the workgroup-tiled
/// form, with the tile set by `gpu.set_tuning(Some(GemmTiles { .. }))` or else the default one.
pub fn launch_gemm(
    a: &Tensor,
    b: &Tensor,
    table: &[[u32; 2]],
    epilogue: Epilogue,
    out: &Tensor,
    spec: &GemmSpec,
) -> Result<()> {
    let gpu = a.gpu();
    let tiles = (gpu.kernel_profile() == KernelProfile::Gpu).then(|| {
        gpu.tuning::<GemmTiles>()
            .unwrap_or_else(|| GemmTiles::for_rows(spec.rows_per_group, gpu.limits()))
    });
    if let Some(t) = &tiles {
        t.check(gpu.limits())?;
    }
    // Rows per workgroup, and pixels per workgroup.
    let (block, pixels) = match &tiles {
        Some(t) => (t.rows as usize, t.pixels as usize),
        None => (block_for(spec.rows_per_group), WG * PIX),
    };
    let blocks_per_group = spec.rows_per_group.div_ceil(block);
    let flat: Vec<u32> = table.iter().flatten().copied().collect();
    let taps = Tensor::from_u32(gpu, &[flat.len()], &flat)?;
    let params = GemmParams {
        images: spec.images as u32,
        rows_per_group: spec.rows_per_group as u32,
        blocks_per_group: blocks_per_group as u32,
        a_group_stride: spec.a_group_stride as u32,
        a_row_stride: spec.a_row_stride as u32,
        b_group_stride: spec.b_group_stride as u32,
        b_image_stride: spec.b_image_stride as u32,
        b_row_stride: spec.b_row_stride as u32,
        b_col_stride: spec.b_col_stride as u32,
        b_channel_stride: spec.direct.map_or(0, |(stride, _)| stride) as u32,
        out_image_stride: spec.out_image_stride as u32,
        out_channel_stride: spec.out_channel_stride as u32,
        out_row_stride: spec.out_row_stride as u32,
        out_col_stride: spec.out_col_stride as u32,
    };
    let grid = Grid::Xyz(
        (spec.groups * blocks_per_group) as u32,
        groups_for(spec.max_phase_pixels, pixels),
        spec.phases as u32,
    );
    // Both forms of B are statically used, so both names are bound, to the same buffer.
    let mut buffers = vec![
        ("mat_a", a),
        ("mat_b", b),
        ("mat_b_direct", b),
        ("taps", &taps),
        ("out", out),
    ];
    let mut constants = match &tiles {
        Some(t) => vec![
            ("TILE_ROWS", f64::from(t.rows)),
            ("TILE_PIXELS", f64::from(t.pixels)),
            ("TILE_TAPS", f64::from(t.taps)),
            ("THREAD_ROWS", f64::from(t.thread_rows)),
        ],
        None => vec![("WG", WG as f64), ("BLOCK", block as f64)],
    };
    if let Some((_, activation)) = spec.direct {
        constants.extend([("DIRECT", 1.0), ("ACT", activation.code())]);
    }
    let epilogue_name = match epilogue {
        Epilogue::Plain => "",
        Epilogue::Bias(bias) => {
            buffers.push(("bias", bias));
            "_bias"
        }
        Epilogue::Masked(x, activation) => {
            buffers.push(("gemm_mask", x));
            constants.push(("SLOPE_ACT", activation.code()));
            "_masked"
        }
    };
    let form = if tiles.is_some() { "gemm_tiled" } else { "gemm" };
    let entry = format!("{form}{epilogue_name}");
    gpu.launch(&KERNEL, &entry, &constants, &params, &buffers, grid)
}

/// Rows per invocation: the largest power of two up to MAX_BLOCK that the rows fill.
pub fn block_for(rows: usize) -> usize {
    let mut block = MAX_BLOCK;
    while block > 1 && block > rows {
        block /= 2;
    }
    block
}
