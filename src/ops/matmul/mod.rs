//! Batched matrix multiply with optional transposes and batch broadcasting.

pub mod reference;

use crate::gpu::{Grid, Kernel};
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

/// Tile sizes. The defaults suit lavapipe; GPUs may prefer more rows or wider workgroups.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MatmulTiles {
    /// Rows of C per workgroup (1..=8).
    pub rows: u32,
    /// Invocations per workgroup; each owns 4 columns.
    pub width: u32,
}

impl Default for MatmulTiles {
    fn default() -> Self {
        MatmulTiles { rows: 8, width: 64 }
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
    matmul_into(a, b, trans_a, trans_b, &out, 1.0, false, MatmulTiles::default())?;
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
    if !(1..=8).contains(&tiles.rows) || tiles.width == 0 {
        return Err(Error::InvalidArgument(format!(
            "matmul tiles {tiles:?}: rows must be 1..=8"
        )));
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
    // The vec4 path steps k by 4 and reads B and C as vec4 rows.
    let vec4 = !trans_b && s.n % 4 == 0 && s.k % 4 == 0;
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
    let buffers = [("a", a), ("b", b), ("c", out), ("a4", a), ("b4", b), ("c4", out)];
    a.gpu()
        .launch(&KERNEL, entry, &constants, &params, &buffers, grid)
}
