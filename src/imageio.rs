//! Reading images and turning them into normalised model inputs, and back into pictures.

use std::path::Path;

use image::imageops::FilterType;
use image::RgbImage;

use crate::{Error, Result};

/// How an image is brought to the model's input size.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Resize {
    /// Scale the shorter side to `shorter`, then cut the centre `crop`×`crop` (torchvision).
    ShorterThenCentreCrop { shorter: u32, crop: u32 },
    /// Scale both sides to `size` (aspect ratio not kept).
    Stretch { size: u32 },
}

/// Per-channel normalisation of 0..1 RGB values: `(v·range − mean) / std`, where `range` is
/// 1 for torchvision models and 255 for models trained on 0..255 values.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Normalize {
    pub range: f32,
    pub mean: [f32; 3],
    pub std: [f32; 3],
}

impl Normalize {
    pub const IMAGENET: Normalize = Normalize {
        range: 1.0,
        mean: [0.485, 0.456, 0.406],
        std: [0.229, 0.224, 0.225],
    };
    /// `(v − 127) / 128` on 0..255 values.
    pub const CENTERED_255: Normalize = Normalize {
        range: 255.0,
        mean: [127.0; 3],
        std: [128.0; 3],
    };

    pub fn apply(&self, channel: usize, unit: f32) -> f32 {
        (unit * self.range - self.mean[channel]) / self.std[channel]
    }
    pub fn invert(&self, channel: usize, value: f32) -> f32 {
        (value * self.std[channel] + self.mean[channel]) / self.range
    }
}

/// The affine map from source-image pixel coordinates to model-input coordinates:
/// `u_model = u_src·scale_x + offset_x` (and likewise for y).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SourceToModel {
    pub scale_x: f64,
    pub scale_y: f64,
    pub offset_x: f64,
    pub offset_y: f64,
}

/// A model input made from an image: CHW f32 values, the model-resolution RGB picture, and
/// where the source pixels went.
pub struct Prepared {
    pub chw: Vec<f32>,
    pub size: u32,
    pub picture: RgbImage,
    pub source_to_model: SourceToModel,
    pub source_size: (u32, u32),
}

/// Decode an image file as RGB, with an error naming the file on failure.
pub fn load_rgb(path: &Path) -> Result<RgbImage> {
    let reader = image::ImageReader::open(path)
        .map_err(|e| Error::InvalidArgument(format!("cannot open image `{}`: {e}", path.display())))?;
    decode(reader, path)
}

/// [`load_rgb`] for an image file held in memory; `name` stands for its path in messages.
pub fn decode_rgb(bytes: &[u8], name: &Path) -> Result<RgbImage> {
    decode(image::ImageReader::new(std::io::Cursor::new(bytes)), name)
}

/// The format is guessed from the bytes. The `image` crate's default limits apply: a file
/// whose header claims a picture needing more than 512 MiB is refused before decoding.
fn decode<R: std::io::BufRead + std::io::Seek>(
    reader: image::ImageReader<R>,
    path: &Path,
) -> Result<RgbImage> {
    let reader = reader
        .with_guessed_format()
        .map_err(|e| Error::InvalidArgument(format!("cannot read image `{}`: {e}", path.display())))?;
    let img = reader
        .decode()
        .map_err(|e| Error::InvalidArgument(format!("cannot decode image `{}`: {e}", path.display())))?;
    if img.width() == 0 || img.height() == 0 {
        return Err(Error::InvalidArgument(format!(
            "image `{}` is empty",
            path.display()
        )));
    }
    Ok(img.to_rgb8())
}

/// Above this many pixels, [`prepare`] does not scale the whole image before its centre crop:
/// it first cuts the source to the strip the crop reads (with a margin for the filter). Only
/// an extreme aspect ratio gets there (scaling the short side of a 1×65535 strip to 256 would
/// make a 256×16.7M picture, 12 GB); ordinary images take the exact torchvision path.
pub const MAX_SCALED_PIXELS: u64 = 1 << 24;

