//! Writing output files so that a killed run or a full disk never leaves half of one.
//!
//! Every file fido writes goes through [`write_atomic`]: the bytes go to a temporary file
//! in the same folder (`.NAME.tmp-PID-N`), which is flushed to disk and then renamed over
//! `NAME`. A reader therefore sees the old file or the new one, never a mixture, and a
//! failure (no space left, a read-only file system) leaves the old file as it was and
//! removes the temporary. A run killed mid-write can leave a temporary behind; the next run
//! into the same folder removes it with [`remove_stale_temporaries`].
//!
//! This sits beside [`crate::error`] at the bottom of the layers: it knows files, not
//! tensors or models.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::{Error, Result};

/// The marker in the name of a temporary file: `.NAME.tmp-PID-N`.
const TMP_MARK: &str = ".tmp-";

/// Write `bytes` to `path` atomically (temporary file, fsync, rename, fsync of the folder).
/// The error names the path and the cause in one line.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = temporary_for(path);
    let written = (|| -> io::Result<()> {
        let mut file = OpenOptions::new().write(true).create_new(true).open(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        drop(file);
        fs::rename(&tmp, path)
    })();
    if let Err(e) = written {
        let _ = fs::remove_file(&tmp);
        return Err(write_error(path, e));
    }
    sync_folder(path);
    Ok(())
}

/// Write several files so that the last one, the group's marker, exists only beside a
/// complete group: every file goes to its temporary first (a failure there removes them
/// all and leaves the old files as they were), then the old marker is removed, the others
/// are renamed into place, and the marker last. A run killed half-way through leaves a
/// group without its marker, never an old marker beside new files.
pub fn write_group(files: &[(PathBuf, Vec<u8>)]) -> Result<()> {
    let mut staged: Vec<(PathBuf, &Path)> = Vec::new();
    let unstage = |staged: &[(PathBuf, &Path)]| {
        for (tmp, _) in staged {
            let _ = fs::remove_file(tmp);
        }
    };
    for (path, bytes) in files {
        let tmp = temporary_for(path);
        let written = (|| -> io::Result<()> {
            let mut file = OpenOptions::new().write(true).create_new(true).open(&tmp)?;
            file.write_all(bytes)?;
            file.sync_all()
        })();
        staged.push((tmp, path.as_path()));
        if let Err(e) = written {
            unstage(&staged);
            return Err(write_error(path, e));
        }
    }
    if let Some((_, marker)) = staged.last() {
        if let Err(e) = remove_if_present(marker) {
            unstage(&staged);
            return Err(e);
        }
    }
    for (i, (tmp, path)) in staged.iter().enumerate() {
        if let Err(e) = fs::rename(tmp, path) {
            unstage(&staged[i..]);
            return Err(write_error(path, e));
        }
    }
    if let Some((_, path)) = staged.last() {
        sync_folder(path);
    }
    Ok(())
}

/// [`write_atomic`] for an encoder that writes into a buffer (a PNG encoder, a serializer):
/// `encode` fills the bytes, and its error is reported against `path` too.
pub fn write_atomic_with(
    path: &Path,
    encode: impl FnOnce(&mut Vec<u8>) -> std::result::Result<(), String>,
) -> Result<()> {
    let mut bytes = Vec::new();
    encode(&mut bytes).map_err(|cause| write_error(path, io::Error::other(cause)))?;
    write_atomic(path, &bytes)
}

/// Copy `from` to `to` atomically.
pub fn copy_atomic(from: &Path, to: &Path) -> Result<()> {
    let bytes = fs::read(from).map_err(Error::io(from))?;
    write_atomic(to, &bytes)
}

/// Remove `path` if it exists; a missing file is not an error.
pub fn remove_if_present(path: &Path) -> Result<()> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io(path)(e)),
    }
}

/// Whether a file name is one of [`write_atomic`]'s temporaries.
pub fn is_temporary(name: &str) -> bool {
    name.starts_with('.') && name.contains(TMP_MARK)
}

/// Remove the temporaries that runs no longer alive left in `dir` (not its subfolders), and
/// return how many. A folder that does not exist holds none. Temporaries of this process,
/// and on Linux of any process still running, are kept.
pub fn remove_stale_temporaries(dir: &Path) -> Result<usize> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(Error::io(dir)(e)),
    };
    let mut removed = 0;
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().to_string();
        if !is_temporary(&name) || !entry.file_type().is_ok_and(|t| t.is_file()) {
            continue;
        }
        if owner(&name).is_some_and(alive) {
            continue;
        }
        let path = entry.path();
        fs::remove_file(&path).map_err(Error::io(&path))?;
        removed += 1;
    }
    Ok(removed)
}

/// [`remove_stale_temporaries`] in `dir` and its subfolders down to `depth` levels.
pub fn remove_stale_temporaries_within(dir: &Path, depth: usize) -> Result<usize> {
    let mut removed = remove_stale_temporaries(dir)?;
    if depth > 0 {
        if let Ok(entries) = fs::read_dir(dir) {
            for entry in entries.flatten() {
                if entry.file_type().is_ok_and(|t| t.is_dir()) {
                    removed += remove_stale_temporaries_within(&entry.path(), depth - 1)?;
                }
            }
        }
    }
    Ok(removed)
}

