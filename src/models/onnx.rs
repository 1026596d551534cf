//! A classifier from an ONNX file, run as calls on the engine's tape, so every op it uses
//! has a backward rule and FIDO can explain it like a built-in architecture.
//!
//! Loading checks the whole graph before any GPU work: every node's op must be one fido
//! runs ([`SUPPORTED_OPS`]) and every attribute it needs must be valid; an op outside the
//! list is an error naming the op type, the node and the opset. Float initializers go to
//! the GPU once; integer ones (shapes, axes) stay on the host.
//!
//! This covers the convolutional networks' core (convolutions, normalisation, pooling,
//! activations, arithmetic, Gemm); shape subgraphs and the rest of the ONNX op set are
//! not folded or run yet.

use std::collections::HashMap;
use std::path::Path;

use crate::autodiff::{Tape, Var};
use crate::gpu::Gpu;
use crate::ops::conv::{Conv2dOptions, Padding};
use crate::ops::elementwise::UnaryOp;
use crate::tensor::Tensor;
use crate::weights::onnx::{AttributeProto, NodeProto, OnnxModel, TensorValues};
use crate::{Error, Result};

/// The op types fido runs, in the default domain.
pub const SUPPORTED_OPS: &[&str] = &[
    "Conv",
    "BatchNormalization",
    "Relu",
    "Clip",
    "Sigmoid",
    "Tanh",
    "Exp",
    "Log",
    "Sqrt",
    "Add",
    "Sub",
    "Mul",
    "Div",
    "MaxPool",
    "AveragePool",
    "GlobalAveragePool",
    "Flatten",
    "Reshape",
    "Gemm",
    "MatMul",
    "Concat",
    "Identity",
    "Dropout",
    "Constant",
];

/// A value of the graph before it runs: weights on the GPU, integers on the host.
enum Constant {
    Float(Tensor),
    Int(Vec<i64>),
}

pub struct OnnxClassifier {
    nodes: Vec<NodeProto>,
    constants: HashMap<String, Constant>,
    input: String,
    /// The input's shape; `None` for a dynamic axis such as the batch.
    input_shape: Vec<Option<usize>>,
    output: String,
    opset: i64,
}

impl OnnxClassifier {
    /// Read `path`, check every node, and upload the float initializers to `gpu`.
    pub fn load(gpu: &Gpu, path: &Path) -> Result<OnnxClassifier> {
        let model = OnnxModel::open(path)?;
        let graph = model.graph();
        let bad = |why: String| Error::Weights(format!("{}: {why}", path.display()));
        let mut constants = HashMap::new();
        for t in &graph.initializer {
            let (dims, values) = model.tensor(t)?;
            constants.insert(t.name.clone(), constant(gpu, &dims, values)?);
        }
        for node in &graph.node {
            let known = node.domain.is_empty() || node.domain == "ai.onnx";
            if !known || !SUPPORTED_OPS.contains(&node.op_type.as_str()) {
                let domain = if known {
                    String::new()
                } else {
                    format!(" of domain `{}`", node.domain)
                };
                return Err(bad(format!(
                    "node `{}` is a `{}`{domain} (opset {}), which fido cannot run yet; supported: {}",
                    node.name,
                    node.op_type,
                    model.opset,
                    SUPPORTED_OPS.join(", ")
                )));
            }
            if node.op_type == "Constant" {
                let value = attribute(node, "value")
                    .and_then(|a| a.t.as_ref())
                    .ok_or_else(|| bad(format!("Constant node `{}` has no tensor `value`", node.name)))?;
                let (dims, values) = model.tensor(value)?;
                constants.insert(node.output[0].clone(), constant(gpu, &dims, values)?);
            }
        }
        // The model's input is the graph input that is not an initializer.
        let input = graph
            .input
            .iter()
            .find(|i| !constants.contains_key(&i.name))
            .ok_or_else(|| bad("the graph has no input besides its initializers".into()))?;
        let dims = input
            .r#type
            .as_ref()
            .and_then(|t| t.tensor_type.as_ref())
            .and_then(|t| t.shape.as_ref())
            .map(|s| {
                s.dim
                    .iter()
                    .map(|d| d.dim_value.and_then(|v| usize::try_from(v).ok()))
                    .collect()
            })
            .unwrap_or_default();
        let output = graph
            .output
            .first()
            .ok_or_else(|| bad("the graph has no output".into()))?
            .name
            .clone();
        Ok(OnnxClassifier {
            nodes: graph.node.clone(),
            constants,
            input: input.name.clone(),
            input_shape: dims,
            output,
            opset: model.opset,
        })
    }

