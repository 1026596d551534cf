//! Runs that lose nothing: `fido explain` over several images and `fido eval`, killed with
//! SIGKILL in the middle, keep every finished image and redo none of them when run again;
//! no half-written or temporary file survives the rerun; a full disk or a read-only folder
//! is a one-line error that leaves the earlier results as they were.
//!
//! These run the `fido` binary (so they are not part of tests/device.rs) on the tiny ONNX
//! classifier of tests/tiny_onnx, which is fast on lavapipe.

mod common;
mod tiny_onnx;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant, SystemTime};

use common::{fido as run, fido_command as fido};

fn scratch(name: &str) -> PathBuf {
    common::scratch("runs", name)
}

/// `n` small, different pictures `img0.png`, `img1.png`, … in `dir`.
fn pictures(dir: &Path, n: usize) -> Vec<PathBuf> {
    (0..n)
        .map(|k| {
            let path = dir.join(format!("img{k}.png"));
            image::RgbImage::from_fn(12, 12, |x, y| {
                image::Rgb([(x * 20 + k as u32 * 30) as u8, (y * 20) as u8, (k * 40) as u8])
            })
            .save(&path)
            .unwrap();
            path
        })
        .collect()
}

/// Every file under `dir`, recursively.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(files_under(&path));
        } else {
            out.push(path);
        }
    }
    out.sort();
    out
}

#[track_caller]
fn assert_no_temporaries(dir: &Path) {
    let left: Vec<_> = files_under(dir)
        .into_iter()
        .filter(|p| p.file_name().unwrap().to_string_lossy().contains(".tmp"))
        .collect();
    assert!(left.is_empty(), "temporaries left behind: {left:?}");
}

fn mtime(path: &Path) -> SystemTime {
    std::fs::metadata(path).unwrap().modified().unwrap()
}

/// A finished explanation folder: its four files there and each one readable.
#[track_caller]
fn assert_complete(dir: &Path) {
    let bytes = std::fs::read(dir.join("saliency.safetensors")).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    assert_eq!(
        st.tensor("importance").unwrap().shape(),
        [tiny_onnx::SIDE, tiny_onnx::SIDE]
    );
    for png in ["heatmap.png", "overlay.png"] {
        image::open(dir.join(png)).unwrap_or_else(|e| panic!("{}/{png}: {e}", dir.display()));
    }
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("summary.json")).unwrap()).unwrap();
    assert!(summary["target_prob_before"].as_f64().is_some(), "{summary}");
}

