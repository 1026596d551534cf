//! `fido view`: a window that shows an explanation forming. The engine computes and the
//! window draws on one wgpu device: the image, the importance map over it, the image the
//! classifier sees this step and the score curve are drawn by `fido::render` straight from
//! the engine's tensors, with nothing read back for the pictures.

use std::path::PathBuf;
use std::sync::Arc;

use ab_glyph::{Font, FontRef, ScaleFont};
use clap::Args;
use winit::application::ApplicationHandler;
use winit::dpi::PhysicalSize;
use winit::event::{ElementState, KeyEvent, WindowEvent};
use winit::event_loop::{ActiveEventLoop, ControlFlow, EventLoop};
use winit::keyboard::{Key, NamedKey};
use winit::window::{Window, WindowId};

use fido::explain::report::{self, RunInfo};
use fido::explain::{CaSetup, ExplainConfig, Explainer};
use fido::imageio::Prepared;
use fido::models::LoadedModel;
use fido::ops::softmax;
use fido::render::{Dashboard, Painter};
use fido::{Error, Gpu, Result, Tape, Tensor};

use super::{AdapterArgs, MethodArgs, ModelArgs};

/// `fido view` options: those of `explain` for one image, plus where saves go.
#[derive(Args)]
pub struct ViewArgs {
    #[command(flatten)]
    pub adapter: AdapterArgs,
    #[command(flatten)]
    pub model: ModelArgs,
    /// The image to explain.
    #[arg(long)]
    pub image: PathBuf,
    /// The class to explain first; default: the top-1 prediction. Keys 1-5 switch among the top five.
    #[arg(long)]
    pub label: Option<usize>,
    #[command(flatten)]
    pub how: MethodArgs,
    /// Where the S key saves the current state: the files `explain` writes.
    #[arg(long, default_value = "fido-view")]
    pub out: PathBuf,
    /// Render the window to this PNG after --exit-after steps, then exit (headless checks:
    /// run under `xvfb-run`).
    #[arg(long, requires = "exit_after")]
    pub screenshot: Option<PathBuf>,
    /// Close the window after this many steps.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub exit_after: Option<u64>,
}

/// Panel side and text band height at the window's first size, in pixels.
const SIDE: u32 = 300;
const BAND: u32 = 66;
const HINTS: &str = "space pause/resume   n step   1-5 target   r new seed   s save   q quit";
static DEJAVU_SANS: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans.ttf");

pub fn run(args: &ViewArgs) -> Result<()> {
    let config = args.how.config()?;
    if let Some(n) = args.exit_after {
        if n as usize > config.steps {
            return Err(Error::InvalidArgument(format!(
                "--exit-after {n} is past the explanation's {} steps (--steps)",
                config.steps
            )));
        }
    }
    if !args.image.exists() {
        return Err(Error::InvalidArgument(format!(
            "cannot open image `{}`: no such file",
            args.image.display()
        )));
    }
    let frames = FrameCounts::from_env()?;
    no_display_check()?;
    let event_loop = EventLoop::new().map_err(|e| no_display(&e.to_string()))?;
    let mut app = App {
        args,
        config,
        frames,
        session: None,
        outcome: Ok(()),
    };
    event_loop
        .run_app(&mut app)
        .map_err(|e| Error::Gpu(format!("the window's event loop failed: {e}")))?;
    if let (Some(session), Ok(())) = (&app.session, &app.outcome) {
        eprintln!("{}", session.frames.summary(session.window_system));
    }
    app.outcome
}

/// `FIDO_VIEW_LOSE_SURFACE_AT=N` treats the Nth frame's surface as lost, so that tests can
/// check the recovery path, which real drivers take rarely (a GPU reset, a display
/// reconfigured under the window).
const LOSE_SURFACE_AT: &str = "FIDO_VIEW_LOSE_SURFACE_AT";

/// Frames presented and surfaces remade, for the line `fido view` prints when it closes.
#[derive(Clone, Copy, Default)]
struct FrameCounts {
    presented: u64,
    remade: u64,
    /// `presented` when the surface was last made again.
    presented_before_remade: u64,
    lose_at: Option<u64>,
}

