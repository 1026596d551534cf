//! The GPU context: which adapter, which device, and the shared runtime state
//! (buffer pool, pipeline cache, pending dispatches) that every tensor op uses.
//!
//! A [`Gpu`] is either created by fido itself from an [`AdapterChoice`], or built
//! around a `wgpu::Device` and `wgpu::Queue` that a host application already owns.

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;
use std::sync::{Arc, Mutex};

use crate::gpu::pipelines::PipelineCache;
use crate::gpu::pool::BufferPool;
use crate::gpu::recorder::Recorder;
use crate::{Error, Result};

/// Which adapter to run on: `auto` picks the best hardware GPU, else a software one.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum AdapterSelector {
    #[default]
    Auto,
    Gpu,
    Cpu,
    Name(String),
}

/// Which graphics API to go through.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum BackendSelector {
    #[default]
    Auto,
    Vulkan,
    Metal,
    Dx12,
    Gl,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AdapterChoice {
    pub adapter: AdapterSelector,
    pub backend: BackendSelector,
}

impl FromStr for AdapterSelector {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Ok(match s.to_ascii_lowercase().as_str() {
            "auto" => Self::Auto,
            "gpu" => Self::Gpu,
            "cpu" => Self::Cpu,
            "" => return Err(Error::InvalidArgument("--adapter must not be empty".into())),
            _ => Self::Name(s.to_string()),
        })
    }
}

impl FromStr for BackendSelector {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Ok(match s.to_ascii_lowercase().as_str() {
            "auto" => Self::Auto,
            "vulkan" | "vk" => Self::Vulkan,
            "metal" => Self::Metal,
            "dx12" | "d3d12" => Self::Dx12,
            "gl" | "gles" | "opengl" => Self::Gl,
            other => {
                return Err(Error::InvalidArgument(format!(
                    "unknown backend `{other}`; expected auto, vulkan, metal, dx12 or gl"
                )))
            }
        })
    }
}

impl fmt::Display for AdapterSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Auto => f.write_str("auto"),
            Self::Gpu => f.write_str("gpu"),
            Self::Cpu => f.write_str("cpu"),
            Self::Name(n) => f.write_str(n),
        }
    }
}

impl BackendSelector {
    pub fn backends(self) -> wgpu::Backends {
        match self {
            Self::Auto => wgpu::Backends::all(),
            Self::Vulkan => wgpu::Backends::VULKAN,
            Self::Metal => wgpu::Backends::METAL,
            Self::Dx12 => wgpu::Backends::DX12,
            Self::Gl => wgpu::Backends::GL,
        }
    }
}

/// Which shape of kernels to run: software adapters and GPUs want different ones (see
/// `docs/ARCHITECTURE.md`, "Kernel profiles"). Chosen from the adapter's device type;
/// `FIDO_KERNELS=cpu|gpu` forces one, and so does [`Gpu::set_kernel_profile`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum KernelProfile {
    Cpu,
    Gpu,
}

impl KernelProfile {
    /// The name `FIDO_KERNELS` and `fido info` use.
    pub fn name(self) -> &'static str {
        match self {
            KernelProfile::Cpu => "cpu",
            KernelProfile::Gpu => "gpu",
        }
    }

    /// The profile for an adapter: `cpu` for software adapters, `gpu` for the rest.
    pub fn for_adapter(info: &wgpu::AdapterInfo) -> KernelProfile {
        if is_software(info) {
            KernelProfile::Cpu
        } else {
            KernelProfile::Gpu
        }
    }

    /// `FIDO_KERNELS`, if set.
    pub fn from_env() -> Result<Option<KernelProfile>> {
        match std::env::var("FIDO_KERNELS") {
            Err(std::env::VarError::NotPresent) => Ok(None),
            Ok(v) if v.is_empty() => Ok(None),
            Ok(v) => v.parse().map(Some),
            Err(std::env::VarError::NotUnicode(_)) => Err(Error::InvalidArgument(
                "FIDO_KERNELS must be `cpu` or `gpu`".into(),
            )),
        }
    }
}

