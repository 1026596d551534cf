//! The recorder batches dispatches into one submission.
//!
//! Ops do not touch a command encoder. They append a [`Command`] here, and the recorder
//! encodes everything pending into one compute pass at [`Gpu::flush`]: one parameter upload,
//! one submission. Kernel parameters live in a per-flush arena of 256-byte slots, so a value
//! that changes every step (a learning rate, a seed) never forces a submission or a pipeline rebuild.

use std::sync::Arc;
use std::time::Instant;

use crate::gpu::context::{DeviceError, Gpu, GpuInner};
use crate::gpu::pipelines::{CompiledPipeline, PARAMS_BINDING};
use crate::gpu::pool::{BufferKind, PooledBuffer};
use crate::{Error, Result};

/// Flush on our own after this many pending dispatches, to bound memory held by bind groups.
const AUTO_FLUSH_DISPATCHES: usize = 4096;

/// The workgroup grid of a dispatch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Grid {
    /// `n` workgroups along one axis. Folded into y when `n` exceeds the per-dimension limit;
    /// kernels recover the linear id as `wid.x + wid.y * num_workgroups.x` and bound-check it.
    Linear(u32),
    /// An explicit 3-D grid; each dimension must fit the limit.
    Xyz(u32, u32, u32),
}

pub(crate) enum Command {
    Dispatch {
        pipeline: Arc<CompiledPipeline>,
        params_offset: Option<u64>,
        buffers: Vec<(u32, Arc<PooledBuffer>, u64)>,
        groups: [u32; 3],
    },
    Copy {
        src: Arc<PooledBuffer>,
        src_offset: u64,
        dst: Arc<PooledBuffer>,
        dst_offset: u64,
        bytes: u64,
    },
    Clear {
        dst: Arc<PooledBuffer>,
        bytes: u64,
    },
}

pub struct Recorder {
    commands: Vec<Command>,
    params: Vec<u8>,
    slot: u64,
    max_groups_per_dim: u32,
    dispatches: usize,
    submissions: u64,
    /// Per-dispatch GPU times by pipeline label, while a dispatch profile is being taken.
    profile: Option<Vec<(String, f64)>>,
}

/// Fold a 1-D workgroup count into x and y.
pub fn fold_grid(n: u32, max_per_dim: u32) -> [u32; 3] {
    if n <= max_per_dim {
        [n.max(1), 1, 1]
    } else {
        let y = n.div_ceil(max_per_dim);
        let x = n.div_ceil(y);
        [x, y, 1]
    }
}

impl Recorder {
    pub(crate) fn new(limits: &wgpu::Limits) -> Self {
        Self {
            commands: Vec::new(),
            params: Vec::new(),
            slot: u64::from(limits.min_uniform_buffer_offset_alignment).max(256),
            max_groups_per_dim: limits.max_compute_workgroups_per_dimension,
            dispatches: 0,
            submissions: 0,
            profile: None,
        }
    }

    fn push_params(&mut self, bytes: &[u8]) -> u64 {
        let offset = self.params.len() as u64;
        assert!(
            bytes.len() as u64 <= self.slot,
            "kernel parameters exceed one {}-byte slot",
            self.slot
        );
        self.params.extend_from_slice(bytes);
        self.params.resize((offset + self.slot) as usize, 0);
        offset
    }
}

/// Where the GPU time of a profiled stretch of work went: one row per pipeline
/// (`family::entry`), slowest first.
#[derive(Clone, Debug, PartialEq)]
pub struct DispatchProfile {
    pub label: String,
    pub dispatches: usize,
    pub ms: f64,
}

/// Timing of one flush, for benchmarks.
#[derive(Clone, Copy, Debug)]
pub struct FlushTiming {
    /// GPU time between the start and end of the compute pass, from timestamp queries.
    pub gpu_ms: Option<f64>,
    /// Wall time from submission to completion, around a blocking poll.
    pub wall_ms: f64,
}

