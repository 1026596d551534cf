//! The ONNX reader: models written here with prost, in every storage form a tensor may take
//! (raw bytes, typed fields, float16, external data), and hostile or foreign files, each
//! refused with a one-line error naming the problem before anything large is allocated.

use std::path::{Path, PathBuf};

use fido::weights::onnx::{
    f16_to_f32, Dimension, GraphProto, ModelProto, OnnxModel, OperatorSetIdProto, StringStringEntryProto,
    TensorProto, TensorShapeProto, TensorTypeProto, TensorValues, TypeProto, ValueInfoProto,
};
use prost::Message;

fn scratch(name: &str) -> PathBuf {
    common::scratch("onnx", name)
}

fn model(opset: i64, initializer: Vec<TensorProto>) -> ModelProto {
    let batch = Dimension {
        dim_value: None,
        dim_param: Some("batch".into()),
    };
    let fixed = |v| Dimension {
        dim_value: Some(v),
        dim_param: None,
    };
    ModelProto {
        ir_version: 8,
        opset_import: vec![OperatorSetIdProto {
            domain: String::new(),
            version: opset,
        }],
        producer_name: "fido tests".into(),
        producer_version: String::new(),
        graph: Some(GraphProto {
            name: "g".into(),
            initializer,
            input: vec![ValueInfoProto {
                name: "input".into(),
                r#type: Some(TypeProto {
                    tensor_type: Some(TensorTypeProto {
                        elem_type: 1,
                        shape: Some(TensorShapeProto {
                            dim: vec![batch, fixed(3), fixed(224), fixed(224)],
                        }),
                    }),
                }),
            }],
            ..Default::default()
        }),
    }
}

fn tensor(name: &str, data_type: i32, dims: &[i64]) -> TensorProto {
    TensorProto {
        name: name.into(),
        data_type,
        dims: dims.to_vec(),
        ..Default::default()
    }
}

fn write(dir: &Path, m: &ModelProto) -> PathBuf {
    let path = dir.join("model.onnx");
    std::fs::write(&path, m.encode_to_vec()).unwrap();
    path
}

fn values(m: &OnnxModel, name: &str) -> (Vec<usize>, TensorValues) {
    let t = m.graph().initializer.iter().find(|t| t.name == name).unwrap();
    m.tensor(t).unwrap()
}

