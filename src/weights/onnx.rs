//! ONNX model files: the protobuf messages fido reads, decoded with `prost`, and the tensors
//! they hold (initializers and constants), inline or in external data files.
//!
//! Why prost with hand-declared messages: prost is the maintained protobuf crate of the Rust
//! ecosystem (tokio's), and declaring the messages with its derive needs no `protoc` at
//! build time. Only the fields fido uses are declared; protobuf skips the others, so a
//! model with training info, functions or sparse initializers still parses. The tags and
//! types are those of `onnx/onnx.proto` (IR version 3 and later).
//!
//! Everything a file claims is checked before it is trusted: a tensor's element count
//! against its dims and its data, external data against the file holding it (and kept
//! inside the model's folder), and sizes against [`MAX_TENSOR_BYTES`] before allocating.

use std::path::{Component, Path, PathBuf};

use prost::Message;

use crate::{Error, IoContext, Result};

/// Opsets of the default domain fido implements.
pub const OPSETS: std::ops::RangeInclusive<i64> = 11..=21;

/// The largest tensor a model may hold (4 GiB, protobuf's own limit for one message is 2 GiB);
/// a file claiming more is refused before anything is allocated.
pub const MAX_TENSOR_BYTES: u64 = 4 << 30;

#[derive(Clone, PartialEq, Message)]
pub struct ModelProto {
    #[prost(int64, tag = "1")]
    pub ir_version: i64,
    #[prost(message, repeated, tag = "8")]
    pub opset_import: Vec<OperatorSetIdProto>,
    #[prost(string, tag = "2")]
    pub producer_name: String,
    #[prost(string, tag = "3")]
    pub producer_version: String,
    #[prost(message, optional, tag = "7")]
    pub graph: Option<GraphProto>,
}

#[derive(Clone, PartialEq, Message)]
pub struct OperatorSetIdProto {
    #[prost(string, tag = "1")]
    pub domain: String,
    #[prost(int64, tag = "2")]
    pub version: i64,
}

#[derive(Clone, PartialEq, Message)]
pub struct GraphProto {
    #[prost(message, repeated, tag = "1")]
    pub node: Vec<NodeProto>,
    #[prost(string, tag = "2")]
    pub name: String,
    #[prost(message, repeated, tag = "5")]
    pub initializer: Vec<TensorProto>,
    #[prost(message, repeated, tag = "11")]
    pub input: Vec<ValueInfoProto>,
    #[prost(message, repeated, tag = "12")]
    pub output: Vec<ValueInfoProto>,
    #[prost(message, repeated, tag = "13")]
    pub value_info: Vec<ValueInfoProto>,
}

#[derive(Clone, PartialEq, Message)]
pub struct NodeProto {
    #[prost(string, repeated, tag = "1")]
    pub input: Vec<String>,
    #[prost(string, repeated, tag = "2")]
    pub output: Vec<String>,
    #[prost(string, tag = "3")]
    pub name: String,
    #[prost(string, tag = "4")]
    pub op_type: String,
    #[prost(string, tag = "7")]
    pub domain: String,
    #[prost(message, repeated, tag = "5")]
    pub attribute: Vec<AttributeProto>,
}

#[derive(Clone, PartialEq, Message)]
pub struct AttributeProto {
    #[prost(string, tag = "1")]
    pub name: String,
    /// `AttributeType`: 1 float, 2 int, 3 string, 4 tensor, 5 graph, 6 floats, 7 ints, 8 strings.
    #[prost(int32, tag = "20")]
    pub r#type: i32,
    #[prost(float, tag = "2")]
    pub f: f32,
    #[prost(int64, tag = "3")]
    pub i: i64,
    #[prost(bytes = "vec", tag = "4")]
    pub s: Vec<u8>,
    #[prost(message, optional, tag = "5")]
    pub t: Option<TensorProto>,
    #[prost(float, repeated, tag = "7")]
    pub floats: Vec<f32>,
    #[prost(int64, repeated, tag = "8")]
    pub ints: Vec<i64>,
    #[prost(bytes = "vec", repeated, tag = "9")]
    pub strings: Vec<Vec<u8>>,
}

