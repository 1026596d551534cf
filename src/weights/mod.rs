//! Model weights on disk: safetensors files read through a memory map, and [`convert`], which
//! turns PyTorch checkpoints (zip and legacy formats) and TensorFlow checkpoints into
//! safetensors without either framework.
//!
//! Models load their parameters with [`WeightFile::expect`], which checks the shape against
//! the architecture, after [`WeightFile::check_names`] has compared the whole name set.

pub mod onnx;
mod pickle;
pub mod synthetic;
pub mod tf;
mod torch;
mod zip;

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::path::{Path, PathBuf};

use memmap2::Mmap;
use safetensors::tensor::Metadata;
use safetensors::{Dtype, SafeTensors};

pub use self::tf::{convert_tf_checkpoint, TfConversion};
pub use self::torch::{
    convert_pytorch, read_pytorch_checkpoint, CheckpointFormat, PyTorchCheckpoint, PyTorchConversion,
    TorchDType, TorchTensor,
};
use crate::{Error, IoContext, Result};

/// How many names of each kind an error lists before summarising.
const NAMES_LISTED: usize = 10;

/// What [`convert`] wrote, by the format it read.
#[derive(Clone, Debug)]
pub enum ConvertReport {
    PyTorch(PyTorchConversion),
    Tf(TfConversion),
}

/// One line: the format, what was written and what was left out.
impl std::fmt::Display for ConvertReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConvertReport::PyTorch(r) => r.fmt(f),
            ConvertReport::Tf(r) => r.fmt(f),
        }
    }
}

/// Converts a checkpoint to a safetensors file of f32 tensors. A TensorFlow checkpoint is
/// named by its `.index` file or by the prefix with `.index` beside it; anything else is read
/// as a PyTorch checkpoint (zip or legacy).
pub fn convert(input: &Path, output: &Path) -> Result<ConvertReport> {
    if tf::is_tf_checkpoint(input) {
        Ok(ConvertReport::Tf(convert_tf_checkpoint(input, output)?))
    } else {
        Ok(ConvertReport::PyTorch(convert_pytorch(input, output)?))
    }
}

/// Writes `(name, shape, little-endian f32 bytes)` tensors to `output` as safetensors, readable
/// by everyone.
fn write_f32_safetensors(
    output: &Path,
    tensors: &[(String, Vec<usize>, Vec<u8>)],
    metadata: Option<HashMap<String, String>>,
) -> Result<()> {
    let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = tensors
        .iter()
        .map(|(name, shape, raw)| {
            safetensors::tensor::TensorView::new(Dtype::F32, shape.clone(), raw)
                .map(|view| (name.clone(), view))
                .map_err(|e| Error::Weights(format!("tensor `{name}`: {e}")))
        })
        .collect::<Result<_>>()?;
    let bytes = safetensors::serialize(views, metadata)
        .map_err(|e| Error::Weights(format!("cannot write `{}`: {e}", output.display())))?;
    // A temporary file, then a rename: an interrupted conversion leaves the old file or none.
    crate::fsio::write_atomic(output, &bytes)
}

/// The bytes of a safetensors file: a memory map of it, or a copy held in memory.
enum Bytes {
    Map(Mmap),
    Owned(Vec<u8>),
}

impl std::ops::Deref for Bytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            Bytes::Map(map) => map,
            Bytes::Owned(bytes) => bytes,
        }
    }
}

/// A safetensors file, memory-mapped; tensors are converted to f32 when read.
pub struct WeightFile {
    path: PathBuf,
    map: Bytes,
    data_start: usize,
    metadata: Metadata,
    /// Names in file order.
    names: Vec<String>,
}

impl WeightFile {
    /// Maps and validates `path`: header, offsets and the total length are checked here, so
    /// later reads cannot go out of bounds.
    pub fn open(path: impl AsRef<Path>) -> Result<WeightFile> {
        let path = path.as_ref().to_path_buf();
        let file = File::open(&path)
            .map_err(|e| Error::Weights(format!("cannot open weights `{}`: {e}", path.display())))?;
        let len = file.metadata().at(&path)?.len();
        if len < 8 {
            return Err(Error::Weights(format!(
                "`{}` is not a safetensors file: {len} bytes is too short for a header",
                path.display()
            )));
        }
        // SAFETY: the map is read-only and private to this value. Truncating the file while it
        // is mapped is outside what this program supports (as for any mmap reader).
        let map = unsafe { Mmap::map(&file) }
            .map_err(|e| Error::Weights(format!("cannot map `{}`: {e}", path.display())))?;
        Self::parse(path, Bytes::Map(map))
    }

    /// Validates a safetensors file held in memory, as [`open`](Self::open) does a file;
    /// `name` stands for its path in messages.
    pub fn from_bytes(name: impl AsRef<Path>, bytes: Vec<u8>) -> Result<WeightFile> {
        let path = name.as_ref().to_path_buf();
        if bytes.len() < 8 {
            return Err(Error::Weights(format!(
                "`{}` is not a safetensors file: {} bytes is too short for a header",
                path.display(),
                bytes.len()
            )));
        }
        Self::parse(path, Bytes::Owned(bytes))
    }