#[test]
fn every_storage_form_reads_back() {
    let dir = scratch("forms");
    let floats = [1.5f32, -2.0, 0.25, 8.0, -0.0, 3.0];
    let raw = TensorProto {
        raw_data: floats.iter().flat_map(|v| v.to_le_bytes()).collect(),
        ..tensor("raw", 1, &[2, 3])
    };
    let typed = TensorProto {
        float_data: floats.to_vec(),
        ..tensor("typed", 1, &[3, 2])
    };
    let ints = TensorProto {
        int64_data: vec![1, -1, 224],
        ..tensor("shape", 7, &[3])
    };
    let int32_raw = TensorProto {
        raw_data: [-7i32, 9].iter().flat_map(|v| v.to_le_bytes()).collect(),
        ..tensor("int32", 6, &[2])
    };
    // 1.0, -2.0, 65504 (largest half), 2^-24 (smallest subnormal), infinity.
    let halves = [0x3c00u16, 0xc000, 0x7bff, 0x0001, 0x7c00];
    let half = TensorProto {
        raw_data: halves.iter().flat_map(|v| v.to_le_bytes()).collect(),
        ..tensor("half", 10, &[5])
    };
    let scalar = TensorProto {
        double_data: vec![0.125],
        ..tensor("scalar", 11, &[])
    };
    // External data: bytes 8.. of a side file.
    let mut side = vec![0xEEu8; 8];
    side.extend(floats.iter().flat_map(|v| v.to_le_bytes()));
    std::fs::write(dir.join("weights.bin"), &side).unwrap();
    let entry = |k: &str, v: &str| StringStringEntryProto {
        key: k.into(),
        value: v.into(),
    };
    let external = TensorProto {
        data_location: 1,
        external_data: vec![
            entry("location", "weights.bin"),
            entry("offset", "8"),
            entry("length", "24"),
        ],
        ..tensor("external", 1, &[6])
    };
    let path = write(
        &dir,
        &model(17, vec![raw, typed, ints, int32_raw, half, scalar, external]),
    );
    let m = OnnxModel::open(&path).unwrap();
    assert_eq!(m.opset, 17);
    assert_eq!(
        values(&m, "raw"),
        (vec![2, 3], TensorValues::Float(floats.to_vec()))
    );
    assert_eq!(
        values(&m, "typed"),
        (vec![3, 2], TensorValues::Float(floats.to_vec()))
    );
    assert_eq!(
        values(&m, "shape"),
        (vec![3], TensorValues::Int(vec![1, -1, 224]))
    );
    assert_eq!(values(&m, "int32"), (vec![2], TensorValues::Int(vec![-7, 9])));
    let want_half = vec![1.0, -2.0, 65504.0, 2f32.powi(-24), f32::INFINITY];
    assert_eq!(values(&m, "half"), (vec![5], TensorValues::Float(want_half)));
    assert_eq!(values(&m, "scalar"), (vec![], TensorValues::Float(vec![0.125])));
    assert_eq!(
        values(&m, "external"),
        (vec![6], TensorValues::Float(floats.to_vec()))
    );
    // The dynamic batch axis stays named.
    let input = &m.graph().input[0];
    let dims = &input
        .r#type
        .as_ref()
        .unwrap()
        .tensor_type
        .as_ref()
        .unwrap()
        .shape
        .as_ref()
        .unwrap()
        .dim;
    assert_eq!(dims[0].dim_param.as_deref(), Some("batch"));
    assert_eq!(dims[1].dim_value, Some(3));
}

#[test]
fn half_precision_matches_its_definition_for_every_pattern() {
    for h in 0..=u16::MAX {
        let sign = if h & 0x8000 != 0 { -1.0f64 } else { 1.0 };
        let (e, f) = (((h >> 10) & 0x1f) as i32, (h & 0x3ff) as f64);
        let want = match e {
            0 => sign * f * 2f64.powi(-24),
            31 if f == 0.0 => sign * f64::INFINITY,
            31 => f64::NAN,
            _ => sign * (1.0 + f / 1024.0) * 2f64.powi(e - 15),
        };
        let got = f16_to_f32(h) as f64;
        assert!(
            got == want || (got.is_nan() && want.is_nan()),
            "{h:#06x}: {got} vs {want}"
        );
    }
}

#[track_caller]
fn refused(path: &Path, needle: &str) {
    let err = match OnnxModel::open(path) {
        Err(e) => e.to_string(),
        Ok(m) => {
            let errors: Vec<String> = m
                .graph()
                .initializer
                .iter()
                .filter_map(|t| m.tensor(t).err())
                .map(|e| e.to_string())
                .collect();
            assert_eq!(errors.len(), 1, "expected one refused tensor, got {errors:?}");
            errors[0].clone()
        }
    };
    assert!(err.contains(needle), "expected `{needle}` in: {err}");
    assert!(!err.contains('\n'), "one line: {err}");
}

