//! GPU tensors: a pooled buffer, a shape and an element type. Always contiguous, row-major.

use std::fmt;
use std::sync::Arc;

use crate::gpu::pool::{BufferKind, PooledBuffer};
use crate::gpu::recorder::Command;
use crate::gpu::Gpu;
use crate::{Error, Result};

/// A tensor's place in its buffer: element `[i0, i1, …]` is at byte
/// `offset_bytes + (i0·strides[0] + i1·strides[1] + …) · dtype.size()`. fido's tensors are
/// contiguous and row-major, starting at byte 0; a host binding the buffer should bind
/// `offset_bytes .. offset_bytes + len_bytes`, or the whole buffer and index from there.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Layout {
    pub shape: Vec<usize>,
    /// In elements, not bytes.
    pub strides: Vec<usize>,
    pub dtype: DType,
    pub offset_bytes: u64,
    pub len_bytes: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DType {
    F32,
    U32,
}

impl DType {
    pub fn size(self) -> usize {
        4
    }
}

#[derive(Clone)]
pub struct Tensor {
    gpu: Gpu,
    /// Shared by every tensor that views this buffer (clones and reshapes), so its count says
    /// how many tensors hold the data. Recorded commands hold the inner `Arc` instead: a
    /// pending read does not make the data shared.
    storage: Arc<Storage>,
    shape: Vec<usize>,
    dtype: DType,
}

struct Storage {
    buf: Arc<PooledBuffer>,
}

impl fmt::Debug for Tensor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Tensor({:?}, {:?})", self.shape, self.dtype)
    }
}

pub fn numel(shape: &[usize]) -> usize {
    shape.iter().product()
}

impl Tensor {
    /// An uninitialised tensor from the pool. Kernels that write every element use this.
    pub fn empty(gpu: &Gpu, shape: &[usize], dtype: DType) -> Result<Tensor> {
        let bytes = (numel(shape) * dtype.size()) as u64;
        if bytes > gpu.max_binding_bytes() {
            return Err(Error::TooLarge {
                bytes,
                limit: gpu.max_binding_bytes(),
            });
        }
        let buf = Arc::new(PooledBuffer::new(&gpu.inner, BufferKind::Storage, bytes.max(4))?);
        Ok(Tensor {
            gpu: gpu.clone(),
            storage: Arc::new(Storage { buf }),
            shape: shape.to_vec(),
            dtype,
        })
    }

    pub fn zeros(gpu: &Gpu, shape: &[usize]) -> Result<Tensor> {
        let t = Self::empty(gpu, shape, DType::F32)?;
        gpu.record(Command::Clear {
            dst: Arc::clone(&t.storage.buf),
            bytes: t.bytes().max(4),
        });
        Ok(t)
    }

    pub fn from_slice(gpu: &Gpu, shape: &[usize], data: &[f32]) -> Result<Tensor> {
        Self::upload(gpu, shape, DType::F32, bytemuck::cast_slice(data), data.len())
    }

    pub fn from_u32(gpu: &Gpu, shape: &[usize], data: &[u32]) -> Result<Tensor> {
        Self::upload(gpu, shape, DType::U32, bytemuck::cast_slice(data), data.len())
    }

    pub fn full(gpu: &Gpu, shape: &[usize], value: f32) -> Result<Tensor> {
        Self::from_slice(gpu, shape, &vec![value; numel(shape)])
    }

    fn upload(gpu: &Gpu, shape: &[usize], dtype: DType, bytes: &[u8], len: usize) -> Result<Tensor> {
        if len != numel(shape) {
            return Err(Error::Shape {
                op: "upload",
                detail: format!(
                    "{len} values do not fill shape {shape:?} ({} elements)",
                    numel(shape)
                ),
            });
        }
        let t = Self::empty(gpu, shape, dtype)?;
        if !bytes.is_empty() {
            // A fresh pooled buffer is referenced by no pending command, so writing it now
            // cannot overtake recorded work.
            gpu.queue().write_buffer(t.storage.buf.buffer(), 0, bytes);
        }
        Ok(t)
    }

