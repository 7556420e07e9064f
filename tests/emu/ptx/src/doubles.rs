//! Native doubles of the kernels in `ptx/`: what each launch leaves in memory, computed directly.
//!
//! Each takes the kernel's parameters and global memory behind [`Global`], and fails where the
//! kernel would fault: an access outside memory the GPU may touch, or a vector or word access
//! that is not aligned to its size. Where the kernel repeats its work (`p2p_copy`'s `repeats`),
//! one pass stands for all of them, since every pass leaves the same bytes; how long the work
//! takes is the emulated driver's business, not the double's.

/// Global memory as a kernel sees it. Errors are the faults a GPU would raise.
pub trait Global {
    /// Reads `out.len()` bytes at `addr`.
    fn load(&self, addr: u64, out: &mut [u8]) -> Result<(), String>;
    /// Writes `data` at `addr`.
    fn store(&mut self, addr: u64, data: &[u8]) -> Result<(), String>;
}

/// Bytes moved per step of a large copy, so a copy of gigabytes needs no buffer of its size.
const CHUNK: usize = 1 << 20;

/// `p2p_copy(dst, src, bytes, repeats)`: `bytes` from `src` to `dst` when `repeats` > 0.
pub fn copy(
    mem: &mut dyn Global,
    dst: u64,
    src: u64,
    bytes: u64,
    repeats: u32,
) -> Result<(), String> {
    if repeats == 0 || bytes == 0 {
        return Ok(());
    }
    // The kernel moves 16-byte vectors, then the last bytes % 16 one at a time.
    if bytes >= 16 {
        aligned(src, 16)?;
        aligned(dst, 16)?;
    }
    let mut chunk = vec![0u8; CHUNK.min(bytes as usize)];
    let mut done = 0u64;
    while done < bytes {
        let len = chunk.len().min((bytes - done) as usize);
        mem.load(src + done, &mut chunk[..len])?;
        mem.store(dst + done, &chunk[..len])?;
        done += len as u64;
    }
    Ok(())
}

/// `p2p_pattern`'s two modes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PatternMode {
    Fill,
    Verify,
}

impl PatternMode {
    /// The `mode` parameter's meaning: 0 fills, anything else verifies.
    pub fn from_param(mode: u32) -> PatternMode {
        if mode == 0 {
            PatternMode::Fill
        } else {
            PatternMode::Verify
        }
    }
}

/// MurmurHash3's 32-bit finalizer, as pattern.ptx computes it.
fn fmix32(mut h: u32) -> u32 {
    h ^= h >> 16;
    h = h.wrapping_mul(0x85EB_CA6B);
    h ^= h >> 13;
    h = h.wrapping_mul(0xC2B2_AE35);
    h ^ (h >> 16)
}

/// Word `index` of the pattern under `seed` (pattern.ptx's header defines it).
pub fn pattern_word(index: u64, seed: u32) -> u32 {
    let (lo, hi) = (index as u32, (index >> 32) as u32);
    fmix32(lo ^ hi.wrapping_mul(0x9E37_79B9) ^ seed)
}

/// The pattern's bytes from byte `start` for `len` bytes: little-endian words; a buffer whose size
/// is not a multiple of 4 ends with the low bytes of the next word.
fn pattern_bytes(start: u64, out: &mut [u8], seed: u32) {
    let mut at = start;
    let mut rest = &mut out[..];
    while !rest.is_empty() {
        let word = pattern_word(at / 4, seed).to_le_bytes();
        let skip = (at % 4) as usize;
        let n = (4 - skip).min(rest.len());
        rest[..n].copy_from_slice(&word[skip..skip + n]);
        rest = &mut rest[n..];
        at += n as u64;
    }
}

/// `p2p_pattern(buf, bytes, seed, mode, result)`: fill `buf` with `seed`'s pattern, or add the
/// number of differing bytes to `result[0]` and lower `result[1]` to the first differing offset.
pub fn pattern(
    mem: &mut dyn Global,
    buf: u64,
    bytes: u64,
    seed: u32,
    mode: PatternMode,
    result: u64,
) -> Result<(), String> {
    if bytes >= 4 {
        aligned(buf, 4)?;
    }
    let mut expected = vec![0u8; CHUNK.min(bytes as usize)];
    let mut found = vec![0u8; expected.len()];
    let (mut differing, mut first) = (0u64, u64::MAX);
    let mut done = 0u64;
    while done < bytes {
        let len = expected.len().min((bytes - done) as usize);
        pattern_bytes(done, &mut expected[..len], seed);
        match mode {
            PatternMode::Fill => mem.store(buf + done, &expected[..len])?,
            PatternMode::Verify => {
                mem.load(buf + done, &mut found[..len])?;
                for (i, (e, f)) in expected[..len].iter().zip(&found[..len]).enumerate() {
                    if e != f {
                        differing += 1;
                        first = first.min(done + i as u64);
                    }
                }
            }
        }
        done += len as u64;
    }
    if differing > 0 {
        // The kernel's atomics: add the count, lower the first offset.
        aligned(result, 8)?;
        let count = load_u64(mem, result)?.wrapping_add(differing);
        let lowest = load_u64(mem, result + 8)?.min(first);
        mem.store(result, &count.to_le_bytes())?;
        mem.store(result + 8, &lowest.to_le_bytes())?;
    }
    Ok(())
}

/// `p2p_chase(start, steps, out)`: follows `steps` links of the chain at `start` and writes the
/// address it ended on to `out`.
pub fn chase(mem: &mut dyn Global, start: u64, steps: u64, out: u64) -> Result<(), String> {
    let mut at = start;
    for _ in 0..steps {
        aligned(at, 8)?;
        at = load_u64(mem, at)?;
    }
    aligned(out, 8)?;
    mem.store(out, &at.to_le_bytes())
}

/// What `p2p_gate(flag, status, timeout)` writes to its status word once it ends: 1 when the
/// flag is set, 2 when `waited` reached the timeout first; `None` while it keeps spinning.
pub fn gate(flag: u32, waited: u64, timeout: u64) -> Option<u32> {
    if flag != 0 {
        Some(1)
    } else if waited >= timeout {
        Some(2)
    } else {
        None
    }
}

fn load_u64(mem: &dyn Global, addr: u64) -> Result<u64, String> {
    let mut word = [0u8; 8];
    mem.load(addr, &mut word)?;
    Ok(u64::from_le_bytes(word))
}

fn aligned(addr: u64, size: u64) -> Result<(), String> {
    if addr.is_multiple_of(size) {
        Ok(())
    } else {
        Err(format!("misaligned {size}-byte access at {addr:#x}"))
    }
}