#[test]
fn foreign_and_hostile_files_are_refused_clearly() {
    let dir = scratch("bad");
    let garbage = dir.join("garbage.onnx");
    std::fs::write(&garbage, b"\xff\xff\xff\xff not a protobuf").unwrap();
    refused(&garbage, "not an ONNX model");
    let no_graph = ModelProto {
        graph: None,
        ..model(17, vec![])
    };
    refused(&write(&dir, &no_graph), "has no graph");
    refused(&write(&dir, &model(9, vec![])), "opset 9");
    refused(&write(&dir, &model(22, vec![])), "opset 22");

    // A billion-element constant, claimed by its dims with no data behind it.
    let huge = tensor("huge", 1, &[1_000_000, 1_000_000]);
    refused(&write(&dir, &model(17, vec![huge])), "over fido's limit");
    let overflow = tensor("overflow", 1, &[i64::MAX, i64::MAX]);
    refused(&write(&dir, &model(17, vec![overflow])), "over fido's limit");
    let negative = tensor("negative", 1, &[-1, 3]);
    refused(&write(&dir, &model(17, vec![negative])), "negative dimension");
    let short = TensorProto {
        float_data: vec![1.0; 5],
        ..tensor("short", 1, &[2, 3])
    };
    refused(
        &write(&dir, &model(17, vec![short])),
        "holds 5 values for dims [2, 3]",
    );
    let short_raw = TensorProto {
        raw_data: vec![0; 20],
        ..tensor("short_raw", 1, &[2, 3])
    };
    refused(&write(&dir, &model(17, vec![short_raw])), "holds 20 bytes");
    let strings = tensor("strings", 8, &[1]);
    refused(&write(&dir, &model(17, vec![strings])), "element type 8 (string)");

    let entry = |k: &str, v: &str| StringStringEntryProto {
        key: k.into(),
        value: v.into(),
    };
    let external = |location: &str, offset: &str| TensorProto {
        data_location: 1,
        external_data: vec![entry("location", location), entry("offset", offset)],
        ..tensor("external", 1, &[4])
    };
    std::fs::write(dir.join("w.bin"), [0u8; 16]).unwrap();
    refused(
        &write(&dir, &model(17, vec![external("../w.bin", "0")])),
        "not a plain path inside",
    );
    refused(
        &write(&dir, &model(17, vec![external("/etc/passwd", "0")])),
        "not a plain path inside",
    );
    refused(
        &write(&dir, &model(17, vec![external("w.bin", "8")])),
        "reads bytes 8..24",
    );
    refused(
        &write(&dir, &model(17, vec![external("w.bin", "x")])),
        "not a byte count",
    );
    refused(
        &write(&dir, &model(17, vec![external("missing.bin", "0")])),
        "missing.bin",
    );
}

/// A graph holding a billion-element constant, in each form the file can claim it: an
/// initializer or a Constant node's `value`, with no data, with a few bytes, or in float64
/// (8 GB, over the 4 GiB limit). Each is one line naming the tensor, and nothing of the
/// claimed size is allocated: the dims are checked against the data the file holds.
#[test]
fn a_billion_element_constant_is_refused_before_allocating() {
    let billion = [1000, 1000, 1000];
    let empty = tensor("empty", 1, &billion);
    let few = TensorProto {
        raw_data: vec![0; 4],
        ..tensor("few", 1, &billion)
    };
    let typed = TensorProto {
        float_data: vec![1.0; 3],
        ..tensor("typed", 1, &billion)
    };
    let double = tensor("double", 11, &billion);
    let cases = [
        (empty, "holds 0 values for dims [1000, 1000, 1000]"),
        (few, "holds 4 bytes of data for dims [1000, 1000, 1000]"),
        (typed, "holds 3 values for dims [1000, 1000, 1000]"),
        (double, "over fido's limit of 4294967296 bytes"),
    ];
    let dir = scratch("billion");
    for (t, needle) in cases {
        let name = t.name.clone();
        // As an initializer.
        refused(&write(&dir, &model(17, vec![t.clone()])), needle);
        // As the value of a Constant node, read from memory.
        let mut m = model(17, vec![]);
        m.graph.as_mut().unwrap().node = vec![NodeProto {
            op_type: "Constant".into(),
            output: vec!["c".into()],
            attribute: vec![AttributeProto {
                name: "value".into(),
                r#type: 4,
                t: Some(t),
                ..Default::default()
            }],
            ..Default::default()
        }];
        let read = OnnxModel::from_bytes(&m.encode_to_vec(), Path::new("billion.onnx")).unwrap();
        let value = read.graph().node[0].attribute[0].t.as_ref().unwrap();
        let err = read.tensor(value).unwrap_err().to_string();
        assert!(
            err.contains(needle) && err.contains(&format!("billion.onnx: tensor `{name}`")),
            "{err}"
        );
        assert!(!err.contains('\n'), "{err}");
    }
}

