//! TensorFlow tensor-bundle checkpoints (`model.index` + `model.data-00000-of-00001`) to
//! safetensors, without TensorFlow.
//!
//! The `.index` file is a LevelDB-format table: blocks of prefix-compressed entries
//! (`varint shared, varint unshared, varint value_len, key suffix, value`, then restart
//! offsets and their count), each followed by a 5-byte trailer (compression type, CRC), and a
//! 48-byte footer (metaindex and index block handles, padding, magic `0xdb4775248b80fb57`).
//! Index-block values are handles of data blocks; data-block values are `BundleEntryProto`
//! messages (dtype, shape, shard_id, offset, size, crc32c) locating each tensor's bytes in
//! the data shards. The entry with the empty key is the bundle header. Only uncompressed
//! blocks are read (what TF writes for bundles); CRCs are not verified.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::write_f32_safetensors;
use crate::{Error, Result};

const MAGIC: u64 = 0xdb47_7524_8b80_fb57;
const FOOTER_LEN: usize = 48;
const DT_FLOAT: u64 = 1;

/// What a conversion wrote and what it left out.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TfConversion {
    /// Tensors written (all float32), by name.
    pub tensors: usize,
    pub parameters: usize,
    /// Entries not written (non-float dtypes such as `global_step`, or sliced variables).
    pub skipped: Vec<String>,
}

/// The line `fido convert` prints.
impl std::fmt::Display for TfConversion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "TensorFlow checkpoint: wrote {} tensors ({} parameters)",
            self.tensors, self.parameters
        )?;
        if !self.skipped.is_empty() {
            write!(f, "; skipped {}", self.skipped.join(", "))?;
        }
        Ok(())
    }
}

/// One tensor entry of a bundle.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct BundleEntry {
    pub dtype: u64,
    pub shape: Vec<usize>,
    pub shard_id: u64,
    pub offset: u64,
    pub size: u64,
    pub sliced: bool,
}

/// Whether `path` names a TF checkpoint: its `.index` file, or a prefix with `.index` beside it.
pub fn is_tf_checkpoint(path: &Path) -> bool {
    path.extension().is_some_and(|e| e == "index") || with_suffix(path, ".index").exists()
}

/// Converts the checkpoint at `prefix_or_index` (`dir/model` or `dir/model.index`) into a
/// safetensors file with the TF names and layouts (kernels stay HWIO).
pub fn convert_tf_checkpoint(prefix_or_index: &Path, output: &Path) -> Result<TfConversion> {
    let prefix = checkpoint_prefix(prefix_or_index);
    let index_path = with_suffix(&prefix, ".index");
    let index = std::fs::read(&index_path)
        .map_err(|e| Error::Weights(format!("cannot read `{}`: {e}", index_path.display())))?;
    let (num_shards, entries) = read_index(&index).map_err(|why| {
        Error::Weights(format!(
            "`{}` is not a TF bundle index: {why}",
            index_path.display()
        ))
    })?;

    let mut shards: BTreeMap<u64, Vec<u8>> = BTreeMap::new();
    let mut report = TfConversion::default();
    let mut tensors: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::new();
    for (name, entry) in entries {
        if entry.dtype != DT_FLOAT || entry.sliced {
            report.skipped.push(name);
            continue;
        }
        if !shards.contains_key(&entry.shard_id) {
            let path = with_suffix(
                &prefix,
                &format!(".data-{:05}-of-{:05}", entry.shard_id, num_shards),
            );
            let data = std::fs::read(&path)
                .map_err(|e| Error::Weights(format!("cannot read shard `{}`: {e}", path.display())))?;
            shards.insert(entry.shard_id, data);
        }
        let data = &shards[&entry.shard_id];
        // Every field is untrusted: sizes are checked without overflow before any slicing.
        let count = entry.shape.iter().try_fold(1usize, |n, &d| n.checked_mul(d));
        let bytes = usize::try_from(entry.offset)
            .ok()
            .zip(usize::try_from(entry.size).ok())
            .filter(|&(_, size)| count.and_then(|c| c.checked_mul(4)) == Some(size))
            .and_then(|(start, size)| data.get(start..start.checked_add(size)?));
        let (Some(count), Some(bytes)) = (count, bytes) else {
            return Err(Error::Weights(format!(
                "tensor `{name}`: {} bytes at {} do not hold shape {:?} in a shard of {} bytes",
                entry.size,
                entry.offset,
                entry.shape,
                data.len()
            )));
        };
        report.tensors += 1;
        report.parameters += count;
        tensors.push((name, entry.shape, bytes.to_vec()));
    }
    write_f32_safetensors(output, &tensors, None)?;
    Ok(report)
}

/// The bundle's shard count and its tensor entries in key order.
pub fn read_index(bytes: &[u8]) -> std::result::Result<(u64, Vec<(String, BundleEntry)>), String> {
    if bytes.len() < FOOTER_LEN {
        return Err("file shorter than a table footer".into());
    }
    let footer = &bytes[bytes.len() - FOOTER_LEN..];
    let magic = u64::from_le_bytes(footer[40..48].try_into().unwrap());
    if magic != MAGIC {
        return Err(format!("bad table magic {magic:#x}"));
    }
    let mut pos = 0;
    let _metaindex = (varint(footer, &mut pos)?, varint(footer, &mut pos)?);
    let index_handle = (varint(footer, &mut pos)?, varint(footer, &mut pos)?);
    let mut num_shards = 1;
    let mut entries = Vec::new();
    for (_, handle) in block_entries(block(bytes, index_handle)?)? {
        let mut p = 0;
        let data_handle = (varint(&handle, &mut p)?, varint(&handle, &mut p)?);
        for (key, value) in block_entries(block(bytes, data_handle)?)? {
            if key.is_empty() {
                num_shards = header_shards(&value)?;
                continue;
            }
            let name = String::from_utf8(key).map_err(|_| "a tensor name is not UTF-8".to_string())?;
            entries.push((name, bundle_entry(&value)?));
        }
    }
    Ok((num_shards, entries))
}

