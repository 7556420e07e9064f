//! The state the emulated libraries share across processes: the virtual clock, every GPU's heat
//! and clocks, and the bytes through its links.
//!
//! The emulated CUDA driver lives in the probe's process and NVML in p2ptop's; both map one small
//! file (`P2PTOP_EMU_STATE`). The CUDA side writes it as its virtual clock advances; NVML reads
//! it for every answer; a restarted probe resumes from it, so counters never go backwards. The
//! file is a fixed array of 64-bit words (floats as their bits), written under a sequence lock:
//! the writer makes the sequence odd while it writes, readers retry until they see the same even
//! sequence before and after.

use p2ptop::sim::simulation::Counters;
use p2ptop::sim::thermal::Thermal;
use std::fs::OpenOptions;
use std::os::fd::AsRawFd;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

const MAGIC: u64 = u64::from_le_bytes(*b"P2PEMU01");
const HEADER_WORDS: usize = 8;
/// Per GPU before its links: five thermal numbers, the last busy moment, PCIe tx and rx.
const GPU_WORDS: usize = 8;

// Header word indices.
const W_MAGIC: usize = 0;
const W_GPUS: usize = 1;
const W_LINKS: usize = 2;
const W_SEQUENCE: usize = 3;
const W_NOW_NS: usize = 4;
const W_EPOCH_US: usize = 5;
const W_FIRED: usize = 6;

/// One GPU's share of the state.
#[derive(Clone, Debug, PartialEq)]
pub struct GpuState {
    pub thermal: Thermal,
    /// The virtual moment the GPU last moved bytes (its PCIe link trains up under load).
    pub last_busy_ns: u64,
    pub counters: Counters,
}

/// The whole state at one moment.
#[derive(Clone, Debug, PartialEq)]
pub struct Snapshot {
    /// Virtual nanoseconds since the state file was made.
    pub now_ns: u64,
    /// Wall-clock microseconds since the Unix epoch at virtual time 0, so that timestamps look
    /// like NVML's (wall-clock µs) and still move with the virtual clock.
    pub epoch_us: u64,
    /// One bit per GPU whose once-only machine fault (`sticky_error`) has struck.
    pub fired: u64,
    pub gpus: Vec<GpuState>,
}

impl Snapshot {
    /// NVML-style timestamp of the snapshot: wall-clock µs on the virtual clock.
    pub fn timestamp_us(&self) -> u64 {
        self.epoch_us + self.now_ns / 1000
    }
}

/// The mapped file.
pub struct Shared {
    words: *const AtomicU64,
    len: usize,
    gpus: usize,
    links: usize,
}

// SAFETY: the mapping is never unmapped while `Shared` lives and is only touched through atomics.
unsafe impl Send for Shared {}
unsafe impl Sync for Shared {}

impl Shared {
    /// Maps the state file at `path`, making it from `initial` when it does not exist yet or
    /// describes another machine shape (GPU count, links per GPU).
    pub fn open(path: &Path, initial: &Snapshot) -> Result<Shared, String> {
        let gpus = initial.gpus.len();
        let links = initial
            .gpus
            .iter()
            .map(|g| g.counters.nvlink_tx.len())
            .max()
            .unwrap_or(0);
        let len = HEADER_WORDS + gpus * (GPU_WORDS + 2 * links);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(|e| format!("cannot open the state file {}: {e}", path.display()))?;
        let fd = file.as_raw_fd();
        // SAFETY: plain calls on an open descriptor; the lock serialises the two processes'
        // first look at the file.
        unsafe { libc::flock(fd, libc::LOCK_EX) };
        let result = (|| {
            let bytes = (len * 8) as libc::off_t;
            let fresh = file.metadata().map(|m| m.len()).unwrap_or(0) != bytes as u64;
            if fresh {
                file.set_len(bytes as u64)
                    .map_err(|e| format!("cannot size the state file: {e}"))?;
            }
            // SAFETY: maps `len` words of a file of exactly that size, shared, read-write.
            let ptr = unsafe {
                libc::mmap(
                    std::ptr::null_mut(),
                    len * 8,
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_SHARED,
                    fd,
                    0,
                )
            };
            if ptr == libc::MAP_FAILED {
                return Err(format!(
                    "cannot map the state file: {}",
                    std::io::Error::last_os_error()
                ));
            }
            let shared = Shared {
                words: ptr as *const AtomicU64,
                len,
                gpus,
                links,
            };
            let matches = shared.word(W_MAGIC) == MAGIC
                && shared.word(W_GPUS) == gpus as u64
                && shared.word(W_LINKS) == links as u64;
            if fresh || !matches {
                shared.set(W_GPUS, gpus as u64);
                shared.set(W_LINKS, links as u64);
                shared.publish(initial);
                shared.set(W_MAGIC, MAGIC);
            }
            Ok(shared)
        })();
        // SAFETY: as above.
        unsafe { libc::flock(fd, libc::LOCK_UN) };
        result
    }

    fn at(&self, index: usize) -> &AtomicU64 {
        assert!(index < self.len, "state word {index} past the end");
        // SAFETY: `index` is inside the mapping, which lives as long as `self`.
        unsafe { &*self.words.add(index) }
    }

