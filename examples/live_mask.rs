//! Driving an explanation step by step, as a host application that shows the mask evolving
//! would. The classifier here is a tiny synthetic one that only looks at a square in the
//! middle of the image, so the map it earns is easy to judge; swap in
//! `fido::models::Classifier` for a real network.
//!
//! `cargo run --example live_mask`

use fido::explain::{ExplainConfig, Explainer, InfillKind, Method};
use fido::imageio::Normalize;
use fido::{AdapterChoice, Gpu, Result};

#[path = "shared/centre_square.rs"]
mod centre_square;
use centre_square::{centre, centre_square_classifier, SIDE};

fn main() -> Result<()> {
    if std::env::var_os("XDG_RUNTIME_DIR").is_none() {
        std::env::set_var("XDG_RUNTIME_DIR", std::env::temp_dir());
    }
    let gpu = Gpu::new(&AdapterChoice::default())?;
    println!("adapter: {}", gpu.adapter_name());

    let (model, image) = centre_square_classifier(&gpu)?;

    let config = ExplainConfig {
        steps: 120,
        batch: 4,
        mask_size: 12,
        lambda: 5e-3,
        infill: InfillKind::Mean,
        ..ExplainConfig::paper(Method::Fido)
    };
    let mut explainer = Explainer::new(&model, &image, None, Normalize::IMAGENET, config, None)?;
    // The mask parameters live in a GPU buffer a renderer could bind directly.
    println!(
        "mask buffer: {} bytes, shape {:?}",
        explainer.mask().buffer().size(),
        explainer.mask().shape()
    );
    for step in 1..=120 {
        explainer.step()?;
        if step % 20 == 0 {
            let importance = explainer.importance()?.to_vec()?;
            let inside: f32 = (0..SIDE * SIDE)
                .filter(|&i| centre(i / SIDE, i % SIDE))
                .map(|i| importance[i])
                .sum::<f32>()
                / 256.0;
            let outside: f32 = (0..SIDE * SIDE)
                .filter(|&i| !centre(i / SIDE, i % SIDE))
                .map(|i| importance[i])
                .sum::<f32>()
                / (SIDE * SIDE - 256) as f32;
            let p = explainer.progress()?.expect("a step ran");
            println!(
                "step {step:>3}: log-odds {:+.3}, mean importance inside {inside:.2}, outside {outside:.2}",
                p.score
            );
        }
    }
    let result = explainer.finish()?;
    println!(
        "target {}: p {:.3} → {:.3} with only the MAP mask kept",
        result.target, result.prob_before, result.prob_with_map
    );
    Ok(())
}
