//! `fido infill`: fill the white pixels of a mask with the Contextual Attention in-painter.

use std::path::PathBuf;

use clap::Args;
use image::{Rgb, RgbImage};

use fido::inpaint::{CaGenerator, SIDE_MULTIPLE};
use fido::{imageio, Error, Result, Tensor};

use super::AdapterArgs;

#[derive(Args)]
pub struct InfillArgs {
    #[command(flatten)]
    pub adapter: AdapterArgs,
    /// The in-painter's weights, converted from the authors' TF checkpoint with `fido convert`.
    #[arg(long)]
    pub weights: PathBuf,
    /// The image to fill (any size; it is padded to a multiple of 8 and cropped back).
    #[arg(long)]
    pub image: PathBuf,
    /// White where pixels are to be filled; same size as the image.
    #[arg(long)]
    pub mask: PathBuf,
    /// The filled image to write (PNG or JPEG, by its extension).
    #[arg(long)]
    pub out: PathBuf,
}

pub fn run(args: &InfillArgs) -> Result<()> {
    let gpu = &args.adapter.gpu()?;
    let (weights, image, mask, out) = (&args.weights, &args.image, &args.mask, &args.out);
    let picture = imageio::load_rgb(image)?;
    let mask_img = image::open(mask)
        .map_err(|e| Error::InvalidArgument(format!("cannot decode mask `{}`: {e}", mask.display())))?
        .to_luma8();
    if picture.dimensions() != mask_img.dimensions() {
        let ((w, h), (mw, mh)) = (picture.dimensions(), mask_img.dimensions());
        return Err(Error::InvalidArgument(format!(
            "image is {w}×{h} but the mask is {mw}×{mh}; they must match"
        )));
    }
    let (w, h) = picture.dimensions();
    let side = SIDE_MULTIPLE as u32;
    // The network halves the image three times: pad right and bottom to a multiple of 8.
    let (pw, ph) = (w.div_ceil(side) * side, h.div_ceil(side) * side);
    if (pw, ph) != (w, h) {
        eprintln!("infill: padding {w}×{h} to {pw}×{ph} (sides must be multiples of {side}); the output is cropped back");
    }
    let (pw_, ph_) = (pw as usize, ph as usize);
    let plane = pw_ * ph_;
    let mut bgr = vec![0.0f32; 3 * plane];
    let mut holes = vec![0.0f32; plane];
    for y in 0..ph {
        for x in 0..pw {
            let (sx, sy) = (x.min(w - 1), y.min(h - 1));
            let px = picture.get_pixel(sx, sy);
            let i = (y * pw + x) as usize;
            for (c, channel) in [2usize, 1, 0].into_iter().enumerate() {
                // BGR, v/127.5 − 1, as the authors' network expects.
                bgr[c * plane + i] = px[channel] as f32 / 127.5 - 1.0;
            }
            holes[i] = if x < w && y < h && mask_img.get_pixel(x, y)[0] > 127 {
                1.0
            } else {
                0.0
            };
        }
    }
    fido::inpaint::check_mask_values(&holes)?;
    let generator = CaGenerator::load(gpu, weights)?;
    let x = Tensor::from_slice(gpu, &[1, 3, ph_, pw_], &bgr)?;
    let m = Tensor::from_slice(gpu, &[1, 1, ph_, pw_], &holes)?;
    let result = generator.forward(&x, &m)?.to_vec()?;
    // Outside the mask the network returns its input; copying the source pixels there keeps
    // them exact instead of losing a level to the round trip through [−1, 1].
    let filled = RgbImage::from_fn(w, h, |x, y| {
        let i = (y * pw + x) as usize;
        if holes[i] == 0.0 {
            return *picture.get_pixel(x, y);
        }
        let v = |c: usize| ((result[c * plane + i] + 1.0) * 127.5).clamp(0.0, 255.0) as u8;
        Rgb([v(2), v(1), v(0)])
    });
    // In the format the file name asks for (PNG unless it says otherwise), written atomically.
    let format = image::ImageFormat::from_path(out).unwrap_or(image::ImageFormat::Png);
    fido::fsio::write_atomic_with(out, |bytes| {
        filled
            .write_to(&mut std::io::Cursor::new(bytes), format)
            .map_err(|e| e.to_string())
    })?;
    println!("wrote {}", out.display());
    Ok(())
}
