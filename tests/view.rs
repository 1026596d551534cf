//! `fido view` in a real window, on an X server of its own (Xvfb) with whatever adapter
//! the machine has (lavapipe here): the screenshot is not blank, the map changes while the
//! explanation runs and the image does not; keys pause, step, switch the target and save;
//! resizing, hiding and closing the window mid-run lose nothing saved; a lost surface is
//! made again; on a headless Wayland compositor (weston) with no X server the window opens
//! and draws the same picture; no display is a one-line error naming `--screenshot` and Xvfb.
//!
//! Without `Xvfb` (Debian package xvfb, which tools/setup-debian.sh installs) the window
//! tests print that they are skipped and why; without `xdotool` the key test does, and
//! without `weston` the Wayland test. These run the `fido` binary, so they are not part of
//! tests/device.rs.

mod common;
mod tiny_onnx;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::fido_command;

fn scratch(name: &str) -> PathBuf {
    common::scratch("view", name)
}

/// An X server for one test, stopped when the test ends.
struct Xvfb {
    child: Child,
    display: String,
}

impl Xvfb {
    /// Start Xvfb on a display number it picks itself (`-displayfd`: it writes the number
    /// to our pipe once it accepts connections), or say why not.
    ///
    /// `-noreset`: by default an X server resets whenever its last client leaves, and a
    /// client that connects during the reset is dropped. The key test polls with short-lived
    /// xdotool clients while `fido view` connects, so without it the window's connection
    /// fails now and then (measured: 11 of 300 connections, with a second client looping).
    fn start() -> Result<Xvfb, String> {
        let mut child = Command::new("Xvfb")
            .args([
                "-displayfd",
                "1",
                "-noreset",
                "-screen",
                "0",
                "1024x768x24",
                "-nolisten",
                "tcp",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot run Xvfb: {e}"))?;
        let mut line = String::new();
        let stdout = child.stdout.take().unwrap();
        std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut line)
            .map_err(|e| format!("Xvfb did not say its display: {e}"))?;
        let number = line.trim();
        if number.is_empty() || !number.chars().all(|c| c.is_ascii_digit()) {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("Xvfb did not start (it said {line:?})"));
        }
        Ok(Xvfb {
            display: format!(":{number}"),
            child,
        })
    }

    fn command(&self) -> Command {
        let mut cmd = fido_command();
        cmd.env("DISPLAY", &self.display);
        cmd
    }
}

impl Drop for Xvfb {
    fn drop(&mut self) {
        // Xvfb removes its lock file and socket on SIGTERM; SIGKILL would leave them.
        terminate(&mut self.child);
    }
}

/// Stop a display server with SIGTERM, so that it cleans up after itself, and reap it.
fn terminate(child: &mut Child) {
    let _ = Command::new("kill").arg(child.id().to_string()).status();
    let _ = child.wait();
}

/// One X server at a time: a server shutting down removes its socket file by name, which
/// would be the socket of a new server that took the same number meanwhile.
static ONE_SERVER: std::sync::Mutex<()> = std::sync::Mutex::new(());

macro_rules! xvfb_or_skip {
    () => {
        match Xvfb::start() {
            Ok(x) => x,
            Err(why) => {
                eprintln!("skipped: no X server to open a window on ({why}); install xvfb (tools/setup-debian.sh does) to run this test");
                return;
            }
        }
    };
}

/// A 40×40 picture with structure, and the tiny ONNX classifier, in `dir`.
fn inputs(dir: &Path) -> (PathBuf, PathBuf) {
    let model = tiny_onnx::write(dir, "tiny.onnx", tiny_onnx::Shape::default());
    let image = dir.join("picture.png");
    image::RgbImage::from_fn(40, 40, |x, y| {
        image::Rgb([(x * 6) as u8, (y * 6) as u8, ((x + y) * 3) as u8])
    })
    .save(&image)
    .unwrap();
    (model, image)
}

