//! A classifier from an ONNX file, run as calls on the engine's tape, so every op it uses
//! has a backward rule and FIDO can explain it like a built-in architecture.
//!
//! Loading does all the work that needs no input, before any GPU work on activations:
//! 1. every node's op must be one fido runs ([`SUPPORTED_OPS`]); an op outside the list is
//!    an error naming the op type, the node and the opset;
//! 2. float initializers go to the GPU once (small ones keep a host copy too); integer
//!    ones (shapes, axes, indices) stay on the host;
//! 3. constant subgraphs are folded on the host ([`host`]), so a reshape target computed
//!    from constants is a constant;
//! 4. a ReLU whose only readers are convolutions is fused into them: each applies it as it
//!    reads its input, as fido's native networks do, which saves a pass over the tensor.
//!
//! A forward pass then walks the remaining nodes in order. Shape subgraphs that read an
//! activation's shape (Shape → Gather → Concat → Reshape, as exporters emit them for a
//! dynamic batch) are evaluated on the host as they come; everything else runs on the GPU
//! through [`ops`].

mod host;
mod ops;

use std::collections::{HashMap, HashSet};
use std::path::Path;

use crate::autodiff::{Tape, Var};
use crate::gpu::Gpu;
use crate::ops::conv::Activation;
use crate::tensor::Tensor;
use crate::weights::onnx::{AttributeProto, NodeProto, OnnxModel, TensorProto, TensorValues, ValueInfoProto};
use crate::{Error, Result};

use host::{HostData, HostTensor, HOST_ONLY_OPS, HOST_OPS};

/// The op types fido runs, in the default domain.
pub const SUPPORTED_OPS: &[&str] = &[
    // Convolution and linear algebra.
    "Conv",
    "ConvTranspose",
    "Gemm",
    "MatMul",
    // Normalisation.
    "BatchNormalization",
    "LayerNormalization",
    // Activations.
    "Relu",
    "LeakyRelu",
    "PRelu",
    "Clip",
    "Sigmoid",
    "HardSigmoid",
    "HardSwish",
    "Tanh",
    "Erf",
    "Gelu",
    "Softmax",
    "LogSoftmax",
    "Exp",
    "Log",
    "Sqrt",
    "Pow",
    "Neg",
    "Abs",
    // Arithmetic with broadcasting.
    "Add",
    "Sub",
    "Mul",
    "Div",
    // Pooling and reductions.
    "MaxPool",
    "AveragePool",
    "GlobalAveragePool",
    "GlobalMaxPool",
    "ReduceMean",
    "ReduceSum",
    "ReduceMax",
    // Shape and layout.
    "Flatten",
    "Reshape",
    "Transpose",
    "Concat",
    "Split",
    "Slice",
    "Squeeze",
    "Unsqueeze",
    "Gather",
    "Pad",
    "Resize",
    "Upsample",
    "Expand",
    "Cast",
    // Pass-through at inference.
    "Identity",
    "Dropout",
    "Constant",
    // Shape arithmetic, evaluated on the host.
    "Shape",
    "Size",
    "ConstantOfShape",
    "Where",
    "Equal",
    "Less",
    "Greater",
    "Not",
    "Range",
    "Min",
    "Max",
    "Mod",
];

/// A graph value known before the forward pass: an initializer, a Constant node's value or
/// a folded subgraph's result.
struct Constant {
    /// On the GPU, for values the tape reads (weights).
    gpu: Option<Tensor>,
    /// On the host, for shapes, axes and small scalars.
    host: Option<HostTensor>,
}

/// Float constants up to this many elements keep a host copy, for ops that read them as
/// numbers (Resize scales, Clip bounds, scalar operands).
const HOST_COPY_LIMIT: usize = 4096;

/// A value during a forward pass.
#[derive(Clone)]
enum Value {
    /// A float activation on the tape.
    Var(Var),
    /// A host tensor: a shape or index computation.
    Host(HostTensor),
    /// A weight on the GPU, with its host copy when small.
    Weight(Tensor, Option<HostTensor>),
    /// A convolution's input not computed yet: `act(x)` zero-padded by `pads` (top, bottom,
    /// left, right). Each reader, a convolution, applies both as it reads.
    ConvInput {
        x: Var,
        act: Activation,
        pads: [usize; 4],
    },
}

