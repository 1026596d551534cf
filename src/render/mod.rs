//! Drawing the engine's tensors in render pipelines on the engine's own device: an image
//! tensor, a map tensor with a colour map, the map over the image, and a curve from a buffer
//! of values. The pipelines read the tensors' storage buffers directly, so a live view of an
//! explanation reads nothing back.
//!
//! A host wgpu application draws a `[H, W]` map into a texture view of its own in a few
//! lines:
//!
//! ```no_run
//! # fn demo(gpu: &fido::Gpu, map: &fido::Tensor, view: &wgpu::TextureView) -> fido::Result<()> {
//! use fido::render::{ColorMap, Painter, Panel, Rect};
//! let painter = Painter::new(gpu, wgpu::TextureFormat::Rgba8Unorm)?;
//! let mut encoder = gpu.device().create_command_encoder(&Default::default());
//! let panel = Panel::map(Rect::new(0.0, 0.0, 224.0, 224.0), map, ColorMap::Diverging)?;
//! painter.draw(&mut encoder, view, &panel, Some(wgpu::Color::BLACK))?;
//! gpu.queue().submit([encoder.finish()]);
//! # Ok(()) }
//! ```
//!
//! Call [`crate::Gpu::flush`] before submitting, so the compute work that wrote the tensors
//! is queued ahead of the draw.

use wgpu::util::DeviceExt;

use crate::imageio::Normalize;
use crate::{Error, Gpu, Result, Tensor};

pub const PANEL_WGSL: &str = include_str!("../../shaders/render/panel.wgsl");
pub const CURVE_WGSL: &str = include_str!("../../shaders/render/curve.wgsl");

/// How map values in `[0, 1]` become colours.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ColorMap {
    /// Blue (0) through white (0.5) to red (1): `explain`'s heatmap.png; over an image,
    /// its overlay.png.
    Diverging,
    /// One colour whose opacity is the value: text, masks.
    Ink([f32; 3]),
}

/// A rectangle in target pixels, origin top left.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Rect {
    pub x: f32,
    pub y: f32,
    pub width: f32,
    pub height: f32,
}

impl Rect {
    pub fn new(x: f32, y: f32, width: f32, height: f32) -> Rect {
        Rect { x, y, width, height }
    }
}

/// What one panel shows: an image, a map, or the map over the image.
#[derive(Clone, Debug)]
pub struct Panel<'a> {
    pub rect: Rect,
    image: Option<ImageSource<'a>>,
    map: Option<MapSource<'a>>,
    /// Opacity of the whole draw.
    pub opacity: f32,
}

#[derive(Clone, Debug)]
struct ImageSource<'a> {
    tensor: &'a Tensor,
    sample: usize,
    norm: Normalize,
}

#[derive(Clone, Debug)]
struct MapSource<'a> {
    tensor: &'a Tensor,
    colors: ColorMap,
}