    /// The header is untrusted: `read_metadata` bounds its length (100 MB), checks that the
    /// shapes' element counts match the byte ranges without overflow, and that the ranges tile
    /// the data exactly up to the end of the file, so a tensor claiming more bytes than the file
    /// holds (a 4 TB shape, say) is refused here and nothing is allocated for it.
    fn parse(path: PathBuf, map: Bytes) -> Result<WeightFile> {
        let (header_len, metadata) = SafeTensors::read_metadata(&map).map_err(|e| {
            Error::Weights(format!(
                "`{}` is not a valid safetensors file ({e}); is it truncated or a different format?",
                path.display()
            ))
        })?;
        let names = metadata.offset_keys();
        Ok(WeightFile {
            path,
            map,
            data_start: 8 + header_len,
            metadata,
            names,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Tensor names in file order.
    pub fn names(&self) -> Vec<&str> {
        self.names.iter().map(String::as_str).collect()
    }

    pub fn contains(&self, name: &str) -> bool {
        self.metadata.info(name).is_some()
    }

    /// The `__metadata__` map of the header, if any.
    pub fn metadata(&self) -> Option<&HashMap<String, String>> {
        self.metadata.metadata().as_ref()
    }

    pub fn shape(&self, name: &str) -> Result<Vec<usize>> {
        Ok(self.info(name)?.shape.clone())
    }

    pub fn dtype(&self, name: &str) -> Result<Dtype> {
        Ok(self.info(name)?.dtype)
    }

    /// The tensor's values as f32, row-major. f16 and bf16 are widened exactly; other element
    /// types are an error naming the tensor and its type.
    pub fn get_f32(&self, name: &str) -> Result<Vec<f32>> {
        let info = self.info(name)?;
        let (start, end) = info.data_offsets;
        // Offsets were validated against the file length in `open`.
        let raw = &self.map[self.data_start + start..self.data_start + end];
        match info.dtype {
            Dtype::F32 => Ok(raw
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
                .collect()),
            Dtype::F16 => Ok(raw
                .chunks_exact(2)
                .map(|c| f16_to_f32(u16::from_le_bytes([c[0], c[1]])))
                .collect()),
            Dtype::BF16 => Ok(raw
                .chunks_exact(2)
                .map(|c| bf16_to_f32(u16::from_le_bytes([c[0], c[1]])))
                .collect()),
            other => Err(Error::Weights(format!(
                "tensor `{name}` in `{}` has dtype {other:?}; only F32, F16 and BF16 can be read as f32",
                self.path.display()
            ))),
        }
    }

    /// Like [`get_f32`](Self::get_f32), after checking the shape is exactly `shape`.
    pub fn expect(&self, name: &str, shape: &[usize]) -> Result<Vec<f32>> {
        let found = &self.info(name)?.shape;
        if found.as_slice() != shape {
            return Err(Error::Weights(format!(
                "tensor `{name}` in `{}` has shape {found:?} but the model expects {shape:?}",
                self.path.display()
            )));
        }
        self.get_f32(name)
    }

    /// Checks the file holds exactly `expected`: lists missing and unexpected names (up to ten
    /// of each, then a count).
    pub fn check_names(&self, expected: &[&str]) -> Result<()> {
        let wanted: HashSet<&str> = expected.iter().copied().collect();
        let missing: Vec<&str> = expected.iter().copied().filter(|n| !self.contains(n)).collect();
        let unexpected: Vec<&str> = self
            .names
            .iter()
            .map(String::as_str)
            .filter(|n| !wanted.contains(n))
            .collect();
        if missing.is_empty() && unexpected.is_empty() {
            return Ok(());
        }
        let mut parts = Vec::new();
        if !missing.is_empty() {
            parts.push(format!("{} missing: {}", missing.len(), list_names(&missing)));
        }
        if !unexpected.is_empty() {
            parts.push(format!(
                "{} unexpected: {}",
                unexpected.len(),
                list_names(&unexpected)
            ));
        }
        Err(Error::Weights(format!(
            "`{}` does not match the model's tensors; {}",
            self.path.display(),
            parts.join("; ")
        )))
    }

    fn info(&self, name: &str) -> Result<&safetensors::tensor::TensorInfo> {
        self.metadata
            .info(name)
            .ok_or_else(|| Error::Weights(format!("tensor `{name}` is not in `{}`", self.path.display())))
    }
}

impl std::fmt::Debug for WeightFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "WeightFile({}, {} tensors)",
            self.path.display(),
            self.names.len()
        )
    }
}

fn list_names(names: &[&str]) -> String {
    let shown: Vec<String> = names
        .iter()
        .take(NAMES_LISTED)
        .map(|n| format!("`{n}`"))
        .collect();
    let more = names.len().saturating_sub(NAMES_LISTED);
    if more > 0 {
        format!("{} and {more} more", shown.join(", "))
    } else {
        shown.join(", ")
    }
}

/// IEEE binary16 to f32; exact for every input, subnormals and NaN payloads included.
pub fn f16_to_f32(bits: u16) -> f32 {
    let sign = ((bits & 0x8000) as u32) << 16;
    let exponent = ((bits >> 10) & 0x1F) as u32;
    let mantissa = (bits & 0x3FF) as u32;
    let magnitude = match exponent {
        0 if mantissa == 0 => 0,
        // Subnormal: mantissa · 2^-24, exactly representable in f32.
        0 => {
            let value = mantissa as f32 / (1u32 << 24) as f32;
            return if sign != 0 { -value } else { value };
        }
        0x1F => 0x7F80_0000 | (mantissa << 13),
        _ => ((exponent + 127 - 15) << 23) | (mantissa << 13),
    };
    f32::from_bits(sign | magnitude)
}

/// bfloat16 is the top half of an f32.
pub fn bf16_to_f32(bits: u16) -> f32 {
    f32::from_bits((bits as u32) << 16)
}
