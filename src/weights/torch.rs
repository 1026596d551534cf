//! PyTorch checkpoints without PyTorch: the zip format (PyTorch >= 1.6) and the legacy
//! sequence-of-pickles format, read into contiguous tensors and written as f32 safetensors.
//!
//! Every size in the file is untrusted: storages are slices checked against the input, views
//! are bounds-checked against their storage, and the bytes materialised for all tensors
//! together are capped by a multiple of the input size.

use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt;
use std::path::Path;
use std::rc::Rc;

use super::pickle::{unpickle, Arena, Global, Host, Value};
use super::{bf16_to_f32, f16_to_f32, write_f32_safetensors, zip};
use crate::{Error, IoContext, Result};

/// Element types a PyTorch storage can hold that the reader understands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TorchDType {
    F64,
    F32,
    F16,
    BF16,
    I64,
    I32,
    I16,
    I8,
    U8,
    Bool,
}

impl TorchDType {
    pub fn size(self) -> usize {
        match self {
            TorchDType::F64 | TorchDType::I64 => 8,
            TorchDType::F32 | TorchDType::I32 => 4,
            TorchDType::F16 | TorchDType::BF16 | TorchDType::I16 => 2,
            TorchDType::I8 | TorchDType::U8 | TorchDType::Bool => 1,
        }
    }

    pub fn is_float(self) -> bool {
        matches!(
            self,
            TorchDType::F64 | TorchDType::F32 | TorchDType::F16 | TorchDType::BF16
        )
    }

    /// The name PyTorch prints, e.g. `float16`.
    pub fn name(self) -> &'static str {
        match self {
            TorchDType::F64 => "float64",
            TorchDType::F32 => "float32",
            TorchDType::F16 => "float16",
            TorchDType::BF16 => "bfloat16",
            TorchDType::I64 => "int64",
            TorchDType::I32 => "int32",
            TorchDType::I16 => "int16",
            TorchDType::I8 => "int8",
            TorchDType::U8 => "uint8",
            TorchDType::Bool => "bool",
        }
    }

    fn from_storage_type(name: &str) -> Option<TorchDType> {
        Some(match name {
            "DoubleStorage" => TorchDType::F64,
            "FloatStorage" => TorchDType::F32,
            "HalfStorage" => TorchDType::F16,
            "BFloat16Storage" => TorchDType::BF16,
            "LongStorage" => TorchDType::I64,
            "IntStorage" => TorchDType::I32,
            "ShortStorage" => TorchDType::I16,
            "CharStorage" => TorchDType::I8,
            "ByteStorage" | "UntypedStorage" => TorchDType::U8,
            "BoolStorage" => TorchDType::Bool,
            _ => return None,
        })
    }

    fn from_dtype_name(name: &str) -> Option<TorchDType> {
        Some(match name {
            "float64" | "double" => TorchDType::F64,
            "float32" | "float" => TorchDType::F32,
            "float16" | "half" => TorchDType::F16,
            "bfloat16" => TorchDType::BF16,
            "int64" | "long" => TorchDType::I64,
            "int32" | "int" => TorchDType::I32,
            "int16" | "short" => TorchDType::I16,
            "int8" => TorchDType::I8,
            "uint8" => TorchDType::U8,
            "bool" => TorchDType::Bool,
            _ => return None,
        })
    }
}

impl fmt::Display for TorchDType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One tensor of a checkpoint, contiguous and row-major, in its stored element type
/// (little-endian bytes).
#[derive(Clone, Debug)]
pub struct TorchTensor {
    pub name: String,
    pub shape: Vec<usize>,
    pub dtype: TorchDType,
    pub data: Vec<u8>,
}

