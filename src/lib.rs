//! fido: FIDO saliency maps for image classifiers, on a from-scratch wgpu compute engine.
//!
//! The engine is layered: [`gpu`] owns the device, buffer pool, pipeline cache and the
//! recorder that batches dispatches; [`tensor`] is a shaped GPU buffer; [`ops`] holds one
//! module per kernel family, each pairing its WGSL file with a launcher and a CPU reference.

pub mod autodiff;
pub mod classes;
pub mod dataset;
pub mod error;
pub mod eval;
pub mod explain;
pub mod gpu;
pub mod imageio;
pub mod inpaint;
pub mod models;
pub mod ops;
pub mod tensor;
pub mod weights;

pub use autodiff::{Tape, Var};
pub use error::{Error, IoContext, Result};
pub use gpu::{AdapterChoice, AdapterSelector, BackendSelector, Gpu};
pub use tensor::{DType, Tensor};
