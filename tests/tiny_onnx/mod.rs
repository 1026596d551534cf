//! A tiny ONNX classifier written with prost, for the tests that feed `--model x.onnx`:
//! Conv 3→4 (3×3, pad 1, bias) → Tanh → Flatten → Gemm to `CLASSES` logits. Smooth, so
//! finite differences of its log-odds are accurate, and small enough for lavapipe.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use fido::weights::onnx::{
    AttributeProto, Dimension, GraphProto, ModelProto, NodeProto, OperatorSetIdProto, TensorProto,
    TensorShapeProto, TensorTypeProto, TypeProto, ValueInfoProto,
};
use prost::Message;

/// The input side the graph is built for.
pub const SIDE: usize = 6;
pub const CLASSES: usize = 3;
const FEATURES: usize = 4 * SIDE * SIDE;

/// Which parts of the graph's interface are declared.
#[derive(Clone, Copy, Debug)]
pub struct Shape {
    /// Exported with batch 1 instead of a dynamic batch axis.
    pub batch_one: bool,
    /// H×W declared (else dynamic, and `--size` gives it).
    pub declare_size: bool,
    /// The output declared as `[batch, CLASSES]` (else fido runs the graph once to learn it).
    pub declare_output: bool,
}

impl Default for Shape {
    fn default() -> Shape {
        Shape {
            batch_one: false,
            declare_size: true,
            declare_output: true,
        }
    }
}

/// Deterministic weights in about [−0.5, 0.5].
fn weights(n: usize, seed: u64) -> Vec<f32> {
    let mut state = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((state >> 40) as f32 / (1u64 << 24) as f32) - 0.5
        })
        .collect()
}

fn tensor(name: &str, dims: &[usize], values: Vec<f32>) -> TensorProto {
    TensorProto {
        name: name.into(),
        data_type: 1,
        dims: dims.iter().map(|&d| d as i64).collect(),
        float_data: values,
        ..Default::default()
    }
}

fn node(op: &str, inputs: &[&str], output: &str, attribute: Vec<AttributeProto>) -> NodeProto {
    NodeProto {
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: vec![output.into()],
        name: format!("{op}_{output}"),
        op_type: op.into(),
        attribute,
        ..Default::default()
    }
}

fn dims(values: &[Option<usize>]) -> Option<TypeProto> {
    Some(TypeProto {
        tensor_type: Some(TensorTypeProto {
            elem_type: 1,
            shape: Some(TensorShapeProto {
                dim: values
                    .iter()
                    .map(|v| match v {
                        Some(v) => Dimension {
                            dim_value: Some(*v as i64),
                            dim_param: None,
                        },
                        None => Dimension {
                            dim_value: None,
                            dim_param: Some("n".into()),
                        },
                    })
                    .collect(),
            }),
        }),
    })
}

/// Write the tiny classifier to `dir/name`; the same weights whatever `shape` says.
pub fn write(dir: &Path, name: &str, shape: Shape) -> PathBuf {
    let batch = if shape.batch_one { Some(1) } else { None };
    let side = shape.declare_size.then_some(SIDE);
    let pads = AttributeProto {
        name: "pads".into(),
        r#type: 7,
        ints: vec![1, 1, 1, 1],
        ..Default::default()
    };
    let trans_b = AttributeProto {
        name: "transB".into(),
        r#type: 2,
        i: 1,
        ..Default::default()
    };
    // Larger first-layer weights so the tanh is not merely linear.
    let w1: Vec<f32> = weights(4 * 3 * 9, 1).iter().map(|v| 1.5 * v).collect();
    let model = ModelProto {
        ir_version: 8,
        opset_import: vec![OperatorSetIdProto {
            domain: String::new(),
            version: 17,
        }],
        producer_name: "fido tests".into(),
        producer_version: String::new(),
        graph: Some(GraphProto {
            name: "tiny".into(),
            initializer: vec![
                tensor("w1", &[4, 3, 3, 3], w1),
                tensor("b1", &[4], weights(4, 2)),
                tensor("fc", &[CLASSES, FEATURES], weights(CLASSES * FEATURES, 3)),
                tensor("fcb", &[CLASSES], weights(CLASSES, 4)),
            ],
            input: vec![ValueInfoProto {
                name: "input".into(),
                r#type: dims(&[batch, Some(3), side, side]),
            }],
            output: vec![ValueInfoProto {
                name: "logits".into(),
                r#type: if shape.declare_output {
                    dims(&[batch, Some(CLASSES)])
                } else {
                    None
                },
            }],
            node: vec![
                node("Conv", &["input", "w1", "b1"], "c1", vec![pads]),
                node("Tanh", &["c1"], "t1", vec![]),
                node("Flatten", &["t1"], "flat", vec![]),
                node("Gemm", &["flat", "fc", "fcb"], "logits", vec![trans_b]),
            ],
            ..Default::default()
        }),
    };
    let path = dir.join(name);
    std::fs::write(&path, model.encode_to_vec()).unwrap();
    path
}

/// `z_c − logsumexp_{k≠c} z_k`, the log-odds of class `c`, in f64.
pub fn log_odds(logits: &[f64], c: usize) -> f64 {
    let others: Vec<f64> = (0..logits.len()).filter(|&k| k != c).map(|k| logits[k]).collect();
    let top = others.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    logits[c] - (top + others.iter().map(|z| (z - top).exp()).sum::<f64>().ln())
}
