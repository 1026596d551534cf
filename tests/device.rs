//! Every kernel and model test in one binary, for `tools/device-check.sh`: a GPU lent for a
//! few minutes gets one stripped executable instead of twenty. Each file is the same one
//! `cargo test` runs on its own; tests that loop over the kernel profiles do so here too,
//! and the script runs the binary once per `FIDO_KERNELS` for the rest. Built only with the
//! `device-suite` feature, so `cargo test` does not run everything twice:
//! `cargo test --release --features device-suite --test device`.

#[path = "attention.rs"]
mod attention;
#[path = "autodiff.rs"]
mod autodiff;
#[path = "batchnorm.rs"]
mod batchnorm;
#[path = "composite.rs"]
mod composite;
#[path = "conv.rs"]
mod conv;
#[path = "conv_tiles.rs"]
mod conv_tiles;
#[path = "elementwise.rs"]
mod elementwise;
#[path = "explain.rs"]
mod explain;
#[path = "filter.rs"]
mod filter;
#[path = "inpaint.rs"]
mod inpaint;
#[path = "layout.rs"]
mod layout;
#[path = "matmul.rs"]
mod matmul;
#[path = "mix.rs"]
mod mix;
#[path = "models.rs"]
mod models;
#[path = "onnx.rs"]
mod onnx;
#[path = "onnx_models.rs"]
mod onnx_models;
#[path = "optim.rs"]
mod optim;
#[path = "pool.rs"]
mod pool;
#[path = "random.rs"]
mod random;
#[path = "reduce.rs"]
mod reduce;
#[path = "render.rs"]
mod render;
#[path = "resize.rs"]
mod resize;
#[path = "runtime.rs"]
mod runtime;
#[path = "softmax.rs"]
mod softmax;
