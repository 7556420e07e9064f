//! One GPU as the probe uses it: its primary context, kernels, streams and scratch memory.

use super::driver::{self, Result};
use super::kernels::{Kernels, LoadError, Shape};
use cust::sys::{CUcontext, CUdevice, CUdevice_attribute, CUdeviceptr, CUevent, CUstream};
use p2ptop::probe::protocol::DeviceInfo;

/// A stream with the events that time and fence the work queued on it.
pub struct Lane {
    pub stream: CUstream,
    pub start: CUevent,
    pub end: CUevent,
    /// Recorded after untimed work, to wait for it with a deadline.
    pub fence: CUevent,
}

/// Lanes a GPU starts with: one per direction, since on a host path one GPU runs both
/// directions of bidir. Stress adds more, one per flow the GPU runs.
const FIRST_LANES: usize = 2;

/// The most lanes (streams) a GPU gets: the hardware work queues the probe asks the driver for
/// (`CUDA_DEVICE_MAX_CONNECTIONS`, see `p2ptop-probe`), so that no two lanes share a queue and
/// wait for each other's work.
pub const MAX_LANES: usize = 32;

/// Bytes of the scratch block: verify result {mismatched bytes, first bad offset} at 0, chase
/// result {final address} at 16.
const SCRATCH_BYTES: usize = 32;
pub const VERIFY_RESULT_OFFSET: u64 = 0;
pub const CHASE_RESULT_OFFSET: u64 = 16;

pub struct Gpu {
    pub ordinal: u32,
    pub device: CUdevice,
    pub context: CUcontext,
    pub kernels: Kernels,
    pub lanes: Vec<Lane>,
    pub sm_count: u32,
    pub l2_bytes: u64,
    /// The SM's peak clock (kHz, `CU_DEVICE_ATTRIBUTE_CLOCK_RATE`): the gate counts cycles.
    pub clock_khz: u64,
    /// Device memory for results the kernels write (see `SCRATCH_BYTES`).
    pub scratch: CUdeviceptr,
}

/// Why a GPU could not be opened.
pub enum OpenError {
    Driver(p2ptop::probe::driver_error::DriverError),
    Kernels(LoadError),
}

impl From<p2ptop::probe::driver_error::DriverError> for OpenError {
    fn from(err: p2ptop::probe::driver_error::DriverError) -> Self {
        OpenError::Driver(err)
    }
}

impl Gpu {
    /// Retains the primary context, loads the kernels and makes the lanes.
    pub fn open(ordinal: u32, device: CUdevice) -> std::result::Result<Gpu, OpenError> {
        let context = driver::primary_context(device)?;
        driver::set_current(context)?;
        let kernels = Kernels::load().map_err(OpenError::Kernels)?;
        let lanes = (0..FIRST_LANES)
            .map(|_| Lane::new())
            .collect::<Result<Vec<_>>>()?;
        let sm_count = driver::attribute(
            device,
            CUdevice_attribute::CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT,
        )? as u32;
        let l2_bytes = driver::attribute(
            device,
            CUdevice_attribute::CU_DEVICE_ATTRIBUTE_L2_CACHE_SIZE,
        )? as u64;
        let clock_khz =
            driver::attribute(device, CUdevice_attribute::CU_DEVICE_ATTRIBUTE_CLOCK_RATE)? as u64;
        let scratch = driver::alloc(SCRATCH_BYTES)?;
        Ok(Gpu {
            ordinal,
            device,
            context,
            kernels,
            lanes,
            sm_count,
            l2_bytes,
            clock_khz,
            scratch,
        })
    }

    /// Makes sure the GPU has at least `count` lanes (at most [`MAX_LANES`]), so that many flows
    /// can run on it at once.
    pub fn ensure_lanes(&mut self, count: usize) -> Result<()> {
        assert!(count <= MAX_LANES, "callers check the lane limit first");
        if self.lanes.len() < count {
            self.make_current()?;
            while self.lanes.len() < count {
                self.lanes.push(Lane::new()?);
            }
        }
        Ok(())
    }

    pub fn make_current(&self) -> Result<()> {
        driver::set_current(self.context)
    }

    /// The copy and pattern kernels' launch shape: `blocks_per_sm` blocks on every SM.
    pub fn shape(&self, block_size: u32, blocks_per_sm: u32) -> Shape {
        Shape {
            blocks: self.sm_count * blocks_per_sm,
            threads: block_size,
        }
    }

    /// The shape of flow `index` of `flows` copies that run on this GPU at once: the full grid
    /// split between them, so that all their blocks are resident together (two full grids could
    /// not be: the second would wait for the first to end while its start was already stamped).
    pub fn share(&self, block_size: u32, blocks_per_sm: u32, flows: usize, index: usize) -> Shape {
        let total = self.sm_count * blocks_per_sm;
        let flows = flows.max(1) as u32;
        let extra = u32::from((index as u32) < total % flows);
        Shape {
            blocks: (total / flows + extra).max(1),
            threads: block_size,
        }
    }
}

impl Lane {
    fn new() -> Result<Lane> {
        Ok(Lane {
            stream: driver::non_blocking_stream()?,
            start: driver::event()?,
            end: driver::event()?,
            fence: driver::event()?,
        })
    }
}

/// What CUDA says about the GPU at `ordinal`, without opening a context on it.
pub fn describe(ordinal: u32, device: CUdevice) -> Result<DeviceInfo> {
    use CUdevice_attribute::*;
    let major = driver::attribute(device, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR)?;
    let minor = driver::attribute(device, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR)?;
    Ok(DeviceInfo {
        ordinal,
        name: driver::device_name(device)?,
        pci_bus_id: driver::pci_bus_id(device)?.to_lowercase(),
        compute_capability: format!("{major}.{minor}"),
        sm_count: driver::attribute(device, CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT)? as u32,
        memory_mib: driver::total_memory(device)? as u64 >> 20,
        l2_cache_bytes: driver::attribute(device, CU_DEVICE_ATTRIBUTE_L2_CACHE_SIZE)? as u64,
    })
}