impl<'a> Panel<'a> {
    /// Sample `sample` of an image batch `[N, 3, H, W]`, de-normalised with `norm`.
    pub fn image(rect: Rect, image: &'a Tensor, sample: usize, norm: Normalize) -> Result<Panel<'a>> {
        image_dims(image, sample)?;
        Ok(Panel {
            rect,
            image: Some(ImageSource {
                tensor: image,
                sample,
                norm,
            }),
            map: None,
            opacity: 1.0,
        })
    }

    /// A map `[H, W]` (or `[1, 1, H, W]`) of values in `[0, 1]`.
    pub fn map(rect: Rect, map: &'a Tensor, colors: ColorMap) -> Result<Panel<'a>> {
        map_dims(map)?;
        Ok(Panel {
            rect,
            image: None,
            map: Some(MapSource { tensor: map, colors }),
            opacity: 1.0,
        })
    }

    /// This image panel with `map` over it (any resolution: both are sampled per pixel).
    pub fn with_map(mut self, map: &'a Tensor, colors: ColorMap) -> Result<Panel<'a>> {
        map_dims(map)?;
        self.map = Some(MapSource { tensor: map, colors });
        Ok(self)
    }
}

/// The two render pipelines for one target format.
pub struct Painter {
    gpu: Gpu,
    format: wgpu::TextureFormat,
    panel: wgpu::RenderPipeline,
    curve: wgpu::RenderPipeline,
    /// Bound where a panel has no image or no map: a binding must hold some buffer.
    empty: wgpu::Buffer,
}

impl Painter {
    /// Pipelines that draw into views of `format`, on `gpu`'s device.
    pub fn new(gpu: &Gpu, format: wgpu::TextureFormat) -> Result<Painter> {
        let device = gpu.device();
        let panel = pipeline(
            device,
            "fido panel",
            PANEL_WGSL,
            "fs_panel",
            "vs_fullscreen",
            format,
            wgpu::PrimitiveTopology::TriangleList,
        )?;
        let curve = pipeline(
            device,
            "fido curve",
            CURVE_WGSL,
            "fs_curve",
            "vs_curve",
            format,
            wgpu::PrimitiveTopology::LineStrip,
        )?;
        let empty = device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some("fido empty binding"),
            contents: &[0u8; 16],
            usage: wgpu::BufferUsages::STORAGE,
        });
        Ok(Painter {
            gpu: gpu.clone(),
            format,
            panel,
            curve,
            empty,
        })
    }

    pub fn format(&self) -> wgpu::TextureFormat {
        self.format
    }

    /// Record a render pass that draws `panel` into `view` (of this painter's format),
    /// clearing the view first when `clear` is given.
    pub fn draw(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        view: &wgpu::TextureView,
        panel: &Panel,
        clear: Option<wgpu::Color>,
    ) -> Result<()> {
        let mut block = PanelBlock {
            rect: rect_array(panel.rect),
            mean: [0.0, 0.0, 0.0, 1.0],
            spread: [1.0; 4],
            ink: [1.0, 1.0, 1.0, panel.opacity],
            flags: [0, 0, u32::from(self.format.is_srgb()), 0],
            ..PanelBlock::default()
        };
        if let Some(src) = &panel.image {
            let (w, h, offset, stride) = image_dims(src.tensor, src.sample)?;
            block.image_dims = [w, h, offset, stride];
            block.mean = [
                src.norm.mean[0],
                src.norm.mean[1],
                src.norm.mean[2],
                src.norm.range,
            ];
            block.spread = [src.norm.std[0], src.norm.std[1], src.norm.std[2], 1.0];
            block.flags[0] = 1;
        }
        if let Some(src) = &panel.map {
            let (w, h) = map_dims(src.tensor)?;
            let kind = match src.colors {
                ColorMap::Diverging => 0,
                ColorMap::Ink(rgb) => {
                    block.ink = [rgb[0], rgb[1], rgb[2], panel.opacity];
                    1
                }
            };
            block.map_dims = [w, h, 0, kind];
            block.flags[1] = 1;
        }
        let device = self.gpu.device();
        let params = device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some("fido panel params"),
            contents: bytemuck::bytes_of(&block),
            usage: wgpu::BufferUsages::UNIFORM,
        });
        let image = panel.image.as_ref().map_or(&self.empty, |s| s.tensor.buffer());
        let map = panel.map.as_ref().map_or(&self.empty, |s| s.tensor.buffer());
        let group = device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some("fido panel"),
            layout: &self.panel.get_bind_group_layout(0),
            entries: &[entry(0, &params), entry(1, image), entry(2, map)],
        });
        let mut pass = begin(encoder, view, clear);
        // The triangle covers the whole target, and the fragment shader discards what lies
        // outside the panel; the scissor keeps those fragments from running at all (on a
        // CPU adapter, they are most of a panel's cost).
        match clip(panel.rect, view) {
            Clip::Pixels([x, y, w, h]) => pass.set_scissor_rect(x, y, w, h),
            Clip::Nothing => return Ok(()),
            Clip::Unknown => {}
        }
        pass.set_pipeline(&self.panel);
        pass.set_bind_group(0, &group, &[]);
        pass.draw(0..3, 0..1);
        Ok(())
    }

    /// Record a render pass that draws the first `count` values of `values` (f32) as a line
    /// strip inside `rect`, scaled to the range they span, into a view of `target` pixels.
    pub fn draw_curve(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        view: &wgpu::TextureView,
        target: (u32, u32),
        rect: Rect,
        values: &wgpu::Buffer,
        count: u32,
        colour: [f32; 3],
    ) -> Result<()> {
        if count == 0 {
            return Ok(());
        }
        if u64::from(count) * 4 > values.size() {
            return Err(Error::InvalidArgument(format!(
                "a curve of {count} points needs {} bytes, but its buffer holds {}",
                u64::from(count) * 4,
                values.size()
            )));
        }
        let block = CurveBlock {
            rect: rect_array(rect),
            count,
            target_width: target.0 as f32,
            target_height: target.1 as f32,
            srgb: u32::from(self.format.is_srgb()),
            colour: [colour[0], colour[1], colour[2], 1.0],
        };
        let device = self.gpu.device();
        let params = device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some("fido curve params"),
            contents: bytemuck::bytes_of(&block),
            usage: wgpu::BufferUsages::UNIFORM,
        });
        let group = device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some("fido curve"),
            layout: &self.curve.get_bind_group_layout(0),
            entries: &[entry(0, &params), entry(1, values)],
        });
        let mut pass = begin(encoder, view, None);
        pass.set_pipeline(&self.curve);
        pass.set_bind_group(0, &group, &[]);
        pass.draw(0..count.max(2), 0..1);
        Ok(())
    }
}

