//! Each native double computes what the interpreter computes running the real PTX in `ptx/`, on
//! random inputs: same bytes in every buffer, same results.

use p2ptop_ptx::doubles::{self, PatternMode};
use p2ptop_ptx::{Device, Memory, Module, Param};

fn module(file: &str) -> Module {
    let path = format!("{}/../../../ptx/{file}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {path}: {e}"));
    Module::parse(&text).unwrap_or_else(|e| panic!("{file}: {e}"))
}

/// Two devices with the same random contents: one for the interpreter, one for the double.
struct Twin {
    interpreted: Device,
    native: Memory,
    buffers: Vec<(u64, usize)>,
}

impl Twin {
    /// Allocates buffers of `sizes` bytes in both, filled with the same random bytes.
    fn new(rng: &mut fastrand::Rng, sizes: &[usize]) -> Twin {
        let mut interpreted = Device::default();
        let mut native = Memory::default();
        let mut buffers = Vec::new();
        for &size in sizes {
            let contents: Vec<u8> = (0..size).map(|_| rng.u8(..)).collect();
            let a = interpreted.memory.alloc(size);
            let b = native.alloc(size);
            assert_eq!(a, b, "both memories place allocations alike");
            interpreted.memory.write(a, &contents);
            native.write(b, &contents);
            buffers.push((a, size));
        }
        Twin {
            interpreted,
            native,
            buffers,
        }
    }

    fn base(&self, i: usize) -> u64 {
        self.buffers[i].0
    }

    /// Panics with the first buffer and offset where the two memories differ.
    fn assert_same(&self, case: &str) {
        for &(base, size) in &self.buffers {
            let a = self.interpreted.memory.read(base, size);
            let b = self.native.read(base, size);
            if let Some(at) = a.iter().zip(&b).position(|(x, y)| x != y) {
                panic!(
                    "{case}: buffer {base:#x} differs at {at}: interpreter {:#04x}, double {:#04x}",
                    a[at], b[at]
                );
            }
        }
    }
}

/// Small grids, odd ones included, so the interpreter stays quick and every code path runs.
fn random_grid(rng: &mut fastrand::Rng) -> (u32, u32) {
    (rng.u32(1..=4), rng.u32(1..=40))
}

#[test]
fn copy_double_equals_the_kernel() {
    let module = module("copy.ptx");
    let mut rng = fastrand::Rng::with_seed(11);
    for case in 0..60 {
        let bytes = match case % 3 {
            0 => rng.usize(0..64),
            1 => rng.usize(0..3000),
            _ => 16 * rng.usize(0..300),
        };
        let repeats = rng.u32(0..3);
        let mut twin = Twin::new(&mut rng, &[bytes + 256, bytes + 256]);
        let (src, dst) = (twin.base(0), twin.base(1));
        let (blocks, threads) = random_grid(&mut rng);
        let params = [
            Param::U64(dst),
            Param::U64(src),
            Param::U64(bytes as u64),
            Param::U32(repeats),
        ];
        twin.interpreted
            .launch(&module, "p2p_copy", blocks, threads, &params)
            .expect("p2p_copy faulted");
        doubles::copy(&mut twin.native, dst, src, bytes as u64, repeats).expect("double faulted");
        twin.assert_same(&format!("copy {bytes} bytes x{repeats}"));
    }
}

fn run_pattern(twin: &mut Twin, module: &Module, args: (u64, u64, u32, u32, u64)) {
    let (buf, bytes, seed, mode, result) = args;
    let (blocks, threads) = (3, 37);
    let params = [
        Param::U64(buf),
        Param::U64(bytes),
        Param::U32(seed),
        Param::U32(mode),
        Param::U64(result),
    ];
    twin.interpreted
        .launch(module, "p2p_pattern", blocks, threads, &params)
        .expect("p2p_pattern faulted");
    doubles::pattern(
        &mut twin.native,
        buf,
        bytes,
        seed,
        PatternMode::from_param(mode),
        result,
    )
    .expect("double faulted");
}