/// One node of the forward pass.
enum Step {
    Run(usize),
    /// A node whose work the convolutions reading it do.
    Fused(usize, Fusion),
}

#[derive(Clone, Copy)]
enum Fusion {
    /// ReLU or ReLU6, applied as the input is read (act(0) = 0, so it commutes with zero
    /// padding).
    Activation(Activation),
    /// Zero padding of the two spatial axes, added to the convolution's own (exporters
    /// write TF-style SAME padding as a Pad before a Conv).
    Pad([usize; 4]),
}

pub struct OnnxClassifier {
    nodes: Vec<NodeProto>,
    steps: Vec<Step>,
    constants: HashMap<String, Constant>,
    input: String,
    /// The input's shape; `None` for a dynamic axis such as the batch.
    input_shape: Vec<Option<usize>>,
    output: String,
    /// The output's shape as declared; `None` for a dynamic axis.
    output_shape: Vec<Option<usize>>,
    opset: i64,
    gpu: Gpu,
}

impl OnnxClassifier {
    /// Read `path`, check every node, fold what is constant and upload the weights to `gpu`.
    pub fn load(gpu: &Gpu, path: &Path) -> Result<OnnxClassifier> {
        let model = OnnxModel::open(path)?;
        let graph = model.graph();
        let bad = |why: String| Error::Weights(format!("{}: {why}", path.display()));
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
            if node.output.is_empty() {
                return Err(bad(format!(
                    "node `{}` ({}) has no output",
                    node.name, node.op_type
                )));
            }
        }
        let mut constants = HashMap::new();
        for t in &graph.initializer {
            constants.insert(t.name.clone(), upload(gpu, &model, t)?);
        }
        let mut folded = HashSet::new();
        for (i, node) in graph.node.iter().enumerate() {
            let in_node = |e: Error| bad(format!("node `{}` ({}): {e}", node.name, node.op_type));
            if node.op_type == "Constant" {
                let value = constant_node_value(&model, node).map_err(in_node)?;
                constants.insert(node.output[0].clone(), to_constant(gpu, value)?);
                folded.insert(i);
                continue;
            }
            if let Some(results) = fold(node, &constants).map_err(in_node)? {
                for (name, value) in node.output.iter().zip(results) {
                    constants.insert(name.clone(), to_constant(gpu, value)?);
                }
                folded.insert(i);
            }
        }
        let input = graph
            .input
            .iter()
            .find(|i| !constants.contains_key(&i.name))
            .ok_or_else(|| bad("the graph has no input besides its initializers".into()))?;
        let output = graph
            .output
            .first()
            .ok_or_else(|| bad("the graph has no output".into()))?;
        let steps = plan(&graph.node, &folded, &constants, &output.name);
        Ok(OnnxClassifier {
            nodes: graph.node.clone(),
            steps,
            constants,
            input: input.name.clone(),
            input_shape: declared_shape(input),
            output: output.name.clone(),
            output_shape: declared_shape(output),
            opset: model.opset,
            gpu: gpu.clone(),
        })
    }

    /// The input's shape as the graph declares it; `None` marks a dynamic axis.
    pub fn input_shape(&self) -> &[Option<usize>] {
        &self.input_shape
    }

    /// The number of classes, when the graph declares its output as `[batch, classes]`.
    pub fn output_classes(&self) -> Option<usize> {
        match self.output_shape.as_slice() {
            [_, classes] => *classes,
            _ => None,
        }
    }

    pub fn opset(&self) -> i64 {
        self.opset
    }

    /// The number of nodes a forward pass runs, after folding and fusion.
    pub fn node_count(&self) -> usize {
        self.steps.len()
    }

    /// Run the graph on `x`, recording every op on `tape`.
    pub fn forward(&self, tape: &Tape, x: &Var) -> Result<Var> {
        let mut values: HashMap<&str, Value> = HashMap::new();
        values.insert(self.input.as_str(), Value::Var(x.clone()));
        for step in &self.steps {
            let (index, fused) = match *step {
                Step::Run(i) => (i, None),
                Step::Fused(i, act) => (i, Some(act)),
            };
            let node = &self.nodes[index];
            let in_node = |e: Error| {
                Error::InvalidArgument(format!("ONNX node `{}` ({}): {e}", node.name, node.op_type))
            };
            let inputs = self.inputs(node, &values).map_err(in_node)?;
            let outputs = match fused {
                Some(fusion) => vec![
                    fuse(tape, &self.gpu, inputs.first().and_then(Option::as_ref), fusion)
                        .map_err(in_node)?,
                ],
                None => self.run(tape, node, &inputs).map_err(in_node)?,
            };
            for (name, value) in node.output.iter().zip(outputs) {
                if !name.is_empty() {
                    values.insert(name.as_str(), value);
                }
            }
        }
        let out = values
            .remove(self.output.as_str())
            .map(Some)
            .or_else(|| self.constants.get(&self.output).map(|c| Some(constant_value(c))))
            .flatten()
            .ok_or_else(|| {
                Error::InvalidArgument(format!("the graph never computes its output `{}`", self.output))
            })?;
        ops::var_of(tape, &self.gpu, Some(&out), 0)
    }

    fn inputs(&self, node: &NodeProto, values: &HashMap<&str, Value>) -> Result<Vec<Option<Value>>> {
        node.input
            .iter()
            .map(|name| {
                if name.is_empty() {
                    return Ok(None);
                }
                if let Some(v) = values.get(name.as_str()) {
                    return Ok(Some(v.clone()));
                }
                match self.constants.get(name) {
                    Some(c) => Ok(Some(constant_value(c))),
                    None => Err(Error::InvalidArgument(format!(
                        "input `{name}` is not computed before it is used"
                    ))),
                }
            })
            .collect()
    }

    fn run(&self, tape: &Tape, node: &NodeProto, inputs: &[Option<Value>]) -> Result<Vec<Value>> {
        let op = node.op_type.as_str();
        // Host forms are copied out only for the ops that compute on them; the GPU path
        // reads the few it needs (axes, scalars) itself.
        let host_forms =
            || -> Vec<Option<HostTensor>> { inputs.iter().map(|v| v.as_ref().and_then(host_form)).collect() };
        if op == "Shape" || op == "Size" {
            let shape = inputs
                .first()
                .and_then(Option::as_ref)
                .map(value_shape)
                .ok_or_else(|| Error::InvalidArgument("input 0 is missing".into()))?;
            return Ok(vec![Value::Host(evaluate_host(
                node,
                &host_forms(),
                Some(&shape),
            )?)]);
        }
        let all_host = inputs
            .iter()
            .all(|v| v.as_ref().is_none_or(|v| host_form_exists(v)));
        if HOST_OPS.contains(&op) && all_host {
            return Ok(vec![Value::Host(evaluate_host(node, &host_forms(), None)?)]);
        }
        if HOST_ONLY_OPS.contains(&op) {
            return Err(Error::InvalidArgument(format!(
                "`{op}` on an activation is not supported: fido evaluates it on shapes and constants only"
            )));
        }
        let ctx = ops::Context {
            tape,
            gpu: &self.gpu,
            node,
            inputs,
            opset: self.opset,
        };
        ops::run(&ctx)
    }
}

