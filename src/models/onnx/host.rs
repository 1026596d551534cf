//! Small tensors that live on the host: shapes, axes, indices and scalar constants.
//!
//! Exporters compute reshape targets and slice bounds with subgraphs of Shape, Gather,
//! Concat, Unsqueeze, ConstantOfShape, Expand, Where, Equal and Cast. Those never need
//! the GPU: they are evaluated here, at load time when their inputs are constants and at
//! the start of a forward pass when they read an activation's shape, with numpy's
//! broadcasting rules.

use crate::{Error, Result};

/// A host tensor: row-major `data` of shape `dims`.
#[derive(Clone, Debug, PartialEq)]
pub struct HostTensor {
    pub dims: Vec<usize>,
    pub data: HostData,
}

#[derive(Clone, Debug, PartialEq)]
pub enum HostData {
    /// Every ONNX integer type and bool (0 or 1).
    Int(Vec<i64>),
    /// Every ONNX float type, as f32.
    Float(Vec<f32>),
}

/// The op types evaluated on the host when all their inputs are host tensors.
pub const HOST_OPS: &[&str] = &[
    "Shape",
    "Size",
    "Gather",
    "Concat",
    "Unsqueeze",
    "Squeeze",
    "ConstantOfShape",
    "Expand",
    "Where",
    "Equal",
    "Less",
    "Greater",
    "Not",
    "Cast",
    "Slice",
    "Reshape",
    "Flatten",
    "Add",
    "Sub",
    "Mul",
    "Div",
    "Neg",
    "Abs",
    "Min",
    "Max",
    "Range",
    "Mod",
    "Transpose",
    "Identity",
];

/// The op types that only ever make sense on host values (they have no GPU form).
pub const HOST_ONLY_OPS: &[&str] = &[
    "Shape",
    "Size",
    "ConstantOfShape",
    "Where",
    "Equal",
    "Less",
    "Greater",
    "Not",
    "Range",
    "Mod",
];

fn bad(detail: String) -> Error {
    Error::InvalidArgument(detail)
}

/// The most elements a host tensor may have. Host tensors are shapes, indices and small
/// constants; a graph that asks for more (a ConstantOfShape or Expand of a billion
/// elements, say) is refused before anything is allocated.
pub const MAX_HOST_ELEMENTS: usize = 1 << 24;

/// The element count of `dims`, refused when it overflows or exceeds [`MAX_HOST_ELEMENTS`].
fn checked_numel(dims: &[usize]) -> Result<usize> {
    dims.iter()
        .try_fold(1usize, |n, &d| n.checked_mul(d))
        .filter(|&n| n <= MAX_HOST_ELEMENTS)
        .ok_or_else(|| {
            bad(format!(
                "a shape computation of shape {dims:?} has more than {MAX_HOST_ELEMENTS} elements"
            ))
        })
}

impl HostTensor {
    pub fn ints(dims: Vec<usize>, data: Vec<i64>) -> HostTensor {
        HostTensor {
            dims,
            data: HostData::Int(data),
        }
    }
    pub fn floats(dims: Vec<usize>, data: Vec<f32>) -> HostTensor {
        HostTensor {
            dims,
            data: HostData::Float(data),
        }
    }
    /// A 1-D integer tensor.
    pub fn vector(data: Vec<i64>) -> HostTensor {
        HostTensor::ints(vec![data.len()], data)
    }

    pub fn numel(&self) -> usize {
        self.dims.iter().product()
    }

    /// The values as integers (floats truncated, as Cast does).
    pub fn as_ints(&self) -> Vec<i64> {
        match &self.data {
            HostData::Int(v) => v.clone(),
            HostData::Float(v) => v.iter().map(|&f| f as i64).collect(),
        }
    }

    pub fn as_floats(&self) -> Vec<f32> {
        match &self.data {
            HostData::Int(v) => v.iter().map(|&i| i as f32).collect(),
            HostData::Float(v) => v.clone(),
        }
    }

