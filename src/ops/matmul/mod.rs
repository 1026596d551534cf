//! Batched matrix multiply with optional transposes and batch broadcasting.

pub mod reference;

use crate::gpu::{max_linear_invocations, Gpu, Grid, Kernel, KernelProfile};
use crate::ops::Cost;
use crate::tensor::{DType, Tensor};
use crate::{Error, Result};

pub const KERNEL: Kernel = crate::wgsl_kernel!("matmul");

crate::kernel_params! {
    /// `C[b] (m×n) (+)= alpha · op(A[b]) · op(B[b])`; a batch stride of 0 broadcasts the operand.
    pub struct MatmulParams as "Params" {
        m: u32,
        n: u32,
        k: u32,
        a_batch_stride: u32,
        b_batch_stride: u32,
        c_batch_stride: u32,
        alpha: f32,
        accumulate: u32,
    }
}

/// How [`matmul_into`] tiles the product. [`MatmulTiles::for_gpu`] picks the shape of the
/// device's kernel profile; [`matmul`] uses it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MatmulTiles {
    /// Register tiles without workgroup memory (`matmul_vec4`, `matmul_general`): the `cpu`
    /// profile's shape, for software adapters where barriers and shared memory buy nothing.
    Register(RegisterTiles),
    /// Workgroup-memory tiles (`matmul_tiled`, `matmul_tiled_vec4`): the `gpu` profile's shape.
    Shared(SharedTiles),
}

impl MatmulTiles {
    /// The tiles of `gpu`'s kernel profile: [`RegisterTiles::default`] under `cpu`; under
    /// `gpu`, the [`SharedTiles`] set with `gpu.set_tuning(Some(SharedTiles { .. }))`, or else
    /// [`SharedTiles::for_limits`].
    pub fn for_gpu(gpu: &Gpu) -> MatmulTiles {
        match gpu.kernel_profile() {
            KernelProfile::Cpu => MatmulTiles::Register(RegisterTiles::default()),
            KernelProfile::Gpu => MatmulTiles::Shared(
                gpu.tuning::<SharedTiles>()
                    .unwrap_or_else(|| SharedTiles::for_limits(gpu.limits())),
            ),
        }
    }
}

/// The register-tiled kernels' shape. The defaults suit lavapipe.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RegisterTiles {
    /// Rows of C per workgroup (1..=8).
    pub rows: u32,
    /// Invocations per workgroup; each owns 4 columns.
    pub width: u32,
}

impl Default for RegisterTiles {
    fn default() -> Self {
        RegisterTiles { rows: 8, width: 64 }
    }
}

/// The workgroup-memory kernel's shape (see `shaders/matmul.wgsl`, `matmul_tiled*`): each
/// workgroup computes a `tile_m`×`tile_n` block of C, staging `tile_k`-deep slices of A and B
/// twice over (double buffering); each invocation accumulates `thread_m`×`thread_n` outputs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SharedTiles {
    /// Rows of C per workgroup, a multiple of `thread_m`.
    pub tile_m: u32,
    /// Columns of C per workgroup, a multiple of `thread_n`.
    pub tile_n: u32,
    /// K per step, a multiple of 4.
    pub tile_k: u32,
    /// Rows per invocation: 4 or 8.
    pub thread_m: u32,
    /// Columns per invocation: 4 or 8.
    pub thread_n: u32,
}

/// Loads of one operand an invocation may stage per step (`MAX_STAGED` in the kernel).
const MAX_STAGED: u32 = 16;

impl SharedTiles {
    /// 64×64 outputs by 256 invocations of 4×4, 16-deep steps: 16 KiB of workgroup storage,
    /// WebGPU's guaranteed minimum.
    pub const DEFAULT: SharedTiles = SharedTiles {
        tile_m: 64,
        tile_n: 64,
        tile_k: 16,
        thread_m: 4,
        thread_n: 4,
    };

