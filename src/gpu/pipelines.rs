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

/// One WGSL kernel family, embedded in the binary.
#[derive(Clone, Copy, Debug)]
pub struct Kernel {
    pub name: &'static str,
    pub source: &'static str,
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
    /// Storage bindings (numbers ≥ 1) the entry point uses, ascending, with whether each is read-only.
    pub storage_bindings: Vec<(u32, bool)>,
    pub uses_params: bool,
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

/// Reflection of one entry point after override constants are applied.
#[derive(Clone, Debug)]
pub struct EntryReflection {
    pub workgroup_size: [u32; 3],
    pub workgroup_bytes: u64,
    /// (binding, is_uniform, read_only) for each used global in group 0.
    pub bindings: Vec<(u32, bool, bool)>,
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
        match var.space {
            naga::AddressSpace::WorkGroup => workgroup_bytes += u64::from(layouter[var.ty].size),
            naga::AddressSpace::Uniform => {
                if let Some(b) = &var.binding {
                    bindings.push((b.binding, true, true));
                }
            }
            naga::AddressSpace::Storage { access } => {
                if let Some(b) = &var.binding {
                    bindings.push((b.binding, false, !access.contains(naga::StorageAccess::STORE)));
                }
            }
            _ => {}
        }
    }
    bindings.sort();
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

        let scope = device.push_error_scope(wgpu::ErrorFilter::Validation);
        let layout_entries: Vec<wgpu::BindGroupLayoutEntry> = reflection
            .bindings
            .iter()
            .map(|&(binding, uniform, read_only)| wgpu::BindGroupLayoutEntry {
                binding,
                visibility: wgpu::ShaderStages::COMPUTE,
                ty: wgpu::BindingType::Buffer {
                    ty: if uniform {
                        wgpu::BufferBindingType::Uniform
                    } else {
                        wgpu::BufferBindingType::Storage { read_only }
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
                .filter(|b| b.0 != PARAMS_BINDING)
                .map(|&(binding, _, read_only)| (binding, read_only))
                .collect(),
            uses_params: reflection.bindings.iter().any(|b| b.0 == PARAMS_BINDING),
            workgroup_size: reflection.workgroup_size,
            workgroup_bytes: reflection.workgroup_bytes,
        })
    }
}
