//! One error type for the library. Every variant names the problem in words a user can act on.

use thiserror::Error;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, Error)]
pub enum Error {
    #[error("no usable GPU adapter{detail}. On Debian/Ubuntu install the software Vulkan driver with `apt-get install mesa-vulkan-drivers libvulkan1`, or try `--backend gl`")]
    NoAdapter { detail: String },

    #[error("no adapter matches `--adapter {wanted}`; available: {available}")]
    AdapterNotFound { wanted: String, available: String },

    #[error("could not create a device on `{adapter}`: {reason}")]
    DeviceRequest { adapter: String, reason: String },

    #[error("shape error in {op}: {detail}")]
    Shape { op: &'static str, detail: String },

    #[error("invalid argument: {0}")]
    InvalidArgument(String),

    #[error(
        "kernel `{kernel}::{entry}` needs {needed} bytes of workgroup storage but the adapter allows {limit} (max_compute_workgroup_storage_size); choose smaller tiles or FIDO_KERNELS=cpu, whose kernels need none"
    )]
    WorkgroupStorage {
        kernel: &'static str,
        entry: String,
        needed: u64,
        limit: u32,
    },

    #[error("kernel `{kernel}` failed to compile: {reason}")]
    Shader { kernel: &'static str, reason: String },

    #[error("tensor of {bytes} bytes exceeds the adapter's storage-binding limit of {limit} bytes (max_storage_buffer_binding_size); lower --batch or the input size, or use an adapter with a larger limit")]
    TooLarge { bytes: u64, limit: u64 },

    #[error("the GPU ran out of memory creating a {bytes}-byte buffer (fido holds {held} bytes{}); lower --batch, use a smaller model or input, or free the GPU from other programs", budget.map(|b| format!(", its limit is {b} bytes: raise --gpu-memory")).unwrap_or_default())]
    OutOfMemory {
        bytes: u64,
        held: u64,
        /// The cap `Gpu::set_memory_budget` set, when that is what ran out.
        budget: Option<u64>,
    },

    #[error("the GPU device was lost ({reason}): the driver reset it or the GPU went away, and the work on it is gone; run again, and if it recurs lower --batch or choose another adapter with --adapter")]
    DeviceLost { reason: String },

    #[error("backward of `{op}`: {source}")]
    Backward { op: &'static str, source: Box<Error> },

    #[error("weights: {0}")]
    Weights(String),

    #[error("GPU error: {0}")]
    Gpu(String),

    #[error("{}: {source}", path.display())]
    Io {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
}

impl Error {
    /// Whether the device itself failed (it ran out of memory or was lost), as opposed to
    /// one input being bad: batch work stops on such an error instead of recording it and
    /// going on, because every later item would fail the same way.
    pub fn is_device_fault(&self) -> bool {
        match self {
            Error::OutOfMemory { .. } | Error::DeviceLost { .. } => true,
            Error::Backward { source, .. } => source.is_device_fault(),
            _ => false,
        }
    }

    /// An I/O failure on `path`, for `map_err`: `fs::read(p).map_err(Error::io(p))?`.
    pub fn io(path: impl AsRef<std::path::Path>) -> impl FnOnce(std::io::Error) -> Error {
        let path = path.as_ref().to_path_buf();
        move |source| Error::Io { path, source }
    }
}

/// Attach the path an I/O result concerns: `fs::read(p).at(p)?`.
pub trait IoContext<T> {
    fn at(self, path: impl AsRef<std::path::Path>) -> Result<T>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn at(self, path: impl AsRef<std::path::Path>) -> Result<T> {
        self.map_err(Error::io(path))
    }
}