#[derive(Clone, PartialEq, Message)]
pub struct TensorProto {
    #[prost(int64, repeated, tag = "1")]
    pub dims: Vec<i64>,
    /// `TensorProto.DataType`: see [`ElementType`].
    #[prost(int32, tag = "2")]
    pub data_type: i32,
    #[prost(float, repeated, tag = "4")]
    pub float_data: Vec<f32>,
    /// Also holds int8/16, uint8/16, bool and float16 values, one per entry.
    #[prost(int32, repeated, tag = "5")]
    pub int32_data: Vec<i32>,
    #[prost(int64, repeated, tag = "7")]
    pub int64_data: Vec<i64>,
    #[prost(string, tag = "8")]
    pub name: String,
    #[prost(bytes = "vec", tag = "9")]
    pub raw_data: Vec<u8>,
    #[prost(double, repeated, tag = "10")]
    pub double_data: Vec<f64>,
    #[prost(message, repeated, tag = "13")]
    pub external_data: Vec<StringStringEntryProto>,
    /// 0 default (in this message), 1 external.
    #[prost(int32, tag = "14")]
    pub data_location: i32,
}

#[derive(Clone, PartialEq, Message)]
pub struct StringStringEntryProto {
    #[prost(string, tag = "1")]
    pub key: String,
    #[prost(string, tag = "2")]
    pub value: String,
}

#[derive(Clone, PartialEq, Message)]
pub struct ValueInfoProto {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(message, optional, tag = "2")]
    pub r#type: Option<TypeProto>,
}

/// Only the tensor member of TypeProto's `value` oneof; sequences and maps are skipped.
#[derive(Clone, PartialEq, Message)]
pub struct TypeProto {
    #[prost(message, optional, tag = "1")]
    pub tensor_type: Option<TensorTypeProto>,
}

#[derive(Clone, PartialEq, Message)]
pub struct TensorTypeProto {
    #[prost(int32, tag = "1")]
    pub elem_type: i32,
    #[prost(message, optional, tag = "2")]
    pub shape: Option<TensorShapeProto>,
}

#[derive(Clone, PartialEq, Message)]
pub struct TensorShapeProto {
    #[prost(message, repeated, tag = "1")]
    pub dim: Vec<Dimension>,
}

/// One axis: a fixed size, or a named (dynamic) one such as `batch`.
#[derive(Clone, PartialEq, Message)]
pub struct Dimension {
    #[prost(int64, optional, tag = "1")]
    pub dim_value: Option<i64>,
    #[prost(string, optional, tag = "2")]
    pub dim_param: Option<String>,
}

/// The element types fido reads. Floating types become f32, integer and boolean types
/// i64 (they index and shape, never carry activations).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ElementType {
    F32,
    F64,
    F16,
    I64,
    I32,
    I8,
    U8,
    Bool,
}

impl ElementType {
    pub fn from_onnx(code: i32) -> Result<ElementType> {
        Ok(match code {
            1 => ElementType::F32,
            2 => ElementType::U8,
            3 => ElementType::I8,
            6 => ElementType::I32,
            7 => ElementType::I64,
            9 => ElementType::Bool,
            10 => ElementType::F16,
            11 => ElementType::F64,
            other => {
                return Err(Error::Weights(format!(
                    "ONNX element type {other} ({}) is not supported; fido reads float, double, float16, int64, int32, int8, uint8 and bool",
                    type_name(other)
                )))
            }
        })
    }

    /// Bytes per element in `raw_data`.
    pub fn size(self) -> u64 {
        match self {
            ElementType::F64 | ElementType::I64 => 8,
            ElementType::F32 | ElementType::I32 => 4,
            ElementType::F16 => 2,
            ElementType::I8 | ElementType::U8 | ElementType::Bool => 1,
        }
    }

    pub fn is_float(self) -> bool {
        matches!(self, ElementType::F32 | ElementType::F64 | ElementType::F16)
    }
}

fn type_name(code: i32) -> &'static str {
    match code {
        0 => "undefined",
        4 => "uint16",
        5 => "int16",
        8 => "string",
        12 => "uint32",
        13 => "uint64",
        14 => "complex64",
        15 => "complex128",
        16 => "bfloat16",
        17..=20 => "float8",
        _ => "unknown",
    }
}

/// A tensor's values, decoded: floats as f32, integers and booleans as i64.
#[derive(Clone, Debug, PartialEq)]
pub enum TensorValues {
    Float(Vec<f32>),
    Int(Vec<i64>),
}