    /// The input's shape as the graph declares it; `None` marks a dynamic axis.
    pub fn input_shape(&self) -> &[Option<usize>] {
        &self.input_shape
    }

    pub fn opset(&self) -> i64 {
        self.opset
    }

    /// Run the graph on `x`, recording every op on `tape`.
    pub fn forward(&self, tape: &Tape, x: &Var) -> Result<Var> {
        let mut values: HashMap<&str, Var> = HashMap::new();
        values.insert(self.input.as_str(), x.clone());
        for node in &self.nodes {
            if node.op_type == "Constant" {
                continue;
            }
            let out = self.run(tape, node, &values).map_err(|e| {
                Error::InvalidArgument(format!("ONNX node `{}` ({}): {e}", node.name, node.op_type))
            })?;
            values.insert(node.output[0].as_str(), out);
        }
        values.remove(self.output.as_str()).ok_or_else(|| {
            Error::InvalidArgument(format!("the graph never computes its output `{}`", self.output))
        })
    }

    fn run(&self, tape: &Tape, node: &NodeProto, values: &HashMap<&str, Var>) -> Result<Var> {
        let var = |i: usize| -> Result<Var> {
            let name = node
                .input
                .get(i)
                .filter(|n| !n.is_empty())
                .ok_or_else(|| Error::InvalidArgument(format!("input {i} is missing")))?;
            if let Some(v) = values.get(name.as_str()) {
                return Ok(v.clone());
            }
            match self.constants.get(name) {
                Some(Constant::Float(t)) => Ok(tape.constant(t.clone())),
                Some(Constant::Int(_)) => Err(Error::InvalidArgument(format!(
                    "input `{name}` is an integer tensor where fido needs floats"
                ))),
                None => Err(Error::InvalidArgument(format!(
                    "input `{name}` is not computed before it is used"
                ))),
            }
        };
        let float = |i: usize| -> Result<Tensor> {
            match node.input.get(i).and_then(|n| self.constants.get(n)) {
                Some(Constant::Float(t)) => Ok(t.clone()),
                _ => Err(Error::InvalidArgument(format!(
                    "input {i} must be a float initializer"
                ))),
            }
        };
        let scalar = |i: usize| -> Result<Option<f32>> {
            match node.input.get(i).filter(|n| !n.is_empty()) {
                None => Ok(None),
                Some(_) => Ok(Some(float(i)?.to_vec()?[0])),
            }
        };
        let ints = |i: usize| -> Result<Vec<i64>> {
            match node.input.get(i).and_then(|n| self.constants.get(n)) {
                Some(Constant::Int(v)) => Ok(v.clone()),
                _ => Err(Error::InvalidArgument(format!(
                    "input {i} must be a constant integer tensor"
                ))),
            }
        };
        let x = var(0)?;
        Ok(match node.op_type.as_str() {
            "Identity" | "Dropout" => x,
            "Relu" => x.relu()?,
            "Sigmoid" => x.sigmoid()?,
            "Tanh" => x.unary(UnaryOp::Tanh)?,
            "Exp" => x.exp()?,
            "Log" => x.log()?,
            "Sqrt" => x.unary(UnaryOp::Sqrt)?,
            "Clip" => {
                let lo = scalar(1)?.unwrap_or(f32::MIN);
                let hi = scalar(2)?.unwrap_or(f32::MAX);
                if lo == 0.0 && hi == 6.0 {
                    x.unary(UnaryOp::Relu6)?
                } else {
                    x.unary(UnaryOp::Clamp { lo, hi })?
                }
            }
            "Add" => x.add(&var(1)?)?,
            "Sub" => x.sub(&var(1)?)?,
            "Mul" => x.mul(&var(1)?)?,
            "Div" => x.div(&var(1)?)?,
            "Conv" => {
                let opts = conv_options(node, x.shape(), float(1)?.shape())?;
                let w = tape.constant(float(1)?);
                let b = node
                    .input
                    .get(2)
                    .filter(|n| !n.is_empty())
                    .map(|_| float(2))
                    .transpose()?;
                let b = b.map(|b| tape.constant(b));
                x.conv2d(&w, b.as_ref(), &opts)?
            }
            "BatchNormalization" => {
                let eps = attribute(node, "epsilon").map_or(1e-5, |a| a.f);
                x.batch_norm(&float(1)?, &float(2)?, &float(3)?, &float(4)?, eps)?
            }
            "MaxPool" | "AveragePool" => {
                let (kernel, stride, padding) = pool_window(node)?;
                if node.op_type == "MaxPool" {
                    x.max_pool2d(kernel, stride, padding)?
                } else {
                    let include = attribute(node, "count_include_pad").is_some_and(|a| a.i != 0);
                    x.avg_pool2d(kernel, stride, padding, include)?
                }
            }
            "GlobalAveragePool" => x.global_avg_pool()?,
            "Flatten" => {
                let axis = attribute(node, "axis").map_or(1, |a| a.i);
                let rank = x.shape().len() as i64;
                let axis = if axis < 0 { axis + rank } else { axis };
                if !(0..=rank).contains(&axis) {
                    return Err(Error::InvalidArgument(format!("axis {axis} for rank {rank}")));
                }
                let (lead, tail) = x.shape().split_at(axis as usize);
                x.reshape(&[lead.iter().product(), tail.iter().product()])?
            }
            "Reshape" => {
                let shape = reshape_target(x.shape(), &ints(1)?)?;
                x.reshape(&shape)?
            }
            "Gemm" => {
                let flag = |name: &str| attribute(node, name).is_some_and(|a| a.i != 0);
                let alpha = attribute(node, "alpha").map_or(1.0, |a| a.f);
                let beta = attribute(node, "beta").map_or(1.0, |a| a.f);
                let mut y = x.matmul(&var(1)?, flag("transA"), flag("transB"))?;
                if alpha != 1.0 {
                    y = y.mul_scalar(alpha)?;
                }
                if node.input.get(2).is_some_and(|n| !n.is_empty()) {
                    let c = var(2)?;
                    let c = if beta != 1.0 { c.mul_scalar(beta)? } else { c };
                    y = y.add(&c)?;
                }
                y
            }
            "MatMul" => x.matmul(&var(1)?, false, false)?,
            "Concat" => {
                let parts: Vec<Var> = (0..node.input.len()).map(var).collect::<Result<_>>()?;
                let rank = x.shape().len() as i64;
                let axis = attribute(node, "axis").map_or(0, |a| a.i);
                let axis = if axis < 0 { axis + rank } else { axis };
                let refs: Vec<&Var> = parts.iter().collect();
                Var::concat(&refs, axis as usize)?
            }
            other => unreachable!("`{other}` passed the load-time check but has no rule"),
        })
    }
}

