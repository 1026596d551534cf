//! Kernels and the pipeline cache.
//!
//! Every WGSL file in `shaders/` is one kernel family. A pipeline is identified by
//! (family, entry point, override constants) and compiled once per device. Compiling also
//! reflects the entry point with naga: which bindings it uses (so a bind group holds exactly
//! those), its workgroup size, and its workgroup storage, which is checked against the
//! adapter limit because wgpu does not check it.

use std::collections::HashMap;
use std::sync::Arc;

use crate::{Error, Result};

/// One WGSL kernel family, embedded in the binary. Made with [`wgsl_kernel!`](crate::wgsl_kernel),
/// which ties the file `shaders/NAME.wgsl` to the Rust module that launches it.
#[derive(Clone, Copy, Debug)]
pub struct Kernel {
    pub name: &'static str,
    pub source: &'static str,
    /// The launcher's module path, e.g. `fido::ops::conv::gemm` for `shaders/conv_gemm.wgsl`.
    pub module: &'static str,
}

/// The [`Kernel`] whose source is `shaders/NAME.wgsl`, declared in its launcher's module.
#[macro_export]
macro_rules! wgsl_kernel {
    ($name:literal) => {
        $crate::gpu::Kernel {
            name: $name,
            source: include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/shaders/", $name, ".wgsl")),
            module: module_path!(),
        }
    };
}

/// Binding 0 of every kernel is its uniform parameter block; storage buffers start at 1.
pub const PARAMS_BINDING: u32 = 0;

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct PipelineKey {
    kernel: &'static str,
    entry: String,
    constants: Vec<(String, u64)>,
}

pub struct CompiledPipeline {
    /// `family::entry`, for error messages.
    pub label: String,
    pub pipeline: wgpu::ComputePipeline,
    pub layout: wgpu::BindGroupLayout,
    /// Storage buffers the entry point uses, by binding number.
    pub storage_bindings: Vec<StorageBinding>,
    /// The WGSL struct of the uniform parameter block, when the entry point reads it.
    pub params_struct: Option<String>,
    /// Every buffer name the family declares, so a launcher's misspelt name is an error
    /// even where this entry point does not use it.
    pub declared: Vec<String>,
    pub workgroup_size: [u32; 3],
    pub workgroup_bytes: u64,
}

struct ParsedKernel {
    module: naga::Module,
    info: naga::valid::ModuleInfo,
    shader: wgpu::ShaderModule,
}

#[derive(Default)]
pub struct PipelineCache {
    pipelines: HashMap<PipelineKey, Arc<CompiledPipeline>>,
    kernels: HashMap<&'static str, ParsedKernel>,
}

/// Parse and validate WGSL with naga, as the adapter-free test and the cache both do.
pub fn parse_and_validate(
    name: &str,
    source: &str,
) -> Result<(naga::Module, naga::valid::ModuleInfo), String> {
    let module =
        naga::front::wgsl::parse_str(source).map_err(|e| e.emit_to_string_with_path(source, name))?;
    let info = naga::valid::Validator::new(
        naga::valid::ValidationFlags::all(),
        naga::valid::Capabilities::all(),
    )
    .validate(&module)
    .map_err(|e| e.emit_to_string_with_path(source, name))?;
    Ok((module, info))
}

/// One storage buffer of an entry point.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StorageBinding {
    pub binding: u32,
    /// The WGSL variable's name: launchers bind tensors by it.
    pub name: String,
    pub read_only: bool,
}

/// One global of group 0 that an entry point uses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReflectedBinding {
    pub binding: u32,
    pub name: String,
    /// The uniform parameter block's struct name; None for storage buffers.
    pub uniform_struct: Option<String>,
    pub read_only: bool,
}

/// Reflection of one entry point after override constants are applied.
#[derive(Clone, Debug)]
pub struct EntryReflection {
    pub workgroup_size: [u32; 3],
    pub workgroup_bytes: u64,
    /// The globals of group 0 the entry point uses, by binding number.
    pub bindings: Vec<ReflectedBinding>,
}