impl FrameCounts {
    fn from_env() -> Result<FrameCounts> {
        let lose_at = match std::env::var(LOSE_SURFACE_AT) {
            Err(_) => None,
            Ok(text) => Some(
                text.trim()
                    .parse::<u64>()
                    .ok()
                    .filter(|&n| n >= 1)
                    .ok_or_else(|| {
                        Error::InvalidArgument(format!(
                            "{LOSE_SURFACE_AT}={text:?}: expected a frame number from 1"
                        ))
                    })?,
            ),
        };
        Ok(FrameCounts {
            lose_at,
            ..FrameCounts::default()
        })
    }

    /// Whether the frame about to be presented is the one to treat as lost.
    fn inject_loss(&self) -> bool {
        self.lose_at == Some(self.presented + 1) && self.remade == 0
    }

    fn summary(&self, window_system: &str) -> String {
        let mut line = format!("view: presented {} frames ({window_system})", self.presented);
        if self.remade > 0 {
            line += &format!(
                "; the surface was lost and made again {} time(s), {} frames presented since",
                self.remade,
                self.presented - self.presented_before_remade
            );
        }
        line
    }
}

fn no_display(why: &str) -> Error {
    Error::InvalidArgument(format!(
        "no display to open a window on ({why}); on a machine without one, run `xvfb-run fido view ... --screenshot OUT.png --exit-after N` (Debian package xvfb)"
    ))
}

/// On X11 and Wayland systems, no display at all is the common case; say so before winit
/// does, in words that name both.
fn no_display_check() -> Result<()> {
    let unset = |name: &str| std::env::var_os(name).is_none_or(|d| d.is_empty());
    if cfg!(all(unix, not(target_os = "macos"))) && unset("DISPLAY") && unset("WAYLAND_DISPLAY") {
        return Err(no_display("neither DISPLAY nor WAYLAND_DISPLAY is set"));
    }
    Ok(())
}

struct App<'a> {
    args: &'a ViewArgs,
    config: ExplainConfig,
    /// The counts a new session starts from: none yet, and where to inject a surface loss.
    frames: FrameCounts,
    session: Option<Session>,
    outcome: Result<()>,
}

impl ApplicationHandler for App<'_> {
    fn resumed(&mut self, event_loop: &ActiveEventLoop) {
        if self.session.is_some() {
            return;
        }
        match Session::open(event_loop, self.args, self.config.clone(), self.frames) {
            Ok(session) => self.session = Some(session),
            Err(e) => {
                self.outcome = Err(e);
                event_loop.exit();
            }
        }
    }

    fn window_event(&mut self, event_loop: &ActiveEventLoop, _: WindowId, event: WindowEvent) {
        let Some(session) = self.session.as_mut() else {
            return;
        };
        let result = match event {
            // Steps run between events, so a close lands between steps; every save is atomic.
            WindowEvent::CloseRequested => {
                event_loop.exit();
                Ok(())
            }
            WindowEvent::Resized(size) => {
                session.resize(size);
                Ok(())
            }
            WindowEvent::KeyboardInput {
                event:
                    KeyEvent {
                        logical_key,
                        state: ElementState::Pressed,
                        ..
                    },
                ..
            } => session.key(&logical_key, event_loop),
            WindowEvent::RedrawRequested => session.redraw(),
            _ => Ok(()),
        };
        if let Err(e) = result {
            self.outcome = Err(e);
            event_loop.exit();
        }
    }

    fn about_to_wait(&mut self, event_loop: &ActiveEventLoop) {
        let Some(session) = self.session.as_mut() else {
            return;
        };
        let result = session.tick(event_loop, self.args);
        if let Err(e) = result {
            self.outcome = Err(e);
            event_loop.exit();
            return;
        }
        event_loop.set_control_flow(if session.running() {
            ControlFlow::Poll
        } else {
            ControlFlow::Wait
        });
    }
}

/// The window, its surface and the explanation it shows.
struct Session {
    gpu: Gpu,
    instance: wgpu::Instance,
    window: Arc<Window>,
    surface: wgpu::Surface<'static>,
    surface_config: wgpu::SurfaceConfiguration,
    painter: Painter,
    model: &'static LoadedModel,
    input: Prepared,
    x: Tensor,
    ca: Option<CaSetup>,
    /// The model's five most probable classes on the image, with their probabilities.
    top5: Vec<(usize, f32)>,
    config: ExplainConfig,
    target: Option<usize>,
    explainer: Explainer<'static>,
    /// One f32 score per step, copied on the GPU from each step's score.
    scores: wgpu::Buffer,
    /// Scores in `scores` so far.
    points: usize,
    /// The last score read back, for the status line (every few steps).
    score: Option<f32>,
    paused: bool,
    step_once: bool,
    status: String,
    text: Option<(String, Tensor)>,
    out: PathBuf,
    /// The image's path, as reports name it.
    source: String,
    frames: FrameCounts,
    /// "X11" or "Wayland": winit takes Wayland when `WAYLAND_DISPLAY` is set.
    window_system: &'static str,
}