/// Start `args`, wait until `ready` holds, then SIGKILL the process. Returns whether it was
/// still running when killed.
fn kill_when(args: &[&str], ready: impl Fn() -> bool) -> bool {
    let mut child = fido()
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while !ready() {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("fido ended ({status}) before the kill");
        }
        assert!(
            started.elapsed() < Duration::from_secs(300),
            "nothing finished in 5 minutes"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let running = child.try_wait().unwrap().is_none();
    child.kill().unwrap(); // SIGKILL on Unix
    child.wait().unwrap();
    running
}

/// A batch explanation killed after its first image: the finished folders are complete,
/// the rerun skips them (says so, leaves their files untouched), finishes the rest, removes
/// the temporaries a killed write leaves, and writes the gallery of all images.
#[test]
fn a_killed_batch_explanation_keeps_and_skips_its_finished_images() {
    let dir = scratch("explain");
    let model = tiny_onnx::write(&dir, "tiny.onnx", tiny_onnx::Shape::default());
    let images = pictures(&dir, 6);
    let out = dir.join("out");
    let command = |steps: &str, force: bool| -> Vec<String> {
        let mut args: Vec<String> = [
            "explain",
            "--model",
            model.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ]
        .map(String::from)
        .to_vec();
        args.extend(["--steps", steps, "--mask-size", "3"].map(String::from));
        if force {
            args.push("--force".into());
        }
        args.push("--image".into());
        args.extend(images.iter().map(|p| p.display().to_string()));
        args
    };
    let long = command("400", false);
    let args: Vec<&str> = long.iter().map(String::as_str).collect();
    let folder = |k: usize| out.join(format!("img{k}"));

    let running = kill_when(&args, || folder(0).join("summary.json").exists());
    assert!(running);
    let finished: Vec<usize> = (0..6)
        .filter(|&k| folder(k).join("summary.json").exists())
        .collect();
    assert!(
        finished.len() < 6,
        "the kill came after the last image; make the run longer"
    );
    eprintln!("explain killed with {} of 6 images finished", finished.len());
    let mut before = BTreeMap::new();
    for &k in &finished {
        assert_complete(&folder(k));
        for f in [
            "saliency.safetensors",
            "heatmap.png",
            "overlay.png",
            "summary.json",
        ] {
            let path = folder(k).join(f);
            before.insert(path.clone(), (mtime(&path), std::fs::read(&path).unwrap()));
        }
    }
    // What a kill in the middle of a write leaves: a temporary, of a process now gone.
    let unfinished = folder(finished.len());
    std::fs::create_dir_all(&unfinished).unwrap();
    std::fs::write(unfinished.join(".heatmap.png.tmp-4000000000-0"), b"half").unwrap();
    std::fs::write(out.join(".index.html.tmp-4000000000-1"), b"half").unwrap();

    let again = run(&args);
    let stderr = String::from_utf8_lossy(&again.stderr);
    assert!(again.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!("skipped {} finished of 6", finished.len())),
        "{stderr}"
    );
    for (path, (time, bytes)) in &before {
        assert_eq!(mtime(path), *time, "{} was rewritten", path.display());
        assert_eq!(std::fs::read(path).unwrap(), *bytes, "{}", path.display());
    }
    for k in 0..6 {
        assert_complete(&folder(k));
    }
    assert_no_temporaries(&out);
    let index = std::fs::read_to_string(out.join("index.html")).unwrap();
    for k in 0..6 {
        assert!(
            index.contains(&format!("img{k}/overlay.png")),
            "img{k} missing from the gallery"
        );
    }

    // Everything finished: a third run redoes nothing; --force redoes everything.
    let third = run(&args);
    assert!(third.status.success());
    assert!(String::from_utf8_lossy(&third.stderr).contains("skipped 6 finished of 6"));
    let summary = folder(0).join("summary.json");
    let kept = mtime(&summary);
    let short = command("5", true);
    let forced: Vec<&str> = short.iter().map(String::as_str).collect();
    let redo = run(&forced);
    assert!(redo.status.success(), "{}", String::from_utf8_lossy(&redo.stderr));
    assert!(!String::from_utf8_lossy(&redo.stderr).contains("skipped"));
    assert_ne!(mtime(&summary), kept, "--force redoes finished images");
    let s: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&summary).unwrap()).unwrap();
    assert_eq!(s["steps"], 5);
    let _ = std::fs::remove_dir_all(&dir);
}