#[test]
fn pattern_double_equals_the_kernel_for_fill_and_verify() {
    let module = module("pattern.ptx");
    let mut rng = fastrand::Rng::with_seed(12);
    for case in 0..40 {
        let bytes = rng.usize(0..2000);
        let mut twin = Twin::new(&mut rng, &[bytes, 16]);
        let (buf, result) = (twin.base(0), twin.base(1));
        let clean: Vec<u8> = [0u64.to_le_bytes(), u64::MAX.to_le_bytes()].concat();
        twin.interpreted.memory.write(result, &clean);
        twin.native.write(result, &clean);
        let seed = rng.u32(..);
        run_pattern(&mut twin, &module, (buf, bytes as u64, seed, 0, result));
        twin.assert_same(&format!("fill of {bytes} bytes"));
        // Corrupt a few random bytes (or none), in both, then verify under the same or another
        // seed.
        for _ in 0..rng.usize(0..4).min(bytes) {
            let at = buf + rng.u64(0..bytes as u64);
            let flipped = [twin.native.read(at, 1)[0] ^ (1 << rng.u8(0..8))];
            twin.interpreted.memory.write(at, &flipped);
            twin.native.write(at, &flipped);
        }
        let verify_seed = if case % 4 == 0 { seed ^ 1 } else { seed };
        let mode = rng.u32(1..=u32::MAX);
        run_pattern(
            &mut twin,
            &module,
            (buf, bytes as u64, verify_seed, mode, result),
        );
        twin.assert_same(&format!("verify of {bytes} bytes"));
    }
}

#[test]
fn chase_double_ends_where_the_kernel_ends() {
    let module = module("chase.ptx");
    let mut rng = fastrand::Rng::with_seed(13);
    for _ in 0..30 {
        let slots = rng.usize(1..200);
        let mut twin = Twin::new(&mut rng, &[slots * 8, 16]);
        let (base, out) = (twin.base(0), twin.base(1));
        // One random cycle through every slot.
        let mut order: Vec<usize> = (0..slots).collect();
        rng.shuffle(&mut order);
        let mut chain = vec![0u8; slots * 8];
        for (i, &slot) in order.iter().enumerate() {
            let next = base + 8 * order[(i + 1) % slots] as u64;
            chain[slot * 8..slot * 8 + 8].copy_from_slice(&next.to_le_bytes());
        }
        twin.interpreted.memory.write(base, &chain);
        twin.native.write(base, &chain);
        let start = base + 8 * order[0] as u64;
        let steps = rng.u64(0..500);
        let params = [Param::U64(start), Param::U64(steps), Param::U64(out)];
        twin.interpreted
            .launch(&module, "p2p_chase", 1, 1, &params)
            .expect("p2p_chase faulted");
        doubles::chase(&mut twin.native, start, steps, out).expect("double faulted");
        twin.assert_same(&format!("chase of {steps} steps over {slots} slots"));
    }
}

#[test]
fn gate_double_ends_as_the_kernel_ends() {
    let module = module("gate.ptx");
    let mut rng = fastrand::Rng::with_seed(14);
    for case in 0..20 {
        let flag = if case % 2 == 0 { 0 } else { rng.u32(1..) };
        let timeout = rng.u64(0..20_000);
        let mut twin = Twin::new(&mut rng, &[4, 4]);
        let (flag_at, status_at) = (twin.base(0), twin.base(1));
        twin.interpreted.memory.write_u32(flag_at, flag);
        twin.interpreted.memory.write_u32(status_at, 0);
        let start = twin.interpreted.now_cycles();
        let params = [
            Param::U64(flag_at),
            Param::U64(status_at),
            Param::U64(timeout),
        ];
        twin.interpreted
            .launch(&module, "p2p_gate", 1, 1, &params)
            .expect("p2p_gate faulted");
        let waited = twin.interpreted.now_cycles() - start;
        let status = twin.interpreted.memory.read_u32(status_at);
        assert_eq!(
            doubles::gate(flag, waited, timeout),
            Some(status),
            "flag {flag:#x}, timeout {timeout} cycles"
        );
        // Before the timeout, with the flag clear, the double keeps spinning as the kernel does.
        if flag == 0 && timeout > 0 {
            assert_eq!(doubles::gate(0, timeout - 1, timeout), None);
        }
    }
}

#[test]
fn doubles_fault_where_the_kernels_fault() {
    let copy = module("copy.ptx");
    let mut device = Device::default();
    let src = device.memory.alloc(64);
    let dst = device.memory.alloc(64);
    let mut native = Memory::default();
    let (nsrc, ndst) = (native.alloc(64), native.alloc(64));
    assert_eq!((src, dst), (nsrc, ndst));
    // Past the end of an allocation.
    let params = [
        Param::U64(dst),
        Param::U64(src),
        Param::U64(80),
        Param::U32(1),
    ];
    assert!(device.launch(&copy, "p2p_copy", 1, 1, &params).is_err());
    assert!(doubles::copy(&mut native, dst, src, 80, 1).is_err());
    // A misaligned vector.
    let params = [
        Param::U64(dst + 4),
        Param::U64(src),
        Param::U64(32),
        Param::U32(1),
    ];
    assert!(device.launch(&copy, "p2p_copy", 1, 1, &params).is_err());
    assert!(doubles::copy(&mut native, dst + 4, src, 32, 1).is_err());
}
