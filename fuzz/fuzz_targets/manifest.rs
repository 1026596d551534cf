//! Manifest CSVs: the header, every row's file and label, the boxes column, and the job
//! list `fido eval` builds (sorted, duplicates refused). Images are not looked up on disk.
#![no_main]

use std::path::{Path, PathBuf};

use fido::dataset::Manifest;
use fido::eval::manifest::jobs_from_manifest;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let manifest = Manifest::from_text(Path::new("fuzz/manifest.csv"), text.to_string());
    let _ = manifest.header();
    for row in manifest.rows() {
        let _ = (row.at(), row.file(), row.label());
    }
    if let Ok(jobs) = jobs_from_manifest(&manifest, &|row| Ok(PathBuf::from(row.file()))) {
        for job in &jobs {
            assert!(job.boxes.iter().flatten().all(|v| v.is_finite()));
        }
    }
});