/// `fido eval` killed after its first finished image resumes without redoing it, and its
/// reports cover every image.
#[test]
fn a_killed_evaluation_resumes_without_redoing_finished_images() {
    let dir = scratch("eval");
    let model = tiny_onnx::write(&dir, "tiny.onnx", tiny_onnx::Shape::default());
    pictures(&dir, 5);
    let mut manifest = String::from("file,label,wnid,class_name,width,height,boxes_xyxy\n");
    for k in 0..5 {
        manifest.push_str(&format!("img{k}.png,1,n1,one,12,12,2 2 8 8\n"));
    }
    std::fs::write(dir.join("manifest.csv"), manifest).unwrap();
    let out = dir.join("eval");
    let manifest = dir.join("manifest.csv");
    let args = [
        "eval",
        "--model",
        model.to_str().unwrap(),
        "--manifest",
        manifest.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--config",
        "fido:local",
        "--steps",
        "400",
        "--mask-size",
        "3",
        "--all-images",
        "--removal-step",
        "0.25",
        "--quiet",
    ];
    let results = out.join("results");
    let done = |path: &Path| {
        std::fs::read_to_string(path)
            .ok()
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
            .is_some_and(|r| r["configs"]["fido:local"]["status"] == "ok")
    };
    let finished = || -> Vec<PathBuf> {
        if !results.is_dir() {
            return Vec::new();
        }
        // A temporary may already hold a whole record that a kill stops short of renaming:
        // only the renamed files count.
        files_under(&results)
            .into_iter()
            .filter(|p| !p.file_name().unwrap().to_string_lossy().starts_with('.'))
            .filter(|p| done(p))
            .collect()
    };
    assert!(kill_when(&args, || !finished().is_empty()));
    let kept: Vec<(PathBuf, SystemTime, Vec<u8>)> = finished()
        .into_iter()
        .map(|p| (p.clone(), mtime(&p), std::fs::read(&p).unwrap()))
        .collect();
    assert!(
        kept.len() < 5,
        "the kill came after the last image; make the run longer"
    );
    eprintln!("eval killed with {} of 5 images finished", kept.len());
    std::fs::write(results.join(".img4.png.json.tmp-4000000000-0"), b"{\"half").unwrap();

    let again = run(&args);
    let stdout = String::from_utf8_lossy(&again.stdout);
    assert!(
        again.status.success(),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    assert!(
        stdout.contains(&format!(
            "5 scored, 0 skipped as misclassified, 0 failed, {} resumed",
            kept.len()
        )),
        "{stdout}"
    );
    for (path, time, bytes) in &kept {
        assert_eq!(mtime(path), *time, "{} was rewritten", path.display());
        assert_eq!(&std::fs::read(path).unwrap(), bytes);
    }
    assert_eq!(finished().len(), 5);
    let all: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("per_image.json")).unwrap()).unwrap();
    assert_eq!(all.as_array().unwrap().len(), 5);
    for k in 0..5 {
        assert_complete(&out.join("maps").join("fido_local").join(format!("img{k}")));
    }
    assert_no_temporaries(&out);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A small tmpfs mounted for one test and unmounted when it ends, however it ends.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Result<Tmpfs, String> {
        std::fs::create_dir_all(dir).unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).trim().to_string());
        }
        Ok(Tmpfs(dir.to_path_buf()))
    }

    fn remount(&self, mode: &str) {
        let status = Command::new("mount")
            .args(["-o", &format!("remount,{mode}")])
            .arg(&self.0)
            .status()
            .unwrap();
        assert!(status.success(), "remount {mode}");
    }

    /// Fill the file system to the last byte.
    fn fill(&self) -> PathBuf {
        use std::io::Write;
        let path = self.0.join("filler");
        let mut file = std::fs::File::create(&path).unwrap();
        let chunk = vec![0u8; 4096];
        while file.write_all(&chunk).is_ok() {}
        while file.write_all(&chunk[..1]).is_ok() {}
        path
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

/// The files of a folder with their contents.
fn contents(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    files_under(dir)
        .into_iter()
        .map(|p| {
            let bytes = std::fs::read(&p).unwrap();
            (p, bytes)
        })
        .collect()
}

#[track_caller]
fn one_line_error(out: &Output, needles: &[&str]) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "expected a failure: {stderr}");
    assert!(
        stderr.starts_with("error: ") && stderr.trim_end().lines().count() == 1,
        "one line expected: {stderr}"
    );
    eprint!("as expected: {stderr}");
    for needle in needles {
        assert!(stderr.contains(needle), "expected `{needle}` in: {stderr}");
    }
}