fn view_args(model: &Path, image: &Path, out: &Path, steps: &str) -> Vec<String> {
    let mut args: Vec<String> = ["view", "--model"].map(String::from).to_vec();
    args.push(model.display().to_string());
    args.push("--image".into());
    args.push(image.display().to_string());
    args.extend(["--mask-size", "3", "--steps", steps, "--out"].map(String::from));
    args.push(out.display().to_string());
    args
}

/// The mean absolute difference per channel between two same-sized regions.
fn region_difference(a: &image::RgbImage, b: &image::RgbImage, x0: u32, y0: u32, w: u32, h: u32) -> f64 {
    let mut total = 0u64;
    for y in y0..y0 + h {
        for x in x0..x0 + w {
            let (p, q) = (a.get_pixel(x, y), b.get_pixel(x, y));
            total += (0..3)
                .map(|c| (p[c] as i64 - q[c] as i64).unsigned_abs())
                .sum::<u64>();
        }
    }
    total as f64 / (3 * w * h) as f64
}

#[test]
fn the_window_renders_a_forming_explanation_to_a_screenshot() {
    let _one = ONE_SERVER.lock().unwrap_or_else(|e| e.into_inner());
    let x = xvfb_or_skip!();
    let dir = scratch("screenshot");
    let (model, image) = inputs(&dir);
    let shot = |steps_done: &str| -> image::RgbImage {
        let path = dir.join(format!("after-{steps_done}.png"));
        let mut args = view_args(&model, &image, &dir.join("out"), "30");
        args.extend(["--exit-after", steps_done, "--screenshot"].map(String::from));
        args.push(path.display().to_string());
        let out = x.command().args(&args).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        assert!(String::from_utf8_lossy(&out.stderr).contains("screenshot after"));
        image::open(&path).unwrap().to_rgb8()
    };
    let first = shot("1");
    let last = shot("30");
    assert_eq!(first.dimensions(), last.dimensions());
    let (w, h) = first.dimensions();
    assert!(w >= 400 && h >= 400, "{w}×{h}");
    // Not blank: many distinct colours, in every quarter.
    let mut colours: Vec<[u8; 3]> = first.pixels().map(|p| p.0).collect();
    colours.sort_unstable();
    colours.dedup();
    assert!(colours.len() > 200, "{} colours: blank?", colours.len());
    // The window's layout: the image top left, the map over it top right.
    let band = h * 66 / 666;
    let (pw, ph) = (w / 2, (h - band) / 2);
    let (inset_x, inset_y) = (pw / 8, ph / 4);
    let image_change = region_difference(&first, &last, inset_x, inset_y, pw / 2, ph / 2);
    let map_change = region_difference(&first, &last, pw + inset_x, inset_y, pw / 2, ph / 2);
    eprintln!(
        "mean change from step 1 to 30: image panel {image_change:.2}, map panel {map_change:.2} levels"
    );
    assert_eq!(image_change, 0.0, "the image panel changed");
    assert!(map_change > 1.0, "the map did not change: {map_change}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Run `cmd` to the end, or kill it and fail after `limit`: a window that a compositor
/// never lets draw would otherwise hang the suite.
fn output_within(cmd: &mut Command, limit: Duration) -> std::process::Output {
    let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let started = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > limit {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "fido view did not finish within {limit:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().unwrap()
}

/// A headless Wayland compositor (weston) for one test, on a socket in a runtime folder of
/// its own, stopped when the test ends.
struct Weston {
    child: Child,
    runtime: PathBuf,
}

impl Weston {
    const SOCKET: &str = "fido-view-test";

    fn start(runtime: PathBuf) -> Result<Weston, String> {
        std::fs::create_dir_all(&runtime).map_err(|e| e.to_string())?;
        // Wayland wants its runtime folder private to the user.
        std::fs::set_permissions(&runtime, std::os::unix::fs::PermissionsExt::from_mode(0o700))
            .map_err(|e| e.to_string())?;
        let mut child = Command::new("weston")
            .args([
                "--backend=headless-backend.so",
                &format!("--socket={}", Weston::SOCKET),
                "--idle-time=0",
                "--no-config",
            ])
            .env("XDG_RUNTIME_DIR", &runtime)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot run weston: {e}"))?;
        let started = Instant::now();
        while !runtime.join(Weston::SOCKET).exists() {
            if let Ok(Some(status)) = child.try_wait() {
                return Err(format!("weston ended ({status}) before it listened"));
            }
            if started.elapsed() > Duration::from_secs(20) {
                let _ = child.kill();
                let _ = child.wait();
                return Err("weston did not listen within 20 s".into());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(Weston { child, runtime })
    }

    /// `fido` with this compositor as its only display.
    fn command(&self) -> Command {
        let mut cmd = fido_command();
        cmd.env_remove("DISPLAY")
            .env("WAYLAND_DISPLAY", Weston::SOCKET)
            .env("XDG_RUNTIME_DIR", &self.runtime);
        cmd
    }
}

impl Drop for Weston {
    fn drop(&mut self) {
        // weston stops the helper clients it started (its shell's panel and the on-screen
        // keyboard) and removes its socket on SIGTERM.
        terminate(&mut self.child);
    }
}

/// `fido view` on Wayland alone: the window opens on the compositor, frames are presented,
/// and the screenshot is the same picture the X11 window gives.
#[test]
fn the_window_opens_on_wayland_without_x11() {
    let _one = ONE_SERVER.lock().unwrap_or_else(|e| e.into_inner());
    let dir = scratch("wayland");
    let weston = match Weston::start(dir.join("runtime")) {
        Ok(w) => w,
        Err(why) => {
            eprintln!("skipped: no Wayland compositor to open a window on ({why}); install weston (tools/setup-debian.sh does) to run this test");
            return;
        }
    };
    let (model, image) = inputs(&dir);
    let shot = |cmd: &mut Command, name: &str| -> (String, image::RgbImage) {
        let path = dir.join(name);
        let mut args = view_args(&model, &image, &dir.join("out"), "5");
        args.extend(["--exit-after", "5", "--screenshot"].map(String::from));
        args.push(path.display().to_string());
        let out = output_within(cmd.args(&args), Duration::from_secs(120));
        let stderr = String::from_utf8_lossy(&out.stderr).to_string();
        assert!(out.status.success(), "{stderr}");
        (stderr, image::open(&path).unwrap().to_rgb8())
    };
    let (stderr, on_wayland) = shot(&mut weston.command(), "wayland.png");
    let line = stderr
        .lines()
        .find(|l| l.starts_with("view: presented "))
        .unwrap_or_else(|| panic!("no frame count: {stderr}"));
    eprintln!("{line}");
    assert!(line.contains("(Wayland)"), "{line}");
    let presented: u64 = line["view: presented ".len()..]
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(presented >= 1, "{line}");
    // The same run on X11, where there is an X server: the same picture.
    if let Ok(x) = Xvfb::start() {
        let (stderr, on_x11) = shot(&mut x.command(), "x11.png");
        assert!(stderr.contains("(X11)"), "{stderr}");
        assert_eq!(on_wayland.dimensions(), on_x11.dimensions());
        assert!(on_wayland == on_x11, "the Wayland and X11 screenshots differ");
    } else {
        let mut colours: Vec<[u8; 3]> = on_wayland.pixels().map(|p| p.0).collect();
        colours.sort_unstable();
        colours.dedup();
        assert!(colours.len() > 200, "{} colours: blank?", colours.len());
    }
    drop(weston);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A lost surface (injected at the third frame: real drivers lose one rarely) is made
/// again from the window, and frames are presented on it until the run ends normally.
#[test]
fn a_lost_surface_is_made_again_and_drawing_goes_on() {
    let _one = ONE_SERVER.lock().unwrap_or_else(|e| e.into_inner());
    let x = xvfb_or_skip!();
    let dir = scratch("lost");
    let (model, image) = inputs(&dir);
    let shot = dir.join("after.png");
    let mut args = view_args(&model, &image, &dir.join("out"), "30");
    args.extend(["--exit-after", "30", "--screenshot"].map(String::from));
    args.push(shot.display().to_string());
    let out = x
        .command()
        .env("FIDO_VIEW_LOSE_SURFACE_AT", "3")
        .args(&args)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let line = stderr
        .lines()
        .find(|l| l.starts_with("view: presented "))
        .unwrap_or_else(|| panic!("no frame count: {stderr}"));
    let number_after = |words: &str| -> u64 {
        let at = line
            .find(words)
            .unwrap_or_else(|| panic!("{words:?} not in {line:?}"))
            + words.len();
        line[at..]
            .split(|c: char| !c.is_ascii_digit())
            .next()
            .unwrap()
            .parse()
            .unwrap()
    };
    eprintln!("{line}");
    assert_eq!(number_after("made again "), 1, "{line}");
    let presented = number_after("view: presented ");
    let since = number_after("time(s), ");
    assert_eq!(presented, 2 + since, "two frames before the loss: {line}");
    assert!(since >= 1, "nothing presented on the new surface: {line}");
    assert!(shot.exists());
    // A bad value is one line naming the variable.
    let out = x
        .command()
        .env("FIDO_VIEW_LOSE_SURFACE_AT", "soon")
        .args(&args)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("FIDO_VIEW_LOSE_SURFACE_AT"), "{stderr}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Keys through the X server (xdotool): space pauses, s saves the state shown, n steps
/// once, 2 switches to the second class, resizing and hiding the window mid-run keep it
/// working, and q closes it with every save in place.
#[test]
fn keys_pause_step_retarget_and_save_and_resizing_loses_nothing() {
    let _one = ONE_SERVER.lock().unwrap_or_else(|e| e.into_inner());
    let x = xvfb_or_skip!();
    if Command::new("xdotool").arg("version").output().is_err() {
        eprintln!("skipped: xdotool is not installed (Debian package xdotool), so no keys can be sent to the window");
        return;
    }
    let dir = scratch("keys");
    let (model, image) = inputs(&dir);
    let out = dir.join("saved");
    let mut child = x
        .command()
        .args(view_args(&model, &image, &out, "100000"))
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let xdotool = |args: &[&str]| {
        let o = Command::new("xdotool")
            .env("DISPLAY", &x.display)
            .args(args)
            .output()
            .unwrap();
        String::from_utf8_lossy(&o.stdout).trim().to_string()
    };
    let started = Instant::now();
    let window = loop {
        let id = xdotool(&["search", "--name", "fido view"]);
        if !id.is_empty() {
            break id.lines().next().unwrap().to_string();
        }
        if let Some(status) = child.try_wait().unwrap() {
            let mut stderr = String::new();
            std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut stderr).unwrap();
            panic!("fido view ended ({status}) before its window appeared: {stderr}");
        }
        assert!(started.elapsed() < Duration::from_secs(60), "no window appeared");
        std::thread::sleep(Duration::from_millis(100));
    };
    xdotool(&["windowfocus", "--sync", &window]);
    let summary = || -> Option<serde_json::Value> {
        let text = std::fs::read_to_string(out.join("summary.json")).ok()?;
        serde_json::from_str(&text).ok()
    };
    let wait_for = |what: &str, ok: &dyn Fn(&serde_json::Value) -> bool| -> serde_json::Value {
        let started = Instant::now();
        loop {
            if let Some(s) = summary().filter(|s| ok(s)) {
                return s;
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "{what}: no such save"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    std::thread::sleep(Duration::from_millis(800));
    xdotool(&["key", "space"]);
    std::thread::sleep(Duration::from_millis(300));
    xdotool(&["key", "s"]);
    let paused = wait_for("the first save", &|_| true);
    let at = paused["steps_done"].as_u64().unwrap();
    assert!(at > 0);
    let first_target = paused["target"]["label"].as_u64();
    // Paused: a second save is the same step; n steps once.
    std::thread::sleep(Duration::from_millis(500));
    xdotool(&["key", "n"]);
    std::thread::sleep(Duration::from_millis(300));
    xdotool(&["key", "s"]);
    let stepped = wait_for("the save after n", &|s| s["steps_done"].as_u64() != Some(at));
    assert_eq!(
        stepped["steps_done"].as_u64(),
        Some(at + 1),
        "paused, n is one step"
    );

    // Resize and hide the window mid-run, then carry on.
    xdotool(&["key", "space"]);
    xdotool(&["windowsize", &window, "420", "330"]);
    std::thread::sleep(Duration::from_millis(400));
    xdotool(&["windowunmap", &window]);
    std::thread::sleep(Duration::from_millis(400));
    xdotool(&["windowmap", &window]);
    xdotool(&["windowfocus", "--sync", &window]);
    std::thread::sleep(Duration::from_millis(400));
    // The second class restarts the explanation from step 0 on it.
    xdotool(&["key", "2"]);
    std::thread::sleep(Duration::from_millis(600));
    xdotool(&["key", "s"]);
    let other = wait_for("the save after 2", &|s| s["target"] != stepped["target"]);
    let second_target = other["target"]["label"].as_u64();
    assert!(first_target.is_some() && second_target.is_some());
    assert_ne!(first_target, second_target);
    let saved = std::fs::read(out.join("saliency.safetensors")).unwrap();
    xdotool(&["key", "q"]);
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "q did not close the window"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut stderr).unwrap();
    assert!(status.success(), "{stderr}");
    assert_eq!(stderr.matches("saved ").count(), 3, "{stderr}");
    // Closing kept the last save as it was, with no temporaries beside it.
    assert_eq!(std::fs::read(out.join("saliency.safetensors")).unwrap(), saved);
    for entry in std::fs::read_dir(&out).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().to_string();
        assert!(!name.contains(".tmp"), "a temporary was left: {name}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn no_display_is_a_one_line_error_naming_screenshot_and_xvfb() {
    let dir = scratch("nodisplay");
    let (model, image) = inputs(&dir);
    let out = fido_command()
        .env_remove("DISPLAY")
        .env_remove("WAYLAND_DISPLAY")
        .args(view_args(&model, &image, &dir.join("out"), "5"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("--screenshot") && stderr.contains("xvfb"),
        "{stderr}"
    );
    // Impossible options are refused before any window opens.
    let mut args = view_args(&model, &image, &dir.join("out"), "5");
    args.extend(["--exit-after", "9"].map(String::from));
    let out = fido_command().args(&args).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("--exit-after 9"),
        "{stderr}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// examples/host_window.rs: a host that owns the window, device and surface draws fido's
/// map into its own frames, on fido's tensors, until told to stop.
#[test]
fn the_host_window_example_draws_on_its_own_device() {
    let _one = ONE_SERVER.lock().unwrap_or_else(|e| e.into_inner());
    let x = xvfb_or_skip!();
    // `cargo test` builds the examples beside the test binaries' folder.
    let exe = std::env::current_exe().unwrap();
    let example = exe
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("examples")
        .join("host_window");
    if !example.exists() {
        eprintln!(
            "skipped: {} is not built (cargo test builds it)",
            example.display()
        );
        return;
    }
    let out = Command::new(&example)
        .env("DISPLAY", &x.display)
        .env("XDG_RUNTIME_DIR", std::env::temp_dir())
        .args(["--frames", "12"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("drew 12 frames"), "{stdout}");
}