/// What each node of the forward pass does, after folding. A ReLU (or ReLU6) and a zero
/// Pad of the spatial axes are fused when every reader is a convolution's input, or a
/// fused node that a convolution reads in turn. Readers come later in the graph, so one
/// walk from the end decides.
fn plan(
    nodes: &[NodeProto],
    folded: &HashSet<usize>,
    constants: &HashMap<String, Constant>,
    output: &str,
) -> Vec<Step> {
    let mut readers: HashMap<&str, Vec<(usize, usize)>> = HashMap::new();
    for (i, node) in nodes.iter().enumerate() {
        if folded.contains(&i) {
            continue;
        }
        for (slot, name) in node.input.iter().enumerate() {
            readers.entry(name.as_str()).or_default().push((i, slot));
        }
    }
    let host = |node: &NodeProto, i: usize| {
        node.input
            .get(i)
            .filter(|n| !n.is_empty())
            .and_then(|n| constants.get(n))
            .and_then(|c| c.host.as_ref())
    };
    let fusion_of = |node: &NodeProto| -> Option<Fusion> {
        match node.op_type.as_str() {
            "Relu" => Some(Fusion::Activation(Activation::Relu)),
            "Clip" => {
                let bound = |i| host(node, i).and_then(|h| h.scalar().ok());
                (bound(1) == Some(0.0) && bound(2) == Some(6.0))
                    .then_some(Fusion::Activation(Activation::Relu6))
            }
            "Pad" => spatial_zero_pads(
                node,
                host(node, 1),
                node.input.get(2).filter(|n| !n.is_empty()).map(|_| host(node, 2)),
            )
            .map(Fusion::Pad),
            _ => None,
        }
    };
    let mut fused: HashMap<usize, Fusion> = HashMap::new();
    for i in (0..nodes.len()).rev() {
        let node = &nodes[i];
        if folded.contains(&i) || node.output.len() != 1 || node.output[0] == output {
            continue;
        }
        let Some(fusion) = fusion_of(node) else { continue };
        let feeds_convs = readers.get(node.output[0].as_str()).is_some_and(|r| {
            r.iter().all(|&(j, slot)| {
                slot == 0
                    && (nodes[j].op_type == "Conv"
                        || matches!(
                            (fusion, fused.get(&j)),
                            (Fusion::Activation(_), Some(Fusion::Pad(_)))
                        ))
            })
        });
        if feeds_convs {
            fused.insert(i, fusion);
        }
    }
    (0..nodes.len())
        .filter(|i| !folded.contains(i))
        .map(|i| match fused.get(&i) {
            Some(&f) => Step::Fused(i, f),
            None => Step::Run(i),
        })
        .collect()
}

