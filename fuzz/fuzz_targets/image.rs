//! The image path: decode (format guessed from the bytes, PNG or JPEG), then the two
//! preprocessings fido's models use, torchvision's resize-then-centre-crop and a stretch,
//! normalised to CHW.
#![no_main]

use std::io::Cursor;
use std::path::Path;

use fido::imageio::{decode_rgb, prepare, Normalize, Resize};
use libfuzzer_sys::fuzz_target;

/// Pictures larger than this are skipped: fido decodes up to the `image` crate's 512 MiB
/// limit, which is correct but takes seconds under the sanitizer, and would show up as
/// timeouts that are not bugs. Aspect ratios stay unlimited.
const HARNESS_MAX_PIXELS: u64 = 1 << 22;

fuzz_target!(|data: &[u8]| {
    let size = image::ImageReader::new(Cursor::new(data))
        .with_guessed_format()
        .ok()
        .and_then(|r| r.into_dimensions().ok());
    if size.is_some_and(|(w, h)| w as u64 * h as u64 > HARNESS_MAX_PIXELS) {
        return;
    }
    let Ok(img) = decode_rgb(data, Path::new("fuzz.img")) else {
        return;
    };
    for resize in [
        Resize::ShorterThenCentreCrop {
            shorter: 256,
            crop: 224,
        },
        Resize::Stretch { size: 224 },
    ] {
        let prepared = prepare(&img, resize, &Normalize::IMAGENET);
        assert_eq!(prepared.chw.len(), 3 * 224 * 224);
        assert_eq!(prepared.picture.dimensions(), (224, 224));
    }
});