impl Session {
    fn open(
        event_loop: &ActiveEventLoop,
        args: &ViewArgs,
        config: ExplainConfig,
        frames: FrameCounts,
    ) -> Result<Session> {
        let window = Arc::new(
            event_loop
                .create_window(
                    Window::default_attributes()
                        .with_title("fido view")
                        .with_inner_size(PhysicalSize::new(2 * SIDE, 2 * SIDE + BAND)),
                )
                .map_err(|e| no_display(&e.to_string()))?,
        );
        let mut desc =
            wgpu::InstanceDescriptor::new_with_display_handle(Box::new(event_loop.owned_display_handle()));
        desc.backends = args.adapter.choice().backend.backends();
        let instance = wgpu::Instance::new(desc);
        let surface = instance
            .create_surface(window.clone())
            .map_err(|e| Error::Gpu(format!("cannot draw into the window: {e}")))?;
        let caps = std::cell::RefCell::new(Vec::new());
        let gpu = Gpu::with_instance(&instance, &args.adapter.choice(), |a| {
            let ok = a.is_surface_supported(&surface);
            if ok {
                caps.borrow_mut()
                    .push((a.get_info(), surface.get_capabilities(a)));
            }
            ok
        })?;
        gpu.set_memory_budget(args.adapter.gpu_memory);
        let caps = caps
            .into_inner()
            .into_iter()
            .find(|(info, _)| info == gpu.info())
            .map(|(_, caps)| caps)
            .ok_or_else(|| Error::Gpu("the chosen adapter cannot present to the window".into()))?;
        let format = *caps
            .formats
            .iter()
            .find(|f| !f.is_srgb())
            .or(caps.formats.first())
            .ok_or_else(|| Error::Gpu("the window's surface offers no format".into()))?;
        let size = window.inner_size();
        let surface_config = wgpu::SurfaceConfiguration {
            usage: wgpu::TextureUsages::RENDER_ATTACHMENT,
            format,
            width: size.width.max(1),
            height: size.height.max(1),
            present_mode: wgpu::PresentMode::Fifo,
            desired_maximum_frame_latency: 2,
            alpha_mode: caps.alpha_modes[0],
            view_formats: vec![],
            color_space: wgpu::SurfaceColorSpace::Auto,
        };
        surface.configure(gpu.device(), &surface_config);
        let painter = Painter::new(&gpu, format)?;

        // One model per process: leaking it lets the explainer borrow it for the session.
        let model: &'static LoadedModel = Box::leak(Box::new(args.model.load(&gpu)?));
        let input = model.prepare_image(&args.image)?;
        let side = input.size as usize;
        let x = Tensor::from_slice(&gpu, &[1, 3, side, side], &input.chw)?;
        let ca = args.how.ca(&gpu, &config)?;
        let logits = Tape::new().no_grad_forward(&model.classifier, &x)?;
        let probs = softmax::softmax(&logits)?.to_vec()?;
        let mut order: Vec<usize> = (0..probs.len()).collect();
        order.sort_by(|&a, &b| probs[b].total_cmp(&probs[a]));
        let top5 = order.iter().take(5).map(|&c| (c, probs[c])).collect();
        let explainer = new_explainer(model, &x, args.label, &config, ca.as_ref())?;
        let scores = scores_buffer(&gpu, config.steps);
        let mut session = Session {
            gpu,
            instance,
            window,
            surface,
            surface_config,
            painter,
            model,
            input,
            x,
            ca,
            top5,
            config,
            target: args.label,
            explainer,
            scores,
            points: 0,
            score: None,
            paused: false,
            step_once: false,
            status: String::new(),
            text: None,
            out: args.out.clone(),
            source: args.image.display().to_string(),
            frames,
            window_system: window_system(event_loop),
        };
        session.status = "running".into();
        session.window.request_redraw();
        Ok(session)
    }

    fn running(&self) -> bool {
        (!self.paused || self.step_once) && self.explainer.steps_done() < self.config.steps
    }