impl std::str::FromStr for KernelProfile {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "cpu" => Ok(KernelProfile::Cpu),
            "gpu" => Ok(KernelProfile::Gpu),
            other => Err(Error::InvalidArgument(format!(
                "FIDO_KERNELS is `{other}`; it must be `cpu` or `gpu`"
            ))),
        }
    }
}

/// An asynchronous device error, kept until the next sync reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DeviceError {
    /// An allocation failed: `bytes` of it (0 when wgpu does not say), past `budget` when
    /// that is what ran out.
    OutOfMemory {
        bytes: u64,
        budget: Option<u64>,
    },
    Other(String),
}

/// A handle to the device and the engine state on it. Cheap to clone; all clones share state.
#[derive(Clone)]
pub struct Gpu {
    pub(crate) inner: Arc<GpuInner>,
}

pub(crate) struct GpuInner {
    pub device: wgpu::Device,
    pub queue: wgpu::Queue,
    pub info: wgpu::AdapterInfo,
    pub limits: wgpu::Limits,
    pub features: wgpu::Features,
    pub pool: Mutex<BufferPool>,
    pub pipelines: Mutex<PipelineCache>,
    pub recorder: Mutex<Recorder>,
    pub kernel_profile: Mutex<KernelProfile>,
    /// Per-kernel tuning values (tile shapes) set by hosts, benchmarks and tests, one per
    /// type; the kernel families define the types, so this layer need not know them.
    pub tuning: Mutex<HashMap<TypeId, Box<dyn Any + Send + Sync>>>,
    /// Device errors nobody captured, surfaced at the next sync or readback. Only collected
    /// on devices fido created; a host's device keeps the host's own error handler.
    pub uncaptured: Arc<Mutex<Vec<DeviceError>>>,
    /// Why the device was lost, once it is; set by the device-lost callback.
    pub lost: Arc<Mutex<Option<String>>>,
}

/// Features fido uses when present; none is required.
const WANTED_FEATURES: wgpu::Features = wgpu::Features::TIMESTAMP_QUERY
    .union(wgpu::Features::TIMESTAMP_QUERY_INSIDE_ENCODERS)
    .union(wgpu::Features::SUBGROUP)
    .union(wgpu::Features::SHADER_F16);

impl Gpu {
    /// Choose an adapter and create fido's own device on it, with the adapter's real limits.
    pub fn new(choice: &AdapterChoice) -> Result<Gpu> {
        Self::with_instance(&new_instance(choice.backend), choice, |_| true)
    }