impl TorchTensor {
    /// The values as f32 for floating-point tensors (f64 is rounded), `None` otherwise.
    pub fn to_f32(&self) -> Option<Vec<f32>> {
        let data = &self.data;
        Some(match self.dtype {
            TorchDType::F32 => data
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
                .collect(),
            TorchDType::F64 => data
                .chunks_exact(8)
                .map(|c| f64::from_le_bytes(c.try_into().unwrap()) as f32)
                .collect(),
            TorchDType::F16 => data
                .chunks_exact(2)
                .map(|c| f16_to_f32(u16::from_le_bytes([c[0], c[1]])))
                .collect(),
            TorchDType::BF16 => data
                .chunks_exact(2)
                .map(|c| bf16_to_f32(u16::from_le_bytes([c[0], c[1]])))
                .collect(),
            _ => return None,
        })
    }

    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CheckpointFormat {
    /// `torch.save` since PyTorch 1.6: a zip of `data.pkl` and one member per storage.
    Zip,
    /// Before 1.6 (or `_use_new_zipfile_serialization=False`): consecutive pickles, then raw storages.
    Legacy,
    /// A plain `pickle.dump` of tensors: each storage is an embedded legacy checkpoint.
    Pickle,
}

impl fmt::Display for CheckpointFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CheckpointFormat::Zip => "zip",
            CheckpointFormat::Legacy => "legacy",
            CheckpointFormat::Pickle => "pickle",
        })
    }
}

/// The state_dict found in a checkpoint.
#[derive(Clone, Debug)]
pub struct PyTorchCheckpoint {
    pub format: CheckpointFormat,
    /// Where the state_dict sat, e.g. `state_dict` for `{"state_dict": {...}}`; `None` at the top.
    pub state_dict_path: Option<String>,
    /// A prefix every name carried and that was removed (`module.` from DataParallel).
    pub stripped_prefix: Option<String>,
    /// Tensors in the state_dict's order.
    pub tensors: Vec<TorchTensor>,
    /// Entries of the state_dict that are not tensors, with what they are.
    pub non_tensors: Vec<(String, String)>,
}

/// Reads a PyTorch checkpoint held in memory. Finds the state_dict (at the top, or under
/// `state_dict`, `model_state_dict`, `model`, `module`, `net`, `network`, `params`, `weights`),
/// strips a `module.` prefix shared by every name, and materialises every tensor contiguous.
pub fn read_pytorch_checkpoint(bytes: &[u8]) -> Result<PyTorchCheckpoint> {
    read_checkpoint(bytes).map_err(Error::Weights)
}

/// What [`convert_pytorch`] did.
#[derive(Clone, Debug)]
pub struct PyTorchConversion {
    pub format: CheckpointFormat,
    pub state_dict_path: Option<String>,
    pub stripped_prefix: Option<String>,
    /// Written tensors: name, shape and the dtype they were stored in (all are written as f32).
    pub written: Vec<(String, Vec<usize>, TorchDType)>,
    /// Entries left out, with the reason (integer buffers such as `num_batches_tracked`,
    /// non-tensor values).
    pub skipped: Vec<(String, String)>,
    pub parameters: u64,
    pub output_bytes: u64,
}

impl fmt::Display for PyTorchConversion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut counts: Vec<(TorchDType, usize)> = Vec::new();
        for (_, _, dtype) in &self.written {
            match counts.iter_mut().find(|(d, _)| d == dtype) {
                Some((_, n)) => *n += 1,
                None => counts.push((*dtype, 1)),
            }
        }
        let counts: Vec<String> = counts.iter().map(|(d, n)| format!("{n} {d}")).collect();
        write!(
            f,
            "{} checkpoint: wrote {} tensors as f32 (from {}), {} parameters, {} bytes",
            self.format,
            self.written.len(),
            if counts.is_empty() {
                "none".to_string()
            } else {
                counts.join(", ")
            },
            self.parameters,
            self.output_bytes
        )?;
        if let Some(path) = &self.state_dict_path {
            write!(f, "; state_dict found under `{path}`")?;
        }
        if let Some(prefix) = &self.stripped_prefix {
            write!(f, "; stripped the `{prefix}` prefix")?;
        }
        if !self.skipped.is_empty() {
            let shown: Vec<String> = self
                .skipped
                .iter()
                .take(5)
                .map(|(name, why)| format!("{name} ({why})"))
                .collect();
            let more = self.skipped.len().saturating_sub(shown.len());
            write!(f, "; skipped {}: {}", self.skipped.len(), shown.join(", "))?;
            if more > 0 {
                write!(f, " and {more} more")?;
            }
        }
        Ok(())
    }
}