/// The frame `fido view` draws after every step: four panels (the image; the importance
/// map over it; the image the classifier scores; the score curve) above a band of text, then
/// a text layer over the whole target. One type, so that the window and the benchmark that
/// prices its frames draw the same thing.
pub struct Dashboard<'a> {
    /// The explained image, `[1, 3, H, W]`, normalised with `norm`.
    pub image: &'a Tensor,
    pub norm: Normalize,
    /// The importance map, `[H, W]` in `[0, 1]`, at any resolution.
    pub importance: &'a Tensor,
    /// What the classifier sees: sample 0 of an image batch `[B, 3, H, W]`.
    pub seen: &'a Tensor,
    /// One f32 score per step so far, and how many there are.
    pub scores: &'a wgpu::Buffer,
    pub points: u32,
    /// Coverage of the words, `[H, W]`, stretched over the whole target.
    pub text: &'a Tensor,
    /// The text band under the panels, as a fraction of the target's height.
    pub band: f32,
}

impl Dashboard<'_> {
    /// The panel in column `col` and row `row` (each 0 or 1) of a `target`-sized frame,
    /// inside margins that leave 22 pixels above it for its label.
    pub fn cell(target: (u32, u32), band: f32, col: u32, row: u32) -> Rect {
        let (w, h) = (target.0 as f32, target.1 as f32);
        let (pw, ph) = (w / 2.0, (h - h * band) / 2.0);
        Rect::new(col as f32 * pw + 4.0, row as f32 * ph + 22.0, pw - 8.0, ph - 26.0)
    }

    /// Record the frame's draws into `view`, `target` pixels, clearing it first.
    pub fn draw(
        &self,
        painter: &Painter,
        encoder: &mut wgpu::CommandEncoder,
        view: &wgpu::TextureView,
        target: (u32, u32),
    ) -> Result<()> {
        let cell = |col, row| Dashboard::cell(target, self.band, col, row);
        let background = wgpu::Color {
            r: 0.08,
            g: 0.08,
            b: 0.09,
            a: 1.0,
        };
        let image = Panel::image(cell(0, 0), self.image, 0, self.norm)?;
        painter.draw(encoder, view, &image, Some(background))?;
        let over = Panel::image(cell(1, 0), self.image, 0, self.norm)?
            .with_map(self.importance, ColorMap::Diverging)?;
        painter.draw(encoder, view, &over, None)?;
        let seen = Panel::image(cell(0, 1), self.seen, 0, self.norm)?;
        painter.draw(encoder, view, &seen, None)?;
        let amber = [0.95, 0.75, 0.25];
        painter.draw_curve(encoder, view, target, cell(1, 1), self.scores, self.points, amber)?;
        let whole = Rect::new(0.0, 0.0, target.0 as f32, target.1 as f32);
        let text = Panel::map(whole, self.text, ColorMap::Ink([0.92, 0.92, 0.92]))?;
        painter.draw(encoder, view, &text, None)
    }
}

/// Draw `map` (`[H, W]`, values in `[0, 1]`) with `colors` over the whole of `view`, a
/// `width × height` texture view of the host's in `format`: the one-call form of
/// [`Painter`] (which a host drawing every frame keeps instead of rebuilding).
pub fn draw_map(
    gpu: &Gpu,
    view: &wgpu::TextureView,
    format: wgpu::TextureFormat,
    (width, height): (u32, u32),
    map: &Tensor,
    colors: ColorMap,
) -> Result<()> {
    let painter = Painter::new(gpu, format)?;
    let panel = Panel::map(Rect::new(0.0, 0.0, width as f32, height as f32), map, colors)?;
    gpu.flush();
    let mut encoder = gpu.device().create_command_encoder(&Default::default());
    painter.draw(&mut encoder, view, &panel, Some(wgpu::Color::BLACK))?;
    gpu.queue().submit([encoder.finish()]);
    Ok(())
}