    /// [`Gpu::new`] on a caller's instance, among the adapters `usable` accepts: a window
    /// passes one that made its surface and a test of `adapter.is_surface_supported`, so
    /// the engine computes and the window draws on one device.
    pub fn with_instance(
        instance: &wgpu::Instance,
        choice: &AdapterChoice,
        usable: impl Fn(&wgpu::Adapter) -> bool,
    ) -> Result<Gpu> {
        let forced = KernelProfile::from_env()?;
        let adapters = pollster::block_on(instance.enumerate_adapters(choice.backend.backends()));
        if adapters.is_empty() && choice.backend != BackendSelector::Auto {
            return Err(Error::NoAdapter {
                detail: format!(" on the {:?} backend", choice.backend),
            });
        }
        let adapters: Vec<_> = adapters.into_iter().filter(|a| usable(a)).collect();
        let adapter = pick_adapter(adapters, &choice.adapter)?;
        let info = adapter.get_info();
        let features = adapter.features() & WANTED_FEATURES;
        let limits = adapter.limits();
        let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
            label: Some("fido"),
            required_features: features,
            required_limits: limits.clone(),
            experimental_features: wgpu::ExperimentalFeatures::disabled(),
            memory_hints: wgpu::MemoryHints::Performance,
            trace: wgpu::Trace::Off,
        }))
        .map_err(|e| Error::DeviceRequest {
            adapter: info.name.clone(),
            reason: e.to_string(),
        })?;
        let gpu = Self::assemble(device, queue, info, forced);
        gpu.watch_device();
        Ok(gpu)
    }

    /// Route fido's own device's asynchronous failures to the next sync or readback instead
    /// of wgpu's default, a panic: errors nobody captured, and the device's loss.
    fn watch_device(&self) {
        let uncaptured = Arc::clone(&self.inner.uncaptured);
        self.inner
            .device
            .on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
                let error = match e {
                    wgpu::Error::OutOfMemory { .. } => DeviceError::OutOfMemory {
                        bytes: 0,
                        budget: None,
                    },
                    other => DeviceError::Other(other.to_string()),
                };
                uncaptured.lock().unwrap().push(error);
            }));
        let lost = Arc::clone(&self.inner.lost);
        self.inner
            .device
            .set_device_lost_callback(move |reason, message| {
                let why = match reason {
                    wgpu::DeviceLostReason::Destroyed => format!("destroyed: {message}"),
                    wgpu::DeviceLostReason::Unknown => message,
                };
                lost.lock().unwrap().get_or_insert(why);
            });
    }

    /// Run on a device that a host application created and keeps using.
    ///
    /// `info` describes the adapter for reports; pass `adapter.get_info()` when you have it.
    /// Limits and features are read from the device, so fido never exceeds what the host asked for.
    /// The kernel profile follows `info` (a valid `FIDO_KERNELS` wins); a host can set it.
    pub fn from_device(device: wgpu::Device, queue: wgpu::Queue, info: wgpu::AdapterInfo) -> Gpu {
        Self::assemble(device, queue, info, KernelProfile::from_env().ok().flatten())
    }

    /// `forced` is the kernel profile `FIDO_KERNELS` asks for, if any.
    fn assemble(
        device: wgpu::Device,
        queue: wgpu::Queue,
        info: wgpu::AdapterInfo,
        forced: Option<KernelProfile>,
    ) -> Gpu {
        let limits = device.limits();
        let features = device.features();
        let recorder = Recorder::new(&limits);
        let kernel_profile = Mutex::new(forced.unwrap_or_else(|| KernelProfile::for_adapter(&info)));
        Gpu {
            inner: Arc::new(GpuInner {
                device,
                queue,
                info,
                limits,
                features,
                pool: Mutex::new(BufferPool::default()),
                pipelines: Mutex::new(PipelineCache::default()),
                recorder: Mutex::new(recorder),
                kernel_profile,
                tuning: Mutex::new(HashMap::new()),
                uncaptured: Arc::new(Mutex::new(Vec::new())),
                lost: Arc::new(Mutex::new(None)),
            }),
        }
    }

    pub fn device(&self) -> &wgpu::Device {
        &self.inner.device
    }
    pub fn queue(&self) -> &wgpu::Queue {
        &self.inner.queue
    }
    pub fn info(&self) -> &wgpu::AdapterInfo {
        &self.inner.info
    }
    pub fn limits(&self) -> &wgpu::Limits {
        &self.inner.limits
    }
    pub fn features(&self) -> wgpu::Features {
        self.inner.features
    }
    /// The shape of kernels launches choose.
    pub fn kernel_profile(&self) -> KernelProfile {
        *self.inner.kernel_profile.lock().unwrap()
    }
    /// Whether storage loads run as a per-lane loop (lavapipe before Mesa 25.1; see
    /// `LAVAPIPE.md`). There a vec4 load costs one lane branch for four values, so packed
    /// vec4 operands beat scalar reads even counting the packing pass; from Mesa 25.1 on a
    /// vec4 load is four gathers and the packing pass is pure cost.
    pub fn per_lane_loads(&self) -> bool {
        let info = &self.inner.info;
        is_software(info) && mesa_version(&info.driver_info).is_none_or(|v| v < (25, 1, 0))
    }
    /// Choose the kernel profile from here on (tests run every variant on one adapter).
    pub fn set_kernel_profile(&self, profile: KernelProfile) {
        *self.inner.kernel_profile.lock().unwrap() = profile;
    }
    /// The tuning value of type `T` (a kernel family's tile shape, say), if one was set.
    pub fn tuning<T: Any + Clone + Send + Sync>(&self) -> Option<T> {
        let map = self.inner.tuning.lock().unwrap();
        map.get(&TypeId::of::<T>())
            .and_then(|v| v.downcast_ref::<T>())
            .cloned()
    }
    /// Set (or, with `None`, clear) the tuning value of type `T`; launches read it from then on.
    pub fn set_tuning<T: Any + Clone + Send + Sync>(&self, value: Option<T>) {
        let mut map = self.inner.tuning.lock().unwrap();
        match value {
            Some(v) => map.insert(TypeId::of::<T>(), Box::new(v)),
            None => map.remove(&TypeId::of::<T>()),
        };
    }
    pub fn has_timestamps(&self) -> bool {
        self.inner.features.contains(wgpu::Features::TIMESTAMP_QUERY)
    }

    /// A one-line description such as `llvmpipe (LLVM 15.0.6, 256 bits) [Vulkan, Cpu]`.
    pub fn adapter_name(&self) -> String {
        describe(&self.inner.info)
    }

    /// The largest buffer one binding may cover.
    pub fn max_binding_bytes(&self) -> u64 {
        u64::from(self.inner.limits.max_storage_buffer_binding_size).min(self.inner.limits.max_buffer_size)
    }

    /// Let fido hold at most `bytes` of device memory (`None`: no cap beyond the device's
    /// own). An allocation past the cap first releases idle buffers, then fails with
    /// [`Error::OutOfMemory`], exactly as a device that ran out would. A host that shares its
    /// device with its own rendering uses it to bound fido's share; `--gpu-memory` sets it.
    pub fn set_memory_budget(&self, bytes: Option<u64>) {
        self.inner.pool.lock().unwrap().set_budget(bytes);
    }

    /// Statistics of the buffer pool: (buffers created, reuses).
    pub fn pool_stats(&self) -> crate::gpu::pool::PoolStats {
        self.inner.pool.lock().unwrap().stats()
    }

    /// The device's state as one error: lost, out of memory, or the errors collected since
    /// the last call. Every sync and readback calls it.
    pub fn take_device_error(&self) -> Result<()> {
        if let Some(reason) = self.inner.lost.lock().unwrap().clone() {
            return Err(Error::DeviceLost { reason });
        }
        let mut list = self.inner.uncaptured.lock().unwrap();
        if list.is_empty() {
            return Ok(());
        }
        let errors = std::mem::take(&mut *list);
        drop(list);
        if let Some(&DeviceError::OutOfMemory { bytes, budget }) = errors
            .iter()
            .find(|e| matches!(e, DeviceError::OutOfMemory { .. }))
        {
            let stats = self.pool_stats();
            return Err(Error::OutOfMemory {
                bytes,
                held: stats.bytes_created - stats.bytes_released,
                budget,
            });
        }
        let text: Vec<String> = errors
            .into_iter()
            .filter_map(|e| match e {
                DeviceError::Other(text) => Some(text),
                DeviceError::OutOfMemory { .. } => None,
            })
            .collect();
        Err(Error::Gpu(text.join("; ")))
    }

    /// Number of pipelines compiled so far.
    pub fn pipelines_compiled(&self) -> usize {
        self.inner.pipelines.lock().unwrap().len()
    }
}