/// Converts a PyTorch checkpoint (zip or legacy) to a safetensors file of f32 tensors with the
/// state_dict's names. Float tensors (f16, bf16, f64, f32) are converted; integer and boolean
/// tensors (such as BatchNorm's `num_batches_tracked`) are skipped and listed in the report.
pub fn convert_pytorch(input: &Path, output: &Path) -> Result<PyTorchConversion> {
    let bytes = std::fs::read(input)
        .map_err(|e| Error::Weights(format!("cannot read `{}`: {e}", input.display())))?;
    let checkpoint =
        read_checkpoint(&bytes).map_err(|e| Error::Weights(format!("`{}`: {e}", input.display())))?;
    drop(bytes);

    let mut written = Vec::new();
    let mut skipped: Vec<(String, String)> = checkpoint.non_tensors.clone();
    let mut converted: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::new();
    let mut parameters = 0u64;
    for tensor in &checkpoint.tensors {
        match tensor.to_f32() {
            Some(values) => {
                parameters += values.len() as u64;
                let raw: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
                written.push((tensor.name.clone(), tensor.shape.clone(), tensor.dtype));
                converted.push((tensor.name.clone(), tensor.shape.clone(), raw));
            }
            None => skipped.push((tensor.name.clone(), format!("{} tensor", tensor.dtype))),
        }
    }
    if converted.is_empty() {
        return Err(Error::Weights(format!(
            "`{}` holds no floating-point tensors to convert",
            input.display()
        )));
    }
    // A single metadata key keeps the header byte-for-byte reproducible (a map with several
    // keys would serialise in hash order).
    let metadata = HashMap::from([("format".to_string(), "pt".to_string())]);
    write_f32_safetensors(output, &converted, Some(metadata))?;
    let output_bytes = std::fs::metadata(output).at(output)?.len();
    Ok(PyTorchConversion {
        format: checkpoint.format,
        state_dict_path: checkpoint.state_dict_path,
        stripped_prefix: checkpoint.stripped_prefix,
        written,
        skipped,
        parameters,
        output_bytes,
    })
}

// ---------------------------------------------------------------------------------------------

/// Raw storage bytes; filled when the format reader reaches them.
pub(crate) struct Storage {
    key: String,
    dtype: TorchDType,
    bytes: RefCell<Option<Rc<[u8]>>>,
}

/// A storage as a persistent id names it: possibly a view starting inside its root storage.
pub(crate) struct StorageView {
    storage: Rc<Storage>,
    dtype: TorchDType,
    byte_offset: u64,
}

/// A tensor as `_rebuild_tensor*` describes it, before its storage is known to hold the data.
pub(crate) struct TensorRef {
    view: Rc<StorageView>,
    dtype: TorchDType,
    offset: u64,
    size: Vec<u64>,
    stride: Vec<u64>,
}

const LEGACY_MAGIC: [u8; 10] = [0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19];
const LEGACY_PROTOCOL_VERSION: i64 = 1001;
const STATE_DICT_KEYS: [&str; 8] = [
    "state_dict",
    "model_state_dict",
    "model",
    "module",
    "net",
    "network",
    "params",
    "weights",
];
/// Nested `torch.storage._load_from_bytes` checkpoints allowed inside one another.
const MAX_NESTED_LOADS: u32 = 2;

