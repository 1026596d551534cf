//! The runtime under every op: device, buffer pool, pipeline cache and dispatch recorder.

pub mod context;
pub mod pipelines;
pub mod pool;
pub mod recorder;

pub use context::{describe, list_adapters, AdapterChoice, AdapterSelector, BackendSelector, Gpu};
pub use pipelines::Kernel;
pub use recorder::{fold_grid, FlushTiming, Grid};

use crate::tensor::Tensor;
use crate::Result;

/// Kernel parameters as 32-bit words, in the order of the WGSL `Params` struct.
#[derive(Clone, Debug, Default)]
pub struct Params(Vec<u32>);

impl Params {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn u(mut self, v: u32) -> Self {
        self.0.push(v);
        self
    }
    pub fn i(mut self, v: i32) -> Self {
        self.0.push(v as u32);
        self
    }
    pub fn f(mut self, v: f32) -> Self {
        self.0.push(v.to_bits());
        self
    }
    /// Pad to a 16-byte boundary, as a `vec4` member that follows requires.
    pub fn align4(mut self) -> Self {
        while self.0.len() % 4 != 0 {
            self.0.push(0);
        }
        self
    }
    pub fn words(&self) -> &[u32] {
        &self.0
    }
}

impl Gpu {
    /// Queue `kernel::entry` with the given override constants, parameters and tensors.
    /// `tensors[i]` binds to `@binding(i + 1)`. `Grid::Linear` counts workgroups.
    pub fn launch(
        &self,
        kernel: &Kernel,
        entry: &str,
        constants: &[(&str, f64)],
        params: &Params,
        tensors: &[&Tensor],
        grid: Grid,
    ) -> Result<()> {
        let pipeline = self.pipeline(kernel, entry, constants)?;
        let buffers: Vec<_> = tensors.iter().map(|t| (t.pooled(), t.bytes())).collect();
        self.dispatch(pipeline, params.words(), &buffers, grid)
    }

    /// The workgroup size of `kernel::entry` under `constants`, compiling it if needed.
    pub fn workgroup_size(
        &self,
        kernel: &Kernel,
        entry: &str,
        constants: &[(&str, f64)],
    ) -> Result<[u32; 3]> {
        Ok(self.pipeline(kernel, entry, constants)?.workgroup_size)
    }

    fn pipeline(
        &self,
        kernel: &Kernel,
        entry: &str,
        constants: &[(&str, f64)],
    ) -> Result<std::sync::Arc<pipelines::CompiledPipeline>> {
        let inner = &self.inner;
        inner
            .pipelines
            .lock()
            .unwrap()
            .get(&inner.device, &inner.limits, kernel, entry, constants)
    }
}

/// Workgroups needed to cover `n` items with `per_group` items each.
pub fn groups_for(n: usize, per_group: usize) -> u32 {
    u32::try_from(n.div_ceil(per_group)).expect("grid larger than u32 workgroups")
}