    /// The one value of a single-element tensor.
    pub fn scalar(&self) -> Result<f32> {
        match self.as_floats().as_slice() {
            [v] => Ok(*v),
            other => Err(bad(format!(
                "expected a single value, got {} of shape {:?}",
                other.len(),
                self.dims
            ))),
        }
    }

    fn is_float(&self) -> bool {
        matches!(self.data, HostData::Float(_))
    }

    fn map_elements(&self, dims: Vec<usize>, index: impl Fn(usize) -> usize, len: usize) -> HostTensor {
        let data = match &self.data {
            HostData::Int(v) => HostData::Int((0..len).map(|i| v[index(i)]).collect()),
            HostData::Float(v) => HostData::Float((0..len).map(|i| v[index(i)]).collect()),
        };
        HostTensor { dims, data }
    }
}

/// Row-major strides of `dims`.
fn strides(dims: &[usize]) -> Vec<usize> {
    let mut s = vec![1; dims.len()];
    for i in (0..dims.len().saturating_sub(1)).rev() {
        s[i] = s[i + 1] * dims[i + 1];
    }
    s
}

/// Bring a possibly negative `axis` into `0..rank`.
pub fn normalize_axis(axis: i64, rank: usize) -> Result<usize> {
    let r = rank as i64;
    let a = if axis < 0 { axis + r } else { axis };
    if !(0..r).contains(&a) {
        return Err(bad(format!("axis {axis} is out of range for rank {rank}")));
    }
    Ok(a as usize)
}

/// numpy's broadcast shape of two shapes.
pub fn broadcast_shape(a: &[usize], b: &[usize]) -> Result<Vec<usize>> {
    let rank = a.len().max(b.len());
    let at = |s: &[usize], i: usize| {
        let offset = rank - s.len();
        if i < offset {
            1
        } else {
            s[i - offset]
        }
    };
    (0..rank)
        .map(|i| match (at(a, i), at(b, i)) {
            (x, y) if x == y => Ok(x),
            (1, y) => Ok(y),
            (x, 1) => Ok(x),
            (x, y) => Err(bad(format!(
                "shapes {a:?} and {b:?} do not broadcast (axis {i}: {x} vs {y})"
            ))),
        })
        .collect()
}

/// The index into a tensor of `shape` (right-aligned, broadcast) of flat output index `i`
/// of an output of `out` shape.
fn broadcast_index(i: usize, out: &[usize], out_strides: &[usize], shape: &[usize]) -> usize {
    let offset = out.len() - shape.len();
    let in_strides = strides(shape);
    let mut index = 0;
    for axis in offset..out.len() {
        let coord = (i / out_strides[axis]) % out[axis];
        if shape[axis - offset] != 1 {
            index += coord * in_strides[axis - offset];
        }
    }
    index
}

fn expand(x: &HostTensor, dims: &[usize]) -> HostTensor {
    debug_assert!(
        dims.iter().product::<usize>() <= MAX_HOST_ELEMENTS,
        "callers check the size"
    );
    let out_strides = strides(dims);
    x.map_elements(
        dims.to_vec(),
        |i| broadcast_index(i, dims, &out_strides, &x.dims),
        dims.iter().product(),
    )
}

/// An elementwise op on two broadcast host tensors; floats if either is float.
fn binary(
    a: &HostTensor,
    b: &HostTensor,
    int: fn(i64, i64) -> i64,
    float: fn(f32, f32) -> f32,
) -> Result<HostTensor> {
    let dims = broadcast_shape(&a.dims, &b.dims)?;
    checked_numel(&dims)?;
    let (ea, eb) = (expand(a, &dims), expand(b, &dims));
    Ok(if a.is_float() || b.is_float() {
        let (x, y) = (ea.as_floats(), eb.as_floats());
        HostTensor::floats(dims, x.iter().zip(&y).map(|(&p, &q)| float(p, q)).collect())
    } else {
        let (x, y) = (ea.as_ints(), eb.as_ints());
        HostTensor::ints(dims, x.iter().zip(&y).map(|(&p, &q)| int(p, q)).collect())
    })
}