fn read_checkpoint(bytes: &[u8]) -> Result<PyTorchCheckpoint, String> {
    // Holds every container the pickles make until the tensors are out; dropping it then
    // frees them, reference cycles included.
    let mut arena = Arena::default();
    let (format, root) = if zip::is_zip(bytes) {
        (CheckpointFormat::Zip, read_zip(bytes, &mut arena)?)
    } else if bytes.first() == Some(&0x80) {
        read_legacy(bytes, 0, &mut arena)?
    } else if bytes.get(257..262) == Some(b"ustar") {
        return Err(
            "tar checkpoints (the earliest PyTorch releases) are not supported; re-save with a newer PyTorch"
                .into(),
        );
    } else {
        return Err("not a PyTorch checkpoint: neither a zip archive nor a pickle".into());
    };

    let (state_dict_path, entries) = find_state_dict(&root)?;
    drop(root);
    let mut budget = Budget::new(bytes.len());
    let mut tensors = Vec::new();
    let mut non_tensors = Vec::new();
    for (name, value) in entries {
        match &value {
            Value::Tensor(t) => {
                let (shape, data) =
                    materialise(t, &mut budget).map_err(|e| format!("tensor `{name}`: {e}"))?;
                tensors.push(TorchTensor {
                    name,
                    shape,
                    dtype: t.dtype,
                    data,
                });
            }
            other => non_tensors.push((name, format!("not a tensor: {}", other.describe()))),
        }
    }
    let stripped_prefix = strip_common_prefix(&mut tensors, &mut non_tensors, "module.");
    Ok(PyTorchCheckpoint {
        format,
        state_dict_path,
        stripped_prefix,
        tensors,
        non_tensors,
    })
}

fn read_zip(bytes: &[u8], arena: &mut Arena) -> Result<Value, String> {
    let archive = zip::Archive::new(bytes, data_limit(bytes.len()))?;
    let pickle = archive
        .names
        .iter()
        .filter(|name| *name == "data.pkl" || name.ends_with("/data.pkl"))
        .min_by_key(|name| name.len())
        .ok_or("zip archive has no `data.pkl`; is it a TorchScript or other archive?")?;
    let prefix = pickle[..pickle.len() - "data.pkl".len()].to_string();
    let byteorder = format!("{prefix}byteorder");
    if archive.names.contains(&byteorder) {
        let order = archive.read(&byteorder)?;
        if order != b"little" {
            return Err(format!(
                "checkpoint byte order is `{}`; only little-endian is supported",
                String::from_utf8_lossy(&order)
            ));
        }
    }
    let mut host = TorchHost {
        storages: HashMap::new(),
        zip: Some((&archive, &prefix)),
        nested_depth: 0,
        loaded: HashMap::new(),
    };
    let (root, _) = unpickle(&archive.read(pickle)?, &mut host, arena)?;
    Ok(root)
}

/// The legacy format: magic number, protocol version and system info pickles, the data
/// pickle, a pickle listing storage keys, then each storage as a u64 element count and its bytes.
/// Without the magic number, a top-level file is read as a plain pickle.
fn read_legacy(
    bytes: &[u8],
    nested_depth: u32,
    arena: &mut Arena,
) -> Result<(CheckpointFormat, Value), String> {
    let mut pos = 0;
    let mut host = TorchHost {
        storages: HashMap::new(),
        zip: None,
        nested_depth,
        loaded: HashMap::new(),
    };
    let mut next_pickle = |pos: &mut usize, what: &str, host: &mut TorchHost<'_>| {
        let (value, used) = unpickle(&bytes[*pos..], host, arena).map_err(|e| format!("{what}: {e}"))?;
        *pos += used;
        Ok::<Value, String>(value)
    };
    let magic = next_pickle(&mut pos, "first pickle", &mut host)?;
    if !matches!(&magic, Value::BigInt(b) if b.as_ref() == LEGACY_MAGIC) {
        if nested_depth == 0 {
            return Ok((CheckpointFormat::Pickle, magic));
        }
        return Err("embedded storage: the legacy magic number is missing".into());
    }
    let protocol = next_pickle(&mut pos, "protocol version", &mut host)?;
    if protocol.as_int() != Some(LEGACY_PROTOCOL_VERSION) {
        return Err(format!(
            "unsupported legacy protocol version: {}",
            protocol.describe()
        ));
    }
    let sys_info = next_pickle(&mut pos, "system info", &mut host)?;
    if let Value::Dict(info) = &sys_info {
        if let Some(Value::Bool(false)) = info.borrow().get("little_endian") {
            return Err("checkpoint was written big-endian; only little-endian is supported".into());
        }
    }
    let root = next_pickle(&mut pos, "data", &mut host)?;
    let keys = next_pickle(&mut pos, "storage keys", &mut host)?;
    let keys = keys.items().ok_or("storage key list is not a list")?;
    for key in keys {
        let key = match &key {
            Value::Str(s) => s.to_string(),
            Value::Int(i) => i.to_string(),
            other => return Err(format!("storage key is {}", other.describe())),
        };
        let storage = host
            .storages
            .get(&key)
            .ok_or_else(|| format!("storage `{key}` is listed but no tensor uses it"))?;
        let count = bytes
            .get(pos..pos + 8)
            .ok_or_else(|| format!("storage `{key}`: file ends before its size"))?;
        let count = u64::from_le_bytes(count.try_into().unwrap());
        pos += 8;
        let len = count
            .checked_mul(storage.dtype.size() as u64)
            .and_then(|n| usize::try_from(n).ok())
            .filter(|&n| n <= bytes.len() - pos)
            .ok_or_else(|| format!("storage `{key}` claims {count} elements but the file ends first"))?;
        *storage.bytes.borrow_mut() = Some(bytes[pos..pos + len].into());
        pos += len;
    }
    Ok((CheckpointFormat::Legacy, root))
}