/// An `Rgba8Unorm` texture to draw into and read back with [`read_rgba`]: screenshots,
/// tests, and hosts that render off screen.
pub fn offscreen_target(gpu: &Gpu, width: u32, height: u32) -> wgpu::Texture {
    gpu.device().create_texture(&wgpu::TextureDescriptor {
        label: Some("fido offscreen"),
        size: wgpu::Extent3d {
            width,
            height,
            depth_or_array_layers: 1,
        },
        mip_level_count: 1,
        sample_count: 1,
        dimension: wgpu::TextureDimension::D2,
        format: wgpu::TextureFormat::Rgba8Unorm,
        usage: wgpu::TextureUsages::RENDER_ATTACHMENT | wgpu::TextureUsages::COPY_SRC,
        view_formats: &[],
    })
}

/// Read an `Rgba8Unorm` texture back as an image: for screenshots and tests, not for display.
pub fn read_rgba(gpu: &Gpu, texture: &wgpu::Texture) -> Result<image::RgbaImage> {
    let (width, height) = (texture.width(), texture.height());
    if texture.format() != wgpu::TextureFormat::Rgba8Unorm {
        return Err(Error::InvalidArgument(format!(
            "read_rgba reads Rgba8Unorm textures, not {:?}",
            texture.format()
        )));
    }
    let row = (width * 4).div_ceil(wgpu::COPY_BYTES_PER_ROW_ALIGNMENT) * wgpu::COPY_BYTES_PER_ROW_ALIGNMENT;
    let device = gpu.device();
    let buffer = device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("fido screenshot"),
        size: u64::from(row) * u64::from(height),
        usage: wgpu::BufferUsages::COPY_DST | wgpu::BufferUsages::MAP_READ,
        mapped_at_creation: false,
    });
    let mut encoder = device.create_command_encoder(&Default::default());
    encoder.copy_texture_to_buffer(
        texture.as_image_copy(),
        wgpu::TexelCopyBufferInfo {
            buffer: &buffer,
            layout: wgpu::TexelCopyBufferLayout {
                offset: 0,
                bytes_per_row: Some(row),
                rows_per_image: Some(height),
            },
        },
        texture.size(),
    );
    gpu.queue().submit([encoder.finish()]);
    let (tx, rx) = std::sync::mpsc::channel();
    buffer.slice(..).map_async(wgpu::MapMode::Read, move |r| {
        let _ = tx.send(r);
    });
    device
        .poll(wgpu::PollType::wait_indefinitely())
        .map_err(|e| Error::Gpu(e.to_string()))?;
    rx.recv()
        .map_err(|_| Error::Gpu("screenshot mapping was cancelled".into()))?
        .map_err(|e| Error::Gpu(format!("screenshot mapping failed: {e}")))?;
    gpu.take_device_error()?;
    let data = buffer
        .get_mapped_range(..)
        .map_err(|e| Error::Gpu(format!("{e:?}")))?
        .to_vec();
    let mut pixels = Vec::with_capacity((width * height * 4) as usize);
    for y in 0..height as usize {
        let start = y * row as usize;
        pixels.extend_from_slice(&data[start..start + width as usize * 4]);
    }
    image::RgbaImage::from_raw(width, height, pixels)
        .ok_or_else(|| Error::Gpu("screenshot size mismatch".into()))
}