fn constant(gpu: &Gpu, dims: &[usize], values: TensorValues) -> Result<Constant> {
    Ok(match values {
        TensorValues::Float(v) => Constant::Float(Tensor::from_slice(gpu, dims, &v)?),
        TensorValues::Int(v) => Constant::Int(v),
    })
}

fn attribute<'a>(node: &'a NodeProto, name: &str) -> Option<&'a AttributeProto> {
    node.attribute.iter().find(|a| a.name == name)
}

/// Two non-negative integers of a 2-D attribute, or `default`.
fn pair(node: &NodeProto, name: &str, default: [usize; 2]) -> Result<[usize; 2]> {
    match attribute(node, name) {
        None => Ok(default),
        Some(a) if a.ints.len() == 2 && a.ints.iter().all(|&v| v >= 0) => {
            Ok([a.ints[0] as usize, a.ints[1] as usize])
        }
        Some(a) => Err(Error::InvalidArgument(format!(
            "`{name}` is {:?}; fido runs 2-D images, so it takes two non-negative values",
            a.ints
        ))),
    }
}

/// `pads` as (top, left, bottom, right), or zeros.
fn pads(node: &NodeProto) -> Result<[usize; 4]> {
    match attribute(node, "pads") {
        None => Ok([0; 4]),
        Some(a) if a.ints.len() == 4 && a.ints.iter().all(|&v| v >= 0) => Ok([
            a.ints[0] as usize,
            a.ints[1] as usize,
            a.ints[2] as usize,
            a.ints[3] as usize,
        ]),
        Some(a) => Err(Error::InvalidArgument(format!(
            "`pads` is {:?}; expected four non-negative values",
            a.ints
        ))),
    }
}

fn auto_pad(node: &NodeProto) -> String {
    attribute(node, "auto_pad")
        .map_or_else(|| "NOTSET".into(), |a| String::from_utf8_lossy(&a.s).into_owned())
}