struct TorchHost<'z> {
    storages: HashMap<String, Rc<Storage>>,
    zip: Option<(&'z zip::Archive<'z>, &'z str)>,
    nested_depth: u32,
    /// `_load_from_bytes` results by the address of their bytes (kept alive here, so the
    /// address is not reused).
    loaded: HashMap<usize, (Rc<[u8]>, Value)>,
}

impl Host for TorchHost<'_> {
    fn persistent_load(&mut self, pid: &Value) -> Result<Value, String> {
        let items = pid
            .items()
            .ok_or_else(|| format!("persistent id is {}", pid.describe()))?;
        match items.first().and_then(Value::as_str) {
            Some("storage") => {}
            Some("module") => {
                return Err(
                    "checkpoint holds a pickled nn.Module, not a state_dict; save model.state_dict()".into(),
                )
            }
            _ => return Err("persistent id is not a storage".into()),
        }
        let [_, storage_type, key, _location, numel, rest @ ..] = items.as_slice() else {
            return Err(format!("storage id has {} fields, expected 5 or 6", items.len()));
        };
        let dtype = match storage_type {
            Value::Global(g) => TorchDType::from_storage_type(&g.name)
                .ok_or_else(|| format!("unsupported storage type {}.{}", g.module, g.name))?,
            other => return Err(format!("storage type is {}", other.describe())),
        };
        let key = match key {
            Value::Str(s) => s.to_string(),
            Value::Int(i) => i.to_string(),
            other => return Err(format!("storage key is {}", other.describe())),
        };
        let numel = numel
            .as_int()
            .and_then(|n| u64::try_from(n).ok())
            .ok_or("storage size is not a non-negative integer")?;
        let storage = match self.storages.get(&key) {
            Some(existing) => existing.clone(),
            None => {
                let storage = Rc::new(Storage {
                    key: key.clone(),
                    dtype,
                    bytes: RefCell::new(None),
                });
                if let Some((archive, prefix)) = self.zip {
                    let data = archive.read(&format!("{prefix}data/{key}"))?;
                    let needed = numel.checked_mul(dtype.size() as u64);
                    if needed.is_none_or(|n| n > data.len() as u64) {
                        return Err(format!(
                            "storage `{key}` claims {numel} {dtype} elements but holds {} bytes",
                            data.len()
                        ));
                    }
                    *storage.bytes.borrow_mut() = Some(data.into());
                }
                self.storages.insert(key, storage.clone());
                storage
            }
        };
        // Legacy views: (view key, offset in elements, size); the root storage holds the data.
        let byte_offset = match rest.first() {
            Some(Value::Tuple(view)) => match view.get(1).and_then(Value::as_int) {
                Some(offset) if offset >= 0 => (offset as u64)
                    .checked_mul(dtype.size() as u64)
                    .ok_or("storage view offset overflows")?,
                _ => return Err("bad storage view metadata".into()),
            },
            _ => 0,
        };
        Ok(Value::Storage(Rc::new(StorageView {
            storage,
            dtype,
            byte_offset,
        })))
    }

    fn call(&mut self, callable: &Global, args: &[Value]) -> Result<Option<Value>, String> {
        let name = callable.name.as_str();
        match callable.module.as_str() {
            "torch._utils" => match name {
                "_rebuild_tensor" | "_rebuild_tensor_v2" => rebuild_tensor(args, None).map(Some),
                "_rebuild_tensor_v3" => {
                    let dtype = match args.get(6) {
                        Some(Value::Global(g)) if g.module == "torch" => TorchDType::from_dtype_name(&g.name)
                            .ok_or_else(|| format!("unsupported dtype torch.{}", g.name))?,
                        _ => return Err("_rebuild_tensor_v3 without a dtype".into()),
                    };
                    rebuild_tensor(args, Some(dtype)).map(Some)
                }
                "_rebuild_parameter" | "_rebuild_parameter_with_state" => match args.first() {
                    Some(tensor @ Value::Tensor(_)) => Ok(Some(tensor.clone())),
                    _ => Err(format!("{name} of something that is not a tensor")),
                },
                "_rebuild_qtensor" | "_rebuild_sparse_tensor" | "_rebuild_nested_tensor" => Err(format!(
                    "{name}: quantized, sparse and nested tensors are not supported"
                )),
                _ => Ok(None),
            },
            "torch._tensor" if name == "_rebuild_from_type_v2" => {
                // (func, type, args, state): a tensor subclass rebuilt by one of the functions above.
                match (args.first(), args.get(2).and_then(Value::items)) {
                    (Some(Value::Global(func)), Some(inner))
                        if func.module == "torch._utils" && func.name.starts_with("_rebuild_") =>
                    {
                        self.call(func, &inner)
                    }
                    _ => Err("unsupported _rebuild_from_type_v2 call".into()),
                }
            }
            "torch.storage" if name == "_load_from_bytes" => {
                let Some(Value::Bytes(inner)) = args.first() else {
                    return Err("_load_from_bytes without bytes".into());
                };
                if self.nested_depth >= MAX_NESTED_LOADS {
                    return Err("storages nested too deeply".into());
                }
                // One bytes object (the memo can hand it out any number of times) is read once,
                // so the work stays proportional to the file.
                let at = Rc::as_ptr(inner) as *const u8 as usize;
                if let Some((_, storage)) = self.loaded.get(&at) {
                    return Ok(Some(storage.clone()));
                }
                // The embedded checkpoint's containers are freed here: a storage holds none.
                match read_legacy(inner, self.nested_depth + 1, &mut Arena::default())?.1 {
                    storage @ Value::Storage(_) => {
                        self.loaded.insert(at, (inner.clone(), storage.clone()));
                        Ok(Some(storage))
                    }
                    other => Err(format!("_load_from_bytes gave {}", other.describe())),
                }
            }
            "torch" if name == "Size" => Ok(args.first().cloned()),
            _ => Ok(None),
        }
    }
}

