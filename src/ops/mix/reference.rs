//! CPU reference for the mix, in f64, from its definition.

/// `background + keep·(image − background)` into `[B, C, H, W]` = `shape`, with `keep:
/// [B, 1, H, W]`, `image: [image_batch, C, H, W]` and `background: [background_shape]`, both
/// broadcast over what they lack (a batch of 1; a background of 1 × 1 per channel).
pub fn mix(
    keep: &[f64],
    image: &[f64],
    image_batch: usize,
    background: &[f64],
    background_shape: [usize; 4],
    shape: [usize; 4],
) -> Vec<f64> {
    let [b, c, h, w] = shape;
    let plane = h * w;
    let bg_plane = background_shape[2] * background_shape[3];
    let mut out = vec![0.0; b * c * plane];
    for s in 0..b {
        let si = if image_batch == 1 { 0 } else { s };
        let sb = if background_shape[0] == 1 { 0 } else { s };
        for ch in 0..c {
            for p in 0..plane {
                let bg = background[(sb * c + ch) * bg_plane + if bg_plane == 1 { 0 } else { p }];
                out[(s * c + ch) * plane + p] =
                    bg + keep[s * plane + p] * (image[(si * c + ch) * plane + p] - bg);
            }
        }
    }
    out
}