fn compare(a: &HostTensor, b: &HostTensor, f: fn(f64, f64) -> bool) -> Result<HostTensor> {
    let dims = broadcast_shape(&a.dims, &b.dims)?;
    checked_numel(&dims)?;
    let (x, y) = (expand(a, &dims).as_floats(), expand(b, &dims).as_floats());
    Ok(HostTensor::ints(
        dims,
        x.iter()
            .zip(&y)
            .map(|(&p, &q)| f(p as f64, q as f64) as i64)
            .collect(),
    ))
}

/// Gather along `axis` with (possibly negative) `indices`.
pub fn gather(data: &HostTensor, indices: &HostTensor, axis: i64) -> Result<HostTensor> {
    let axis = normalize_axis(axis, data.dims.len())?;
    let n = data.dims[axis] as i64;
    let idx: Vec<usize> = indices
        .as_ints()
        .into_iter()
        .map(|i| {
            let j = if i < 0 { i + n } else { i };
            if (0..n).contains(&j) {
                Ok(j as usize)
            } else {
                Err(bad(format!("index {i} is out of range for an axis of {n}")))
            }
        })
        .collect::<Result<_>>()?;
    let outer: usize = data.dims[..axis].iter().product();
    let inner: usize = data.dims[axis + 1..].iter().product();
    let mut dims = data.dims[..axis].to_vec();
    dims.extend(&indices.dims);
    dims.extend(&data.dims[axis + 1..]);
    let len = outer * idx.len() * inner;
    let axis_len = data.dims[axis];
    Ok(data.map_elements(
        dims,
        |i| {
            let (o, rest) = (i / (idx.len() * inner), i % (idx.len() * inner));
            let (k, r) = (rest / inner, rest % inner);
            (o * axis_len + idx[k]) * inner + r
        },
        len,
    ))
}

pub fn concat(parts: &[HostTensor], axis: i64) -> Result<HostTensor> {
    let first = parts.first().ok_or_else(|| bad("Concat of nothing".into()))?;
    let axis = normalize_axis(axis, first.dims.len())?;
    for p in parts {
        if p.dims.len() != first.dims.len()
            || p.dims
                .iter()
                .enumerate()
                .any(|(i, &d)| i != axis && d != first.dims[i])
        {
            return Err(bad(format!(
                "Concat of shapes {:?} and {:?} on axis {axis}",
                first.dims, p.dims
            )));
        }
    }
    let outer: usize = first.dims[..axis].iter().product();
    let float = parts.iter().any(HostTensor::is_float);
    let mut ints = Vec::new();
    let mut floats = Vec::new();
    for o in 0..outer {
        for p in parts {
            let chunk = p.dims[axis..].iter().product::<usize>();
            let range = o * chunk..(o + 1) * chunk;
            if float {
                floats.extend_from_slice(&p.as_floats()[range]);
            } else {
                ints.extend_from_slice(&p.as_ints()[range]);
            }
        }
    }
    let mut dims = first.dims.clone();
    dims[axis] = parts.iter().map(|p| p.dims[axis]).sum();
    Ok(if float {
        HostTensor::floats(dims, floats)
    } else {
        HostTensor::ints(dims, ints)
    })
}

/// The shape after inserting length-1 axes at `axes` (positions in the output).
pub fn unsqueeze_shape(dims: &[usize], axes: &[i64]) -> Result<Vec<usize>> {
    let rank = dims.len() + axes.len();
    let mut positions: Vec<usize> = axes
        .iter()
        .map(|&a| normalize_axis(a, rank))
        .collect::<Result<_>>()?;
    positions.sort_unstable();
    positions.dedup();
    if positions.len() != axes.len() {
        return Err(bad(format!("Unsqueeze axes {axes:?} repeat an axis")));
    }
    let mut source = dims.iter();
    Ok((0..rank)
        .map(|i| {
            if positions.contains(&i) {
                1
            } else {
                *source.next().expect("rank counts the source axes")
            }
        })
        .collect())
}