fn rebuild_tensor(args: &[Value], dtype: Option<TorchDType>) -> Result<Value, String> {
    let [storage, offset, size, stride, ..] = args else {
        return Err("tensor rebuild with too few arguments".into());
    };
    let Value::Storage(view) = storage else {
        return Err(format!("tensor storage is {}", storage.describe()));
    };
    let non_negative = |v: &Value, what: &str| {
        v.as_int()
            .and_then(|i| u64::try_from(i).ok())
            .ok_or_else(|| format!("tensor {what} is not a non-negative integer"))
    };
    let dims = |v: &Value, what: &str| -> Result<Vec<u64>, String> {
        let items = v
            .items()
            .ok_or_else(|| format!("tensor {what} is {}", v.describe()))?;
        items.iter().map(|i| non_negative(i, what)).collect()
    };
    let size = dims(size, "size")?;
    let stride = dims(stride, "stride")?;
    if size.len() != stride.len() {
        return Err(format!(
            "tensor size {size:?} and stride {stride:?} differ in rank"
        ));
    }
    Ok(Value::Tensor(Rc::new(TensorRef {
        view: view.clone(),
        dtype: dtype.unwrap_or(view.dtype),
        offset: non_negative(offset, "offset")?,
        size,
        stride,
    })))
}

/// The most data a checkpoint of `input_len` bytes may describe, as tensors or as inflated
/// zip members: four times its size plus 1 MiB.
fn data_limit(input_len: usize) -> u64 {
    (input_len as u64).saturating_mul(4).saturating_add(1 << 20)
}