impl fmt::Debug for Gpu {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Gpu({})", self.adapter_name())
    }
}

pub fn describe(info: &wgpu::AdapterInfo) -> String {
    format!("{} [{:?}, {:?}]", info.name, info.backend, info.device_type)
}

/// The first Mesa release whose lavapipe compiles workgroup-uniform storage loads to scalar
/// loads instead of per-lane loops.
pub const FAST_LAVAPIPE_MESA: u32 = 25;

/// The driver's version: `major.minor.patch` of Mesa where the driver says `Mesa X.Y.Z`,
/// else the driver's own description.
pub fn driver_version(info: &wgpu::AdapterInfo) -> String {
    match mesa_version(&info.driver_info) {
        Some((major, minor, patch)) => format!("Mesa {major}.{minor}.{patch}"),
        None => info.driver_info.clone(),
    }
}

/// `(major, minor, patch)` from a driver description such as
/// `Mesa 25.0.7-2~bpo12+1 (LLVM 15.0.6)`.
pub fn mesa_version(driver_info: &str) -> Option<(u32, u32, u32)> {
    let rest = &driver_info[driver_info.find("Mesa ")? + "Mesa ".len()..];
    let digits = |s: &str| -> Option<u32> {
        let end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
        s[..end].parse().ok()
    };
    let mut parts = rest.splitn(3, '.');
    let major = digits(parts.next()?)?;
    let minor = parts.next().and_then(digits).unwrap_or(0);
    let patch = parts.next().and_then(digits).unwrap_or(0);
    Some((major, minor, patch))
}