/// A Pad's (top, bottom, left, right) when it zero-pads only the spatial axes of a 4-D
/// tensor with constant pads.
fn spatial_zero_pads(
    node: &NodeProto,
    pads: Option<&HostTensor>,
    value: Option<Option<&HostTensor>>,
) -> Option<[usize; 4]> {
    let mode = attribute(node, "mode").map_or_else(
        || "constant".into(),
        |a| String::from_utf8_lossy(&a.s).into_owned(),
    );
    if mode != "constant" || node.input.get(3).is_some_and(|n| !n.is_empty()) {
        return None;
    }
    match value {
        None => {}
        Some(Some(v)) if v.scalar().ok() == Some(0.0) => {}
        Some(_) => return None,
    }
    let p = pads?.as_ints();
    if p.len() != 8 || p.iter().any(|&v| v < 0) || p[0] != 0 || p[1] != 0 || p[4] != 0 || p[5] != 0 {
        return None;
    }
    Some([p[2] as usize, p[6] as usize, p[3] as usize, p[7] as usize])
}

/// The value a fused node hands its convolutions.
fn fuse(tape: &Tape, gpu: &Gpu, input: Option<&Value>, fusion: Fusion) -> Result<Value> {
    let (x, act, pads) = match input {
        Some(Value::ConvInput { x, act, pads }) => (x.clone(), *act, *pads),
        other => (ops::var_of(tape, gpu, other, 0)?, Activation::None, [0; 4]),
    };
    Ok(match fusion {
        Fusion::Activation(a) if act == Activation::None && pads == [0; 4] => {
            Value::ConvInput { x, act: a, pads }
        }
        Fusion::Activation(_) => {
            return Err(Error::InvalidArgument(
                "an activation fused after padding or another activation".into(),
            ))
        }
        Fusion::Pad(p) => Value::ConvInput {
            x,
            act,
            pads: [pads[0] + p[0], pads[1] + p[1], pads[2] + p[2], pads[3] + p[3]],
        },
    })
}