/// A fresh temporary name beside `path`: `.NAME.tmp-PID-N`.
fn temporary_for(path: &Path) -> PathBuf {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_else(|| "file".into());
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    path.with_file_name(format!(".{name}{TMP_MARK}{}-{n}", std::process::id()))
}

/// The process id in a temporary's name.
fn owner(name: &str) -> Option<u32> {
    let tail = &name[name.rfind(TMP_MARK)? + TMP_MARK.len()..];
    tail.split('-').next()?.parse().ok()
}

/// Whether process `pid` is this one or, where /proc tells, still running.
fn alive(pid: u32) -> bool {
    pid == std::process::id()
        || (Path::new("/proc/self").exists() && Path::new(&format!("/proc/{pid}")).exists())
}

/// Flush the folder entry of a rename to disk, where the platform allows it.
fn sync_folder(path: &Path) {
    #[cfg(unix)]
    if let Some(dir) = path.parent() {
        let dir = if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        };
        if let Ok(d) = File::open(dir) {
            let _ = d.sync_all();
        }
    }
    #[cfg(not(unix))]
    let _ = path;
}

/// `PATH: cannot write: CAUSE`, keeping the cause's kind (`StorageFull`, `ReadOnlyFilesystem`…).
fn write_error(path: &Path, cause: io::Error) -> Error {
    Error::Io {
        path: path.to_path_buf(),
        source: io::Error::new(cause.kind(), format!("cannot write: {cause}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("fido-fsio-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn writes_replace_the_file_and_leave_no_temporary() {
        let dir = scratch("replace");
        let path = dir.join("a.json");
        write_atomic(&path, b"one").unwrap();
        write_atomic(&path, b"two").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"two");
        let names: Vec<_> = fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["a.json"]);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_failing_write_keeps_the_old_file_and_names_the_path() {
        let dir = scratch("fail");
        let path = dir.join("b.png");
        write_atomic(&path, b"old").unwrap();
        let err = write_atomic_with(&path, |_| Err("encoder broke".into())).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("b.png") && text.contains("cannot write: encoder broke"),
            "{text}"
        );
        // A folder that is not there: the cause is the OS's.
        let err = write_atomic(&dir.join("missing").join("c.json"), b"x").unwrap_err();
        assert!(
            err.to_string().contains("missing/c.json: cannot write: "),
            "{err}"
        );
        assert_eq!(fs::read(&path).unwrap(), b"old");
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_group_is_replaced_whole_or_not_at_all() {
        let dir = scratch("group");
        let (a, marker) = (dir.join("a.bin"), dir.join("summary.json"));
        write_group(&[(a.clone(), b"a1".to_vec()), (marker.clone(), b"s1".to_vec())]).unwrap();
        // The second file cannot be written (its folder is missing): nothing changes.
        let err = write_group(&[
            (a.clone(), b"a2".to_vec()),
            (dir.join("no").join("b.bin"), b"b2".to_vec()),
            (marker.clone(), b"s2".to_vec()),
        ])
        .unwrap_err();
        assert!(err.to_string().contains("b.bin: cannot write"), "{err}");
        assert_eq!(
            (fs::read(&a).unwrap(), fs::read(&marker).unwrap()),
            (b"a1".to_vec(), b"s1".to_vec())
        );
        write_group(&[(a.clone(), b"a3".to_vec()), (marker.clone(), b"s3".to_vec())]).unwrap();
        assert_eq!(
            (fs::read(&a).unwrap(), fs::read(&marker).unwrap()),
            (b"a3".to_vec(), b"s3".to_vec())
        );
        assert_eq!(fs::read_dir(&dir).unwrap().count(), 2, "no temporaries left");
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn stale_temporaries_of_dead_runs_are_removed_and_live_ones_kept() {
        let dir = scratch("stale");
        fs::write(dir.join(".x.json.tmp-4000000000-0"), b"dead").unwrap();
        let mine = format!(".y.json.tmp-{}-7", std::process::id());
        fs::write(dir.join(&mine), b"mine").unwrap();
        fs::write(dir.join("keep.json"), b"kept").unwrap();
        fs::create_dir_all(dir.join("sub")).unwrap();
        fs::write(dir.join("sub").join(".z.png.tmp-4000000001-3"), b"dead").unwrap();
        assert_eq!(remove_stale_temporaries(&dir).unwrap(), 1);
        assert_eq!(remove_stale_temporaries_within(&dir, 1).unwrap(), 1);
        let mut names: Vec<_> = fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
            .collect();
        names.sort();
        assert_eq!(names, [mine.as_str(), "keep.json", "sub"]);
        assert_eq!(remove_stale_temporaries(&dir.join("nowhere")).unwrap(), 0);
        fs::remove_dir_all(&dir).unwrap();
    }
}
