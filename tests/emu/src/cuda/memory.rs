//! Device and pinned host memory, in one unified address space, with the rules of who may touch
//! what.
//!
//! Device allocations live in a window per GPU, far from any host address, and are never reused,
//! so a stale or host-side pointer faults instead of landing in live memory. Pinned host memory
//! is real host memory (the host reads and writes it directly); under unified addressing its
//! device address is the same number. A kernel may touch its own GPU's memory, another GPU's
//! memory once its context enabled peer access to that GPU, and pinned host memory that is
//! mapped (DEVICEMAP) and either portable or allocated in its own context.

use super::codes::{HOST_ALLOC_DEVICEMAP, HOST_ALLOC_PORTABLE};
use p2ptop::probe::protocol::Node;
use p2ptop_ptx::doubles::Global;
use std::alloc::Layout;
use std::collections::{BTreeMap, BTreeSet};

/// Where GPU g's window starts: `DEVICE_BASE + g * WINDOW`.
const DEVICE_BASE: u64 = 0x2000_0000_0000;
const WINDOW: u64 = 1 << 40;
/// cuMemAlloc aligns generously; so do we.
const ALIGNMENT: u64 = 4096;
/// Unmapped space after every device allocation, so running off its end faults.
const GUARD: u64 = 1 << 20;
/// Pinned host memory comes in pages.
const PAGE: usize = 4096;

/// Where an allocation's bytes live.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Place {
    /// GPU memory, by machine GPU index.
    Device(u32),
    /// Pinned host memory with its `cuMemHostAlloc` flags.
    Host { flags: u32 },
}

enum Backing {
    Device(Box<[u8]>),
    /// Host memory from the global allocator; freed on drop.
    Host(*mut u8, Layout),
}

pub struct Allocation {
    pub base: u64,
    pub len: u64,
    pub place: Place,
    /// The context it was allocated in.
    pub context: usize,
    backing: Backing,
}

impl Allocation {
    /// The node of a transfer's end in this memory.
    pub fn node(&self) -> Node {
        match self.place {
            Place::Device(gpu) => Node::Gpu(gpu),
            Place::Host { .. } => Node::Host,
        }
    }

    fn bytes(&self) -> &[u8] {
        match &self.backing {
            Backing::Device(bytes) => bytes,
            // SAFETY: the allocation holds `len` bytes until it is dropped.
            Backing::Host(ptr, _) => unsafe { std::slice::from_raw_parts(*ptr, self.len as usize) },
        }
    }

    fn bytes_mut(&mut self) -> &mut [u8] {
        match &mut self.backing {
            Backing::Device(bytes) => bytes,
            // SAFETY: as above; the emulated GPU and the host never write the same pinned
            // bytes at once unless the program under test races itself, as it would on hardware.
            Backing::Host(ptr, _) => unsafe {
                std::slice::from_raw_parts_mut(*ptr, self.len as usize)
            },
        }
    }
}

impl Drop for Allocation {
    fn drop(&mut self) {
        if let Backing::Host(ptr, layout) = self.backing {
            // SAFETY: allocated with this layout by `alloc_host`, freed once, here.
            unsafe { std::alloc::dealloc(ptr, layout) };
        }
    }
}

// SAFETY: host backing is plain memory owned by the allocation; access is serialised by the
// driver's lock except where the program under test shares it on purpose (the gate flag).
unsafe impl Send for Allocation {}

#[derive(Default)]
pub struct Memory {
    allocations: BTreeMap<u64, Allocation>,
    /// Next free address and bytes in use, per GPU.
    next: BTreeMap<u32, u64>,
    used: BTreeMap<u32, u64>,
}

impl Memory {
    /// `len` bytes of GPU `gpu`'s memory (of `capacity` bytes), zeroed.
    pub fn alloc_device(
        &mut self,
        gpu: u32,
        capacity: u64,
        context: usize,
        len: u64,
    ) -> Option<u64> {
        let used = self.used.entry(gpu).or_default();
        if len == 0 || *used + len > capacity {
            return None;
        }
        *used += len;
        let next = self
            .next
            .entry(gpu)
            .or_insert(DEVICE_BASE + u64::from(gpu) * WINDOW);
        let base = *next;
        *next = (base + len + GUARD).next_multiple_of(ALIGNMENT);
        self.allocations.insert(
            base,
            Allocation {
                base,
                len,
                place: Place::Device(gpu),
                context,
                backing: Backing::Device(vec![0; len as usize].into_boxed_slice()),
            },
        );
        Some(base)
    }

    /// `len` bytes of pinned host memory, zeroed; its host address (also its device address).
    pub fn alloc_host(&mut self, context: usize, len: u64, flags: u32) -> Option<u64> {
        let layout = Layout::from_size_align(len.max(1) as usize, PAGE).ok()?;
        // SAFETY: the layout has a non-zero size.
        let ptr = unsafe { std::alloc::alloc_zeroed(layout) };
        if ptr.is_null() {
            return None;
        }
        let base = ptr as u64;
        self.allocations.insert(
            base,
            Allocation {
                base,
                len,
                place: Place::Host { flags },
                context,
                backing: Backing::Host(ptr, layout),
            },
        );
        Some(base)
    }