/// Evaluate `node` at load time when it is a host op whose inputs are all constants with
/// a host form; `None` when it must wait for the forward pass.
fn fold(node: &NodeProto, constants: &HashMap<String, Constant>) -> Result<Option<Vec<HostTensor>>> {
    let op = node.op_type.as_str();
    if !HOST_OPS.contains(&op) || op == "Size" {
        return Ok(None);
    }
    let mut hosts = Vec::with_capacity(node.input.len());
    for name in &node.input {
        if name.is_empty() {
            hosts.push(None);
            continue;
        }
        match constants.get(name) {
            Some(c) if c.host.is_some() => hosts.push(c.host.clone()),
            _ => return Ok(None),
        }
    }
    let shape = hosts.first().and_then(|h| h.as_ref()).map(|h| h.dims.clone());
    if op == "Shape" && shape.is_none() {
        return Ok(None);
    }
    Ok(Some(vec![evaluate_host(node, &hosts, shape.as_deref())?]))
}

fn evaluate_host(
    node: &NodeProto,
    inputs: &[Option<HostTensor>],
    shape_of: Option<&[usize]>,
) -> Result<HostTensor> {
    let int_attr = |name: &str| attribute(node, name).map(|a| a.i);
    let ints_attr = |name: &str| attribute(node, name).map(|a| a.ints.clone());
    // Tensor attributes are decoded (and checked) up front, so a malformed one is an error
    // rather than a silently absent value.
    let tensors: Vec<(String, HostTensor)> = node
        .attribute
        .iter()
        .filter_map(|a| a.t.as_ref().map(|t| (a.name.clone(), t)))
        .map(|(name, t)| small_tensor(t).map(|v| (name, v)))
        .collect::<Result<_>>()?;
    let tensor_attr = |name: &str| tensors.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone());
    let args = host::HostArgs {
        inputs,
        int_attr: &int_attr,
        ints_attr: &ints_attr,
        tensor_attr: &tensor_attr,
    };
    host::evaluate(&node.op_type, &args, shape_of)
}

/// A tensor attribute read without its model's external data (ConstantOfShape's value).
fn small_tensor(t: &TensorProto) -> Result<HostTensor> {
    let tensor = decode_small_tensor(t);
    let data_len = match &tensor.data {
        HostData::Int(v) => v.len(),
        HostData::Float(v) => v.len(),
    };
    // Dims and data must agree, or later indexing would read past the data.
    if tensor.dims.iter().try_fold(1usize, |n, &d| n.checked_mul(d)) != Some(data_len) {
        return Err(Error::InvalidArgument(format!(
            "tensor attribute `{}` of shape {:?} holds {data_len} values",
            t.name, tensor.dims
        )));
    }
    Ok(tensor)
}

fn decode_small_tensor(t: &TensorProto) -> HostTensor {
    let dims: Vec<usize> = t.dims.iter().map(|&d| d.max(0) as usize).collect();
    let ints: Vec<i64> = if !t.int64_data.is_empty() {
        t.int64_data.clone()
    } else if !t.int32_data.is_empty() {
        t.int32_data.iter().map(|&v| v as i64).collect()
    } else {
        Vec::new()
    };
    match t.data_type {
        // FLOAT, DOUBLE
        1 => HostTensor::floats(
            dims,
            if t.float_data.is_empty() {
                t.raw_data
                    .chunks_exact(4)
                    .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                    .collect()
            } else {
                t.float_data.clone()
            },
        ),
        11 => HostTensor::floats(dims, t.double_data.iter().map(|&v| v as f32).collect()),
        // INT64
        7 if ints.is_empty() => HostTensor::ints(
            dims,
            t.raw_data
                .chunks_exact(8)
                .map(|c| i64::from_le_bytes(c.try_into().expect("chunk of 8")))
                .collect(),
        ),
        // INT32, BOOL, INT8, UINT8
        6 | 9 | 3 | 2 if ints.is_empty() && t.data_type != 6 => {
            HostTensor::ints(dims, t.raw_data.iter().map(|&b| b as i8 as i64).collect())
        }
        6 if ints.is_empty() => HostTensor::ints(
            dims,
            t.raw_data
                .chunks_exact(4)
                .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]) as i64)
                .collect(),
        ),
        _ => HostTensor::ints(dims, ints),
    }
}