impl TensorValues {
    pub fn len(&self) -> usize {
        match self {
            TensorValues::Float(v) => v.len(),
            TensorValues::Int(v) => v.len(),
        }
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// An ONNX model read from disk: its messages, and the folder external data is relative to.
#[derive(Debug)]
pub struct OnnxModel {
    pub model: ModelProto,
    /// The default domain's opset.
    pub opset: i64,
    /// Where external data files are looked up; `None` for a model read from memory, whose
    /// external tensors are refused.
    folder: Option<PathBuf>,
    path: PathBuf,
}

impl OnnxModel {
    /// Read and check `path`: it parses, has a graph, and imports an opset of the default
    /// domain in [`OPSETS`].
    pub fn open(path: &Path) -> Result<OnnxModel> {
        let bytes = std::fs::read(path).at(path)?;
        let folder = path.parent().map(Path::to_path_buf).unwrap_or_default();
        Self::parse(&bytes, path, Some(folder))
    }

    /// [`open`](Self::open) for a model held in memory; `name` stands for its path in
    /// messages. External data resolves relative to nothing: a tensor stored outside the
    /// model is refused.
    pub fn from_bytes(bytes: &[u8], name: &Path) -> Result<OnnxModel> {
        Self::parse(bytes, name, None)
    }

    fn parse(bytes: &[u8], path: &Path, folder: Option<PathBuf>) -> Result<OnnxModel> {
        let bad = |why: String| Error::Weights(format!("{}: {why}", path.display()));
        let model = ModelProto::decode(bytes)
            .map_err(|e| bad(format!("not an ONNX model (the protobuf does not parse: {e})")))?;
        if model.graph.is_none() {
            return Err(bad("not an ONNX model (it has no graph)".into()));
        }
        let opset = model
            .opset_import
            .iter()
            .find(|o| o.domain.is_empty() || o.domain == "ai.onnx")
            .map(|o| o.version)
            .ok_or_else(|| bad("imports no opset of the default ONNX domain".into()))?;
        if !OPSETS.contains(&opset) {
            return Err(bad(format!(
                "uses opset {opset}; fido reads opsets {}–{} (re-export with `torch.onnx.export(..., opset_version=17)`)",
                OPSETS.start(),
                OPSETS.end()
            )));
        }
        Ok(OnnxModel {
            model,
            opset,
            folder,
            path: path.to_path_buf(),
        })
    }

    pub fn graph(&self) -> &GraphProto {
        self.model.graph.as_ref().expect("checked at open")
    }

    /// The dims and values of `tensor`, from its own fields or its external data file.
    pub fn tensor(&self, tensor: &TensorProto) -> Result<(Vec<usize>, TensorValues)> {
        let what = || format!("{}: tensor `{}`", self.path.display(), tensor.name);
        let bad = |why: String| Error::Weights(format!("{}: {why}", what()));
        let ty = ElementType::from_onnx(tensor.data_type).map_err(|e| bad(e.to_string()))?;
        let mut dims = Vec::with_capacity(tensor.dims.len());
        let mut count: u64 = 1;
        for &d in &tensor.dims {
            let d = u64::try_from(d)
                .map_err(|_| bad(format!("has a negative dimension in {:?}", tensor.dims)))?;
            count = count
                .checked_mul(d)
                .filter(|&c| c.saturating_mul(ty.size()) <= MAX_TENSOR_BYTES)
                .ok_or_else(|| {
                    bad(format!(
                        "claims dims {:?}, over fido's limit of {MAX_TENSOR_BYTES} bytes per tensor",
                        tensor.dims
                    ))
                })?;
            dims.push(d as usize);
        }
        let external;
        let raw: &[u8] = if tensor.data_location == 1 {
            external = self.external_bytes(tensor, count * ty.size()).map_err(bad)?;
            &external
        } else {
            &tensor.raw_data
        };
        let values = if !raw.is_empty() || tensor.data_location == 1 {
            if raw.len() as u64 != count * ty.size() {
                return Err(bad(format!(
                    "holds {} bytes of data for dims {:?} ({count} values of {} bytes)",
                    raw.len(),
                    tensor.dims,
                    ty.size()
                )));
            }
            decode_raw(ty, raw)
        } else {
            let values = typed_fields(ty, tensor);
            if values.len() as u64 != count {
                return Err(bad(format!(
                    "holds {} values for dims {:?}, which need {count}",
                    values.len(),
                    tensor.dims
                )));
            }
            values
        };
        Ok((dims, values))
    }

    /// The `length` bytes at `offset` of the file `location`, from the tensor's external data
    /// entries. The file must lie inside the model's folder.
    fn external_bytes(&self, tensor: &TensorProto, expected: u64) -> std::result::Result<Vec<u8>, String> {
        let entry = |key: &str| {
            tensor
                .external_data
                .iter()
                .find(|e| e.key == key)
                .map(|e| e.value.as_str())
        };
        let location = entry("location").ok_or("is external but names no `location`")?;
        let Some(folder) = &self.folder else {
            return Err(format!(
                "names external data `{location}`, which a model read from memory cannot have"
            ));
        };
        let relative = Path::new(location);
        if relative.is_absolute() || relative.components().any(|c| !matches!(c, Component::Normal(_))) {
            return Err(format!(
                "names external data `{location}`, which is not a plain path inside the model's folder"
            ));
        }
        let number = |key: &str| -> std::result::Result<Option<u64>, String> {
            entry(key)
                .map(|v| {
                    v.parse::<u64>()
                        .map_err(|_| format!("has external `{key}` = `{v}`, not a byte count"))
                })
                .transpose()
        };
        let offset = number("offset")?.unwrap_or(0);
        let length = number("length")?.unwrap_or(expected);
        if length != expected {
            return Err(format!(
                "has external length {length}, but its dims need {expected} bytes"
            ));
        }
        let file = folder.join(relative);
        let size = std::fs::metadata(&file)
            .map_err(|e| format!("names external data {}: {e}", file.display()))?
            .len();
        if offset.checked_add(length).is_none_or(|end| end > size) {
            return Err(format!(
                "reads bytes {offset}..{} of {}, which has {size}",
                offset.saturating_add(length),
                file.display()
            ));
        }
        use std::io::{Read, Seek, SeekFrom};
        let mut f = std::fs::File::open(&file).map_err(|e| format!("{}: {e}", file.display()))?;
        f.seek(SeekFrom::Start(offset))
            .map_err(|e| format!("{}: {e}", file.display()))?;
        let mut bytes = vec![0u8; length as usize];
        f.read_exact(&mut bytes)
            .map_err(|e| format!("{}: {e}", file.display()))?;
        Ok(bytes)
    }
}

fn decode_raw(ty: ElementType, raw: &[u8]) -> TensorValues {
    match ty {
        ElementType::F32 => TensorValues::Float(
            raw.chunks_exact(4)
                .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
                .collect(),
        ),
        ElementType::F64 => TensorValues::Float(
            raw.chunks_exact(8)
                .map(|b| f64::from_le_bytes(b.try_into().unwrap()) as f32)
                .collect(),
        ),
        ElementType::F16 => TensorValues::Float(
            raw.chunks_exact(2)
                .map(|b| f16_to_f32(u16::from_le_bytes(b.try_into().unwrap())))
                .collect(),
        ),
        ElementType::I64 => TensorValues::Int(
            raw.chunks_exact(8)
                .map(|b| i64::from_le_bytes(b.try_into().unwrap()))
                .collect(),
        ),
        ElementType::I32 => TensorValues::Int(
            raw.chunks_exact(4)
                .map(|b| i32::from_le_bytes(b.try_into().unwrap()) as i64)
                .collect(),
        ),
        ElementType::I8 => TensorValues::Int(raw.iter().map(|&b| b as i8 as i64).collect()),
        ElementType::U8 | ElementType::Bool => TensorValues::Int(raw.iter().map(|&b| b as i64).collect()),
    }
}

/// The values of the typed field `ty` is stored in when there is no raw data.
fn typed_fields(ty: ElementType, t: &TensorProto) -> TensorValues {
    match ty {
        ElementType::F32 => TensorValues::Float(t.float_data.clone()),
        ElementType::F64 => TensorValues::Float(t.double_data.iter().map(|&v| v as f32).collect()),
        // float16 values travel as their bit patterns, one per int32 entry.
        ElementType::F16 => TensorValues::Float(t.int32_data.iter().map(|&v| f16_to_f32(v as u16)).collect()),
        ElementType::I64 => TensorValues::Int(t.int64_data.clone()),
        ElementType::I32 | ElementType::I8 | ElementType::U8 | ElementType::Bool => {
            TensorValues::Int(t.int32_data.iter().map(|&v| v as i64).collect())
        }
    }
}

/// IEEE half to single precision, subnormals, infinities and NaN included.
pub fn f16_to_f32(h: u16) -> f32 {
    let sign = ((h >> 15) as u32) << 31;
    let exp = ((h >> 10) & 0x1f) as u32;
    let frac = (h & 0x3ff) as u32;
    let bits = match (exp, frac) {
        (0, 0) => sign,
        (0, f) => {
            // Subnormal: value f·2^-24, renormalised.
            let shift = f.leading_zeros() - 21;
            sign | ((113 - shift) << 23) | (((f << shift) & 0x3ff) << 13)
        }
        (31, f) => sign | 0x7f80_0000 | (f << 13),
        (e, f) => sign | ((e + 112) << 23) | (f << 13),
    };
    f32::from_bits(bits)
}
