//! Finding the images to work on: files, folders of images and manifest CSVs
//! (`file,label,...`, images next to the manifest or in its `images/` folder).

use std::path::{Path, PathBuf};

use crate::{Error, IoContext, Result};

/// One image, with its label when known.
#[derive(Clone, Debug, PartialEq)]
pub struct ImageJob {
    pub path: PathBuf,
    pub label: Option<usize>,
}

/// File extensions taken from a folder.
const IMAGE_EXTENSIONS: [&str; 5] = ["jpg", "jpeg", "png", "bmp", "webp"];

/// Collect jobs from `images` (files or folders, the folders' images in name order, all with
/// `label`) and a `manifest` CSV, whose rows carry their own labels.
pub fn collect_images(
    images: &[PathBuf],
    manifest: Option<&Path>,
    label: Option<usize>,
) -> Result<Vec<ImageJob>> {
    let mut jobs = Vec::new();
    for path in images {
        if path.is_dir() {
            let mut files: Vec<PathBuf> = std::fs::read_dir(path)
                .at(path)?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| {
                    p.extension()
                        .and_then(|e| e.to_str())
                        .is_some_and(|e| IMAGE_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
                })
                .collect();
            files.sort();
            jobs.extend(files.into_iter().map(|path| ImageJob { path, label }));
        } else {
            jobs.push(ImageJob {
                path: path.clone(),
                label,
            });
        }
    }
    if let Some(manifest) = manifest {
        let manifest = open_manifest(manifest)?;
        for row in manifest.rows() {
            let label = row.label()?;
            jobs.push(ImageJob {
                path: row.image()?,
                label: Some(label),
            });
        }
    }
    if jobs.is_empty() {
        return Err(Error::InvalidArgument(
            "no images to explain: give --image or --manifest".into(),
        ));
    }
    Ok(jobs)
}

/// One data row of a manifest CSV.
pub struct ManifestRow<'a> {
    manifest: &'a Path,
    /// 1-based line number, for messages.
    line: usize,
    /// The comma-separated fields, untrimmed.
    pub fields: Vec<&'a str>,
}

impl ManifestRow<'_> {
    /// `manifest:line`, to begin an error message with.
    pub fn at(&self) -> String {
        format!("{}:{}", self.manifest.display(), self.line)
    }

    /// The image file named in the first column, as written.
    pub fn file(&self) -> &str {
        self.fields.first().copied().unwrap_or("").trim()
    }

    /// The class index in the second column.
    pub fn label(&self) -> Result<usize> {
        let label = self.fields.get(1).copied().unwrap_or("").trim();
        label.parse().map_err(|_| {
            Error::InvalidArgument(format!("{}: label `{label}` is not a class index", self.at()))
        })
    }

    /// The image file, looked up next to the manifest or in its `images/` folder.
    pub fn image(&self) -> Result<PathBuf> {
        let dir = self.manifest.parent().unwrap_or(Path::new("."));
        let file = self.file();
        [dir.join(file), dir.join("images").join(file)]
            .into_iter()
            .find(|p| p.exists())
            .ok_or_else(|| Error::InvalidArgument(format!("{}: image `{file}` not found", self.at())))
    }
}

/// A manifest CSV: its header's column names and its non-empty data rows.
pub struct Manifest {
    path: PathBuf,
    text: String,
}

impl Manifest {
    /// The column names of the header line, trimmed.
    pub fn header(&self) -> Vec<&str> {
        self.text
            .lines()
            .next()
            .unwrap_or("")
            .split(',')
            .map(str::trim)
            .collect()
    }

    /// The data rows, skipping blank lines.
    pub fn rows(&self) -> impl Iterator<Item = ManifestRow<'_>> {
        self.text
            .lines()
            .enumerate()
            .skip(1)
            .filter(|(_, line)| !line.trim().is_empty())
            .map(|(n, line)| ManifestRow {
                manifest: &self.path,
                line: n + 1,
                fields: line.split(',').collect(),
            })
    }
}

/// Read a manifest CSV.
pub fn open_manifest(path: &Path) -> Result<Manifest> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::InvalidArgument(format!("cannot read manifest `{}`: {e}", path.display())))?;
    Ok(Manifest::from_text(path, text))
}

impl Manifest {
    /// A manifest CSV already read; `path` is where its images are looked up and what
    /// messages name.
    pub fn from_text(path: &Path, text: String) -> Manifest {
        Manifest {
            path: path.to_path_buf(),
            text,
        }
    }

    /// The manifest's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}
