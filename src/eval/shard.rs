//! Deterministic slicing of an evaluation into shards, and merging their results.
//!
//! Jobs are ordered by their id and dealt round-robin: shard K of N takes positions
//! K, K+N, K+2N, … . Every shard of the same job list therefore sees the same order, the
//! shards are disjoint and together cover every job, and their sizes differ by at most one.
//! Each image's results live in their own file, so merging is a union of files.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use crate::{Error, IoContext, Result};

/// Shard `index` of `count` (0-based: 0..count), as in `--shard 3/8`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shard {
    pub index: usize,
    pub count: usize,
}

impl Shard {
    /// The whole job list as one shard.
    pub const ALL: Shard = Shard { index: 0, count: 1 };

    pub fn new(index: usize, count: usize) -> Result<Shard> {
        if count == 0 || index >= count {
            return Err(Error::InvalidArgument(format!(
                "--shard {index}/{count}: the index must be in 0..{count} and the count at least 1"
            )));
        }
        Ok(Shard { index, count })
    }

    /// Whether the job at `position` of the sorted job list belongs to this shard.
    pub fn owns(&self, position: usize) -> bool {
        position % self.count == self.index
    }

    /// This shard's items of a list already in its canonical (sorted) order.
    pub fn slice<T: Clone>(&self, items: &[T]) -> Vec<T> {
        items
            .iter()
            .enumerate()
            .filter(|(i, _)| self.owns(*i))
            .map(|(_, t)| t.clone())
            .collect()
    }
}

impl FromStr for Shard {
    type Err = Error;
    fn from_str(s: &str) -> Result<Shard> {
        let bad = || Error::InvalidArgument(format!("--shard `{s}`: expected K/N with 0 ≤ K < N, e.g. 0/4"));
        let (k, n) = s.split_once('/').ok_or_else(bad)?;
        let k: usize = k.trim().parse().map_err(|_| bad())?;
        let n: usize = n.trim().parse().map_err(|_| bad())?;
        Shard::new(k, n)
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

/// The per-image record files (`*.json`) in a results folder, sorted by name.
pub fn record_files(results: &Path) -> Result<Vec<PathBuf>> {
    if !results.is_dir() {
        return Ok(Vec::new());
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(results)
        .at(results)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    Ok(files)
}

/// Copy every shard's per-image records (and saved maps) into `out`. Two shards holding a
/// record for the same image is an error unless the files are identical.
pub fn union_records(shards: &[PathBuf], out: &Path) -> Result<usize> {
    let results_out = out.join(super::RESULTS_DIR);
    std::fs::create_dir_all(&results_out).at(&results_out)?;
    let mut copied = 0;
    for shard in shards {
        let results = shard.join(super::RESULTS_DIR);
        if !results.is_dir() {
            return Err(Error::InvalidArgument(format!(
                "`{}` holds no evaluation results (no {} folder)",
                shard.display(),
                super::RESULTS_DIR
            )));
        }
        for file in record_files(&results)? {
            let name = file.file_name().expect("a file name");
            let target = results_out.join(name);
            let text = std::fs::read(&file).at(&file)?;
            if target.exists() && same_file(&file, &target) {
                continue;
            }
            if target.exists() && std::fs::read(&target).at(&target)? != text {
                return Err(Error::InvalidArgument(format!(
                    "two shards disagree on `{}`; were they run on different job lists?",
                    name.to_string_lossy()
                )));
            }
            crate::fsio::write_atomic(&target, &text)?;
            copied += 1;
        }
        copy_tree(&shard.join(super::MAPS_DIR), &out.join(super::MAPS_DIR))?;
    }
    Ok(copied)
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

fn copy_tree(from: &Path, to: &Path) -> Result<()> {
    if !from.is_dir() || same_file(from, to) {
        return Ok(());
    }
    std::fs::create_dir_all(to).at(to)?;
    for entry in std::fs::read_dir(from).at(from)? {
        let path = entry.at(from)?.path();
        let target = to.join(path.file_name().expect("a file name"));
        if path.is_dir() {
            copy_tree(&path, &target)?;
        } else if !path
            .file_name()
            .is_some_and(|n| crate::fsio::is_temporary(&n.to_string_lossy()))
        {
            crate::fsio::copy_atomic(&path, &target)?;
        }
    }
    Ok(())
}
