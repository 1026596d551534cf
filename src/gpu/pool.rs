//! A buffer pool by size class.
//!
//! Creating a buffer and binding it for the first time is expensive on every backend, and an
//! optimisation loop asks for the same sizes step after step. Buffers are rounded up to a size
//! class (four classes per octave, so at most 19% waste) and returned to a free list when the
//! last tensor using them is dropped. A buffer that stays idle for [`MAX_IDLE_FLUSHES`]
//! submissions is released: a loop's own sizes come back every step and are kept, while
//! one-off sizes (set-up passes, a different batch) stop holding memory.

use std::collections::HashMap;
use std::sync::{Arc, Weak};

use crate::gpu::context::GpuInner;
use crate::{Error, Result};

/// Buffer usages fido allocates. Each has its own free lists.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub enum BufferKind {
    /// Tensors: storage, copy source and destination.
    Storage,
    /// Per-submission kernel parameters.
    Uniform,
    /// Host readback.
    Staging,
}

impl BufferKind {
    fn usages(self) -> wgpu::BufferUsages {
        use wgpu::BufferUsages as U;
        match self {
            Self::Storage => U::STORAGE | U::COPY_SRC | U::COPY_DST,
            Self::Uniform => U::UNIFORM | U::COPY_DST,
            Self::Staging => U::MAP_READ | U::COPY_DST,
        }
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PoolStats {
    pub created: u64,
    pub reused: u64,
    pub bytes_created: u64,
    /// Bytes held in free lists now.
    pub bytes_idle: u64,
    pub released: u64,
    /// Bytes of the released buffers; `bytes_created - bytes_released` is what fido holds.
    pub bytes_released: u64,
}

/// Submissions a free buffer may sit unused before the pool releases it.
pub const MAX_IDLE_FLUSHES: u64 = 4;

#[derive(Default)]
pub struct BufferPool {
    /// Free buffers by (kind, size class), each with the flush count when it came back.
    free: HashMap<(BufferKind, u64), Vec<(wgpu::Buffer, u64)>>,
    flushes: u64,
    stats: PoolStats,
    /// The most bytes fido may hold on the device, when a host or `--gpu-memory` caps it.
    budget: Option<u64>,
}

/// The smallest size class holding `bytes`: 4, 5, 6 or 7 sixteenths-of-a-power-of-two steps.
pub fn size_class(bytes: u64) -> u64 {
    let bytes = bytes.max(256);
    let top = 63 - bytes.leading_zeros() as u64; // floor(log2)
    let base = 1u64 << top;
    if bytes == base {
        return base;
    }
    let quarter = base / 4;
    let steps = bytes.saturating_sub(base).div_ceil(quarter);
    base + steps * quarter
}

impl BufferPool {
    pub fn stats(&self) -> PoolStats {
        self.stats
    }

    /// Bytes of device memory fido's buffers take now, idle ones included.
    fn held(&self) -> u64 {
        self.stats.bytes_created - self.stats.bytes_released
    }

    /// Cap what the pool may hold; `None` lifts the cap.
    pub(crate) fn set_budget(&mut self, bytes: Option<u64>) {
        self.budget = bytes;
    }

    /// A buffer of at least `bytes`. An allocation the device refuses is retried once after
    /// releasing every idle buffer, then reported as [`Error::OutOfMemory`].
    pub(crate) fn take(
        &mut self,
        device: &wgpu::Device,
        kind: BufferKind,
        bytes: u64,
    ) -> Result<wgpu::Buffer> {
        let class = size_class(bytes);
        if let Some((buffer, _)) = self.free.get_mut(&(kind, class)).and_then(Vec::pop) {
            self.stats.reused += 1;
            self.stats.bytes_idle -= class;
            return Ok(buffer);
        }
        if let Some(budget) = self.budget {
            // The budget is the device's memory as far as fido is concerned: the same retry
            // after releasing idle buffers, and the same error, as a real allocation failure.
            if self.held() + class > budget {
                self.trim();
            }
            if self.held() + class > budget {
                return Err(Error::OutOfMemory {
                    bytes: class,
                    held: self.held(),
                    budget: Some(budget),
                });
            }
        }
        let create = || {
            // Caught here rather than by the uncaptured-error handler, so the error names the
            // allocation and comes at once instead of at the next sync.
            let scope = device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
            let buffer = device.create_buffer(&wgpu::BufferDescriptor {
                label: Some(match kind {
                    BufferKind::Storage => "fido tensor",
                    BufferKind::Uniform => "fido params",
                    BufferKind::Staging => "fido readback",
                }),
                size: class,
                usage: kind.usages(),
                mapped_at_creation: false,
            });
            pollster::block_on(scope.pop()).is_none().then_some(buffer)
        };
        let buffer = match create() {
            Some(buffer) => buffer,
            None => {
                self.trim();
                create().ok_or(Error::OutOfMemory {
                    bytes: class,
                    held: self.held(),
                    budget: None,
                })?
            }
        };
        self.stats.created += 1;
        self.stats.bytes_created += class;
        Ok(buffer)
    }

    pub(crate) fn give_back(&mut self, kind: BufferKind, buffer: wgpu::Buffer) {
        self.stats.bytes_idle += buffer.size();
        self.free
            .entry((kind, buffer.size()))
            .or_default()
            .push((buffer, self.flushes));
    }

    /// One more submission: release what has been idle too long.
    pub(crate) fn end_flush(&mut self) {
        self.flushes += 1;
        let oldest = self.flushes.saturating_sub(MAX_IDLE_FLUSHES);
        let mut released = (0u64, 0u64);
        for list in self.free.values_mut() {
            // Lists are in return order, and `take` pops the newest, so the stale ones lead.
            let stale = list.iter().take_while(|(_, at)| *at < oldest).count();
            for (buffer, _) in list.drain(..stale) {
                released.0 += 1;
                released.1 += buffer.size();
            }
        }
        self.free.retain(|_, list| !list.is_empty());
        self.stats.released += released.0;
        self.stats.bytes_idle -= released.1;
        self.stats.bytes_released += released.1;
    }

    /// Drop every idle buffer, for hosts that want their memory back between jobs.
    pub fn trim(&mut self) {
        self.stats.released += self.free.values().map(Vec::len).sum::<usize>() as u64;
        self.stats.bytes_released += self.stats.bytes_idle;
        self.stats.bytes_idle = 0;
        self.free.clear();
    }
}

/// A buffer on loan from the pool. It goes back when the last owner drops it.
pub struct PooledBuffer {
    buffer: Option<wgpu::Buffer>,
    kind: BufferKind,
    home: Weak<GpuInner>,
}

impl PooledBuffer {
    pub(crate) fn new(inner: &Arc<GpuInner>, kind: BufferKind, bytes: u64) -> Result<Self> {
        let buffer = inner.pool.lock().unwrap().take(&inner.device, kind, bytes)?;
        Ok(Self {
            buffer: Some(buffer),
            kind,
            home: Arc::downgrade(inner),
        })
    }

    pub fn buffer(&self) -> &wgpu::Buffer {
        self.buffer.as_ref().expect("pooled buffer used after release")
    }
}

impl Drop for PooledBuffer {
    fn drop(&mut self) {
        if let (Some(buffer), Some(home)) = (self.buffer.take(), self.home.upgrade()) {
            if let Ok(mut pool) = home.pool.lock() {
                pool.give_back(self.kind, buffer);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::size_class;

    #[test]
    fn size_classes_cover_the_request_with_bounded_waste() {
        let mut bytes = 1u64;
        while bytes < (1 << 34) {
            let c = size_class(bytes);
            assert!(c >= bytes, "{bytes} -> {c}");
            assert!(c >= 256);
            if bytes > 256 {
                assert!((c as f64) / (bytes as f64) <= 1.25 + 1e-9, "{bytes} -> {c}");
            }
            assert_eq!(size_class(c), c, "classes are fixed points");
            bytes = bytes * 5 / 4 + 3;
        }
    }
}