/// Resize (with an antialiasing triangle filter, as PIL's bilinear) and normalise.
pub fn prepare(img: &RgbImage, resize: Resize, norm: &Normalize) -> Prepared {
    let (w, h) = img.dimensions();
    let (picture, size, map) = match resize {
        Resize::Stretch { size } => {
            let out = image::imageops::resize(img, size, size, FilterType::Triangle);
            let map = SourceToModel {
                scale_x: size as f64 / w as f64,
                scale_y: size as f64 / h as f64,
                offset_x: 0.0,
                offset_y: 0.0,
            };
            (out, size, map)
        }
        Resize::ShorterThenCentreCrop { shorter, crop } => {
            let s = shorter as f64 / w.min(h) as f64;
            // torchvision rounds the longer side down after scaling the shorter one exactly.
            let (nw, nh) = if w <= h {
                (shorter, ((h as f64 * s) as u32).max(1))
            } else {
                (((w as f64 * s) as u32).max(1), shorter)
            };
            let crop = crop.min(nw).min(nh);
            // torchvision centre crop: top = round((H − crop) / 2).
            let left = ((nw - crop) as f64 / 2.0).round() as u32;
            let top = ((nh - crop) as f64 / 2.0).round() as u32;
            let out = if nw as u64 * nh as u64 <= MAX_SCALED_PIXELS {
                let scaled = image::imageops::resize(img, nw, nh, FilterType::Triangle);
                image::imageops::crop_imm(&scaled, left, top, crop, crop).to_image()
            } else {
                crop_then_scale(img, (nw, nh), (left, top), crop)
            };
            let map = SourceToModel {
                scale_x: nw as f64 / w as f64,
                scale_y: nh as f64 / h as f64,
                offset_x: -(left as f64),
                offset_y: -(top as f64),
            };
            (out, crop, map)
        }
    };
    let plane = (size * size) as usize;
    let mut chw = vec![0.0f32; 3 * plane];
    for (i, px) in picture.pixels().enumerate() {
        for c in 0..3 {
            chw[c * plane + i] = norm.apply(c, px[c] as f32 / 255.0);
        }
    }
    Prepared {
        chw,
        size,
        picture,
        source_to_model: map,
        source_size: (w, h),
    }
}

/// The `crop`×`crop` window at `(left, top)` of `img` scaled to `nw`×`nh`, without making the
/// whole scaled image: the source is first cut, along its long axis, to the span the window
/// covers plus a filter margin, and that span is scaled at the same rate.
fn crop_then_scale(img: &RgbImage, (nw, nh): (u32, u32), (left, top): (u32, u32), crop: u32) -> RgbImage {
    let (w, h) = img.dimensions();
    let tall = w <= h;
    let (long_src, long_scaled, start) = if tall { (h, nh, top) } else { (w, nw, left) };
    let scale = long_scaled as f64 / long_src as f64;
    // The triangle filter reads one source pixel either side when enlarging, 1/scale when
    // shrinking.
    let margin = (1.0 / scale).ceil() + 2.0;
    let a = ((start as f64 / scale).floor() - margin).max(0.0) as u32;
    let b = (((start + crop) as f64 / scale).ceil() + margin).min(long_src as f64) as u32;
    let span = b - a;
    let cut = if tall {
        image::imageops::crop_imm(img, 0, a, w, span).to_image()
    } else {
        image::imageops::crop_imm(img, a, 0, span, h).to_image()
    };
    let span_scaled = ((span as f64 * scale).round() as u32).max(crop);
    let offset = (start as f64 - a as f64 * scale).round().max(0.0) as u32;
    let offset = offset.min(span_scaled - crop);
    if tall {
        let scaled = image::imageops::resize(&cut, nw, span_scaled, FilterType::Triangle);
        image::imageops::crop_imm(&scaled, left, offset, crop, crop).to_image()
    } else {
        let scaled = image::imageops::resize(&cut, span_scaled, nh, FilterType::Triangle);
        image::imageops::crop_imm(&scaled, offset, top, crop, crop).to_image()
    }
}

/// Undo the normalisation of a CHW input, giving the picture the model saw.
pub fn to_picture(chw: &[f32], size: u32, norm: &Normalize) -> RgbImage {
    to_picture_hw(chw, size, size, norm)
}

/// [`to_picture`] for a `width`×`height` input.
pub fn to_picture_hw(chw: &[f32], width: u32, height: u32, norm: &Normalize) -> RgbImage {
    let plane = (width * height) as usize;
    RgbImage::from_fn(width, height, |x, y| {
        let i = (y * width + x) as usize;
        let v = |c: usize| {
            (norm.invert(c, chw[c * plane + i]) * 255.0)
                .round()
                .clamp(0.0, 255.0) as u8
        };
        image::Rgb([v(0), v(1), v(2)])
    })
}

/// Write `img` as a PNG at `path`, atomically (see [`crate::fsio`]): the picture is encoded
/// in memory and renamed into place, so a killed run or a full disk never leaves half a PNG.
pub fn save_png(img: &RgbImage, path: &Path) -> Result<()> {
    crate::fsio::write_atomic_with(path, |bytes| {
        *bytes = encode_png(img).map_err(|e| e.to_string())?;
        Ok(())
    })
}

/// `img` as the bytes of a PNG file.
pub fn encode_png(img: &RgbImage) -> Result<Vec<u8>> {
    let mut bytes = Vec::new();
    let encoder = image::codecs::png::PngEncoder::new(&mut bytes);
    image::ImageEncoder::write_image(
        encoder,
        img.as_raw(),
        img.width(),
        img.height(),
        image::ExtendedColorType::Rgb8,
    )
    .map_err(|e| {
        Error::InvalidArgument(format!(
            "cannot encode a {}×{} PNG: {e}",
            img.width(),
            img.height()
        ))
    })?;
    Ok(bytes)
}