/// Padding that SAME_UPPER / SAME_LOWER give: output = ceil(input / stride).
fn same_padding(size: usize, kernel: usize, stride: usize, dilation: usize, upper: bool) -> (usize, usize) {
    let extent = (kernel - 1) * dilation + 1;
    let out = size.div_ceil(stride);
    let total = ((out - 1) * stride + extent).saturating_sub(size);
    let small = total / 2;
    if upper {
        (small, total - small)
    } else {
        (total - small, small)
    }
}

fn conv_options(node: &NodeProto, x: &[usize], w: &[usize]) -> Result<Conv2dOptions> {
    if x.len() != 4 || w.len() != 4 {
        return Err(Error::InvalidArgument(format!(
            "input {x:?} and weight {w:?}: fido runs 2-D convolutions (4-D tensors)"
        )));
    }
    let stride = pair(node, "strides", [1, 1])?;
    let dilation = pair(node, "dilations", [1, 1])?;
    let groups = attribute(node, "group").map_or(1, |a| a.i);
    if groups < 1 {
        return Err(Error::InvalidArgument(format!("group {groups}")));
    }
    let [top, left, bottom, right] = match auto_pad(node).as_str() {
        "NOTSET" => pads(node)?,
        "VALID" => [0; 4],
        mode @ ("SAME_UPPER" | "SAME_LOWER") => {
            let upper = mode == "SAME_UPPER";
            let (t, b) = same_padding(x[2], w[2], stride[0], dilation[0], upper);
            let (l, r) = same_padding(x[3], w[3], stride[1], dilation[1], upper);
            [t, l, b, r]
        }
        other => return Err(Error::InvalidArgument(format!("auto_pad `{other}`"))),
    };
    Ok(Conv2dOptions::new()
        .stride(stride[0], stride[1])
        .dilation(dilation[0], dilation[1])
        .padding(Padding {
            top,
            bottom,
            left,
            right,
        })
        .groups(groups as usize))
}

/// (kernel, stride, symmetric padding) of a pooling node.
fn pool_window(node: &NodeProto) -> Result<([usize; 2], [usize; 2], [usize; 2])> {
    let kernel = pair(node, "kernel_shape", [0, 0])?;
    if kernel.contains(&0) {
        return Err(Error::InvalidArgument("`kernel_shape` is missing".into()));
    }
    let stride = pair(node, "strides", [1, 1])?;
    if pair(node, "dilations", [1, 1])? != [1, 1] {
        return Err(Error::InvalidArgument(
            "dilated pooling is not supported yet".into(),
        ));
    }
    if attribute(node, "ceil_mode").is_some_and(|a| a.i != 0) {
        return Err(Error::InvalidArgument(
            "ceil_mode = 1 is not supported yet".into(),
        ));
    }
    if auto_pad(node) != "NOTSET" && auto_pad(node) != "VALID" {
        return Err(Error::InvalidArgument(format!(
            "auto_pad `{}` in pooling is not supported yet",
            auto_pad(node)
        )));
    }
    let [top, left, bottom, right] = pads(node)?;
    if top != bottom || left != right {
        return Err(Error::InvalidArgument(format!(
            "pads {:?}: pooling takes symmetric padding only so far",
            [top, left, bottom, right]
        )));
    }
    Ok((kernel, stride, [top, left]))
}

/// ONNX Reshape's target: 0 copies the input's axis, -1 takes what is left.
fn reshape_target(input: &[usize], target: &[i64]) -> Result<Vec<usize>> {
    let total: usize = input.iter().product();
    let mut shape = Vec::with_capacity(target.len());
    let mut free = None;
    for (i, &t) in target.iter().enumerate() {
        match t {
            0 => shape.push(*input.get(i).ok_or_else(|| {
                Error::InvalidArgument(format!(
                    "target {target:?} copies axis {i} of {input:?}, which has none"
                ))
            })?),
            -1 if free.is_none() => {
                free = Some(i);
                shape.push(1);
            }
            t if t > 0 => shape.push(t as usize),
            _ => return Err(Error::InvalidArgument(format!("target shape {target:?}"))),
        }
    }
    let known: usize = shape.iter().product();
    if let Some(i) = free {
        if known == 0 || total % known != 0 {
            return Err(Error::InvalidArgument(format!(
                "cannot reshape {input:?} to {target:?}"
            )));
        }
        shape[i] = total / known;
    }
    if shape.iter().product::<usize>() != total {
        return Err(Error::InvalidArgument(format!(
            "cannot reshape {input:?} to {target:?}"
        )));
    }
    Ok(shape)
}
