//! A minimal zip reader for PyTorch checkpoints: `torch.save` writes every entry stored
//! (uncompressed), so entries are borrowed slices of the input and nothing is inflated.
//! Zip64 records are understood because large checkpoints need them.

/// One archive member, borrowed from the input.
pub(crate) struct ZipEntry<'a> {
    pub name: String,
    method: u16,
    encrypted: bool,
    data: &'a [u8],
}

impl<'a> ZipEntry<'a> {
    /// The member's bytes, or an error for a compressed or encrypted member.
    pub fn stored_data(&self) -> Result<&'a [u8], String> {
        if self.encrypted {
            return Err(format!("zip entry `{}` is encrypted", self.name));
        }
        if self.method != 0 {
            let method = match self.method {
                8 => "deflate".to_string(),
                other => format!("method {other}"),
            };
            return Err(format!(
                "zip entry `{}` is compressed ({method}); only stored entries are supported, as torch.save writes them",
                self.name
            ));
        }
        Ok(self.data)
    }
}

const LOCAL_HEADER: u32 = 0x0403_4b50;
const CENTRAL_HEADER: u32 = 0x0201_4b50;
const END_OF_CENTRAL_DIR: u32 = 0x0605_4b50;
const ZIP64_LOCATOR: u32 = 0x0706_4b50;
const ZIP64_END: u32 = 0x0606_4b50;
const CENTRAL_HEADER_LEN: usize = 46;

pub(crate) fn is_zip(bytes: &[u8]) -> bool {
    bytes.len() >= 4 && u32_at(bytes, 0) == Some(LOCAL_HEADER)
}

/// Every member listed in the central directory, in directory order.
pub(crate) fn read_entries(bytes: &[u8]) -> Result<Vec<ZipEntry<'_>>, String> {
    let eocd = find_end_of_central_dir(bytes).ok_or("zip end-of-central-directory record not found")?;
    let field16 = |at: usize| u16_at(bytes, eocd + at).ok_or("truncated zip end record");
    let field32 = |at: usize| u32_at(bytes, eocd + at).ok_or("truncated zip end record");
    let mut count = field16(10)? as u64;
    let mut dir_size = field32(12)? as u64;
    let mut dir_offset = field32(16)? as u64;
    if count == 0xFFFF || dir_size == 0xFFFF_FFFF || dir_offset == 0xFFFF_FFFF {
        (count, dir_size, dir_offset) = read_zip64_end(bytes, eocd)?;
    }
    let dir_start = usize::try_from(dir_offset).map_err(|_| "zip directory offset out of range")?;
    let dir_end = usize::try_from(dir_size)
        .ok()
        .and_then(|size| dir_start.checked_add(size))
        .filter(|&end| end <= bytes.len())
        .ok_or("zip central directory lies outside the file")?;
    // The count field is untrusted: every entry needs at least a fixed-size header.
    if count > ((dir_end - dir_start) / CENTRAL_HEADER_LEN) as u64 {
        return Err(format!(
            "zip directory claims {count} entries but holds {} bytes",
            dir_end - dir_start
        ));
    }
    let mut entries = Vec::with_capacity(count as usize);
    let mut at = dir_start;
    for _ in 0..count {
        let (entry, next) = read_central_entry(bytes, at, dir_end)?;
        entries.push(entry);
        at = next;
    }
    Ok(entries)
}

fn find_end_of_central_dir(bytes: &[u8]) -> Option<usize> {
    let last = bytes.len().checked_sub(22)?;
    let first = last.saturating_sub(u16::MAX as usize);
    (first..=last)
        .rev()
        .find(|&at| u32_at(bytes, at) == Some(END_OF_CENTRAL_DIR))
}

fn read_zip64_end(bytes: &[u8], eocd: usize) -> Result<(u64, u64, u64), String> {
    let locator = eocd.checked_sub(20).ok_or("zip64 locator missing")?;
    if u32_at(bytes, locator) != Some(ZIP64_LOCATOR) {
        return Err("zip64 locator missing".into());
    }
    let end = u64_at(bytes, locator + 8)
        .and_then(|v| usize::try_from(v).ok())
        .ok_or("truncated zip64 locator")?;
    if u32_at(bytes, end) != Some(ZIP64_END) {
        return Err("zip64 end record missing".into());
    }
    let field = |at: usize| u64_at(bytes, end + at).ok_or("truncated zip64 end record");
    Ok((field(32)?, field(40)?, field(48)?))
}