    fn word(&self, index: usize) -> u64 {
        self.at(index).load(Ordering::Acquire)
    }

    fn set(&self, index: usize, value: u64) {
        self.at(index).store(value, Ordering::Release);
    }

    fn gpu_base(&self, gpu: usize) -> usize {
        HEADER_WORDS + gpu * (GPU_WORDS + 2 * self.links)
    }

    /// Writes `state` whole (one writer at a time: the emulated driver's engine).
    pub fn publish(&self, state: &Snapshot) {
        let sequence = self.word(W_SEQUENCE);
        self.set(W_SEQUENCE, sequence | 1);
        self.set(W_NOW_NS, state.now_ns);
        self.set(W_EPOCH_US, state.epoch_us);
        self.set(W_FIRED, state.fired);
        for (g, gpu) in state.gpus.iter().enumerate().take(self.gpus) {
            let base = self.gpu_base(g);
            for (i, part) in gpu.thermal.parts().into_iter().enumerate() {
                self.set(base + i, part.to_bits());
            }
            self.set(base + 5, gpu.last_busy_ns);
            self.set(base + 6, gpu.counters.pcie_tx.to_bits());
            self.set(base + 7, gpu.counters.pcie_rx.to_bits());
            let links = base + GPU_WORDS;
            for l in 0..self.links {
                let tx = gpu.counters.nvlink_tx.get(l).copied().unwrap_or(0.0);
                let rx = gpu.counters.nvlink_rx.get(l).copied().unwrap_or(0.0);
                self.set(links + l, tx.to_bits());
                self.set(links + self.links + l, rx.to_bits());
            }
        }
        self.set(W_SEQUENCE, (sequence | 1) + 1);
    }

    /// A consistent copy of the state; `links_of[g]` says how many links GPU g has.
    pub fn read(&self, links_of: &[usize]) -> Snapshot {
        loop {
            let before = self.word(W_SEQUENCE);
            if before & 1 == 1 {
                std::hint::spin_loop();
                continue;
            }
            let snapshot = self.read_once(links_of);
            if self.word(W_SEQUENCE) == before {
                return snapshot;
            }
        }
    }

    fn read_once(&self, links_of: &[usize]) -> Snapshot {
        let float = |index| f64::from_bits(self.word(index));
        let gpus = (0..self.gpus)
            .map(|g| {
                let base = self.gpu_base(g);
                let parts = [0, 1, 2, 3, 4].map(|i| float(base + i));
                let own = links_of.get(g).copied().unwrap_or(0).min(self.links);
                let links = base + GPU_WORDS;
                GpuState {
                    thermal: Thermal::from_parts(parts),
                    last_busy_ns: self.word(base + 5),
                    counters: Counters {
                        pcie_tx: float(base + 6),
                        pcie_rx: float(base + 7),
                        nvlink_tx: (0..own).map(|l| float(links + l)).collect(),
                        nvlink_rx: (0..own).map(|l| float(links + self.links + l)).collect(),
                    },
                }
            })
            .collect();
        Snapshot {
            now_ns: self.word(W_NOW_NS),
            epoch_us: self.word(W_EPOCH_US),
            fired: self.word(W_FIRED),
            gpus,
        }
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly what `open` mapped; nothing refers to it after drop.
        unsafe { libc::munmap(self.words as *mut libc::c_void, self.len * 8) };
    }
}

/// The state of a machine nobody has run yet: every GPU settled at idle, counters at zero.
pub fn initial(machine: &p2ptop::sim::machine::Machine) -> Snapshot {
    let sim = p2ptop::sim::simulation::Simulation::new(machine.clone(), 0);
    let epoch_us = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64);
    Snapshot {
        now_ns: 0,
        epoch_us,
        fired: 0,
        gpus: sim
            .thermal()
            .iter()
            .zip(sim.counters())
            .map(|(thermal, counters)| GpuState {
                thermal: thermal.clone(),
                last_busy_ns: 0,
                counters: counters.clone(),
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_mappings_of_one_file_see_each_others_writes_and_a_new_shape_starts_over() {
        let path = std::env::temp_dir().join(format!("p2ptop-emu-shared-{}", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let machine = p2ptop::sim::load("3090-bridge").unwrap();
        let mut state = initial(&machine);
        let writer = Shared::open(&path, &state).unwrap();
        let reader = Shared::open(&path, &initial(&machine)).unwrap();
        state.now_ns = 123_456;
        state.gpus[1].counters.nvlink_tx[3] = 4.5e9;
        state.gpus[0].last_busy_ns = 99;
        writer.publish(&state);
        assert_eq!(reader.read(&[4, 4]), state);
        // The first mapping's state survives a second open of the same shape.
        let again = Shared::open(&path, &initial(&machine)).unwrap();
        assert_eq!(again.read(&[4, 4]).now_ns, 123_456);
        // Another machine's shape starts from its own initial state.
        let other = p2ptop::sim::load("hgx-h100").unwrap();
        let fresh = Shared::open(&path, &initial(&other)).unwrap();
        assert_eq!(fresh.read(&[18; 8]).now_ns, 0);
        std::fs::remove_file(&path).unwrap();
    }
}
