//! `shaders/reduce_subgroup.wgsl`: the row reduction combining lanes with subgroup
//! operations, launched by [`super::reduce_axis`] and [`super::reduce_all`] under the `gpu`
//! kernel profile when [`super::LaneCombine::for_gpu`] picks [`super::LaneCombine::Subgroups`].

use crate::gpu::Kernel;

pub const KERNEL: Kernel = crate::wgsl_kernel!("reduce_subgroup");