/// A model read from memory has no folder: its external tensors are refused, whatever path
/// they name, and everything else reads as from a file.
#[test]
fn a_model_read_from_memory_refuses_external_data() {
    let entry = |k: &str, v: &str| StringStringEntryProto {
        key: k.into(),
        value: v.into(),
    };
    let external = TensorProto {
        data_location: 1,
        external_data: vec![entry("location", "weights.bin")],
        ..tensor("external", 1, &[4])
    };
    let inline = TensorProto {
        float_data: vec![1.0, 2.0],
        ..tensor("inline", 1, &[2])
    };
    let bytes = model(17, vec![external, inline]).encode_to_vec();
    let m = OnnxModel::from_bytes(&bytes, Path::new("memory.onnx")).unwrap();
    let init = &m.graph().initializer;
    let err = m.tensor(&init[0]).unwrap_err().to_string();
    assert!(
        err.contains("memory.onnx: tensor `external`")
            && err.contains("names external data `weights.bin`, which a model read from memory cannot have"),
        "{err}"
    );
    assert_eq!(
        m.tensor(&init[1]).unwrap(),
        (vec![2], TensorValues::Float(vec![1.0, 2.0]))
    );
    let err = OnnxModel::from_bytes(b"\xff\xff\xff", Path::new("memory.onnx"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("memory.onnx: not an ONNX model"), "{err}");
}

// ---------------------------------------------------------------------------------------
// The graph on the tape
// ---------------------------------------------------------------------------------------

mod common;

use fido::models::onnx::OnnxClassifier;
use fido::ops::conv::{Conv2dOptions, Padding};
use fido::weights::onnx::{AttributeProto, NodeProto};
use fido::{Tape, Tensor};

fn ints(name: &str, v: &[i64]) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: 7,
        ints: v.to_vec(),
        ..Default::default()
    }
}
fn int(name: &str, v: i64) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: 2,
        i: v,
        ..Default::default()
    }
}
fn string(name: &str, v: &str) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: 3,
        s: v.as_bytes().to_vec(),
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
fn floats(name: &str, dims: &[usize], rng: &mut common::Rng) -> (TensorProto, Vec<f32>) {
    let v = rng.vec(dims.iter().product(), -0.5, 0.5);
    let t = TensorProto {
        float_data: v.clone(),
        ..tensor(name, 1, &dims.iter().map(|&d| d as i64).collect::<Vec<_>>())
    };
    (t, v)
}

