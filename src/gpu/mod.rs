//! The runtime under every op: device, buffer pool, pipeline cache and dispatch recorder.

pub mod context;
pub mod pipelines;
pub mod pool;
pub mod recorder;

pub use context::{
    describe, driver_version, list_adapters, mesa_version, upgrade_advice, AdapterChoice, AdapterSelector,
    BackendSelector, Gpu, KernelProfile,
};
pub use pipelines::{Kernel, StorageBinding};
pub use recorder::{fold_grid, DispatchProfile, FlushTiming, Grid};

use crate::tensor::Tensor;
use crate::{Error, Result};

/// A kernel's uniform parameter block: a `#[repr(C)]`, `Pod` mirror of the WGSL struct
/// [`WGSL_STRUCT`](Self::WGSL_STRUCT). Declared with [`kernel_params!`](crate::kernel_params),
/// which also lists the fields for the test that compares both layouts through naga.
pub trait KernelParams: bytemuck::Pod {
    /// The name of the WGSL struct this mirrors.
    const WGSL_STRUCT: &'static str;
    /// `(name, byte offset)` of every field; names starting with `_` are padding.
    fn fields() -> Vec<(&'static str, usize)>;
}

/// Declare a kernel's parameter block, the mirror of the WGSL struct named after `as`:
///
/// ```ignore
/// kernel_params! {
///     /// What the block holds.
///     pub struct BatchNormParams as "Params" { items: u32, channels: u32, plane: u32, eps: f32 }
/// }
/// ```
///
/// A `vec4` member that needs 16-byte alignment is preceded by explicit `_pad` fields: `Pod`
/// forbids implicit padding, and the layout test then proves the offsets agree.
#[macro_export]
macro_rules! kernel_params {
    ($(#[$meta:meta])* $vis:vis struct $name:ident as $wgsl:literal {
        $($(#[$fmeta:meta])* $field:ident : $ty:ty),* $(,)?
    }) => {
        $(#[$meta])*
        #[repr(C)]
        #[derive(Clone, Copy, Debug, Default, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
        $vis struct $name {
            $($(#[$fmeta])* pub $field: $ty),*
        }

        impl $crate::gpu::KernelParams for $name {
            const WGSL_STRUCT: &'static str = $wgsl;
            fn fields() -> Vec<(&'static str, usize)> {
                vec![$((stringify!($field), std::mem::offset_of!($name, $field))),*]
            }
        }
    };
}

/// The layout of one parameter block, for the test that compares it with its WGSL struct.
#[derive(Clone, Debug)]
pub struct ParamsLayout {
    pub kernel: Kernel,
    pub rust_type: &'static str,
    pub wgsl_struct: &'static str,
    pub size: usize,
    pub fields: Vec<(&'static str, usize)>,
}

impl ParamsLayout {
    pub fn of<P: KernelParams>(kernel: Kernel) -> ParamsLayout {
        ParamsLayout {
            kernel,
            rust_type: std::any::type_name::<P>(),
            wgsl_struct: P::WGSL_STRUCT,
            size: std::mem::size_of::<P>(),
            fields: P::fields(),
        }
    }
}

/// The tensors of one launch, each bound to the WGSL variable it is named after.
pub type Bindings<'a> = [(&'a str, &'a Tensor)];

impl Gpu {
    /// Queue `kernel::entry` with the given override constants, parameter block and tensors.
    /// Each tensor binds to the WGSL buffer of its name; the entry point may leave some of
    /// them unused (an optional bias under a constant, say), but every buffer it reads must
    /// be given. `Grid::Linear` counts workgroups.
    pub fn launch<P: KernelParams>(
        &self,
        kernel: &Kernel,
        entry: &str,
        constants: &[(&str, f64)],
        params: &P,
        bindings: &Bindings,
        grid: Grid,
    ) -> Result<()> {
        let pipeline = self.pipeline(kernel, entry, constants)?;
        if let Some(wanted) = &pipeline.params_struct {
            if wanted != P::WGSL_STRUCT {
                return Err(Error::InvalidArgument(format!(
                    "`{}` reads a `{wanted}` parameter block but was given `{}`",
                    pipeline.label,
                    P::WGSL_STRUCT
                )));
            }
        }
        if let Some((name, _)) = bindings
            .iter()
            .find(|(n, _)| !pipeline.declared.iter().any(|d| d == n))
        {
            return Err(Error::InvalidArgument(format!(
                "`{}` has no buffer named `{name}`",
                pipeline.label
            )));
        }
        let mut buffers = Vec::with_capacity(pipeline.storage_bindings.len());
        for b in &pipeline.storage_bindings {
            let (_, tensor) = bindings.iter().find(|(n, _)| *n == b.name).ok_or_else(|| {
                Error::InvalidArgument(format!("`{}` needs the buffer `{}`", pipeline.label, b.name))
            })?;
            buffers.push((tensor.pooled(), tensor.bytes()));
        }
        self.dispatch(pipeline, bytemuck::bytes_of(params), &buffers, grid)
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

/// The most invocations a one-dimensional workgroup may have on a device with `limits`: the
/// tiled kernels' workgroups are one-dimensional, so both limits bind.
pub fn max_linear_invocations(limits: &wgpu::Limits) -> u32 {
    limits
        .max_compute_invocations_per_workgroup
        .min(limits.max_compute_workgroup_size_x)
}

/// Workgroups needed to cover `n` items with `per_group` items each.
pub fn groups_for(n: usize, per_group: usize) -> u32 {
    u32::try_from(n.div_ceil(per_group)).expect("grid larger than u32 workgroups")
}