#[repr(C)]
#[derive(Clone, Copy, Default, bytemuck::Pod, bytemuck::Zeroable)]
struct PanelBlock {
    rect: [f32; 4],
    image_dims: [u32; 4],
    map_dims: [u32; 4],
    mean: [f32; 4],
    spread: [f32; 4],
    ink: [f32; 4],
    flags: [u32; 4],
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct CurveBlock {
    rect: [f32; 4],
    count: u32,
    target_width: f32,
    target_height: f32,
    srgb: u32,
    colour: [f32; 4],
}

/// Which pixels of a view a panel may touch.
enum Clip {
    /// x, y, width and height of the whole pixels the rectangle touches, inside the view.
    Pixels([u32; 4]),
    /// The rectangle lies outside the view.
    Nothing,
    /// The view's size is not known (a view of one mip level of several): no scissor.
    Unknown,
}

fn clip(rect: Rect, view: &wgpu::TextureView) -> Clip {
    let texture = view.texture();
    if texture.mip_level_count() != 1 {
        return Clip::Unknown;
    }
    let (width, height) = (texture.width() as f32, texture.height() as f32);
    let x0 = rect.x.floor().clamp(0.0, width);
    let y0 = rect.y.floor().clamp(0.0, height);
    let x1 = (rect.x + rect.width).ceil().clamp(0.0, width);
    let y1 = (rect.y + rect.height).ceil().clamp(0.0, height);
    // NaN compares false, so a NaN rect draws nothing, as the shader would.
    if !(x1 > x0 && y1 > y0) {
        return Clip::Nothing;
    }
    Clip::Pixels([x0 as u32, y0 as u32, (x1 - x0) as u32, (y1 - y0) as u32])
}

fn rect_array(r: Rect) -> [f32; 4] {
    [r.x, r.y, r.width, r.height]
}

fn to_u32(v: usize, what: &str) -> Result<u32> {
    u32::try_from(v).map_err(|_| Error::InvalidArgument(format!("{what} {v} is too large to draw")))
}

/// (width, height, element offset of the sample, channel stride) of `[N, 3, H, W]`.
fn image_dims(t: &Tensor, sample: usize) -> Result<(u32, u32, u32, u32)> {
    let s = t.shape();
    if s.len() != 4 || s[1] != 3 || s[2] == 0 || s[3] == 0 {
        return Err(Error::Shape {
            op: "render image",
            detail: format!("an image is [N, 3, H, W], got {s:?}"),
        });
    }
    if sample >= s[0] {
        return Err(Error::Shape {
            op: "render image",
            detail: format!("sample {sample} of a batch of {}", s[0]),
        });
    }
    let plane = s[2] * s[3];
    Ok((
        to_u32(s[3], "width")?,
        to_u32(s[2], "height")?,
        to_u32(sample * 3 * plane, "offset")?,
        to_u32(plane, "plane")?,
    ))
}

/// (width, height) of a map `[H, W]`, `[1, H, W]` or `[1, 1, H, W]`.
fn map_dims(t: &Tensor) -> Result<(u32, u32)> {
    let s = t.shape();
    let ok =
        s.len() >= 2 && s[..s.len() - 2].iter().all(|&d| d == 1) && s[s.len() - 1] > 0 && s[s.len() - 2] > 0;
    if !ok {
        return Err(Error::Shape {
            op: "render map",
            detail: format!("a map is [H, W] (leading dimensions of 1 allowed), got {s:?}"),
        });
    }
    Ok((
        to_u32(s[s.len() - 1], "width")?,
        to_u32(s[s.len() - 2], "height")?,
    ))
}

fn entry(binding: u32, buffer: &wgpu::Buffer) -> wgpu::BindGroupEntry<'_> {
    wgpu::BindGroupEntry {
        binding,
        resource: buffer.as_entire_binding(),
    }
}

fn begin<'e>(
    encoder: &'e mut wgpu::CommandEncoder,
    view: &'e wgpu::TextureView,
    clear: Option<wgpu::Color>,
) -> wgpu::RenderPass<'e> {
    encoder.begin_render_pass(&wgpu::RenderPassDescriptor {
        label: Some("fido draw"),
        color_attachments: &[Some(wgpu::RenderPassColorAttachment {
            view,
            depth_slice: None,
            resolve_target: None,
            ops: wgpu::Operations {
                load: clear.map_or(wgpu::LoadOp::Load, wgpu::LoadOp::Clear),
                store: wgpu::StoreOp::Store,
            },
        })],
        depth_stencil_attachment: None,
        timestamp_writes: None,
        occlusion_query_set: None,
        multiview_mask: None,
    })
}

fn pipeline(
    device: &wgpu::Device,
    label: &'static str,
    source: &str,
    fragment: &str,
    vertex: &str,
    format: wgpu::TextureFormat,
    topology: wgpu::PrimitiveTopology,
) -> Result<wgpu::RenderPipeline> {
    let scope = device.push_error_scope(wgpu::ErrorFilter::Validation);
    let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
        label: Some(label),
        source: wgpu::ShaderSource::Wgsl(source.into()),
    });
    let pipeline = device.create_render_pipeline(&wgpu::RenderPipelineDescriptor {
        label: Some(label),
        layout: None,
        vertex: wgpu::VertexState {
            module: &module,
            entry_point: Some(vertex),
            compilation_options: Default::default(),
            buffers: &[],
        },
        primitive: wgpu::PrimitiveState {
            topology,
            ..Default::default()
        },
        depth_stencil: None,
        multisample: Default::default(),
        fragment: Some(wgpu::FragmentState {
            module: &module,
            entry_point: Some(fragment),
            compilation_options: Default::default(),
            targets: &[Some(wgpu::ColorTargetState {
                format,
                blend: Some(wgpu::BlendState::ALPHA_BLENDING),
                write_mask: wgpu::ColorWrites::ALL,
            })],
        }),
        multiview_mask: None,
        cache: None,
    });
    match pollster::block_on(scope.pop()) {
        None => Ok(pipeline),
        Some(e) => Err(Error::Shader {
            kernel: label,
            reason: format!("{e} (the adapter may lack storage buffers in fragment or vertex shaders)"),
        }),
    }
}