    pub fn gpu(&self) -> &Gpu {
        &self.gpu
    }
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }
    pub fn dtype(&self) -> DType {
        self.dtype
    }
    pub fn numel(&self) -> usize {
        numel(&self.shape)
    }
    pub fn rank(&self) -> usize {
        self.shape.len()
    }
    pub fn bytes(&self) -> u64 {
        (self.numel() * self.dtype.size()) as u64
    }

    /// The underlying buffer, for hosts that bind it in their own pipelines. It may be
    /// larger than the tensor (buffers come in size classes): [`Tensor::layout`] says
    /// which bytes are the tensor's.
    pub fn buffer(&self) -> &wgpu::Buffer {
        self.storage.buf.buffer()
    }

    /// Where the values lie in [`Tensor::buffer`], for a host's shader that reads them.
    pub fn layout(&self) -> Layout {
        let mut strides = vec![1usize; self.shape.len()];
        for d in (0..self.shape.len().saturating_sub(1)).rev() {
            strides[d] = strides[d + 1] * self.shape[d + 1];
        }
        Layout {
            shape: self.shape.clone(),
            strides,
            dtype: self.dtype,
            offset_bytes: 0,
            len_bytes: self.bytes(),
        }
    }

    pub(crate) fn pooled(&self) -> &Arc<PooledBuffer> {
        &self.storage.buf
    }

    /// The same data under another shape with the same number of elements.
    pub fn reshape(&self, shape: &[usize]) -> Result<Tensor> {
        if numel(shape) != self.numel() {
            return Err(Error::Shape {
                op: "reshape",
                detail: format!("cannot view {:?} as {shape:?}", self.shape),
            });
        }
        Ok(Tensor {
            shape: shape.to_vec(),
            ..self.clone()
        })
    }

    /// Download to the host. Flushes pending work and blocks until it is done.
    pub fn to_vec(&self) -> Result<Vec<f32>> {
        if self.dtype != DType::F32 {
            return Err(Error::InvalidArgument(format!(
                "to_vec on a {:?} tensor; use to_vec_u32",
                self.dtype
            )));
        }
        let bytes = self.gpu.read_bytes(&self.storage.buf, self.bytes())?;
        Ok(bytemuck::pod_collect_to_vec(&bytes))
    }

    pub fn to_vec_u32(&self) -> Result<Vec<u32>> {
        if self.dtype != DType::U32 {
            return Err(Error::InvalidArgument(format!(
                "to_vec_u32 on a {:?} tensor",
                self.dtype
            )));
        }
        let bytes = self.gpu.read_bytes(&self.storage.buf, self.bytes())?;
        Ok(bytemuck::pod_collect_to_vec(&bytes))
    }

    /// Download a single-element tensor.
    pub fn item(&self) -> Result<f32> {
        if self.numel() != 1 {
            return Err(Error::Shape {
                op: "item",
                detail: format!("shape {:?} has {} elements", self.shape, self.numel()),
            });
        }
        Ok(self.to_vec()?[0])
    }

    /// A copy in a new buffer, recorded like any other op.
    pub fn deep_clone(&self) -> Result<Tensor> {
        let t = Self::empty(&self.gpu, &self.shape, self.dtype)?;
        self.gpu.record(Command::Copy {
            src: Arc::clone(&self.storage.buf),
            src_offset: 0,
            dst: Arc::clone(&t.storage.buf),
            dst_offset: 0,
            bytes: self.bytes().div_ceil(4) * 4,
        });
        Ok(t)
    }

    /// Whether both tensors view the same buffer.
    pub fn aliases(&self, other: &Tensor) -> bool {
        Arc::ptr_eq(&self.storage, &other.storage)
    }

    /// Whether this is the only tensor that holds its buffer, so writing it in place
    /// changes no other tensor's value.
    pub fn is_sole_holder(&self) -> bool {
        Arc::strong_count(&self.storage) == 1
    }

    pub(crate) fn expect_f32(&self, op: &'static str) -> Result<()> {
        if self.dtype != DType::F32 {
            return Err(Error::Shape {
                op,
                detail: format!("expected an f32 tensor, got {:?}", self.dtype),
            });
        }
        Ok(())
    }

    pub(crate) fn same_gpu(&self, other: &Tensor, op: &'static str) -> Result<()> {
        if !Arc::ptr_eq(&self.gpu.inner, &other.gpu.inner) {
            return Err(Error::InvalidArgument(format!(
                "{op}: tensors live on different devices"
            )));
        }
        Ok(())
    }
}