/// The names of every buffer a module declares.
pub fn declared_bindings(module: &naga::Module) -> Vec<String> {
    module
        .global_variables
        .iter()
        .filter(|(_, v)| v.binding.is_some())
        .filter_map(|(_, v)| v.name.clone())
        .collect()
}

/// Apply constants to `entry` and report its workgroup size, storage and bindings.
pub fn reflect_entry(
    module: &naga::Module,
    info: &naga::valid::ModuleInfo,
    entry: &str,
    constants: &[(&str, f64)],
) -> Result<EntryReflection, String> {
    let mut map = naga::back::PipelineConstants::default();
    for (k, v) in constants {
        map.insert((*k).to_string(), *v);
    }
    let (module, info) = naga::back::pipeline_constants::process_overrides(
        module,
        info,
        Some((naga::ShaderStage::Compute, entry)),
        &map,
    )
    .map_err(|e| format!("override constants for `{entry}`: {e:?}"))?;
    let index = module
        .entry_points
        .iter()
        .position(|e| e.name == entry)
        .ok_or_else(|| format!("no compute entry point `{entry}`"))?;
    let ep = &module.entry_points[index];
    let uses = info.get_entry_point(index);
    let mut layouter = naga::proc::Layouter::default();
    layouter.update(module.to_ctx()).map_err(|e| format!("{e:?}"))?;
    let mut workgroup_bytes = 0u64;
    let mut bindings = Vec::new();
    for (handle, var) in module.global_variables.iter() {
        if uses[handle].is_empty() {
            continue;
        }
        let name = var.name.clone().unwrap_or_default();
        match (var.space, &var.binding) {
            (naga::AddressSpace::WorkGroup, _) => workgroup_bytes += u64::from(layouter[var.ty].size),
            (naga::AddressSpace::Uniform, Some(b)) => bindings.push(ReflectedBinding {
                binding: b.binding,
                name,
                uniform_struct: Some(module.types[var.ty].name.clone().unwrap_or_default()),
                read_only: true,
            }),
            (naga::AddressSpace::Storage { access }, Some(b)) => bindings.push(ReflectedBinding {
                binding: b.binding,
                name,
                uniform_struct: None,
                read_only: !access.contains(naga::StorageAccess::STORE),
            }),
            _ => {}
        }
    }
    bindings.sort_by_key(|b| b.binding);
    Ok(EntryReflection {
        workgroup_size: ep.workgroup_size,
        workgroup_bytes,
        bindings,
    })
}

impl PipelineCache {
    pub fn len(&self) -> usize {
        self.pipelines.len()
    }
    pub fn is_empty(&self) -> bool {
        self.pipelines.is_empty()
    }

    pub(crate) fn get(
        &mut self,
        device: &wgpu::Device,
        limits: &wgpu::Limits,
        kernel: &Kernel,
        entry: &str,
        constants: &[(&str, f64)],
    ) -> Result<Arc<CompiledPipeline>> {
        let key = PipelineKey {
            kernel: kernel.name,
            entry: entry.to_string(),
            constants: constants
                .iter()
                .map(|(k, v)| ((*k).to_string(), v.to_bits()))
                .collect(),
        };
        if let Some(p) = self.pipelines.get(&key) {
            return Ok(p.clone());
        }
        let compiled = Arc::new(self.compile(device, limits, kernel, entry, constants)?);
        self.pipelines.insert(key, compiled.clone());
        Ok(compiled)
    }