    /// [`DEFAULT`](Self::DEFAULT), with shallower steps where the adapter has less workgroup
    /// storage than that takes (some GL drivers report 16,352 bytes), and 8×8 per invocation
    /// where it allows fewer than 256 invocations.
    pub fn for_limits(limits: &wgpu::Limits) -> SharedTiles {
        let mut tiles = SharedTiles::DEFAULT;
        if tiles.invocations() > max_linear_invocations(limits) {
            tiles.thread_m = 8;
            tiles.thread_n = 8;
        }
        while tiles.tile_k > 4
            && tiles.workgroup_bytes() > u64::from(limits.max_compute_workgroup_storage_size)
        {
            tiles.tile_k /= 2;
        }
        tiles
    }

    /// Invocations per workgroup.
    pub fn invocations(&self) -> u32 {
        (self.tile_m / self.thread_m.max(1)) * (self.tile_n / self.thread_n.max(1))
    }

    /// Workgroup storage: two k-steps of both operands' tiles.
    pub fn workgroup_bytes(&self) -> u64 {
        2 * u64::from(self.tile_k) * u64::from(self.tile_m + self.tile_n) * 4
    }

    /// The most loads one invocation stages per operand and step: scalar loads of the larger
    /// operand tile, shared by every invocation.
    pub fn staged_per_invocation(&self) -> u32 {
        (self.tile_k * self.tile_m.max(self.tile_n)).div_ceil(self.invocations().max(1))
    }

    /// The kernel's override constants for this tile.
    pub fn constants(&self) -> [(&'static str, f64); 5] {
        [
            ("TILE_M", self.tile_m as f64),
            ("TILE_N", self.tile_n as f64),
            ("TILE_K", self.tile_k as f64),
            ("THREAD_M", self.thread_m as f64),
            ("THREAD_N", self.thread_n as f64),
        ]
    }

    /// Whether the kernel can run this tile on an adapter with `limits`; the one-line error
    /// names the setting to change.
    pub fn check(&self, limits: &wgpu::Limits) -> Result<()> {
        let bad = |why: String| Err(Error::InvalidArgument(format!("matmul tile {self:?}: {why}")));
        for (name, value) in [("thread_m", self.thread_m), ("thread_n", self.thread_n)] {
            if value != 4 && value != 8 {
                return bad(format!("{name} must be 4 or 8, not {value}"));
            }
        }
        if self.tile_m == 0 || self.tile_m % self.thread_m != 0 {
            return bad("tile_m must be a positive multiple of thread_m".into());
        }
        if self.tile_n == 0 || self.tile_n % self.thread_n != 0 {
            return bad("tile_n must be a positive multiple of thread_n".into());
        }
        if self.tile_k == 0 || self.tile_k % 4 != 0 {
            return bad("tile_k must be a positive multiple of 4".into());
        }
        let invocations = self.invocations();
        let max_invocations = max_linear_invocations(limits);
        if invocations > max_invocations {
            return bad(format!(
                "its {invocations} invocations exceed the adapter's {max_invocations} per workgroup; lower tile_m or tile_n, or raise thread_m or thread_n"
            ));
        }
        let bytes = self.workgroup_bytes();
        if bytes > u64::from(limits.max_compute_workgroup_storage_size) {
            return bad(format!(
                "it needs {bytes} bytes of workgroup storage (2·tile_k·(tile_m + tile_n) floats) and the adapter allows {} (max_compute_workgroup_storage_size); lower tile_k, tile_m or tile_n",
                limits.max_compute_workgroup_storage_size
            ));
        }
        let staged = self.staged_per_invocation();
        if staged > MAX_STAGED {
            return bad(format!(
                "each invocation would stage {staged} loads per step, more than the kernel's {MAX_STAGED}; lower tile_k, or lower thread_m or thread_n for more invocations"
            ));
        }
        Ok(())
    }
}

/// The problem after shape checks: C[batch] (m×n) = op(A) (m×k) · op(B) (k×n).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MatmulShape {
    pub batch: usize,
    pub m: usize,
    pub n: usize,
    pub k: usize,
    pub a_batched: bool,
    pub b_batched: bool,
}