/// A small CNN with the exporters' usual ops: Conv (stride, SAME_UPPER, groups), BatchNorm,
/// Relu, Clip to 6, MaxPool, an Add of two branches, GlobalAveragePool, Flatten, Reshape
/// with 0 and -1, and Gemm with transB.
#[test]
fn a_small_cnn_runs_on_the_tape_as_its_ops_would_natively() {
    let gpu = common::gpu();
    let mut rng = common::Rng::new(5);
    let (w1, w1v) = floats("w1", &[8, 3, 3, 3], &mut rng);
    let (b1, b1v) = floats("b1", &[8], &mut rng);
    let (gamma, gv) = floats("gamma", &[8], &mut rng);
    let (beta, bv) = floats("beta", &[8], &mut rng);
    let (mean, mv) = floats("mean", &[8], &mut rng);
    let var_v: Vec<f32> = rng.vec(8, 0.5, 1.5);
    let var = TensorProto {
        float_data: var_v.clone(),
        ..tensor("var", 1, &[8])
    };
    let (w2, w2v) = floats("w2", &[8, 1, 3, 3], &mut rng);
    let (fc, fcv) = floats("fc", &[5, 8], &mut rng);
    let (fcb, fcbv) = floats("fcb", &[5], &mut rng);
    let lo = TensorProto {
        float_data: vec![0.0],
        ..tensor("lo", 1, &[])
    };
    let hi = TensorProto {
        float_data: vec![6.0],
        ..tensor("hi", 1, &[])
    };
    let target = TensorProto {
        int64_data: vec![0, -1],
        ..tensor("target", 7, &[2])
    };
    let nodes = vec![
        node(
            "Conv",
            &["input", "w1", "b1"],
            "c1",
            vec![ints("strides", &[2, 2]), string("auto_pad", "SAME_UPPER")],
        ),
        node(
            "BatchNormalization",
            &["c1", "gamma", "beta", "mean", "var"],
            "bn",
            vec![],
        ),
        node("Relu", &["bn"], "r1", vec![]),
        node(
            "Conv",
            &["r1", "w2"],
            "dw",
            vec![ints("pads", &[1, 1, 1, 1]), int("group", 8)],
        ),
        node("Clip", &["dw", "lo", "hi"], "r6", vec![]),
        node(
            "MaxPool",
            &["r6"],
            "mp",
            vec![
                ints("kernel_shape", &[3, 3]),
                ints("strides", &[1, 1]),
                ints("pads", &[1, 1, 1, 1]),
            ],
        ),
        node("Add", &["mp", "r1"], "sum", vec![]),
        node("GlobalAveragePool", &["sum"], "gap", vec![]),
        node("Flatten", &["gap"], "flat", vec![]),
        node("Reshape", &["flat", "target"], "flat2", vec![]),
        node("Gemm", &["flat2", "fc", "fcb"], "logits", vec![int("transB", 1)]),
    ];
    let mut m = model(
        17,
        vec![w1, b1, gamma, beta, mean, var, w2, fc, fcb, lo, hi, target],
    );
    let g = m.graph.as_mut().unwrap();
    g.node = nodes;
    g.output = vec![ValueInfoProto {
        name: "logits".into(),
        r#type: None,
    }];
    let dir = scratch("cnn");
    let classifier = OnnxClassifier::load(&gpu, &write(&dir, &m)).unwrap();
    assert_eq!(classifier.input_shape(), &[None, Some(3), Some(224), Some(224)]);

    // 2 images of 11×13: odd sizes, so SAME_UPPER pads unevenly (stride 2, kernel 3).
    let xv = rng.vec(2 * 3 * 11 * 13, -1.0, 1.0);
    let x = Tensor::from_slice(&gpu, &[2, 3, 11, 13], &xv).unwrap();
    let onnx_tape = Tape::new();
    let xp = onnx_tape.param(x.clone());
    let got = classifier.forward(&onnx_tape, &xp).unwrap();
    assert_eq!(got.shape(), &[2, 5]);

    // The same network written with the engine's own ops, on its own tape (a backward pass
    // consumes its tape's record).
    let tape = Tape::new();
    let c = |shape: &[usize], v: &[f32]| tape.constant(Tensor::from_slice(&gpu, shape, v).unwrap());
    let t = |shape: &[usize], v: &[f32]| Tensor::from_slice(&gpu, shape, v).unwrap();
    let xin = tape.param(x);
    // SAME_UPPER on 11×13 with stride 2, kernel 3: outputs 6×7, padding 1 on every side
    // for 11 ((6-1)·2+3-11 = 2) and 1/1 for 13 ((7-1)·2+3-13 = 2).
    let same = Conv2dOptions::new().stride(2, 2).padding(Padding {
        top: 1,
        bottom: 1,
        left: 1,
        right: 1,
    });
    let c1 = xin
        .conv2d(&c(&[8, 3, 3, 3], &w1v), Some(&c(&[8], &b1v)), &same)
        .unwrap();
    let bn = c1
        .batch_norm(
            &t(&[8], &gv),
            &t(&[8], &bv),
            &t(&[8], &mv),
            &t(&[8], &var_v),
            1e-5,
        )
        .unwrap();
    let r1 = bn.relu().unwrap();
    let dw_opts = Conv2dOptions::new().padding(Padding::symmetric(1, 1)).groups(8);
    let dw = r1.conv2d(&c(&[8, 1, 3, 3], &w2v), None, &dw_opts).unwrap();
    let r6 = dw.unary(fido::ops::elementwise::UnaryOp::Relu6).unwrap();
    let mp = r6.max_pool2d([3, 3], [1, 1], [1, 1]).unwrap();
    let flat = mp
        .add(&r1)
        .unwrap()
        .global_avg_pool()
        .unwrap()
        .reshape(&[2, 8])
        .unwrap();
    let want = flat
        .matmul(&c(&[5, 8], &fcv), false, true)
        .unwrap()
        .add(&c(&[5], &fcbv))
        .unwrap();
    let (got_v, want_v) = (got.value().to_vec().unwrap(), want.value().to_vec().unwrap());
    // The same kernels in the same order: equal up to the last bit or two.
    common::assert_close("onnx cnn", &got_v, &common::to_f64(&want_v), 1e-6, 1e-5);

    // And it is differentiable: its input gradient is the native network's.
    let dx = onnx_tape
        .backward(&got.sum().unwrap())
        .unwrap()
        .get(&xp)
        .expect("a gradient")
        .to_vec()
        .unwrap();
    let dn = tape
        .backward(&want.sum().unwrap())
        .unwrap()
        .get(&xin)
        .expect("a gradient")
        .to_vec()
        .unwrap();
    assert!(dx.iter().any(|&v| v != 0.0));
    common::assert_close("onnx cnn input gradient", &dx, &common::to_f64(&dn), 1e-6, 1e-5);
}