/// Caps the bytes materialised for all tensors: views may overlap (tied weights, shared
/// storages) but cannot legitimately describe far more data than the file holds.
struct Budget {
    left: u64,
}

impl Budget {
    fn new(input_len: usize) -> Budget {
        Budget {
            left: data_limit(input_len),
        }
    }

    fn spend(&mut self, bytes: u64) -> Result<(), String> {
        self.left = self.left.checked_sub(bytes).ok_or_else(|| {
            format!("tensors describe more data than the checkpoint could hold ({bytes} more bytes)")
        })?;
        Ok(())
    }
}

/// Copies a (possibly strided) tensor out of its storage into row-major order.
fn materialise(t: &TensorRef, budget: &mut Budget) -> Result<(Vec<usize>, Vec<u8>), String> {
    let elem = t.dtype.size();
    let numel = t
        .size
        .iter()
        .try_fold(1u64, |acc, &d| acc.checked_mul(d))
        .ok_or("tensor size overflows")?;
    let nbytes = numel.checked_mul(elem as u64).ok_or("tensor size overflows")?;
    budget.spend(nbytes)?;
    let shape: Vec<usize> = t.size.iter().map(|&d| d as usize).collect();
    if numel == 0 {
        return Ok((shape, Vec::new()));
    }
    let bytes = t.view.storage.bytes.borrow();
    let bytes = bytes
        .as_ref()
        .ok_or_else(|| format!("storage `{}` has no data", t.view.storage.key))?;
    let mut last = t.offset;
    for (&d, &s) in t.size.iter().zip(&t.stride) {
        last = (d - 1)
            .checked_mul(s)
            .and_then(|span| last.checked_add(span))
            .ok_or("tensor view overflows")?;
    }
    let end = last
        .checked_add(1)
        .and_then(|n| n.checked_mul(elem as u64))
        .and_then(|n| n.checked_add(t.view.byte_offset))
        .filter(|&end| end <= bytes.len() as u64)
        .ok_or_else(|| {
            format!(
                "view (offset {}, size {:?}, stride {:?}) reaches past its storage of {} bytes",
                t.offset,
                t.size,
                t.stride,
                bytes.len()
            )
        })?;
    let base = &bytes[t.view.byte_offset as usize..end as usize];
    let base = &base[(t.offset as usize) * elem..];

    let mut contiguous = true;
    let mut expected = 1u64;
    for (&d, &s) in t.size.iter().zip(&t.stride).rev() {
        if d != 1 && s != expected {
            contiguous = false;
        }
        expected *= d;
    }
    if contiguous {
        return Ok((shape, base[..nbytes as usize].to_vec()));
    }
    // Odometer over the index, tracking the element offset incrementally. Length-1 axes move
    // nothing and are left out, so a file with a huge rank of them costs no time per element.
    let (sizes, strides): (Vec<usize>, Vec<usize>) = t
        .size
        .iter()
        .zip(&t.stride)
        .filter(|(&d, _)| d != 1)
        .map(|(&d, &s)| (d as usize, s as usize))
        .unzip();
    let mut data = Vec::with_capacity(nbytes as usize);
    let rank = sizes.len();
    let mut index = vec![0usize; rank];
    let mut src = 0usize;
    for _ in 0..numel {
        data.extend_from_slice(&base[src * elem..(src + 1) * elem]);
        for axis in (0..rank).rev() {
            // Wrapping: the result is exact modulo 2^64, and in bounds by the check above.
            index[axis] += 1;
            src = src.wrapping_add(strides[axis]);
            if index[axis] < sizes[axis] {
                break;
            }
            src = src.wrapping_sub(sizes[axis].wrapping_mul(strides[axis]));
            index[axis] = 0;
        }
    }
    Ok((shape, data))
}