impl Gpu {
    /// Queue one kernel dispatch. `buffers` holds `(buffer, bytes)` for each of the pipeline's
    /// storage bindings, in their order; `params` binds to `@binding(0)` as a uniform block.
    pub(crate) fn dispatch(
        &self,
        pipeline: Arc<CompiledPipeline>,
        params: &[u8],
        buffers: &[(&Arc<PooledBuffer>, u64)],
        grid: Grid,
    ) -> Result<()> {
        let mut rec = self.inner.recorder.lock().unwrap();
        let groups = match grid {
            Grid::Linear(n) => fold_grid(n, rec.max_groups_per_dim),
            Grid::Xyz(x, y, z) => {
                let max = rec.max_groups_per_dim;
                if x > max || y > max || z > max {
                    return Err(Error::InvalidArgument(format!(
                        "dispatch grid {x}×{y}×{z} exceeds the adapter's {max} workgroups per dimension"
                    )));
                }
                [x.max(1), y.max(1), z.max(1)]
            }
        };
        let profiling = rec.profile.is_some();
        if profiling && !rec.commands.is_empty() {
            // Earlier work must not be counted against this dispatch.
            drop(rec);
            self.sync()?;
            rec = self.inner.recorder.lock().unwrap();
        }
        let label = profiling.then(|| pipeline.label.clone());
        let params_offset = pipeline.params_struct.is_some().then(|| rec.push_params(params));
        let mut bound: Vec<(u32, Arc<PooledBuffer>, u64)> =
            Vec::with_capacity(pipeline.storage_bindings.len());
        for (slot, &(buf, bytes)) in pipeline.storage_bindings.iter().zip(buffers) {
            let read_only = slot.read_only;
            // A buffer written by a dispatch may not be bound a second time in it: the
            // backends forbid it, and wgpu would report it only as an uncaptured error.
            let clash = pipeline
                .storage_bindings
                .iter()
                .zip(&bound)
                .any(|(other_slot, (_, other, _))| {
                    Arc::ptr_eq(other, buf) && !(read_only && other_slot.read_only)
                });
            if clash {
                return Err(Error::InvalidArgument(format!(
                    "a buffer written by `{}` is also bound as another of its operands; \
                     use the op's in-place form",
                    pipeline.label
                )));
            }
            bound.push((slot.binding, Arc::clone(buf), bytes.max(4)));
        }
        rec.commands.push(Command::Dispatch {
            pipeline,
            params_offset,
            buffers: bound,
            groups,
        });
        rec.dispatches += 1;
        let full = rec.dispatches >= AUTO_FLUSH_DISPATCHES;
        drop(rec);
        if let Some(label) = label {
            let t = self.flush_timed()?;
            let ms = t.gpu_ms.unwrap_or(t.wall_ms);
            if let Some(rows) = self.inner.recorder.lock().unwrap().profile.as_mut() {
                rows.push((label, ms));
            }
        } else if full {
            self.flush();
        }
        Ok(())
    }

    /// Start timing every dispatch on its own, each in its own submission. Much slower than
    /// normal running; for finding where a step's time goes.
    pub fn start_dispatch_profile(&self) -> Result<()> {
        self.sync()?;
        self.inner.recorder.lock().unwrap().profile = Some(Vec::new());
        Ok(())
    }

    /// Stop profiling and return the time per pipeline, slowest first.
    pub fn finish_dispatch_profile(&self) -> Result<Vec<DispatchProfile>> {
        self.sync()?;
        let rows = self
            .inner
            .recorder
            .lock()
            .unwrap()
            .profile
            .take()
            .unwrap_or_default();
        let mut totals: Vec<DispatchProfile> = Vec::new();
        for (label, ms) in rows {
            match totals.iter_mut().find(|t| t.label == label) {
                Some(t) => {
                    t.dispatches += 1;
                    t.ms += ms;
                }
                None => totals.push(DispatchProfile {
                    label,
                    dispatches: 1,
                    ms,
                }),
            }
        }
        totals.sort_by(|a, b| b.ms.total_cmp(&a.ms));
        Ok(totals)
    }

    pub(crate) fn record(&self, command: Command) {
        self.inner.recorder.lock().unwrap().commands.push(command);
    }

    /// Number of submissions made so far.
    pub fn submissions(&self) -> u64 {
        self.inner.recorder.lock().unwrap().submissions
    }

    /// Number of commands waiting for the next flush.
    pub fn pending(&self) -> usize {
        self.inner.recorder.lock().unwrap().commands.len()
    }

    /// Submit everything recorded so far as one submission. Does not wait.
    pub fn flush(&self) -> Option<wgpu::SubmissionIndex> {
        flush_inner(&self.inner, None)
    }