    /// One step when running, then a redraw; the screenshot and exit once `--exit-after`
    /// steps are done.
    fn tick(&mut self, event_loop: &ActiveEventLoop, args: &ViewArgs) -> Result<()> {
        if let Some(n) = args.exit_after {
            if self.explainer.steps_done() >= n as usize {
                if let Some(path) = &args.screenshot {
                    self.screenshot(path)?;
                    eprintln!("screenshot after {n} steps: {}", path.display());
                }
                event_loop.exit();
                return Ok(());
            }
        }
        if !self.running() {
            return Ok(());
        }
        self.step_once = false;
        self.explainer.step()?;
        let done = self.explainer.steps_done();
        // One point per call: the gradient methods take several path points a call.
        self.points += 1;
        if let Some(score) = self.explainer.last_score() {
            let mut encoder = self.gpu.device().create_command_encoder(&Default::default());
            let at = 4 * (self.points - 1) as u64;
            encoder.copy_buffer_to_buffer(score.buffer(), 0, &self.scores, at, 4);
            self.gpu.queue().submit([encoder.finish()]);
        }
        // The number in the status line waits for the GPU: read it only now and then.
        let every = (self.config.steps / 60).clamp(1, 10);
        if done % every == 0 || done == self.config.steps || self.paused {
            self.score = self.explainer.progress()?.map(|p| p.score);
        }
        if done == self.config.steps {
            self.status = "done: s saves it".into();
        }
        self.window.request_redraw();
        Ok(())
    }

    fn key(&mut self, key: &Key, event_loop: &ActiveEventLoop) -> Result<()> {
        match key {
            Key::Named(NamedKey::Space) => {
                self.paused = !self.paused;
                self.status = if self.paused { "paused" } else { "running" }.into();
            }
            Key::Named(NamedKey::Escape) => event_loop.exit(),
            Key::Named(NamedKey::ArrowRight) => self.step_paused(),
            Key::Character(c) => match c.as_str() {
                "q" | "Q" => event_loop.exit(),
                "n" | "N" => self.step_paused(),
                "r" | "R" => {
                    self.config.seed = self.config.seed.wrapping_add(1);
                    self.restart()?;
                    self.status = format!("new seed {}", self.config.seed);
                }
                "s" | "S" => self.save()?,
                digit => {
                    if let Some(k) = digit.parse::<usize>().ok().filter(|k| (1..=5).contains(k)) {
                        if let Some(&(class, _)) = self.top5.get(k - 1) {
                            self.target = Some(class);
                            self.restart()?;
                            self.status = format!("explaining top-{k} class {class}");
                        }
                    }
                }
            },
            _ => {}
        }
        self.window.request_redraw();
        Ok(())
    }

    fn step_paused(&mut self) {
        self.paused = true;
        self.step_once = true;
        self.status = "paused (stepping)".into();
    }

    fn restart(&mut self) -> Result<()> {
        self.explainer = new_explainer(self.model, &self.x, self.target, &self.config, self.ca.as_ref())?;
        self.scores = scores_buffer(&self.gpu, self.config.steps);
        self.points = 0;
        self.score = None;
        Ok(())
    }

    /// Write the files `explain` writes, for the state shown now.
    fn save(&mut self) -> Result<()> {
        let explanation = self.explainer.snapshot()?;
        let classes = self.model.classifier.num_classes();
        let name = fido::classes::name(explanation.target, classes);
        let source = self.source.clone();
        let info = RunInfo {
            model: &self.model.name,
            adapter: &self.gpu.adapter_name(),
            source: &source,
            target_name: &name,
            source_to_model: self.input.source_to_model,
        };
        // `steps_done` in the summary says how far the run had come.
        report::write(&self.out, &explanation, &self.input.picture, &info)?;
        self.status = format!(
            "saved step {} to {}",
            self.explainer.steps_done(),
            self.out.display()
        );
        eprintln!(
            "saved {} steps of class {} ({name}) to {}",
            self.explainer.steps_done(),
            explanation.target,
            self.out.display()
        );
        Ok(())
    }

    fn resize(&mut self, size: PhysicalSize<u32>) {
        // A minimised window has no area: keep the old configuration until it comes back.
        if size.width > 0 && size.height > 0 {
            self.surface_config.width = size.width;
            self.surface_config.height = size.height;
            self.surface.configure(self.gpu.device(), &self.surface_config);
        }
        self.window.request_redraw();
    }

