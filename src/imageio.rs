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
        .map_err(|e| Error::InvalidArgument(format!("cannot open image `{}`: {e}", path.display())))?
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
            let scaled = image::imageops::resize(img, nw, nh, FilterType::Triangle);
            let crop = crop.min(nw).min(nh);
            // torchvision centre crop: top = round((H − crop) / 2).
            let left = ((nw - crop) as f64 / 2.0).round() as u32;
            let top = ((nh - crop) as f64 / 2.0).round() as u32;
            let out = image::imageops::crop_imm(&scaled, left, top, crop, crop).to_image();
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