/// On a software adapter from a Mesa older than [`FAST_LAVAPIPE_MESA`]: how much an upgrade
/// gains and how to get one.
pub fn upgrade_advice(info: &wgpu::AdapterInfo) -> Option<String> {
    if info.device_type != wgpu::DeviceType::Cpu {
        return None;
    }
    let (major, minor, patch) = mesa_version(&info.driver_info)?;
    (major < FAST_LAVAPIPE_MESA).then(|| {
        format!(
            "lavapipe from Mesa {major}.{minor}.{patch} runs fido about 2.5-3x slower than Mesa \
             {FAST_LAVAPIPE_MESA} or newer (a FIDO step: 18 s against 6 s on two cores). On Debian 12, \
             tools/setup-debian.sh installs Mesa 25 from bookworm-backports; elsewhere install \
             mesa-vulkan-drivers {FAST_LAVAPIPE_MESA} or newer from your distribution"
        )
    })
}

fn new_instance(backend: BackendSelector) -> wgpu::Instance {
    let mut desc = wgpu::InstanceDescriptor::new_without_display_handle();
    desc.backends = backend.backends();
    wgpu::Instance::new(desc)
}

/// Every adapter the selected backends expose, for `fido info`.
pub fn list_adapters(backend: BackendSelector) -> Vec<wgpu::Adapter> {
    let instance = new_instance(backend);
    pollster::block_on(instance.enumerate_adapters(backend.backends()))
}

fn is_software(info: &wgpu::AdapterInfo) -> bool {
    info.device_type == wgpu::DeviceType::Cpu
}

/// Rank hardware above software, discrete above integrated, Vulkan/Metal/DX12 above GL.
fn rank(info: &wgpu::AdapterInfo) -> u32 {
    let ty = match info.device_type {
        wgpu::DeviceType::DiscreteGpu => 40,
        wgpu::DeviceType::IntegratedGpu => 30,
        wgpu::DeviceType::VirtualGpu => 20,
        wgpu::DeviceType::Other => 10,
        wgpu::DeviceType::Cpu => 0,
    };
    let api = match info.backend {
        wgpu::Backend::Gl => 0,
        _ => 1,
    };
    ty + api
}

pub(crate) fn pick_adapter(adapters: Vec<wgpu::Adapter>, wanted: &AdapterSelector) -> Result<wgpu::Adapter> {
    if adapters.is_empty() {
        return Err(Error::NoAdapter {
            detail: String::new(),
        });
    }
    let names = adapters
        .iter()
        .map(|a| describe(&a.get_info()))
        .collect::<Vec<_>>()
        .join("; ");
    let mut candidates: Vec<wgpu::Adapter> = adapters
        .into_iter()
        .filter(|a| {
            let info = a.get_info();
            match wanted {
                AdapterSelector::Auto => true,
                AdapterSelector::Gpu => !is_software(&info),
                AdapterSelector::Cpu => is_software(&info),
                AdapterSelector::Name(n) => info.name.to_lowercase().contains(&n.to_lowercase()),
            }
        })
        .collect();
    candidates.sort_by_key(|a| std::cmp::Reverse(rank(&a.get_info())));
    match candidates.into_iter().next() {
        Some(a) => Ok(a),
        None => match wanted {
            AdapterSelector::Gpu => Err(Error::NoAdapter {
                detail: format!(" of kind `gpu` (found only: {names})"),
            }),
            _ => Err(Error::AdapterNotFound {
                wanted: wanted.to_string(),
                available: names,
            }),
        },
    }
}