impl MatmulShape {
    /// Read shapes `[..., rows, cols]`; leading axes are flattened into one batch axis, and a
    /// batch of 1 broadcasts.
    pub fn infer(a: &[usize], b: &[usize], trans_a: bool, trans_b: bool) -> Result<Self> {
        let err = |detail: String| Error::Shape { op: "matmul", detail };
        if a.len() < 2 || b.len() < 2 {
            return Err(err(format!("operands need at least 2 axes, got {a:?} and {b:?}")));
        }
        let (ar, ac) = (a[a.len() - 2], a[a.len() - 1]);
        let (br, bc) = (b[b.len() - 2], b[b.len() - 1]);
        let (m, ka) = if trans_a { (ac, ar) } else { (ar, ac) };
        let (kb, n) = if trans_b { (bc, br) } else { (br, bc) };
        if ka != kb {
            return Err(err(format!("inner sizes differ: A {a:?} (trans {trans_a}) has k={ka}, B {b:?} (trans {trans_b}) has k={kb}")));
        }
        let batch_a: usize = a[..a.len() - 2].iter().product();
        let batch_b: usize = b[..b.len() - 2].iter().product();
        if batch_a != batch_b && batch_a != 1 && batch_b != 1 {
            return Err(err(format!(
                "batch sizes {batch_a} ({a:?}) and {batch_b} ({b:?}) do not broadcast"
            )));
        }
        Ok(MatmulShape {
            batch: batch_a.max(batch_b),
            m,
            n,
            k: ka,
            a_batched: batch_a > 1 || batch_b == 1,
            b_batched: batch_b > 1 || batch_a == 1,
        })
    }

    pub fn cost(&self) -> Cost {
        let (b, m, n, k) = (self.batch as f64, self.m as f64, self.n as f64, self.k as f64);
        Cost {
            flops: 2.0 * b * m * n * k,
            bytes: 4.0 * (b * m * n + m * k * b + k * n * b),
        }
    }
}

/// `op(a) · op(b)`. The result has shape `[batch..., m, n]`, taking the batch axes of the
/// batched operand.
pub fn matmul(a: &Tensor, b: &Tensor, trans_a: bool, trans_b: bool) -> Result<Tensor> {
    let shape = MatmulShape::infer(a.shape(), b.shape(), trans_a, trans_b)?;
    let a_lead = &a.shape()[..a.rank() - 2];
    let b_lead = &b.shape()[..b.rank() - 2];
    let b_has_batch = b_lead.iter().product::<usize>() > 1;
    let mut out_shape = if b_has_batch {
        b_lead.to_vec()
    } else {
        a_lead.to_vec()
    };
    out_shape.extend([shape.m, shape.n]);
    let out = Tensor::empty(a.gpu(), &out_shape, DType::F32)?;
    matmul_into(
        a,
        b,
        trans_a,
        trans_b,
        &out,
        1.0,
        false,
        MatmulTiles::for_gpu(a.gpu()),
    )?;
    Ok(out)
}

