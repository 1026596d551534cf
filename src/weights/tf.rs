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
    let mut read_shard = |shard_id: u64, num_shards: u64| {
        let path = with_suffix(&prefix, &format!(".data-{shard_id:05}-of-{num_shards:05}"));
        std::fs::read(&path)
            .map_err(|e| Error::Weights(format!("cannot read shard `{}`: {e}", path.display())))
    };
    let (report, tensors) = read_bundle(&index, &mut read_shard).map_err(|e| match e {
        Error::Weights(why) if why.starts_with(BAD_INDEX) => Error::Weights(format!(
            "`{}` is not a TF bundle index: {}",
            index_path.display(),
            &why[BAD_INDEX.len()..]
        )),
        e => e,
    })?;
    write_f32_safetensors(output, &tensors, None)?;
    Ok(report)
}

/// Marks an error of [`read_index`] inside [`read_bundle`], so the caller can name the file.
const BAD_INDEX: &str = "not a TF bundle index: ";

/// The float tensors of a bundle: its `.index` bytes, and `read_shard(shard_id, num_shards)`
/// giving a data shard's bytes. Returns the report and `(name, shape, f32 bytes)` tensors.
pub fn read_bundle(
    index: &[u8],
    read_shard: &mut dyn FnMut(u64, u64) -> Result<Vec<u8>>,
) -> Result<(TfConversion, Vec<(String, Vec<usize>, Vec<u8>)>)> {
    let (num_shards, entries) =
        read_index(index).map_err(|why| Error::Weights(format!("{BAD_INDEX}{why}")))?;

    let mut shards: BTreeMap<u64, Vec<u8>> = BTreeMap::new();
    // Tensors of a bundle lie in disjoint ranges of its shards: copying more than the shards
    // hold means entries overlap, which would let a small index multiply a shard in memory.
    let mut copy_left: u64 = 0;
    let mut report = TfConversion::default();
    let mut tensors: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::new();
    for (name, entry) in entries {
        if entry.dtype != DT_FLOAT || entry.sliced {
            report.skipped.push(name);
            continue;
        }
        if !shards.contains_key(&entry.shard_id) {
            let data = read_shard(entry.shard_id, num_shards)?;
            copy_left = copy_left.saturating_add(data.len() as u64);
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
        copy_left = copy_left.checked_sub(bytes.len() as u64).ok_or_else(|| {
            Error::Weights(format!(
                "tensor `{name}`: the bundle's tensors claim more bytes than its shards hold (entries overlap)"
            ))
        })?;
        report.tensors += 1;
        report.parameters += count;
        tensors.push((name, entry.shape, bytes.to_vec()));
    }
    Ok((report, tensors))
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
    // The blocks of a table are disjoint, so an index whose data blocks add up to more than
    // the file (the same block listed many times, say) is corrupt, and would otherwise cost
    // time and memory quadratic in its size.
    let mut block_bytes_left = bytes.len() as u64;
    let mut budget = EntryBudget::for_table(bytes.len());
    for (_, handle) in block_entries(block(bytes, index_handle)?, &mut budget)? {
        let mut p = 0;
        let data_handle = (varint(&handle, &mut p)?, varint(&handle, &mut p)?);
        block_bytes_left = block_bytes_left.checked_sub(data_handle.1).ok_or_else(|| {
            format!(
                "the index lists data blocks adding up to more than the file's {} bytes",
                bytes.len()
            )
        })?;
        for (key, value) in block_entries(block(bytes, data_handle)?, &mut budget)? {
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

/// Caps the bytes the keys and values of a table's entries may expand to. Prefix compression
/// lets a key reuse its predecessor's bytes, so a block of n bytes can spell keys of n bytes
/// each n/3 times over; real bundles have short names and expand to about their own size.
struct EntryBudget {
    left: u64,
}

impl EntryBudget {
    /// Sixteen times the table's size plus 1 MiB.
    fn for_table(len: usize) -> EntryBudget {
        EntryBudget {
            left: (len as u64).saturating_mul(16).saturating_add(1 << 20),
        }
    }

    fn spend(&mut self, bytes: usize) -> std::result::Result<(), String> {
        self.left = self.left.checked_sub(bytes as u64).ok_or(
            "the table's prefix-compressed keys expand to more than 16 times its size; it is corrupt",
        )?;
        Ok(())
    }
}

fn block_entries(
    block: &[u8],
    budget: &mut EntryBudget,
) -> std::result::Result<Vec<(Vec<u8>, Vec<u8>)>, String> {
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
        budget.spend(shared + unshared + value_len)?;
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