fn checkpoint_prefix(path: &Path) -> PathBuf {
    match path.to_str() {
        Some(s) if s.ends_with(".index") => PathBuf::from(&s[..s.len() - ".index".len()]),
        _ => path.to_path_buf(),
    }
}

fn with_suffix(prefix: &Path, suffix: &str) -> PathBuf {
    let mut s = prefix.as_os_str().to_os_string();
    s.push(suffix);
    PathBuf::from(s)
}

fn varint(bytes: &[u8], pos: &mut usize) -> std::result::Result<u64, String> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let b = *bytes.get(*pos).ok_or("truncated varint")?;
        *pos += 1;
        value |= ((b & 0x7f) as u64) << shift;
        if b & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err("varint longer than 10 bytes".into())
}

fn block(bytes: &[u8], (offset, size): (u64, u64)) -> std::result::Result<&[u8], String> {
    let past = || format!("block at {offset} of {size} bytes runs past the file");
    let start = usize::try_from(offset).map_err(|_| past())?;
    let end = usize::try_from(size)
        .ok()
        .and_then(|size| start.checked_add(size))
        .filter(|end| end.checked_add(5).is_some_and(|e| e <= bytes.len()))
        .ok_or_else(past)?;
    if bytes[end] != 0 {
        return Err(format!(
            "block at {offset} is compressed (type {}); only uncompressed tables are read",
            bytes[end]
        ));
    }
    Ok(&bytes[start..end])
}

fn block_entries(block: &[u8]) -> std::result::Result<Vec<(Vec<u8>, Vec<u8>)>, String> {
    if block.len() < 4 {
        return Err("block shorter than its restart count".into());
    }
    let restarts = u32::from_le_bytes(block[block.len() - 4..].try_into().unwrap()) as usize;
    let limit = block
        .len()
        .checked_sub(4 + 4 * restarts)
        .ok_or("restart array larger than its block")?;
    let mut entries = Vec::new();
    let mut key: Vec<u8> = Vec::new();
    let mut pos = 0;
    while pos < limit {
        let shared = varint(block, &mut pos)? as usize;
        let unshared = varint(block, &mut pos)? as usize;
        let value_len = varint(block, &mut pos)? as usize;
        let end = pos.checked_add(unshared).and_then(|p| p.checked_add(value_len));
        if shared > key.len() || end.is_none_or(|end| end > limit) {
            return Err("corrupt block entry".into());
        }
        key.truncate(shared);
        key.extend_from_slice(&block[pos..pos + unshared]);
        pos += unshared;
        entries.push((key.clone(), block[pos..pos + value_len].to_vec()));
        pos += value_len;
    }
    Ok(entries)
}

/// Protobuf fields of a message: (field number, varint value or length-delimited bytes).
fn proto_fields(bytes: &[u8]) -> std::result::Result<Vec<(u64, u64, &[u8])>, String> {
    let mut fields = Vec::new();
    let mut pos = 0;
    while pos < bytes.len() {
        let tag = varint(bytes, &mut pos)?;
        let (field, wire) = (tag >> 3, tag & 7);
        match wire {
            0 => fields.push((field, varint(bytes, &mut pos)?, &bytes[0..0])),
            1 | 5 => {
                let n = if wire == 1 { 8 } else { 4 };
                let raw = bytes.get(pos..pos + n).ok_or("truncated fixed field")?;
                let mut v = [0u8; 8];
                v[..n].copy_from_slice(raw);
                fields.push((field, u64::from_le_bytes(v), raw));
                pos += n;
            }
            2 => {
                let len = varint(bytes, &mut pos)? as usize;
                let raw = bytes
                    .get(pos..pos.saturating_add(len))
                    .ok_or("truncated length-delimited field")?;
                fields.push((field, len as u64, raw));
                pos += len;
            }
            other => return Err(format!("unsupported protobuf wire type {other}")),
        }
    }
    Ok(fields)
}

fn header_shards(bytes: &[u8]) -> std::result::Result<u64, String> {
    Ok(proto_fields(bytes)?
        .into_iter()
        .find(|f| f.0 == 1)
        .map(|f| f.1)
        .unwrap_or(1)
        .max(1))
}

fn bundle_entry(bytes: &[u8]) -> std::result::Result<BundleEntry, String> {
    let mut entry = BundleEntry::default();
    for (field, value, raw) in proto_fields(bytes)? {
        match field {
            1 => entry.dtype = value,
            2 => {
                for (f, _, dim) in proto_fields(raw)? {
                    if f == 2 {
                        let size = proto_fields(dim)?
                            .into_iter()
                            .find(|d| d.0 == 1)
                            .map_or(0, |d| d.1);
                        entry.shape.push(size as usize);
                    }
                }
            }
            3 => entry.shard_id = value,
            4 => entry.offset = value,
            5 => entry.size = value,
            7 => entry.sliced = true,
            _ => {}
        }
    }
    Ok(entry)
}