/// On a 2 MiB tmpfs: explain and evaluate, then fill the disk and run again over the
/// same folders: one-line errors naming the file and "No space left on device", and every
/// earlier file byte for byte as it was, with no temporary left. The same on the file
/// system remounted read-only ("Read-only file system"), which stops even root.
#[test]
fn a_full_disk_or_a_read_only_folder_is_a_clear_error_and_keeps_earlier_results() {
    let dir = scratch("disk");
    let model = tiny_onnx::write(&dir, "tiny.onnx", tiny_onnx::Shape::default());
    let images = pictures(&dir, 2);
    let disk = match Tmpfs::mount(&dir.join("disk"), "2m") {
        Ok(disk) => disk,
        Err(why) => {
            eprintln!("skipped: cannot mount a tmpfs to fill ({why}); run as root to test a full disk");
            return;
        }
    };
    let single = disk.0.join("single");
    let batch = disk.0.join("batch");
    let explain = |out: &Path, images: &[PathBuf], extra: &[&str]| {
        let mut cmd = fido();
        cmd.args(["explain", "--model", model.to_str().unwrap(), "--mask-size", "3"])
            .args(["--steps", "6", "--out"])
            .arg(out)
            .arg("--image")
            .args(images)
            .args(extra);
        cmd.output().unwrap()
    };
    let first = explain(&single, &images[..1], &[]);
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let first = explain(&batch, &images, &[]);
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let manifest = dir.join("manifest.csv");
    std::fs::write(
        &manifest,
        "file,label,wnid,class_name,width,height,boxes_xyxy\nimg0.png,1,n1,one,12,12,2 2 8 8\n",
    )
    .unwrap();
    let eval_out = disk.0.join("eval");
    let eval = |configs: &[&str]| {
        let mut cmd = fido();
        cmd.args(["eval", "--model", model.to_str().unwrap(), "--manifest"])
            .arg(&manifest)
            .arg("--out")
            .arg(&eval_out)
            .args([
                "--steps",
                "6",
                "--mask-size",
                "3",
                "--all-images",
                "--removal-step",
                "0.5",
            ])
            .args(["--no-saliency", "--quiet", "--config"])
            .args(configs);
        cmd.output().unwrap()
    };
    let first = eval(&["fido:mean"]);
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let earlier = contents(&disk.0);

    let filler = disk.fill();
    let full = explain(&single, &images[..1], &[]);
    one_line_error(&full, &["single/", "cannot write", "No space left on device"]);
    let full = explain(&batch, &images, &["--force"]);
    one_line_error(&full, &["batch/", "cannot write", "No space left on device"]);
    // A new configuration needs a new record: that write fails, the old record stays.
    let full = eval(&["fido:mean", "fido:blur"]);
    one_line_error(&full, &["eval/", "No space left on device"]);
    std::fs::remove_file(&filler).unwrap();
    assert_eq!(
        contents(&disk.0),
        earlier,
        "the full disk changed earlier results"
    );

    disk.remount("ro");
    let read_only = explain(&single, &images[..1], &[]);
    one_line_error(&read_only, &["single/", "Read-only file system"]);
    let read_only = eval(&["fido:mean", "fido:blur"]);
    one_line_error(&read_only, &["eval", "Read-only file system"]);
    disk.remount("rw");
    assert_eq!(
        contents(&disk.0),
        earlier,
        "the read-only runs changed earlier results"
    );
    assert_complete(&single);

    // With space again, the same command succeeds over the same folder.
    let again = explain(&single, &images[..1], &[]);
    assert!(
        again.status.success(),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    assert_no_temporaries(&disk.0);
    drop(disk);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A GPU that runs out of memory, as a device whose memory is set tiny with `--gpu-memory`:
/// `explain` and `eval` stop with one line that names the allocation and what to change, and
/// the results of an earlier run over the same folders stay byte for byte as they were. A
/// limit the run fits in changes nothing in the maps.
#[test]
fn a_gpu_out_of_memory_is_a_clear_error_and_keeps_earlier_results() {
    let dir = scratch("oom");
    let model = tiny_onnx::write(&dir, "tiny.onnx", tiny_onnx::Shape::default());
    let images = pictures(&dir, 2);
    let out = dir.join("out");
    let explain = |extra: &[&str]| {
        let mut cmd = fido();
        cmd.args(["explain", "--model", model.to_str().unwrap(), "--mask-size", "3"])
            .args(["--steps", "4", "--force", "--out"])
            .arg(&out)
            .args(extra)
            .arg("--image")
            .args(&images);
        cmd.output().unwrap()
    };
    let first = explain(&[]);
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let earlier = contents(&out);

    let starved = explain(&["--gpu-memory", "64K"]);
    one_line_error(
        &starved,
        &[
            "ran out of memory",
            "its limit is 65536 bytes",
            "--gpu-memory",
            "--batch",
        ],
    );
    assert_eq!(contents(&out), earlier, "the failed run changed earlier results");
    assert_no_temporaries(&out);

    let manifest = dir.join("manifest.csv");
    std::fs::write(
        &manifest,
        "file,label,wnid,class_name,width,height,boxes_xyxy\nimg0.png,1,n1,one,12,12,2 2 8 8\n",
    )
    .unwrap();
    let mut eval = fido();
    eval.args(["eval", "--model", model.to_str().unwrap(), "--manifest"])
        .arg(&manifest)
        .arg("--out")
        .arg(dir.join("eval"))
        .args(["--steps", "4", "--mask-size", "3", "--all-images", "--quiet"])
        .args(["--gpu-memory", "64K", "--config", "fido:mean"]);
    one_line_error(&eval.output().unwrap(), &["ran out of memory", "--gpu-memory"]);

    // 256 MiB is plenty: the same maps, bit for bit, as without a limit.
    let roomy = explain(&["--gpu-memory", "256M"]);
    assert!(
        roomy.status.success(),
        "{}",
        String::from_utf8_lossy(&roomy.stderr)
    );
    for k in 0..2 {
        let map = out.join(format!("img{k}/saliency.safetensors"));
        assert_eq!(std::fs::read(&map).unwrap(), earlier[&map], "{}", map.display());
    }
    let _ = std::fs::remove_dir_all(&dir);
}