/// Where a state_dict was found (`None` at the top) and its (name, value) entries.
type FoundStateDict = (Option<String>, Vec<(String, Value)>);

fn find_state_dict(root: &Value) -> Result<FoundStateDict, String> {
    let mut current = root.clone();
    let mut path: Vec<String> = Vec::new();
    // Each level descends one of the named keys; two levels cover `{"model": {"state_dict": ...}}`.
    for _ in 0..3 {
        let Value::Dict(dict) = &current else {
            return Err(format!(
                "expected a state_dict (a dict of tensors), found {}",
                describe_container(&current)
            ));
        };
        let dict = dict.borrow();
        if dict.entries.iter().any(|(_, v)| matches!(v, Value::Tensor(_))) {
            let entries = dict
                .entries
                .iter()
                .filter_map(|(k, v)| key_name(k).map(|k| (k, v.clone())))
                .collect();
            let path = (!path.is_empty()).then(|| path.join("."));
            return Ok((path, entries));
        }
        let next = STATE_DICT_KEYS.iter().find_map(|&key| {
            dict.get(key)
                .filter(|v| matches!(v, Value::Dict(_) | Value::Object(_)))
                .map(|v| (key, v.clone()))
        });
        let Some((key, value)) = next else {
            let keys: Vec<String> = dict
                .entries
                .iter()
                .take(10)
                .filter_map(|(k, _)| key_name(k))
                .collect();
            return Err(format!(
                "no tensors found: the checkpoint is a dict with keys [{}] and none of them is a state_dict",
                keys.join(", ")
            ));
        };
        drop(dict);
        path.push(key.to_string());
        current = value;
    }
    Err("no state_dict found within three levels of nesting".into())
}

fn describe_container(value: &Value) -> String {
    match value {
        Value::Object(_) => format!(
            "{}; a pickled nn.Module is not supported, save model.state_dict() instead",
            value.describe()
        ),
        other => other.describe(),
    }
}

fn key_name(key: &Value) -> Option<String> {
    match key {
        Value::Str(s) => Some(s.to_string()),
        Value::Int(i) => Some(i.to_string()),
        _ => None,
    }
}

/// Removes `prefix` (repeatedly) when every name carries it. Linear in the names' total
/// length: the repetitions every name shares are counted first and removed at once.
fn strip_common_prefix(
    tensors: &mut [TorchTensor],
    non_tensors: &mut [(String, String)],
    prefix: &str,
) -> Option<String> {
    // How many times `name` starts with `prefix` with something left after them.
    let repeats = |name: &str| {
        let mut n = 0;
        let mut rest = name;
        while let Some(after) = rest.strip_prefix(prefix) {
            if after.is_empty() {
                break;
            }
            n += 1;
            rest = after;
        }
        n
    };
    let stripped = tensors
        .iter()
        .map(|t| t.name.as_str())
        .chain(non_tensors.iter().map(|(n, _)| n.as_str()))
        .map(repeats)
        .min()
        .unwrap_or(0);
    if stripped == 0 {
        return None;
    }
    let cut = stripped * prefix.len();
    for t in tensors.iter_mut() {
        t.name.drain(..cut);
    }
    for (n, _) in non_tensors.iter_mut() {
        n.drain(..cut);
    }
    Some(prefix.repeat(stripped))
}