    /// Frees the allocation that starts at `base`, if it is of the expected kind.
    pub fn free(&mut self, base: u64, host: bool) -> Option<Allocation> {
        let is_host = matches!(self.allocations.get(&base)?.place, Place::Host { .. });
        if is_host != host {
            return None;
        }
        let allocation = self.allocations.remove(&base)?;
        if let Place::Device(gpu) = allocation.place {
            *self.used.entry(gpu).or_default() -= allocation.len;
        }
        Some(allocation)
    }

    /// The allocation holding all of `[addr, addr + len)`.
    pub fn find(&self, addr: u64, len: u64) -> Option<&Allocation> {
        let (_, a) = self.allocations.range(..=addr).next_back()?;
        let end = addr.checked_add(len)?;
        (end <= a.base + a.len).then_some(a)
    }

    fn find_mut(&mut self, addr: u64, len: u64) -> Option<&mut Allocation> {
        let (_, a) = self.allocations.range_mut(..=addr).next_back()?;
        let end = addr.checked_add(len)?;
        (end <= a.base + a.len).then_some(a)
    }

    /// Host access (synchronous copies, memset): any allocation, no access rules.
    pub fn read(&self, addr: u64, out: &mut [u8]) -> Result<(), String> {
        let a = self
            .find(addr, out.len() as u64)
            .ok_or_else(|| miss(addr, out.len()))?;
        let at = (addr - a.base) as usize;
        out.copy_from_slice(&a.bytes()[at..at + out.len()]);
        Ok(())
    }

    pub fn write(&mut self, addr: u64, data: &[u8]) -> Result<(), String> {
        let a = self
            .find_mut(addr, data.len() as u64)
            .ok_or_else(|| miss(addr, data.len()))?;
        let at = (addr - a.base) as usize;
        a.bytes_mut()[at..at + data.len()].copy_from_slice(data);
        Ok(())
    }

    /// The allocation a kernel running on `gpu`, in `context` with `peers` enabled, may touch
    /// at `[addr, addr + len)`, or why it may not.
    pub fn reachable(
        &self,
        gpu: u32,
        context: usize,
        peers: &BTreeSet<u32>,
        addr: u64,
        len: u64,
    ) -> Result<&Allocation, String> {
        let Some(a) = self.find(addr, len) else {
            return Err(format!(
                "GPU{gpu} touched {len} bytes at {addr:#x}, which no allocation holds"
            ));
        };
        match a.place {
            Place::Device(owner) if owner == gpu || peers.contains(&owner) => Ok(a),
            Place::Device(owner) => Err(format!(
                "GPU{gpu} touched GPU{owner}'s memory at {addr:#x} without peer access enabled \
                 (cuCtxEnablePeerAccess)"
            )),
            Place::Host { flags } if flags & HOST_ALLOC_DEVICEMAP == 0 => Err(format!(
                "GPU{gpu} touched pinned host memory at {addr:#x} that is not mapped into devices \
                 (cuMemHostAlloc without DEVICEMAP)"
            )),
            Place::Host { flags } if flags & HOST_ALLOC_PORTABLE == 0 && a.context != context => {
                Err(format!(
                    "GPU{gpu} touched pinned host memory at {addr:#x} allocated in another \
                     context without PORTABLE"
                ))
            }
            Place::Host { .. } => Ok(a),
        }
    }

    /// A 32-bit word of pinned host memory as the host last wrote it, read atomically (the host
    /// writes such words, like the gate's flag, while the GPU reads them).
    pub fn read_host_word(&self, addr: u64) -> Option<u32> {
        let a = self.find(addr, 4)?;
        match (&a.backing, addr % 4) {
            (Backing::Host(ptr, _), 0) => {
                // SAFETY: the word lies inside the live host allocation and is 4-byte aligned.
                let word = unsafe { ptr.add((addr - a.base) as usize) } as *mut u32;
                Some(
                    unsafe { std::sync::atomic::AtomicU32::from_ptr(word) }
                        .load(std::sync::atomic::Ordering::Acquire),
                )
            }
            _ => None,
        }
    }

    /// Memory as a kernel running on `gpu` in a context with `peers` enabled sees it.
    pub fn seen_by<'a>(
        &'a mut self,
        gpu: u32,
        context: usize,
        peers: &'a BTreeSet<u32>,
    ) -> KernelView<'a> {
        KernelView {
            memory: self,
            gpu,
            context,
            peers,
        }
    }
}

fn miss(addr: u64, len: usize) -> String {
    format!("{len} bytes at {addr:#x} are not inside one allocation")
}

/// Global memory for a kernel: the allocation table with the access rules applied.
pub struct KernelView<'a> {
    memory: &'a mut Memory,
    gpu: u32,
    context: usize,
    peers: &'a BTreeSet<u32>,
}

impl Global for KernelView<'_> {
    fn load(&self, addr: u64, out: &mut [u8]) -> Result<(), String> {
        self.memory
            .reachable(self.gpu, self.context, self.peers, addr, out.len() as u64)?;
        self.memory.read(addr, out)
    }

    fn store(&mut self, addr: u64, data: &[u8]) -> Result<(), String> {
        self.memory
            .reachable(self.gpu, self.context, self.peers, addr, data.len() as u64)?;
        self.memory.write(addr, data)
    }
}