    /// Submit everything pending, wait for it, and time it. Used by the benchmarks.
    pub fn flush_timed(&self) -> Result<FlushTiming> {
        let inner = &self.inner;
        let query = self.has_timestamps().then(|| {
            let set = inner.device.create_query_set(&wgpu::QuerySetDescriptor {
                label: Some("fido timing"),
                ty: wgpu::QueryType::Timestamp,
                count: 2,
            });
            let resolve = inner.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("fido timing resolve"),
                size: 16,
                usage: wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
                mapped_at_creation: false,
            });
            let read = inner.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("fido timing read"),
                size: 16,
                usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            });
            (set, resolve, read)
        });
        let start = Instant::now();
        let index = flush_inner(inner, query.as_ref().map(|(s, r, d)| (s, r, d)));
        self.wait(index)?;
        let wall_ms = start.elapsed().as_secs_f64() * 1e3;
        let gpu_ms = match query {
            Some((_, _, read)) => {
                let words = map_and_read(inner, &read, 16)?;
                let t: &[u64] = bytemuck::cast_slice(&words);
                let period = inner.queue.get_timestamp_period() as f64;
                (t[1] > t[0]).then(|| (t[1] - t[0]) as f64 * period / 1e6)
            }
            None => None,
        };
        Ok(FlushTiming { gpu_ms, wall_ms })
    }

    /// Flush and block until the GPU has finished all work.
    pub fn sync(&self) -> Result<()> {
        let index = self.flush();
        self.wait(index)
    }

    fn wait(&self, index: Option<wgpu::SubmissionIndex>) -> Result<()> {
        let poll = match index {
            Some(i) => wgpu::PollType::Wait {
                submission_index: Some(i),
                timeout: None,
            },
            None => wgpu::PollType::wait_indefinitely(),
        };
        let polled = self.inner.device.poll(poll);
        // A lost device or an allocation that failed explains a failed poll better than
        // the poll's own error does.
        self.take_device_error()?;
        polled.map_err(|e| Error::Gpu(e.to_string()))?;
        Ok(())
    }

    /// Copy `bytes` from the start of `src` to host memory. Flushes pending work first.
    pub(crate) fn read_bytes(&self, src: &Arc<PooledBuffer>, bytes: u64) -> Result<Vec<u8>> {
        let padded = bytes.div_ceil(4) * 4;
        let staging = Arc::new(PooledBuffer::new(&self.inner, BufferKind::Staging, padded)?);
        self.record(Command::Copy {
            src: Arc::clone(src),
            src_offset: 0,
            dst: Arc::clone(&staging),
            dst_offset: 0,
            bytes: padded,
        });
        let index = self.flush();
        self.wait(index)?;
        let read = map_and_read(&self.inner, staging.buffer(), padded);
        self.take_device_error()?;
        let mut out = read?;
        out.truncate(bytes as usize);
        Ok(out)
    }
}

fn map_and_read(inner: &GpuInner, buffer: &wgpu::Buffer, bytes: u64) -> Result<Vec<u8>> {
    let slice = buffer.slice(0..bytes);
    let (tx, rx) = std::sync::mpsc::channel();
    slice.map_async(wgpu::MapMode::Read, move |r| {
        let _ = tx.send(r);
    });
    inner
        .device
        .poll(wgpu::PollType::wait_indefinitely())
        .map_err(|e| Error::Gpu(e.to_string()))?;
    rx.recv()
        .map_err(|_| Error::Gpu("buffer mapping was cancelled".into()))?
        .map_err(|e| Error::Gpu(format!("buffer mapping failed: {e}")))?;
    let data = buffer
        .get_mapped_range(0..bytes)
        .map_err(|e| Error::Gpu(format!("{e:?}")))?
        .to_vec();
    buffer.unmap();
    Ok(data)
}