/// A Constant node's value, from whichever attribute carries it.
fn constant_node_value(model: &OnnxModel, node: &NodeProto) -> Result<HostOrWeight> {
    if let Some(t) = attribute(node, "value").and_then(|a| a.t.as_ref()) {
        let (dims, values) = model.tensor(t)?;
        return Ok(match values {
            TensorValues::Float(v) => HostOrWeight::Float(dims, v),
            TensorValues::Int(v) => HostOrWeight::Host(HostTensor::ints(dims, v)),
        });
    }
    if let Some(a) = attribute(node, "value_float") {
        return Ok(HostOrWeight::Float(vec![], vec![a.f]));
    }
    if let Some(a) = attribute(node, "value_floats") {
        return Ok(HostOrWeight::Float(vec![a.floats.len()], a.floats.clone()));
    }
    if let Some(a) = attribute(node, "value_int") {
        return Ok(HostOrWeight::Host(HostTensor::ints(vec![], vec![a.i])));
    }
    if let Some(a) = attribute(node, "value_ints") {
        return Ok(HostOrWeight::Host(HostTensor::vector(a.ints.clone())));
    }
    Err(Error::InvalidArgument(
        "a Constant needs one of value, value_float(s) or value_int(s)".into(),
    ))
}

/// A constant on its way in: float data goes to the GPU, the rest stays on the host.
enum HostOrWeight {
    Float(Vec<usize>, Vec<f32>),
    Host(HostTensor),
}

impl From<HostTensor> for HostOrWeight {
    fn from(h: HostTensor) -> Self {
        match h.data {
            HostData::Float(v) => HostOrWeight::Float(h.dims, v),
            HostData::Int(_) => HostOrWeight::Host(h),
        }
    }
}

fn to_constant(gpu: &Gpu, value: impl Into<HostOrWeight>) -> Result<Constant> {
    Ok(match value.into() {
        HostOrWeight::Float(dims, v) => {
            let numel: usize = dims.iter().product();
            Constant {
                // An empty tensor (an unused optional input, say) has no GPU form.
                gpu: (numel > 0)
                    .then(|| Tensor::from_slice(gpu, &dims, &v))
                    .transpose()?,
                host: (numel <= HOST_COPY_LIMIT).then(|| HostTensor::floats(dims, v)),
            }
        }
        HostOrWeight::Host(h) => Constant {
            gpu: None,
            host: Some(h),
        },
    })
}

fn upload(gpu: &Gpu, model: &OnnxModel, t: &TensorProto) -> Result<Constant> {
    let (dims, values) = model.tensor(t)?;
    to_constant(
        gpu,
        match values {
            TensorValues::Float(v) => HostOrWeight::Float(dims, v),
            TensorValues::Int(v) => HostOrWeight::Host(HostTensor::ints(dims, v)),
        },
    )
}

fn constant_value(c: &Constant) -> Value {
    match (&c.gpu, &c.host) {
        (Some(t), host) => Value::Weight(t.clone(), host.clone()),
        (None, Some(h)) => Value::Host(h.clone()),
        (None, None) => Value::Host(HostTensor::floats(vec![0], vec![])),
    }
}

/// Whether [`host_form`] would give a value, without copying it.
fn host_form_exists(v: &Value) -> bool {
    matches!(v, Value::Host(_) | Value::Weight(_, Some(_)))
}

/// A value's host form, when it has one.
fn host_form(v: &Value) -> Option<HostTensor> {
    match v {
        Value::Host(h) => Some(h.clone()),
        Value::Weight(_, h) => h.clone(),
        Value::Var(_) | Value::ConvInput { .. } => None,
    }
}

fn value_shape(v: &Value) -> Vec<usize> {
    match v {
        Value::Var(x) => x.shape().to_vec(),
        Value::ConvInput { x, pads, .. } => {
            let mut shape = x.shape().to_vec();
            let rank = shape.len();
            shape[rank - 2] += pads[0] + pads[1];
            shape[rank - 1] += pads[2] + pads[3];
            shape
        }
        Value::Host(h) => h.dims.clone(),
        Value::Weight(t, _) => t.shape().to_vec(),
    }
}

/// A value's declared shape; `None` marks a dynamic or unnamed axis.
fn declared_shape(value: &ValueInfoProto) -> Vec<Option<usize>> {
    value
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
        .unwrap_or_default()
}

fn attribute<'a>(node: &'a NodeProto, name: &str) -> Option<&'a AttributeProto> {
    node.attribute.iter().find(|a| a.name == name)
}