    fn compile(
        &mut self,
        device: &wgpu::Device,
        limits: &wgpu::Limits,
        kernel: &Kernel,
        entry: &str,
        constants: &[(&str, f64)],
    ) -> Result<CompiledPipeline> {
        let shader_error = |reason: String| Error::Shader {
            kernel: kernel.name,
            reason,
        };
        if !self.kernels.contains_key(kernel.name) {
            let (module, info) = parse_and_validate(kernel.name, kernel.source).map_err(shader_error)?;
            let desc = wgpu::ShaderModuleDescriptor {
                label: Some(kernel.name),
                source: wgpu::ShaderSource::Wgsl(kernel.source.into()),
            };
            let shader = device.create_shader_module(desc);
            self.kernels
                .insert(kernel.name, ParsedKernel { module, info, shader });
        }
        let parsed = &self.kernels[kernel.name];
        let reflection =
            reflect_entry(&parsed.module, &parsed.info, entry, constants).map_err(shader_error)?;
        if reflection.workgroup_bytes > u64::from(limits.max_compute_workgroup_storage_size) {
            return Err(Error::WorkgroupStorage {
                kernel: kernel.name,
                entry: entry.to_string(),
                needed: reflection.workgroup_bytes,
                limit: limits.max_compute_workgroup_storage_size,
            });
        }
        let invocations: u32 = reflection.workgroup_size.iter().product();
        if invocations > limits.max_compute_invocations_per_workgroup {
            return Err(shader_error(format!(
                "`{entry}` uses {invocations} invocations per workgroup; the adapter allows {}",
                limits.max_compute_invocations_per_workgroup
            )));
        }

        let storage = reflection
            .bindings
            .iter()
            .filter(|b| b.uniform_struct.is_none())
            .count() as u32;
        if storage > limits.max_storage_buffers_per_shader_stage {
            return Err(shader_error(format!(
                "`{entry}` binds {storage} storage buffers and the adapter allows {} \
                 (max_storage_buffers_per_shader_stage); fido needs an adapter or device with at least 8",
                limits.max_storage_buffers_per_shader_stage
            )));
        }
        let scope = device.push_error_scope(wgpu::ErrorFilter::Validation);
        let layout_entries: Vec<wgpu::BindGroupLayoutEntry> = reflection
            .bindings
            .iter()
            .map(|b| wgpu::BindGroupLayoutEntry {
                binding: b.binding,
                visibility: wgpu::ShaderStages::COMPUTE,
                ty: wgpu::BindingType::Buffer {
                    ty: if b.uniform_struct.is_some() {
                        wgpu::BufferBindingType::Uniform
                    } else {
                        wgpu::BufferBindingType::Storage {
                            read_only: b.read_only,
                        }
                    },
                    has_dynamic_offset: false,
                    min_binding_size: None,
                },
                count: None,
            })
            .collect();
        let layout = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
            label: Some(kernel.name),
            entries: &layout_entries,
        });
        let pipeline_layout = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
            label: Some(kernel.name),
            bind_group_layouts: &[Some(&layout)],
            immediate_size: 0,
        });
        let pipeline = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label: Some(&format!("{}::{entry}", kernel.name)),
            layout: Some(&pipeline_layout),
            module: &parsed.shader,
            entry_point: Some(entry),
            compilation_options: wgpu::PipelineCompilationOptions {
                constants,
                zero_initialize_workgroup_memory: false,
            },
            cache: None,
        });
        if let Some(err) = pollster::block_on(scope.pop()) {
            return Err(shader_error(err.to_string()));
        }
        Ok(CompiledPipeline {
            label: format!("{}::{entry}", kernel.name),
            pipeline,
            layout,
            storage_bindings: reflection
                .bindings
                .iter()
                .filter(|b| b.uniform_struct.is_none())
                .map(|b| StorageBinding {
                    binding: b.binding,
                    name: b.name.clone(),
                    read_only: b.read_only,
                })
                .collect(),
            params_struct: reflection
                .bindings
                .iter()
                .find(|b| b.binding == PARAMS_BINDING)
                .and_then(|b| b.uniform_struct.clone()),
            declared: declared_bindings(&parsed.module),
            workgroup_size: reflection.workgroup_size,
            workgroup_bytes: reflection.workgroup_bytes,
        })
    }
}