#[test]
fn an_op_fido_cannot_run_is_named_before_any_gpu_work() {
    let gpu = common::gpu();
    let mut m = model(13, vec![]);
    let g = m.graph.as_mut().unwrap();
    g.node = vec![
        node("Relu", &["input"], "a", vec![]),
        NodeProto {
            name: "the_lstm".into(),
            ..node("LSTM", &["a"], "b", vec![])
        },
    ];
    g.output = vec![ValueInfoProto {
        name: "b".into(),
        r#type: None,
    }];
    let dir = scratch("unsupported");
    let err = OnnxClassifier::load(&gpu, &write(&dir, &m))
        .err()
        .unwrap()
        .to_string();
    for needle in ["`the_lstm`", "`LSTM`", "opset 13", "supported: Conv"] {
        assert!(err.contains(needle), "expected {needle} in: {err}");
    }
    assert!(!err.contains('\n'));
}

#[test]
fn shape_computations_that_would_allocate_without_bound_are_refused() {
    let gpu = common::gpu();
    let dir = scratch("host-bounds");
    // ConstantOfShape of a billion elements from a constant shape: folded at load, refused
    // before allocating; an empty `value` tensor is an error, not a default.
    let shape = TensorProto {
        name: "shape".into(),
        data_type: 7,
        dims: vec![3],
        int64_data: vec![1000, 1000, 1000],
        ..Default::default()
    };
    let huge = node("ConstantOfShape", &["shape"], "out", vec![]);
    let mut m = model(17, vec![shape.clone()]);
    m.graph.as_mut().unwrap().node = vec![huge];
    let e = OnnxClassifier::load(&gpu, &write(&dir, &m))
        .err()
        .expect("refused")
        .to_string();
    assert!(e.contains("more than 16777216 elements"), "{e}");
    let mut small = shape;
    small.int64_data = vec![2, 2, 2];
    let empty_value = AttributeProto {
        name: "value".into(),
        r#type: 4,
        t: Some(TensorProto {
            data_type: 1,
            dims: vec![1],
            ..Default::default()
        }),
        ..Default::default()
    };
    let mut m = model(17, vec![small]);
    m.graph.as_mut().unwrap().node = vec![node("ConstantOfShape", &["shape"], "out", vec![empty_value])];
    let e = OnnxClassifier::load(&gpu, &write(&dir, &m))
        .err()
        .expect("refused")
        .to_string();
    assert!(e.contains("holds 0 values"), "{e}");
}