fn flush_inner(
    inner: &Arc<GpuInner>,
    timing: Option<(&wgpu::QuerySet, &wgpu::Buffer, &wgpu::Buffer)>,
) -> Option<wgpu::SubmissionIndex> {
    let (commands, params, slot) = {
        let mut rec = inner.recorder.lock().unwrap();
        if rec.commands.is_empty() && timing.is_none() {
            return None;
        }
        rec.dispatches = 0;
        rec.submissions += 1;
        (
            std::mem::take(&mut rec.commands),
            std::mem::take(&mut rec.params),
            rec.slot,
        )
    };
    let params_buffer = if params.is_empty() {
        None
    } else {
        match PooledBuffer::new(inner, BufferKind::Uniform, params.len() as u64) {
            Ok(b) => {
                inner.queue.write_buffer(b.buffer(), 0, &params);
                Some(b)
            }
            Err(e) => {
                // This flush's work cannot run; the next sync reports why.
                let (bytes, budget) = match e {
                    crate::Error::OutOfMemory { bytes, budget, .. } => (bytes, budget),
                    _ => (params.len() as u64, None),
                };
                inner
                    .uncaptured
                    .lock()
                    .unwrap()
                    .push(DeviceError::OutOfMemory { bytes, budget });
                return None;
            }
        }
    };
    let mut encoder = inner
        .device
        .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("fido") });
    let mut pass: Option<wgpu::ComputePass<'static>> = None;
    let mut first_pass = true;
    for command in &commands {
        match command {
            Command::Dispatch {
                pipeline,
                params_offset,
                buffers,
                groups,
            } => {
                if pass.is_none() {
                    let timestamp_writes = timing.map(|(set, _, _)| wgpu::ComputePassTimestampWrites {
                        query_set: set,
                        beginning_of_pass_write_index: first_pass.then_some(0),
                        end_of_pass_write_index: Some(1),
                    });
                    first_pass = false;
                    pass = Some(
                        encoder
                            .begin_compute_pass(&wgpu::ComputePassDescriptor {
                                label: Some("fido"),
                                timestamp_writes,
                            })
                            .forget_lifetime(),
                    );
                }
                let mut entries = Vec::with_capacity(buffers.len() + 1);
                if let (Some(offset), Some(pb)) = (params_offset, params_buffer.as_ref()) {
                    entries.push(wgpu::BindGroupEntry {
                        binding: PARAMS_BINDING,
                        resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                            buffer: pb.buffer(),
                            offset: *offset,
                            size: std::num::NonZeroU64::new(slot),
                        }),
                    });
                }
                for (binding, buf, bytes) in buffers {
                    entries.push(wgpu::BindGroupEntry {
                        binding: *binding,
                        resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                            buffer: buf.buffer(),
                            offset: 0,
                            size: std::num::NonZeroU64::new(bytes.div_ceil(4) * 4),
                        }),
                    });
                }
                let bind_group = inner.device.create_bind_group(&wgpu::BindGroupDescriptor {
                    label: None,
                    layout: &pipeline.layout,
                    entries: &entries,
                });
                let p = pass.as_mut().unwrap();
                p.set_pipeline(&pipeline.pipeline);
                p.set_bind_group(0, &bind_group, &[]);
                p.dispatch_workgroups(groups[0], groups[1], groups[2]);
            }
            Command::Copy {
                src,
                src_offset,
                dst,
                dst_offset,
                bytes,
            } => {
                drop(pass.take());
                encoder.copy_buffer_to_buffer(src.buffer(), *src_offset, dst.buffer(), *dst_offset, *bytes);
            }
            Command::Clear { dst, bytes } => {
                drop(pass.take());
                encoder.clear_buffer(dst.buffer(), 0, Some(bytes.div_ceil(4) * 4));
            }
        }
    }
    drop(pass);
    if let Some((set, resolve, read)) = timing {
        if first_pass {
            // Nothing was dispatched: write an empty pass so the queries hold values.
            let _ = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some("fido empty"),
                timestamp_writes: Some(wgpu::ComputePassTimestampWrites {
                    query_set: set,
                    beginning_of_pass_write_index: Some(0),
                    end_of_pass_write_index: Some(1),
                }),
            });
        }
        encoder.resolve_query_set(set, 0..2, resolve, 0);
        encoder.copy_buffer_to_buffer(resolve, 0, read, 0, 16);
    }
    let index = inner.queue.submit(Some(encoder.finish()));
    // Buffers referenced by `commands` return to the pool here. Later submissions on this
    // queue run after this one, so reusing them is safe.
    drop(commands);
    drop(params_buffer);
    inner.pool.lock().unwrap().end_flush();
    Some(index)
}
