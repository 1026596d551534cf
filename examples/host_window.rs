//! A host application that owns the window, the wgpu device and the surface, runs a fido
//! explanation on that device, and draws the importance map into its own frames every step
//! with `fido::render`, reading nothing back. The classifier is live_mask's synthetic one,
//! which looks only at the centre square, so the map should come to light up there.
//!
//! `cargo run --release --example host_window` (needs a display; `xvfb-run` gives one);
//! `-- --frames N` closes it after N frames.

use std::sync::Arc;

use fido::explain::{ExplainConfig, Explainer, InfillKind, Method};
use fido::imageio::Normalize;
use fido::render::{ColorMap, Painter, Panel, Rect};
use fido::{Gpu, Tensor};
use winit::application::ApplicationHandler;
use winit::event::WindowEvent;
use winit::event_loop::{ActiveEventLoop, EventLoop};
use winit::window::{Window, WindowId};

#[path = "shared/centre_square.rs"]
mod centre_square;
use centre_square::centre_square_classifier;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let frames = std::env::args()
        .skip_while(|a| a != "--frames")
        .nth(1)
        .map(|n| n.parse::<u32>())
        .transpose()?;
    let event_loop = EventLoop::new()?;
    let mut host = Host { frames, state: None };
    event_loop.run_app(&mut host)?;
    println!(
        "the host drew {} frames of fido's map",
        host.state.map_or(0, |s| s.drawn)
    );
    Ok(())
}

struct Host {
    frames: Option<u32>,
    state: Option<State>,
}

struct State {
    window: Arc<Window>,
    surface: wgpu::Surface<'static>,
    config: wgpu::SurfaceConfiguration,
    gpu: Gpu,
    painter: Painter,
    explainer: Explainer<'static>,
    image: Tensor,
    drawn: u32,
}

impl ApplicationHandler for Host {
    fn resumed(&mut self, event_loop: &ActiveEventLoop) {
        if self.state.is_none() {
            self.state = Some(State::new(event_loop).expect("set-up"));
        }
    }

    fn window_event(&mut self, event_loop: &ActiveEventLoop, _: WindowId, event: WindowEvent) {
        let Some(state) = self.state.as_mut() else { return };
        match event {
            WindowEvent::CloseRequested => event_loop.exit(),
            WindowEvent::Resized(size) if size.width > 0 && size.height > 0 => {
                state.config.width = size.width;
                state.config.height = size.height;
                state.surface.configure(state.gpu.device(), &state.config);
            }
            WindowEvent::RedrawRequested => {
                state.frame().expect("a frame");
                if self.frames.is_some_and(|n| state.drawn >= n) {
                    event_loop.exit();
                }
                state.window.request_redraw();
            }
            _ => {}
        }
    }
}

impl State {
    fn new(event_loop: &ActiveEventLoop) -> Result<State, Box<dyn std::error::Error>> {
        // The host's own set-up, as any wgpu application does it.
        let window =
            Arc::new(event_loop.create_window(Window::default_attributes().with_title("host window"))?);
        let instance = wgpu::Instance::new(wgpu::InstanceDescriptor::new_with_display_handle(Box::new(
            event_loop.owned_display_handle(),
        )));
        let surface = instance.create_surface(window.clone())?;
        let adapter = pollster::block_on(instance.request_adapter(&wgpu::RequestAdapterOptions {
            compatible_surface: Some(&surface),
            ..Default::default()
        }))?;
        let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
            required_limits: adapter.limits(),
            ..Default::default()
        }))?;
        let size = window.inner_size();
        let config = surface
            .get_default_config(&adapter, size.width.max(1), size.height.max(1))
            .ok_or("the surface does not fit the adapter")?;
        surface.configure(&device, &config);

        // fido on the host's device: the explanation's tensors live where the host draws.
        let gpu = Gpu::from_device(device, queue, adapter.get_info());
        let painter = Painter::new(&gpu, config.format)?;
        let (model, image) = centre_square_classifier(&gpu)?;
        let model: &'static dyn fido::explain::Model = Box::leak(Box::new(model));
        let explainer = Explainer::new(
            model,
            &image,
            None,
            Normalize::IMAGENET,
            ExplainConfig {
                steps: 10_000,
                batch: 4,
                mask_size: 12,
                lambda: 5e-3,
                infill: InfillKind::Mean,
                ..ExplainConfig::paper(Method::Fido)
            },
            None,
        )?;
        Ok(State {
            window,
            surface,
            config,
            gpu,
            painter,
            explainer,
            image,
            drawn: 0,
        })
    }

    /// One explanation step, then the map over the image, drawn into the surface's frame.
    fn frame(&mut self) -> fido::Result<()> {
        self.explainer.step()?;
        let importance = self.explainer.importance()?;
        let frame = match self.surface.get_current_texture() {
            wgpu::CurrentSurfaceTexture::Success(frame) | wgpu::CurrentSurfaceTexture::Suboptimal(frame) => {
                frame
            }
            _ => {
                self.surface.configure(self.gpu.device(), &self.config);
                return Ok(());
            }
        };
        let view = frame.texture.create_view(&Default::default());
        let (w, h) = (self.config.width as f32, self.config.height as f32);
        let side = w.min(h);
        let panel = Panel::image(
            Rect::new((w - side) / 2.0, (h - side) / 2.0, side, side),
            &self.image,
            0,
            Normalize::IMAGENET,
        )?
        .with_map(&importance, ColorMap::Diverging)?;
        // The explainer's step is recorded in fido's own queue: submit it before the draw.
        self.gpu.flush();
        let mut encoder = self.gpu.device().create_command_encoder(&Default::default());
        self.painter
            .draw(&mut encoder, &view, &panel, Some(wgpu::Color::BLACK))?;
        self.gpu.queue().submit([encoder.finish()]);
        self.window.pre_present_notify();
        self.gpu.queue().present(frame);
        self.drawn += 1;
        Ok(())
    }
}