fn read_central_entry(bytes: &[u8], at: usize, dir_end: usize) -> Result<(ZipEntry<'_>, usize), String> {
    let truncated = || "truncated zip central directory".to_string();
    if at + CENTRAL_HEADER_LEN > dir_end || u32_at(bytes, at) != Some(CENTRAL_HEADER) {
        return Err("bad zip central directory entry".into());
    }
    let flags = u16_at(bytes, at + 8).ok_or_else(truncated)?;
    let method = u16_at(bytes, at + 10).ok_or_else(truncated)?;
    let mut compressed = u32_at(bytes, at + 20).ok_or_else(truncated)? as u64;
    let mut uncompressed = u32_at(bytes, at + 24).ok_or_else(truncated)? as u64;
    let name_len = u16_at(bytes, at + 28).ok_or_else(truncated)? as usize;
    let extra_len = u16_at(bytes, at + 30).ok_or_else(truncated)? as usize;
    let comment_len = u16_at(bytes, at + 32).ok_or_else(truncated)? as usize;
    let mut local_offset = u32_at(bytes, at + 42).ok_or_else(truncated)? as u64;
    let name_start = at + CENTRAL_HEADER_LEN;
    let extra_start = name_start + name_len;
    let next = extra_start + extra_len + comment_len;
    if next > dir_end {
        return Err(truncated());
    }
    let name = String::from_utf8_lossy(&bytes[name_start..extra_start]).into_owned();

    // Zip64 sizes and offset appear in the extra field, in this order, only for the fields
    // whose 32-bit slot is saturated.
    let mut extra = &bytes[extra_start..extra_start + extra_len];
    while extra.len() >= 4 {
        let id = u16::from_le_bytes([extra[0], extra[1]]);
        let len = u16::from_le_bytes([extra[2], extra[3]]) as usize;
        let body = extra
            .get(4..4 + len)
            .ok_or_else(|| format!("bad extra field in zip entry `{name}`"))?;
        if id == 0x0001 {
            let mut values = body
                .chunks_exact(8)
                .map(|c| u64::from_le_bytes(c.try_into().unwrap()));
            for slot in [&mut uncompressed, &mut compressed, &mut local_offset] {
                if *slot == 0xFFFF_FFFF {
                    *slot = values
                        .next()
                        .ok_or_else(|| format!("bad zip64 field in zip entry `{name}`"))?;
                }
            }
        }
        extra = &extra[4 + len..];
    }
    if method == 0 && compressed != uncompressed {
        return Err(format!("zip entry `{name}` is stored but its sizes differ"));
    }

    let local =
        usize::try_from(local_offset).map_err(|_| format!("zip entry `{name}` lies outside the file"))?;
    if u32_at(bytes, local) != Some(LOCAL_HEADER) {
        return Err(format!("zip entry `{name}` has no local header"));
    }
    let local_name_len = u16_at(bytes, local + 26).ok_or_else(truncated)? as usize;
    let local_extra_len = u16_at(bytes, local + 28).ok_or_else(truncated)? as usize;
    let data_start = local + 30 + local_name_len + local_extra_len;
    let data = usize::try_from(compressed)
        .ok()
        .and_then(|size| data_start.checked_add(size))
        .and_then(|end| bytes.get(data_start..end))
        .ok_or_else(|| format!("zip entry `{name}` is truncated"))?;
    let entry = ZipEntry {
        name,
        method,
        encrypted: flags & 1 != 0,
        data,
    };
    Ok((entry, next))
}

fn u16_at(bytes: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(
        bytes.get(at..at.checked_add(2)?)?.try_into().ok()?,
    ))
}

fn u32_at(bytes: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(
        bytes.get(at..at.checked_add(4)?)?.try_into().ok()?,
    ))
}

fn u64_at(bytes: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(
        bytes.get(at..at.checked_add(8)?)?.try_into().ok()?,
    ))
}
