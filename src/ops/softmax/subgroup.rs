//! `shaders/softmax_subgroup.wgsl`: the softmax-family entries combining lanes with subgroup
//! operations, launched by the functions of [`super`] under the `gpu` kernel profile when
//! [`crate::ops::reduce::LaneCombine::for_gpu`] picks subgroups.

use crate::gpu::Kernel;

pub const KERNEL: Kernel = crate::wgsl_kernel!("softmax_subgroup");
