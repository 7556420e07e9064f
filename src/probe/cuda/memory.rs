//! Buffers on a node: device memory on a GPU, or pinned host memory mapped into every GPU.

use super::driver::{self, Result};
use super::gpu::Gpu;
use cust::sys::{CUcontext, CUdeviceptr};
use std::ffi::c_void;

pub struct Buffer {
    /// The address kernels and copies use (unified: valid in every context).
    pub ptr: CUdeviceptr,
    pub bytes: u64,
    home: Home,
}

enum Home {
    Device(CUcontext),
    Host(*mut c_void),
}

impl Buffer {
    pub fn on_gpu(gpu: &Gpu, bytes: u64) -> Result<Buffer> {
        gpu.make_current()?;
        Ok(Buffer {
            ptr: driver::alloc(bytes as usize)?,
            bytes,
            home: Home::Device(gpu.context),
        })
    }

    /// Pinned host memory, placed on NUMA node `near` when given (the node nearest the GPU
    /// that will use it), as far as the kernel lets the probe choose.
    pub fn on_host(bytes: u64, near: Option<u32>) -> Result<Buffer> {
        let host = match near {
            Some(node) => numa::preferring(node, || driver::alloc_host_mapped(bytes as usize))?,
            None => driver::alloc_host_mapped(bytes as usize)?,
        };
        let ptr = match driver::device_pointer_of_host(host) {
            Ok(ptr) => ptr,
            Err(err) => {
                // SAFETY: just allocated, not handed out.
                let _ = unsafe { driver::free_host(host) };
                return Err(err);
            }
        };
        Ok(Buffer {
            ptr,
            bytes,
            home: Home::Host(host),
        })
    }

    /// The host's view of a host buffer; `None` for device memory.
    pub fn host_ptr(&self) -> Option<*mut c_void> {
        match self.home {
            Home::Host(host) => Some(host),
            Home::Device(_) => None,
        }
    }

    /// Writes `words` at the start of the buffer, from the host.
    pub fn write_words(&self, words: &[u64]) -> Result<()> {
        assert!(
            std::mem::size_of_val(words) as u64 <= self.bytes,
            "words exceed the buffer"
        );
        match self.home {
            Home::Host(host) => {
                // SAFETY: the pinned allocation holds `self.bytes` >= the words' size, and no
                // GPU work touches it now (callers write between samples).
                unsafe {
                    std::ptr::copy_nonoverlapping(words.as_ptr(), host as *mut u64, words.len())
                };
                Ok(())
            }
            Home::Device(context) => {
                driver::set_current(context)?;
                // SAFETY: device allocation of `self.bytes` >= the words' size.
                unsafe { driver::copy_to_device(self.ptr, words)? };
                // A copy from pageable memory may still be in flight when the call returns, and
                // the probe's non-blocking streams do not wait for it: finish it here.
                driver::synchronize_current()
            }
        }
    }
}

impl Drop for Buffer {
    fn drop(&mut self) {
        // Freeing can only fail on a context that is already broken; the probe reports that
        // elsewhere, and there is nothing better to do with the memory than let it go.
        match self.home {
            Home::Device(context) => {
                if driver::set_current(context).is_ok() {
                    // SAFETY: allocated by `on_gpu`, and the buffer is going away.
                    let _ = unsafe { driver::free(self.ptr) };
                }
            }
            // SAFETY: allocated by `on_host`, and the buffer is going away.
            Home::Host(host) => {
                let _ = unsafe { driver::free_host(host) };
            }
        }
    }
}

/// Where the kernel places new pages: `cuMemHostAlloc` pins (and so touches) every page of its
/// allocation at once, so the calling thread's memory policy at that moment decides its node.
mod numa {
    const MPOL_DEFAULT: libc::c_long = 0;
    const MPOL_PREFERRED: libc::c_long = 1;
    /// Bits in the node mask handed to the kernel (64 nodes).
    const MAX_NODE: libc::c_ulong = 64;

    /// Runs `allocate` with new pages preferred on `node`, then restores the default policy.
    /// A node the kernel refuses (none of that number here, or no NUMA support) leaves the
    /// default policy: the allocation still succeeds, just wherever the kernel puts it.
    pub fn preferring<T>(node: u32, allocate: impl FnOnce() -> T) -> T {
        let mask: [libc::c_ulong; 1] = [1 << (node % MAX_NODE as u32)];
        // SAFETY: set_mempolicy reads `MAX_NODE` bits from the mask, which holds 64.
        let preferred = node < MAX_NODE as u32
            && unsafe {
                libc::syscall(
                    libc::SYS_set_mempolicy,
                    MPOL_PREFERRED,
                    mask.as_ptr(),
                    MAX_NODE,
                )
            } == 0;
        let result = allocate();
        if preferred {
            // SAFETY: MPOL_DEFAULT takes no mask.
            unsafe {
                libc::syscall(
                    libc::SYS_set_mempolicy,
                    MPOL_DEFAULT,
                    std::ptr::null::<libc::c_ulong>(),
                    0,
                )
            };
        }
        result
    }
}