    fn redraw(&mut self) -> Result<()> {
        let size = self.window.inner_size();
        if size.width == 0 || size.height == 0 {
            return Ok(());
        }
        let mut acquired = self.surface.get_current_texture();
        if self.frames.inject_loss() {
            // Dropped unpresented, as a driver's lost surface would leave it.
            acquired = wgpu::CurrentSurfaceTexture::Lost;
        }
        let frame = match acquired {
            wgpu::CurrentSurfaceTexture::Success(frame) => frame,
            wgpu::CurrentSurfaceTexture::Suboptimal(frame) => {
                drop(frame);
                self.surface.configure(self.gpu.device(), &self.surface_config);
                self.window.request_redraw();
                return Ok(());
            }
            wgpu::CurrentSurfaceTexture::Timeout | wgpu::CurrentSurfaceTexture::Occluded => return Ok(()),
            wgpu::CurrentSurfaceTexture::Outdated => {
                self.surface.configure(self.gpu.device(), &self.surface_config);
                self.window.request_redraw();
                return Ok(());
            }
            // A lost surface is made again from the window, on the same device.
            wgpu::CurrentSurfaceTexture::Lost => {
                self.surface = self
                    .instance
                    .create_surface(self.window.clone())
                    .map_err(|e| Error::Gpu(format!("cannot draw into the window again: {e}")))?;
                self.surface.configure(self.gpu.device(), &self.surface_config);
                self.frames.remade += 1;
                self.frames.presented_before_remade = self.frames.presented;
                self.window.request_redraw();
                return Ok(());
            }
            other => return Err(Error::Gpu(format!("the window's surface failed: {other:?}"))),
        };
        let view = frame.texture.create_view(&Default::default());
        let target = (self.surface_config.width, self.surface_config.height);
        let text = self.text_layer()?;
        self.paint(&self.painter, &view, target, &text)?;
        self.window.pre_present_notify();
        self.gpu.queue().present(frame);
        self.frames.presented += 1;
        Ok(())
    }

    /// Draw the four panels and the text into `view`, `target` pixels.
    fn paint(
        &self,
        painter: &Painter,
        view: &wgpu::TextureView,
        target: (u32, u32),
        text: &Tensor,
    ) -> Result<()> {
        let importance = self.explainer.importance()?;
        let frame = Dashboard {
            image: &self.x,
            norm: self.model.norm,
            importance: &importance,
            seen: self.explainer.last_mixed().unwrap_or(&self.x),
            scores: &self.scores,
            points: self.explainer.steps_done().min(self.config.steps) as u32,
            text,
            band: BAND as f32 / (2 * SIDE + BAND) as f32,
        };
        self.gpu.flush();
        let mut encoder = self.gpu.device().create_command_encoder(&Default::default());
        frame.draw(painter, &mut encoder, view, target)?;
        self.gpu.queue().submit([encoder.finish()]);
        Ok(())
    }

    /// The window's words as a coverage map at its first size, remade when they change.
    fn text_layer(&mut self) -> Result<Tensor> {
        let classes = self.model.classifier.num_classes();
        let target = self.explainer.target();
        let score = self.score.map_or(String::from("–"), |s| format!("{s:+.2}"));
        let top: Vec<String> = self
            .top5
            .iter()
            .enumerate()
            .map(|(k, &(c, p))| {
                let mark = if c == target { "▸" } else { "" };
                format!(
                    "{mark}{} {} {:.2}",
                    k + 1,
                    short(&fido::classes::name(c, classes), 13),
                    p
                )
            })
            .collect();
        let lines = [
            (4.0, 16.0, 13.0, "image".to_string()),
            (
                (SIDE + 4) as f32,
                16.0,
                13.0,
                "importance over the image".to_string(),
            ),
            (
                4.0,
                (SIDE + 16) as f32,
                13.0,
                "what the classifier sees (sample 1)".to_string(),
            ),
            (
                (SIDE + 4) as f32,
                (SIDE + 16) as f32,
                13.0,
                format!("target log-odds, now {score}"),
            ),
            (
                6.0,
                (2 * SIDE + 18) as f32,
                14.0,
                format!(
                    "step {}/{}  ·  {}  ·  seed {}  ·  {}",
                    self.explainer.steps_done(),
                    self.config.steps,
                    class_label(target, classes),
                    self.config.seed,
                    self.status
                ),
            ),
            (6.0, (2 * SIDE + 38) as f32, 12.0, top.join("  ")),
            (6.0, (2 * SIDE + 58) as f32, 12.0, HINTS.to_string()),
        ];
        let key: String = lines.iter().map(|l| l.3.as_str()).collect::<Vec<_>>().join("\n");
        if let Some((old, tensor)) = &self.text {
            if *old == key {
                return Ok(tensor.clone());
            }
        }
        let (width, height) = (2 * SIDE as usize, (2 * SIDE + BAND) as usize);
        let mut coverage = vec![0.0f32; width * height];
        for (x, y, px, line) in &lines {
            rasterise(&mut coverage, width, height, *x, *y, *px, line);
        }
        let tensor = Tensor::from_slice(&self.gpu, &[height, width], &coverage)?;
        self.text = Some((key, tensor.clone()));
        Ok(tensor)
    }

