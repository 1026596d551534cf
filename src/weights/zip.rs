//! The zip container of PyTorch checkpoints, read with the `zip` crate. `torch.save` stores
//! every member uncompressed; deflated members (an archive re-zipped by another tool) are
//! read too. Every member's CRC is checked as it is read.
//!
//! Size fields are untrusted: the bytes all members may expand to are capped by a budget set
//! by the caller, and a member claiming more is an error before anything is allocated.

use std::cell::{Cell, RefCell};
use std::io::{Cursor, Read};

use zip::ZipArchive;

/// A zip archive held in memory.
pub(crate) struct Archive<'a> {
    zip: RefCell<ZipArchive<Cursor<&'a [u8]>>>,
    /// Member names in directory order.
    pub names: Vec<String>,
    /// Bytes that members read from now on may still expand to.
    budget: Cell<u64>,
}

/// Whether `bytes` starts with a zip local file header.
pub(crate) fn is_zip(bytes: &[u8]) -> bool {
    bytes.starts_with(b"PK\x03\x04")
}

impl<'a> Archive<'a> {
    /// Reads the central directory; `budget` caps the total size of the members read later.
    pub fn new(bytes: &'a [u8], budget: u64) -> Result<Archive<'a>, String> {
        let zip = ZipArchive::new(Cursor::new(bytes)).map_err(|e| format!("bad zip archive: {e}"))?;
        let names = zip.file_names().map(str::to_string).collect();
        Ok(Archive {
            zip: RefCell::new(zip),
            names,
            budget: Cell::new(budget),
        })
    }

    /// The bytes of member `name`, inflated if need be, after checking its CRC.
    pub fn read(&self, name: &str) -> Result<Vec<u8>, String> {
        let mut zip = self.zip.borrow_mut();
        let file = zip.by_name(name).map_err(|e| match e {
            zip::result::ZipError::FileNotFound => format!("zip member `{name}` is missing"),
            e => format!("zip entry `{name}`: {e}"),
        })?;
        let size = file.size();
        let left = self.budget.get();
        if size > left {
            return Err(format!(
                "zip entry `{name}` claims {size} bytes, more than the checkpoint can hold ({left} bytes left of its budget)"
            ));
        }
        self.budget.set(left - size);
        // The budget bounds the allocation; one byte past the claimed size shows a liar.
        let mut data = Vec::with_capacity(size as usize);
        file.take(size + 1)
            .read_to_end(&mut data)
            .map_err(|e| format!("zip entry `{name}`: {e}"))?;
        if data.len() as u64 != size {
            return Err(format!(
                "zip entry `{name}` holds {}{} bytes but its header claims {size}",
                data.len(),
                if data.len() as u64 > size { " or more" } else { "" }
            ));
        }
        Ok(data)
    }
}