/// The shape after removing the length-1 axes `axes` (all of them when empty).
pub fn squeeze_shape(dims: &[usize], axes: &[i64]) -> Result<Vec<usize>> {
    if axes.is_empty() {
        return Ok(dims.iter().copied().filter(|&d| d != 1).collect());
    }
    let positions: Vec<usize> = axes
        .iter()
        .map(|&a| normalize_axis(a, dims.len()))
        .collect::<Result<_>>()?;
    for &p in &positions {
        if dims[p] != 1 {
            return Err(bad(format!("Squeeze of axis {p} of {dims:?}, which is not 1")));
        }
    }
    Ok(dims
        .iter()
        .enumerate()
        .filter(|(i, _)| !positions.contains(i))
        .map(|(_, &d)| d)
        .collect())
}

/// ONNX Reshape's target: 0 copies the input's axis (unless `allow_zero`), -1 takes what is left.
pub fn reshape_target(input: &[usize], target: &[i64], allow_zero: bool) -> Result<Vec<usize>> {
    let total: usize = input.iter().product();
    let mut shape = Vec::with_capacity(target.len());
    let mut free = None;
    for (i, &t) in target.iter().enumerate() {
        match t {
            0 if !allow_zero => shape.push(*input.get(i).ok_or_else(|| {
                bad(format!(
                    "target {target:?} copies axis {i} of {input:?}, which has none"
                ))
            })?),
            -1 if free.is_none() => {
                free = Some(i);
                shape.push(1);
            }
            t if t >= 0 => shape.push(t as usize),
            _ => return Err(bad(format!("target shape {target:?}"))),
        }
    }
    let known: usize = shape.iter().product();
    if let Some(i) = free {
        if known == 0 || total % known != 0 {
            return Err(bad(format!("cannot reshape {input:?} to {target:?}")));
        }
        shape[i] = total / known;
    }
    if shape.iter().product::<usize>() != total {
        return Err(bad(format!("cannot reshape {input:?} to {target:?}")));
    }
    Ok(shape)
}

/// The half-open range `start..end` of one Slice axis of length `n`, clamped as ONNX says,
/// for a positive step.
pub fn slice_range(start: i64, end: i64, n: usize) -> (usize, usize) {
    let n = n as i64;
    let clamp = |v: i64| {
        let v = if v < 0 { v + n } else { v };
        v.clamp(0, n) as usize
    };
    let (s, e) = (clamp(start), clamp(end));
    (s, e.max(s))
}

/// The elements of a 1-D host tensor that Slice with `step` keeps, as positions.
pub fn evaluate_slice(x: &HostTensor, start: i64, end: i64, step: i64) -> Result<Vec<usize>> {
    Ok(slice(x, &[start], &[end], &[0], &[step])?
        .as_ints()
        .into_iter()
        .map(|i| i as usize)
        .collect())
}