    /// Render what the window shows now into an offscreen texture and save it as a PNG.
    fn screenshot(&mut self, path: &std::path::Path) -> Result<()> {
        let target = (self.surface_config.width, self.surface_config.height);
        let texture = fido::render::offscreen_target(&self.gpu, target.0, target.1);
        let painter = Painter::new(&self.gpu, wgpu::TextureFormat::Rgba8Unorm)?;
        let view = texture.create_view(&Default::default());
        let text = self.text_layer()?;
        self.paint(&painter, &view, target, &text)?;
        let rgba = fido::render::read_rgba(&self.gpu, &texture)?;
        let rgb = image::DynamicImage::ImageRgba8(rgba).to_rgb8();
        fido::imageio::save_png(&rgb, path)
    }
}

#[cfg(all(unix, not(any(target_os = "macos", target_os = "ios", target_os = "android"))))]
fn window_system(event_loop: &ActiveEventLoop) -> &'static str {
    use winit::platform::wayland::ActiveEventLoopExtWayland;
    if event_loop.is_wayland() {
        "Wayland"
    } else {
        "X11"
    }
}

#[cfg(not(all(unix, not(any(target_os = "macos", target_os = "ios", target_os = "android")))))]
fn window_system(_: &ActiveEventLoop) -> &'static str {
    "native"
}

fn new_explainer(
    model: &'static LoadedModel,
    x: &Tensor,
    target: Option<usize>,
    config: &ExplainConfig,
    ca: Option<&CaSetup>,
) -> Result<Explainer<'static>> {
    let infiller = fido::explain::infill::build(config.infill, x, model.norm, ca)?;
    Explainer::new(
        &model.classifier,
        x,
        target,
        model.norm,
        config.clone(),
        Some(infiller),
    )
}

fn scores_buffer(gpu: &Gpu, steps: usize) -> wgpu::Buffer {
    gpu.device().create_buffer(&wgpu::BufferDescriptor {
        label: Some("fido view scores"),
        size: 4 * steps.max(1) as u64,
        usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    })
}

/// `class 300 tiger beetle`, or `class 3` where the model's classes have no names.
fn class_label(class: usize, classes: usize) -> String {
    let name = fido::classes::name(class, classes);
    if name == format!("class {class}") {
        name
    } else {
        format!("class {class} {}", short(&name, 28))
    }
}

fn short(s: &str, chars: usize) -> String {
    if s.chars().count() <= chars {
        s.to_string()
    } else {
        s.chars().take(chars - 1).chain(['…']).collect()
    }
}

/// Draw `text` at `px` pixels with its baseline at (x, y) into a coverage map.
fn rasterise(coverage: &mut [f32], width: usize, height: usize, x: f32, y: f32, px: f32, text: &str) {
    let font = FontRef::try_from_slice(DEJAVU_SANS).expect("the embedded DejaVu Sans parses");
    let scaled = font.as_scaled(px);
    let mut caret = x;
    let mut previous = None;
    for ch in text.chars() {
        let id = scaled.glyph_id(ch);
        if let Some(p) = previous {
            caret += scaled.kern(p, id);
        }
        let glyph = id.with_scale_and_position(px, ab_glyph::point(caret, y));
        caret += scaled.h_advance(id);
        previous = Some(id);
        if let Some(outline) = font.outline_glyph(glyph) {
            let bounds = outline.px_bounds();
            outline.draw(|gx, gy, c| {
                let (px, py) = (bounds.min.x as i64 + gx as i64, bounds.min.y as i64 + gy as i64);
                if px >= 0 && py >= 0 && (px as usize) < width && (py as usize) < height {
                    let at = py as usize * width + px as usize;
                    coverage[at] = coverage[at].max(c);
                }
            });
        }
    }
}
