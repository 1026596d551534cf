//! fido: FIDO saliency maps for image classifiers, on a from-scratch wgpu compute engine.
//!
//! The engine is layered: [`gpu`] owns the device, buffer pool, pipeline cache and the
//! recorder that batches dispatches; [`tensor`] is a shaped GPU buffer; [`ops`] holds one
//! module per kernel family, each pairing its WGSL file with a launcher and a CPU reference.
//!
//! Above the engine, each layer uses only those below it: [`autodiff`] records ops on a tape;
//! [`models`] holds the classifiers with their image pipelines ([`models::LoadedModel`]) and
//! [`inpaint`] the Contextual Attention generator; [`explain`] computes FIDO and BBMP maps
//! with its in-fillers (the CA one included), and [`eval`] scores them over a manifest. The
//! `fido` binary parses its command line and calls these.

pub mod autodiff;
pub mod classes;
pub mod dataset;
pub mod error;
pub mod eval;
pub mod explain;
pub mod fsio;
pub mod gpu;
pub mod imageio;
pub mod inpaint;
pub mod models;
pub mod ops;
pub mod render;
pub mod tensor;
pub mod weights;

pub use autodiff::{Tape, Var};
pub use error::{Error, IoContext, Result};
pub use gpu::{AdapterChoice, AdapterSelector, BackendSelector, Gpu};
pub use tensor::{DType, Layout, Tensor};
