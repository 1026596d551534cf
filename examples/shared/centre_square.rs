//! The examples' synthetic classifier: class 0's logit is the mean brightness of the centre
//! square of a `SIDE × SIDE` image, class 1's is 0, so the map it earns is easy to judge.
//! Shared by `live_mask` and `host_window` (included with `#[path]`; not an example itself).

use fido::{Gpu, Result, Tape, Tensor, Var};

pub const SIDE: usize = 48;

/// Whether pixel (y, x) lies in the square the classifier looks at (16 × 16 = 256 pixels).
pub fn centre(y: usize, x: usize) -> bool {
    (16..32).contains(&y) && (16..32).contains(&x)
}

/// The classifier, and an image `[1, 3, SIDE, SIDE]` whose centre is bright over noise.
pub fn centre_square_classifier(gpu: &Gpu) -> Result<(impl fido::explain::Model, Tensor)> {
    let mut w = vec![0.0f32; 3 * SIDE * SIDE * 2];
    for c in 0..3 {
        for y in 0..SIDE {
            for x in 0..SIDE {
                if centre(y, x) {
                    w[((c * SIDE + y) * SIDE + x) * 2] = 4.0 / (3.0 * 256.0);
                }
            }
        }
    }
    let weights = Tensor::from_slice(gpu, &[3 * SIDE * SIDE, 2], &w)?;
    let model = move |tape: &Tape, x: &Var| -> Result<Var> {
        let n = x.shape()[0];
        x.reshape(&[n, 3 * SIDE * SIDE])?
            .matmul(&tape.constant(weights.clone()), false, false)
    };
    let pixels: Vec<f32> = (0..3 * SIDE * SIDE)
        .map(|i| {
            if centre(i / SIDE % SIDE, i % SIDE) {
                1.5
            } else {
                ((i * 7919) % 13) as f32 / 13.0 - 0.5
            }
        })
        .collect();
    Ok((model, Tensor::from_slice(gpu, &[1, 3, SIDE, SIDE], &pixels)?))
}