/// Slice with arbitrary (non-zero) steps on the host.
fn slice(x: &HostTensor, starts: &[i64], ends: &[i64], axes: &[i64], steps: &[i64]) -> Result<HostTensor> {
    let rank = x.dims.len();
    let mut ranges: Vec<Vec<usize>> = x.dims.iter().map(|&d| (0..d).collect()).collect();
    for (k, (&s, &e)) in starts.iter().zip(ends).enumerate() {
        let axis = normalize_axis(axes.get(k).copied().unwrap_or(k as i64), rank)?;
        let step = steps.get(k).copied().unwrap_or(1);
        let n = x.dims[axis] as i64;
        ranges[axis] = if step > 0 {
            let (a, b) = slice_range(s, e, x.dims[axis]);
            (a..b).step_by(step as usize).collect()
        } else if step < 0 {
            let clamp = |v: i64| {
                let v = if v < 0 { v + n } else { v };
                v.clamp(-1, n - 1)
            };
            let (mut i, stop) = (clamp(s), clamp(e));
            let mut picked = Vec::new();
            while i > stop {
                picked.push(i as usize);
                i += step;
            }
            picked
        } else {
            return Err(bad("Slice with a step of 0".into()));
        };
    }
    let dims: Vec<usize> = ranges.iter().map(Vec::len).collect();
    let out_strides = strides(&dims);
    let in_strides = strides(&x.dims);
    Ok(x.map_elements(
        dims.clone(),
        |i| {
            (0..rank)
                .map(|a| ranges[a][(i / out_strides[a]) % dims[a]] * in_strides[a])
                .sum()
        },
        dims.iter().product(),
    ))
}

/// Inputs and attributes a host op reads, resolved by the caller.
pub struct HostArgs<'a> {
    pub inputs: &'a [Option<HostTensor>],
    pub int_attr: &'a dyn Fn(&str) -> Option<i64>,
    pub ints_attr: &'a dyn Fn(&str) -> Option<Vec<i64>>,
    pub tensor_attr: &'a dyn Fn(&str) -> Option<HostTensor>,
}

impl HostArgs<'_> {
    fn input(&self, i: usize) -> Result<&HostTensor> {
        self.inputs
            .get(i)
            .and_then(Option::as_ref)
            .ok_or_else(|| bad(format!("input {i} is missing")))
    }
    fn optional(&self, i: usize) -> Option<&HostTensor> {
        self.inputs.get(i).and_then(Option::as_ref)
    }
    /// Axes from input `i` (newer opsets) or attribute `axes` (older ones).
    fn axes(&self, i: usize) -> Vec<i64> {
        self.optional(i)
            .map(HostTensor::as_ints)
            .or_else(|| (self.ints_attr)("axes"))
            .unwrap_or_default()
    }
}