/// `out = alpha·op(a)·op(b)`, or `out += ...` when `accumulate`.
#[allow(clippy::too_many_arguments)]
pub fn matmul_into(
    a: &Tensor,
    b: &Tensor,
    trans_a: bool,
    trans_b: bool,
    out: &Tensor,
    alpha: f32,
    accumulate: bool,
    tiles: MatmulTiles,
) -> Result<()> {
    a.expect_f32("matmul")?;
    b.expect_f32("matmul")?;
    a.same_gpu(b, "matmul")?;
    a.same_gpu(out, "matmul")?;
    let s = MatmulShape::infer(a.shape(), b.shape(), trans_a, trans_b)?;
    if out.numel() != s.batch * s.m * s.n {
        return Err(Error::Shape {
            op: "matmul",
            detail: format!("output {:?} cannot hold {}×{}×{}", out.shape(), s.batch, s.m, s.n),
        });
    }
    match &tiles {
        MatmulTiles::Register(t) if !(1..=8).contains(&t.rows) || t.width == 0 => {
            return Err(Error::InvalidArgument(format!(
                "matmul tiles {t:?}: rows must be 1..=8 and width positive"
            )));
        }
        MatmulTiles::Register(_) => {}
        MatmulTiles::Shared(t) => t.check(a.gpu().limits())?,
    }
    if s.m == 0 || s.n == 0 || s.batch == 0 {
        return Ok(());
    }
    if s.k == 0 {
        if !accumulate {
            return Err(Error::Shape {
                op: "matmul",
                detail: "inner size is 0".into(),
            });
        }
        return Ok(());
    }
    let params = MatmulParams {
        m: s.m as u32,
        n: s.n as u32,
        k: s.k as u32,
        a_batch_stride: if s.a_batched { (s.m * s.k) as u32 } else { 0 },
        b_batch_stride: if s.b_batched { (s.k * s.n) as u32 } else { 0 },
        c_batch_stride: (s.m * s.n) as u32,
        alpha,
        accumulate: accumulate as u32,
    };
    let buffers = [("a", a), ("b", b), ("c", out), ("a4", a), ("b4", b), ("c4", out)];
    let gpu = a.gpu();
    match tiles {
        MatmulTiles::Register(tiles) => {
            // The vec4 path steps k by 4 and reads B and C as vec4 rows.
            let vec4 = !trans_b && s.n % 4 == 0 && s.k % 4 == 0;
            let constants = [
                ("TM", tiles.rows as f64),
                ("WG_X", tiles.width as f64),
                ("TRANS_A", trans_a as u32 as f64),
                ("TRANS_B", trans_b as u32 as f64),
            ];
            let cols_per_group = tiles.width as usize * 4;
            let grid = Grid::Xyz(
                s.n.div_ceil(cols_per_group) as u32,
                s.m.div_ceil(tiles.rows as usize) as u32,
                s.batch as u32,
            );
            let entry = if vec4 { "matmul_vec4" } else { "matmul_general" };
            gpu.launch(&KERNEL, entry, &constants, &params, &buffers, grid)
        }
        MatmulTiles::Shared(tiles) => {
            // An operand loads as vec4s where its contiguous axis is a multiple of 4; its
            // batch stride then is too.
            let vec4_a = if trans_a { s.m % 4 == 0 } else { s.k % 4 == 0 };
            let vec4_b = if trans_b { s.k % 4 == 0 } else { s.n % 4 == 0 };
            let [c0, c1, c2, c3, c4] = tiles.constants();
            let constants = [
                c0,
                c1,
                c2,
                c3,
                c4,
                ("TRANS_A", trans_a as u32 as f64),
                ("TRANS_B", trans_b as u32 as f64),
                ("VEC4_A", vec4_a as u32 as f64),
                ("VEC4_B", vec4_b as u32 as f64),
            ];
            let grid = Grid::Xyz(
                s.n.div_ceil(tiles.tile_n as usize) as u32,
                s.m.div_ceil(tiles.tile_m as usize) as u32,
                s.batch as u32,
            );
            let entry = if s.n % 4 == 0 {
                "matmul_tiled_vec4"
            } else {
                "matmul_tiled"
            };
            // The entry binds the vec4 views of A and B whichever loads the constants choose,
            // and a vec4 binding must hold one vec4: an operand of fewer than 4 values, read
            // as scalars, gets a stand-in for its unread vec4 view.
            let stand_in = if a.numel() < 4 || b.numel() < 4 {
                Some(Tensor::zeros(gpu, &[4])?)
            } else {
                None
            };
            let a4 = if a.numel() < 4 {
                stand_in.as_ref().unwrap()
            } else {
                a
            };
            let b4 = if b.numel() < 4 {
                stand_in.as_ref().unwrap()
            } else {
                b
            };
            let buffers = [
                ("a", a),
                ("b", b),
                ("c", out),
                ("a4", a4),
                ("b4", b4),
                ("c4", out),
            ];
            gpu.launch(&KERNEL, entry, &constants, &params, &buffers, grid)
        }
    }
}