/// Evaluate host op `op`. `shape_of` gives the shape of input 0 for Shape and Size, which
/// may be an activation on the GPU.
pub fn evaluate(op: &str, args: &HostArgs, shape_of: Option<&[usize]>) -> Result<HostTensor> {
    let x = || args.input(0);
    Ok(match op {
        "Shape" => {
            let dims = shape_of.ok_or_else(|| bad("Shape of a missing input".into()))?;
            let rank = dims.len() as i64;
            let clamp = |v: i64| (if v < 0 { v + rank } else { v }).clamp(0, rank) as usize;
            let start = clamp((args.int_attr)("start").unwrap_or(0));
            let end = clamp((args.int_attr)("end").unwrap_or(rank)).max(start);
            HostTensor::vector(dims[start..end].iter().map(|&d| d as i64).collect())
        }
        "Size" => {
            let dims = shape_of.ok_or_else(|| bad("Size of a missing input".into()))?;
            HostTensor::ints(vec![], vec![dims.iter().product::<usize>() as i64])
        }
        "Identity" => x()?.clone(),
        "Gather" => gather(x()?, args.input(1)?, (args.int_attr)("axis").unwrap_or(0))?,
        "Concat" => {
            let parts: Vec<HostTensor> = (0..args.inputs.len())
                .filter_map(|i| args.optional(i).cloned())
                .collect();
            concat(&parts, (args.int_attr)("axis").unwrap_or(0))?
        }
        "Unsqueeze" => {
            let x = x()?;
            HostTensor {
                dims: unsqueeze_shape(&x.dims, &args.axes(1))?,
                data: x.data.clone(),
            }
        }
        "Squeeze" => {
            let x = x()?;
            HostTensor {
                dims: squeeze_shape(&x.dims, &args.axes(1))?,
                data: x.data.clone(),
            }
        }
        "Reshape" => {
            let x = x()?;
            let allow_zero = (args.int_attr)("allowzero").unwrap_or(0) != 0;
            HostTensor {
                dims: reshape_target(&x.dims, &args.input(1)?.as_ints(), allow_zero)?,
                data: x.data.clone(),
            }
        }
        "Flatten" => {
            let x = x()?;
            let axis = (args.int_attr)("axis").unwrap_or(1);
            let axis = if axis == x.dims.len() as i64 {
                x.dims.len()
            } else {
                normalize_axis(axis, x.dims.len())?
            };
            let (lead, tail) = x.dims.split_at(axis);
            HostTensor {
                dims: vec![lead.iter().product(), tail.iter().product()],
                data: x.data.clone(),
            }
        }
        "ConstantOfShape" => {
            let dims: Vec<usize> = x()?
                .as_ints()
                .into_iter()
                .map(|d| usize::try_from(d).map_err(|_| bad(format!("negative dimension {d}"))))
                .collect::<Result<_>>()?;
            let n = checked_numel(&dims)?;
            match (args.tensor_attr)("value") {
                Some(v) if v.numel() != 1 => {
                    return Err(bad(format!(
                        "ConstantOfShape value of shape {:?}: expected one value",
                        v.dims
                    )))
                }
                Some(v) if !v.is_float() => HostTensor::ints(dims, vec![v.as_ints()[0]; n]),
                Some(v) => HostTensor::floats(dims, vec![v.scalar()?; n]),
                None => HostTensor::floats(dims, vec![0.0; n]),
            }
        }
        "Expand" => {
            let x = x()?;
            let target: Vec<usize> = args
                .input(1)?
                .as_ints()
                .iter()
                .map(|&d| d.max(0) as usize)
                .collect();
            expand(x, &broadcast_shape(&x.dims, &target)?)
        }
        "Where" => {
            let (c, a, b) = (x()?, args.input(1)?, args.input(2)?);
            let dims = broadcast_shape(&broadcast_shape(&c.dims, &a.dims)?, &b.dims)?;
            checked_numel(&dims)?;
            let c = expand(c, &dims).as_ints();
            let (ea, eb) = (expand(a, &dims), expand(b, &dims));
            if a.is_float() || b.is_float() {
                let (p, q) = (ea.as_floats(), eb.as_floats());
                HostTensor::floats(
                    dims,
                    (0..c.len())
                        .map(|i| if c[i] != 0 { p[i] } else { q[i] })
                        .collect(),
                )
            } else {
                let (p, q) = (ea.as_ints(), eb.as_ints());
                HostTensor::ints(
                    dims,
                    (0..c.len())
                        .map(|i| if c[i] != 0 { p[i] } else { q[i] })
                        .collect(),
                )
            }
        }
        "Equal" => compare(x()?, args.input(1)?, |a, b| a == b)?,
        "Less" => compare(x()?, args.input(1)?, |a, b| a < b)?,
        "Greater" => compare(x()?, args.input(1)?, |a, b| a > b)?,
        "Not" => {
            let x = x()?;
            HostTensor::ints(
                x.dims.clone(),
                x.as_ints().iter().map(|&v| (v == 0) as i64).collect(),
            )
        }
        "Cast" => {
            let x = x()?;
            // TensorProto codes: 1 float, 10 float16, 11 double, 16 bfloat16; 9 bool.
            match (args.int_attr)("to").unwrap_or(1) {
                1 | 10 | 11 | 16 => HostTensor::floats(x.dims.clone(), x.as_floats()),
                9 => HostTensor::ints(
                    x.dims.clone(),
                    x.as_floats().iter().map(|&v| (v != 0.0) as i64).collect(),
                ),
                _ => HostTensor::ints(x.dims.clone(), x.as_ints()),
            }
        }
        "Slice" => {
            let x = x()?;
            let starts = args.input(1)?.as_ints();
            let ends = args.input(2)?.as_ints();
            let axes = args.optional(3).map(HostTensor::as_ints).unwrap_or_default();
            let steps = args.optional(4).map(HostTensor::as_ints).unwrap_or_default();
            slice(x, &starts, &ends, &axes, &steps)?
        }
        "Add" => binary(x()?, args.input(1)?, |a, b| a.wrapping_add(b), |a, b| a + b)?,
        "Sub" => binary(x()?, args.input(1)?, |a, b| a.wrapping_sub(b), |a, b| a - b)?,
        "Mul" => binary(x()?, args.input(1)?, |a, b| a.wrapping_mul(b), |a, b| a * b)?,
        "Div" => {
            let (a, b) = (x()?, args.input(1)?);
            if !a.is_float() && !b.is_float() && b.as_ints().contains(&0) {
                return Err(bad("integer division by zero".into()));
            }
            binary(a, b, |a, b| a / b, |a, b| a / b)?
        }
        "Mod" => {
            let (a, b) = (x()?, args.input(1)?);
            if !a.is_float() && !b.is_float() && b.as_ints().contains(&0) {
                return Err(bad("integer modulo by zero".into()));
            }
            if (args.int_attr)("fmod").unwrap_or(0) != 0 {
                // C's fmod: the sign of the dividend.
                binary(a, b, |a, b| a % b, |a, b| a % b)?
            } else {
                // Python's %: the sign of the divisor.
                binary(
                    a,
                    b,
                    |a, b| a.rem_euclid(b) + if b < 0 && a.rem_euclid(b) != 0 { b } else { 0 },
                    |a, b| a - b * (a / b).floor(),
                )?
            }
        }
        "Transpose" => {
            let x = x()?;
            let rank = x.dims.len();
            let perm: Vec<usize> = match (args.ints_attr)("perm") {
                Some(p) => p
                    .iter()
                    .map(|&a| normalize_axis(a, rank))
                    .collect::<Result<_>>()?,
                None => (0..rank).rev().collect(),
            };
            let mut sorted = perm.clone();
            sorted.sort_unstable();
            if sorted != (0..rank).collect::<Vec<_>>() {
                return Err(bad(format!("Transpose perm {perm:?} for rank {rank}")));
            }
            let dims: Vec<usize> = perm.iter().map(|&p| x.dims[p]).collect();
            let (out_strides, in_strides) = (strides(&dims), strides(&x.dims));
            x.map_elements(
                dims.clone(),
                |i| {
                    (0..rank)
                        .map(|a| ((i / out_strides[a]) % dims[a]) * in_strides[perm[a]])
                        .sum()
                },
                dims.iter().product(),
            )
        }
        "Min" => binary(x()?, args.input(1)?, i64::min, f32::min)?,
        "Max" => binary(x()?, args.input(1)?, i64::max, f32::max)?,
        "Neg" => {
            let x = x()?;
            binary(x, &HostTensor::ints(vec![], vec![-1]), |a, b| a * b, |a, b| a * b)?
        }
        "Abs" => {
            let x = x()?;
            match &x.data {
                HostData::Int(v) => HostTensor::ints(x.dims.clone(), v.iter().map(|a| a.abs()).collect()),
                HostData::Float(v) => HostTensor::floats(x.dims.clone(), v.iter().map(|a| a.abs()).collect()),
            }
        }
        "Range" => {
            let (start, limit, delta) = (x()?.scalar()?, args.input(1)?.scalar()?, args.input(2)?.scalar()?);
            if delta == 0.0 {
                return Err(bad("Range with a delta of 0".into()));
            }
            let n = ((limit - start) / delta).ceil().max(0.0) as usize;
            checked_numel(&[n])?;
            let values: Vec<f32> = (0..n).map(|i| start + i as f32 * delta).collect();
            if x()?.is_float() {
                HostTensor::floats(vec![n], values)
            } else {
                HostTensor::ints(vec![n], values.iter().map(|&v| v as i64).collect())
            }
        }
        other => return Err(bad(format!("`{other}` is not evaluated on the host"))),
    })
}
