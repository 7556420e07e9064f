//! What the hand-written PTX kernels in ptx/ compute, checked on a CPU interpreter
//! (tests/emu/ptx) so that a wrong index, a lost tail or a broken hash shows up without a GPU.

use p2ptop::probe::chain::{self, Chain};
use p2ptop_ptx::doubles::pattern_word;
use p2ptop_ptx::{Device, Fault, Module, Param};

fn ptx_text(file: &str) -> String {
    let path = format!("{}/ptx/{file}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|err| panic!("reading {path}: {err}"))
}

fn kernel_module(file: &str) -> Module {
    Module::parse(&ptx_text(file)).unwrap_or_else(|e| panic!("{file}: {e}"))
}

#[derive(Clone, Copy, Debug)]
struct Grid {
    blocks: u32,
    threads: u32,
}

impl Grid {
    fn total_threads(self) -> usize {
        (self.blocks * self.threads) as usize
    }
}

/// One thread; two blocks of a warp each; and odd counts that divide nothing evenly.
const GRIDS: [Grid; 3] = [
    Grid {
        blocks: 1,
        threads: 1,
    },
    Grid {
        blocks: 2,
        threads: 32,
    },
    Grid {
        blocks: 3,
        threads: 7,
    },
];

/// Bytes checked on each side of a destination buffer; a multiple of 16 keeps it aligned.
const GUARD: usize = 256;
/// What destination bytes hold before a kernel runs; `source_bytes` never produces it, so a byte
/// that was not written always shows.
const POISON: u8 = 0xFF;

/// Bytes whose period, 251, is prime: a byte copied from the wrong offset (a shift by a vector,
/// a stride, a grid) almost never has the right value by accident.
fn source_bytes(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

/// The first index where two equally long buffers differ.
fn first_difference(expected: &[u8], found: &[u8]) -> Option<usize> {
    expected.iter().zip(found).position(|(e, f)| e != f)
}

// ---------------------------------------------------------------------------------------------
// p2p_copy

/// What one p2p_copy launch did: the launch result, its virtual duration, and both buffers
/// including their guard bytes.
struct CopyRun {
    result: Result<(), Fault>,
    elapsed_cycles: u64,
    src_with_guards: Vec<u8>,
    dst_with_guards: Vec<u8>,
}

/// Copies `bytes` between two fresh buffers framed by `GUARD` bytes: source pattern around
/// and in src (so an over-read copies something visible), poison around and in dst.
fn run_copy(module: &Module, bytes: usize, grid: Grid, repeats: u32) -> CopyRun {
    let framed = bytes + 2 * GUARD;
    let mut device = Device::default();
    let src_frame = device.memory.alloc(framed);
    let dst_frame = device.memory.alloc(framed);
    let src_with_guards = source_bytes(framed);
    device.memory.write(src_frame, &src_with_guards);
    device.memory.write(dst_frame, &vec![POISON; framed]);
    let params = [
        Param::U64(dst_frame + GUARD as u64),
        Param::U64(src_frame + GUARD as u64),
        Param::U64(bytes as u64),
        Param::U32(repeats),
    ];
    let start = device.now_cycles();
    let result = device.launch(module, "p2p_copy", grid.blocks, grid.threads, &params);
    CopyRun {
        result,
        elapsed_cycles: device.now_cycles() - start,
        src_with_guards,
        dst_with_guards: device.memory.read(dst_frame, framed),
    }
}

/// Ok if the launch finished with dst equal to src (or untouched, for zero repeats) and every
/// guard byte still poison; otherwise says what went wrong first.
fn check_copy(module: &Module, bytes: usize, grid: Grid, repeats: u32) -> Result<(), String> {
    let run = run_copy(module, bytes, grid, repeats);
    run.result.map_err(|fault| fault.to_string())?;
    let mut expected = vec![POISON; bytes + 2 * GUARD];
    if repeats > 0 {
        let copied = GUARD..GUARD + bytes;
        expected[copied.clone()].copy_from_slice(&run.src_with_guards[copied]);
    }
    match first_difference(&expected, &run.dst_with_guards) {
        None => Ok(()),
        Some(i) => Err(format!(
            "dst{:+}: expected {:#04x}, found {:#04x}",
            i as isize - GUARD as isize,
            expected[i],
            run.dst_with_guards[i]
        )),
    }
}

/// Sizes that are not multiples of the 16-byte vector or of the grid's unrolled step
/// (8 vectors per thread), plus the exact multiples, around one and two such steps.
fn copy_sizes(grid: Grid) -> Vec<usize> {
    let unrolled_step = 16 * 8 * grid.total_threads();
    let mut sizes = vec![0, 1, 15, 16, 17, 4095, 4096 + 3];
    for steps in [1, 2] {
        for delta in [-17, -16, -3, -1, 0, 1, 3, 16, 17] {
            sizes.push((unrolled_step * steps).saturating_add_signed(delta));
        }
    }
    sizes
}

/// Every (grid, size, repeats) case of the copy matrix that fails, with why.
fn copy_failures(module: &Module) -> Vec<String> {
    let mut failures = Vec::new();
    for grid in GRIDS {
        for bytes in copy_sizes(grid) {
            for repeats in [1, 3] {
                if let Err(why) = check_copy(module, bytes, grid, repeats) {
                    failures.push(format!("{grid:?}, {bytes} bytes, {repeats} repeats: {why}"));
                }
            }
        }
    }
    failures
}

#[test]
fn copy_moves_every_byte_for_awkward_sizes_and_grids() {
    let failures = copy_failures(&kernel_module("copy.ptx"));
    assert!(
        failures.is_empty(),
        "p2p_copy failed:\n{}",
        failures.join("\n")
    );
}

#[test]
fn copy_with_zero_repeats_writes_nothing() {
    let module = kernel_module("copy.ptx");
    for grid in GRIDS {
        for bytes in [1, 17, 4096 + 3] {
            check_copy(&module, bytes, grid, 0)
                .unwrap_or_else(|why| panic!("{grid:?}, {bytes} bytes: {why}"));
        }
    }
}

/// The result of one pass and three is the same, so only the work done shows the repeats ran.
#[test]
fn copy_repeats_redo_the_whole_copy() {
    let module = kernel_module("copy.ptx");
    let grid = GRIDS[2];
    let elapsed_cycles = |repeats| {
        let run = run_copy(&module, 4096 + 3, grid, repeats);
        run.result.expect("p2p_copy faulted");
        run.elapsed_cycles
    };
    let (once, thrice) = (elapsed_cycles(1), elapsed_cycles(3));
    assert!(
        thrice > 2 * once,
        "1 repeat took {once} cycles, 3 took {thrice} cycles"
    );
}

/// `file` with `original` (which must occur exactly once) replaced by a deliberate bug.
fn mutated(file: &str, original: &str, bug: &str) -> Module {
    let text = ptx_text(file);
    assert_eq!(
        text.matches(original).count(),
        1,
        "{file} no longer has `{original}` exactly once; update this mutation"
    );
    Module::parse(&text.replacen(original, bug, 1)).expect("the mutation still parses")
}

fn assert_copy_check_catches(original: &str, bug: &str) {
    let failures = copy_failures(&mutated("copy.ptx", original, bug));
    assert!(!failures.is_empty(), "the copy checks missed `{bug}`");
}

/// Whether `check` (a test's assertions) fails on `module`.
fn check_fails(check: fn(&Module), module: &Module) -> bool {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| check(module))).is_err()
}

#[test]
fn copy_check_catches_a_wrong_stride() {
    assert_copy_check_catches(
        "shl.b64             %stride, %threads, 4;",
        "shl.b64             %stride, %threads, 3;",
    );
}

#[test]
fn copy_check_catches_a_skipped_tail() {
    // The tail starts at %tail_start, so this bound never lets it run.
    assert_copy_check_catches(
        "setp.lt.u64         %more, %off, %bytes;",
        "setp.lt.u64         %more, %off, %tail_start;",
    );
}

#[test]
fn copy_check_catches_an_unroll_bound_one_vector_short() {
    // Testing the 7th vector instead of the 8th lets the unrolled part copy one vector too many.
    assert_copy_check_catches(
        "mul.lo.u64          %last, %threads, 7;",
        "mul.lo.u64          %last, %threads, 6;",
    );
}

#[test]
fn copy_check_catches_a_remainder_that_never_runs() {
    assert_copy_check_catches(
        "setp.ge.u64         %done, %v, %vectors;",
        "setp.ge.u64         %done, %v, %v;",
    );
}

// ---------------------------------------------------------------------------------------------
// p2p_pattern

/// The whole buffer: little-endian words, a partial last word keeping its low bytes.
fn pattern_bytes(len: usize, seed: u32) -> Vec<u8> {
    (0..len)
        .map(|i| pattern_word((i / 4) as u64, seed).to_le_bytes()[i % 4])
        .collect()
}

/// result[0] and result[1] after a launch.
#[derive(Debug, PartialEq, Eq)]
struct Verdict {
    differing_bytes: u64,
    first_offset: u64,
}

/// What the host initialises result to, and what a matching buffer leaves there.
const CLEAN: Verdict = Verdict {
    differing_bytes: 0,
    first_offset: u64::MAX,
};

/// p2p_pattern's `mode` parameter.
#[derive(Clone, Copy)]
enum Mode {
    Fill = 0,
    Verify = 1,
}

/// A buffer on its own device, filled by p2p_pattern, for tests to corrupt and verify.
struct PatternBuffer<'m> {
    module: &'m Module,
    device: Device,
    buf: u64,
    bytes: usize,
    grid: Grid,
}

impl<'m> PatternBuffer<'m> {
    /// Allocates `bytes`, followed by poison guard bytes, and fills them with `seed`'s pattern.
    fn filled(module: &'m Module, bytes: usize, seed: u32, grid: Grid) -> Self {
        let mut device = Device::default();
        let buf = device.memory.alloc(bytes + GUARD);
        device.memory.write(buf, &vec![POISON; bytes + GUARD]);
        let mut buffer = Self {
            module,
            device,
            buf,
            bytes,
            grid,
        };
        assert_eq!(
            buffer.launch(seed, Mode::Fill),
            CLEAN,
            "fill must leave result alone"
        );
        buffer
    }

    fn verify(&mut self, seed: u32) -> Verdict {
        self.launch(seed, Mode::Verify)
    }

    fn xor_byte(&mut self, offset: usize, mask: u8) {
        let at = self.buf + offset as u64;
        let original = self.device.memory.read(at, 1)[0];
        self.device.memory.write(at, &[original ^ mask]);
    }

    fn contents_and_guard(&self) -> Vec<u8> {
        self.device.memory.read(self.buf, self.bytes + GUARD)
    }

    /// Runs p2p_pattern with result set to `CLEAN`, and returns what it left there.
    fn launch(&mut self, seed: u32, mode: Mode) -> Verdict {
        let memory = &mut self.device.memory;
        let result = memory.alloc(16);
        memory.write_u64(result, CLEAN.differing_bytes);
        memory.write_u64(result + 8, CLEAN.first_offset);
        let params = [
            Param::U64(self.buf),
            Param::U64(self.bytes as u64),
            Param::U32(seed),
            Param::U32(mode as u32),
            Param::U64(result),
        ];
        let Grid { blocks, threads } = self.grid;
        self.device
            .launch(self.module, "p2p_pattern", blocks, threads, &params)
            .expect("p2p_pattern faulted");
        Verdict {
            differing_bytes: self.device.memory.read_u64(result),
            first_offset: self.device.memory.read_u64(result + 8),
        }
    }
}

const PATTERN_SEED: u32 = 0x1234_5678;
/// 16 whole words and a 3-byte tail.
const PATTERN_BYTES_WITH_TAIL: usize = 67;

#[test]
fn pattern_fill_writes_the_reference_hash_and_verifies_clean() {
    check_pattern_fill(&kernel_module("pattern.ptx"));
}

fn check_pattern_fill(module: &Module) {
    for grid in GRIDS {
        for bytes in [0, 1, 2, 3, 4, 5, 7, 8, 63, 64, 65, 66, 67, 1027] {
            for seed in [PATTERN_SEED, 0, u32::MAX] {
                let case = format!("{grid:?}, {bytes} bytes, seed {seed:#x}");
                let mut buffer = PatternBuffer::filled(module, bytes, seed, grid);
                let mut expected = pattern_bytes(bytes, seed);
                expected.resize(bytes + GUARD, POISON);
                let found = buffer.contents_and_guard();
                if let Some(i) = first_difference(&expected, &found) {
                    panic!(
                        "{case}: byte {i} is {:#04x}, expected {:#04x}",
                        found[i], expected[i]
                    );
                }
                assert_eq!(buffer.verify(seed), CLEAN, "{case}");
            }
        }
    }
}

#[test]
fn pattern_verify_pinpoints_a_single_flipped_bit() {
    let module = kernel_module("pattern.ptx");
    let bytes = PATTERN_BYTES_WITH_TAIL;
    for grid in GRIDS {
        let mut buffer = PatternBuffer::filled(&module, bytes, PATTERN_SEED, grid);
        for offset in 0..bytes {
            let bit = 1 << (offset % 8);
            buffer.xor_byte(offset, bit);
            let expected = Verdict {
                differing_bytes: 1,
                first_offset: offset as u64,
            };
            assert_eq!(
                buffer.verify(PATTERN_SEED),
                expected,
                "{grid:?}, bit flipped at byte {offset}"
            );
            buffer.xor_byte(offset, bit);
        }
    }
}

#[test]
fn pattern_verify_counts_every_corrupt_byte_and_reports_the_first() {
    check_pattern_verify(&kernel_module("pattern.ptx"));
}

fn check_pattern_verify(module: &Module) {
    // Two bytes of one word, a whole word, a lone byte and a tail byte, out of order.
    let corrupt = [41, 9, 10, 66, 20, 21, 22, 23];
    for grid in GRIDS {
        let mut buffer = PatternBuffer::filled(module, PATTERN_BYTES_WITH_TAIL, PATTERN_SEED, grid);
        for offset in corrupt {
            buffer.xor_byte(offset, 0xFF);
        }
        let expected = Verdict {
            differing_bytes: 8,
            first_offset: 9,
        };
        assert_eq!(buffer.verify(PATTERN_SEED), expected, "{grid:?}");
    }
}

#[test]
fn pattern_verify_of_a_wholly_corrupt_buffer_costs_two_atomics_per_thread_not_per_word() {
    let module = kernel_module("pattern.ptx");
    let grid = GRIDS[1];
    let threads = u64::from(grid.blocks * grid.threads);
    let bytes = 4096 + 3;
    let mut buffer = PatternBuffer::filled(&module, bytes, PATTERN_SEED, grid);
    let before = buffer.device.atomics();
    let verdict = buffer.verify(PATTERN_SEED ^ 0xFFFF_FFFF);
    let atomics = buffer.device.atomics() - before;
    assert!(verdict.differing_bytes > (bytes as u64) / 2, "{verdict:?}");
    assert!(
        atomics <= 2 * threads,
        "{atomics} atomics for {threads} threads over {} words",
        bytes / 4
    );
}

#[test]
fn pattern_verify_with_another_seed_reports_exactly_the_differing_bytes() {
    let module = kernel_module("pattern.ptx");
    let (bytes, other_seed) = (1027, PATTERN_SEED + 1);
    let (filled, checked) = (
        pattern_bytes(bytes, PATTERN_SEED),
        pattern_bytes(bytes, other_seed),
    );
    let differing: Vec<usize> = (0..bytes).filter(|&i| filled[i] != checked[i]).collect();
    let first = *differing
        .first()
        .expect("two seeds give different patterns");
    let expected = Verdict {
        differing_bytes: differing.len() as u64,
        first_offset: first as u64,
    };
    for grid in GRIDS {
        let mut buffer = PatternBuffer::filled(&module, bytes, PATTERN_SEED, grid);
        assert_eq!(buffer.verify(other_seed), expected, "{grid:?}");
    }
}

#[test]
fn pattern_checks_catch_a_changed_hash_a_byte_never_counted_and_the_last_offset_kept() {
    let fill = [(
        "mul.lo.u32          %x, %x, 0x85EBCA6B;",
        "mul.lo.u32          %x, %x, 0x85EBCA6D;",
    )];
    for (original, bug) in fill {
        assert!(
            check_fails(check_pattern_fill, &mutated("pattern.ptx", original, bug)),
            "the fill checks missed `{bug}`"
        );
    }
    let verify = [
        (
            "and.b32             %byte_diff, %x, 0xFF000000;",
            "and.b32             %byte_diff, %x, 0x00000000;",
        ),
        (
            "min.u64             %first_bad, %first_bad, %tmp;",
            "mov.u64             %first_bad, %tmp;",
        ),
        (
            "add.u64             %bad_bytes, %bad_bytes, 1;",
            "add.u64             %bad_bytes, %bad_bytes, 0;",
        ),
    ];
    for (original, bug) in verify {
        assert!(
            check_fails(check_pattern_verify, &mutated("pattern.ptx", original, bug)),
            "the verify checks missed `{bug}`"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// p2p_chase

/// The chain is the probe's own (`p2ptop::probe::chain`), so this checks the two halves of the
/// latency measurement together: what the host lays out is what the kernel follows.
#[test]
fn chase_ends_where_the_probes_chain_says_it_must() {
    check_chase(&kernel_module("chase.ptx"));
}

/// Runs the chase over the probe's chain for `steps`; gives where it ended, where the chain says
/// it must, and the cycles taken. Panics if it wrote past its one result word.
fn run_chase(module: &Module, steps: u64) -> (u64, u64, u64) {
    let region = chain::PAGE_BYTES;
    let mut device = Device::default();
    let base = device.memory.alloc(region as usize);
    let chain = Chain::new(base, region, 257, 0x5EED + steps);
    let bytes: Vec<u8> = chain.words().iter().flat_map(|w| w.to_le_bytes()).collect();
    device.memory.write(base, &bytes);
    let out = device.memory.alloc(16);
    device.memory.write_u64(out + 8, 0xC0FFEE);
    let params = [Param::U64(chain.at(0)), Param::U64(steps), Param::U64(out)];
    let start = device.now_cycles();
    device
        .launch(module, "p2p_chase", 1, 1, &params)
        .expect("p2p_chase faulted");
    assert_eq!(
        device.memory.read_u64(out + 8),
        0xC0FFEE,
        "the chase writes its one result word only"
    );
    (
        device.memory.read_u64(out),
        chain.at(steps),
        device.now_cycles() - start,
    )
}

#[test]
fn the_chase_takes_time_in_proportion_to_its_steps() {
    // The host divides the launch's time by the steps: the kernel must do work per step.
    let module = kernel_module("chase.ptx");
    let (_, _, short) = run_chase(&module, 500);
    let (_, _, long) = run_chase(&module, 1000);
    assert!(
        long * 10 >= short * 19,
        "{short} cycles for 500 steps, {long} for 1000"
    );
}

#[test]
fn chase_checks_catch_a_skipped_link_and_a_wrong_result() {
    for (original, bug) in [
        (
            "add.u64             %step, %step, 1;",
            "add.u64             %step, %step, 2;",
        ),
        (
            "st.global.u64       [%out], %at;",
            "st.global.u64       [%out], %step;",
        ),
    ] {
        assert!(
            check_fails(check_chase, &mutated("chase.ptx", original, bug)),
            "the chase checks missed `{bug}`"
        );
    }
}

fn check_chase(module: &Module) {
    for steps in [0, 1, 2, 3, 100, 256, 257, 1000] {
        let (ended, expected, _) = run_chase(module, steps);
        assert_eq!(ended, expected, "{steps} steps");
    }
}

// ---------------------------------------------------------------------------------------------
// p2p_gate

/// How p2p_gate ended: the launch result, the status word, and the virtual cycles it ran.
struct GateRun {
    result: Result<(), Fault>,
    status: u32,
    elapsed_cycles: u64,
}

fn run_gate(flag_value: u32, timeout_cycles: u64) -> GateRun {
    let module = kernel_module("gate.ptx");
    let mut device = Device::default();
    let flag = device.memory.alloc(4);
    let status = device.memory.alloc(4);
    device.memory.write_u32(flag, flag_value);
    let start = device.now_cycles();
    let params = [
        Param::U64(flag),
        Param::U64(status),
        Param::U64(timeout_cycles),
    ];
    let result = device.launch(&module, "p2p_gate", 1, 1, &params);
    GateRun {
        result,
        status: device.memory.read_u32(status),
        elapsed_cycles: device.now_cycles() - start,
    }
}

/// More virtual cycles than the gate's straight-line path or one spin iteration takes.
const GATE_SLACK_CYCLES: u64 = 100;

#[test]
fn gate_opens_at_once_when_the_flag_is_set() {
    for flag in [1, 0x100, u32::MAX] {
        let run = run_gate(flag, 1_000_000);
        run.result.expect("p2p_gate faulted");
        assert_eq!(run.status, 1, "flag {flag:#x}");
        assert!(
            run.elapsed_cycles < GATE_SLACK_CYCLES,
            "flag {flag:#x}: took {} cycles",
            run.elapsed_cycles
        );
    }
}

#[test]
fn gate_gives_up_after_the_timeout_when_the_flag_stays_zero() {
    for timeout_cycles in [0, 1, 10_000, 50_000] {
        let run = run_gate(0, timeout_cycles);
        run.result.expect("p2p_gate faulted");
        assert_eq!(run.status, 2, "timeout {timeout_cycles} cycles");
        assert!(
            (timeout_cycles..timeout_cycles + GATE_SLACK_CYCLES).contains(&run.elapsed_cycles),
            "timeout {timeout_cycles} cycles: gave up after {} cycles",
            run.elapsed_cycles
        );
    }
}

/// The gate with its flag clear, released by the host `after` cycles into its spin.
fn run_gate_released_after(module: &Module, after: u64) -> GateRun {
    let mut device = Device::default();
    let flag = device.memory.alloc(4);
    let status = device.memory.alloc(4);
    let start = device.now_cycles();
    device.write_at_cycle(start + after, flag, &1u32.to_le_bytes());
    let params = [Param::U64(flag), Param::U64(status), Param::U64(1_000_000)];
    let result = device.launch(module, "p2p_gate", 1, 1, &params);
    GateRun {
        result,
        status: device.memory.read_u32(status),
        elapsed_cycles: device.now_cycles() - start,
    }
}

fn check_gate_release(module: &Module) {
    for after in [10, 1_000, 50_000] {
        let run = run_gate_released_after(module, after);
        run.result.expect("p2p_gate faulted");
        assert_eq!(run.status, 1, "released after {after} cycles");
        assert!(
            (after..after + GATE_SLACK_CYCLES).contains(&run.elapsed_cycles),
            "released after {after} cycles, ended after {}",
            run.elapsed_cycles
        );
    }
}

#[test]
fn gate_opens_when_the_host_writes_the_flag_mid_spin() {
    check_gate_release(&kernel_module("gate.ptx"));
}

#[test]
fn gate_checks_catch_a_flag_read_once_before_the_spin() {
    // Hoisting the load out of the loop spins on a stale register: on a GPU, until the timeout.
    let text = ptx_text("gate.ptx");
    let load = "    ld.volatile.global.u32  %flag_value, [%flag];\n";
    assert_eq!(text.matches(load).count(), 1, "update this mutation");
    let hoisted = text
        .replacen(load, "", 1)
        .replacen("SPIN:\n", &format!("{load}SPIN:\n"), 1);
    let module = Module::parse(&hoisted).expect("the mutation parses");
    assert!(
        check_fails(check_gate_release, &module),
        "the gate checks missed a hoisted load"
    );
}

#[test]
fn every_load_of_the_gates_flag_is_volatile() {
    // The interpreter has no caches, so only the text can show a plain load the compiler may
    // keep in a register.
    let text = ptx_text("gate.ptx");
    let loads: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with("ld.") && l.contains("[%flag]"))
        .collect();
    assert!(!loads.is_empty());
    for load in loads {
        assert!(load.starts_with("ld.volatile."), "{load}");
    }
}

#[test]
fn gate_keeps_spinning_while_the_flag_is_zero_and_time_remains() {
    let run = run_gate(0, u64::MAX);
    let fault = run
        .result
        .expect_err("the gate must not finish without the flag or a timeout");
    assert!(fault.to_string().contains("still running"), "{fault}");
    assert_eq!(
        run.status, 0,
        "a gate still waiting must not have written its status"
    );
}

// ---------------------------------------------------------------------------------------------
// The interpreter's own strictness, which the checks above rely on

#[test]
fn interpreter_rejects_instructions_outside_the_subset() {
    let err = Module::parse(&ptx_text("gate.ptx").replacen("ret;", "trap;", 1))
        .err()
        .expect("trap is outside the subset");
    assert!(err.contains("unsupported instruction"), "{err}");
}

#[test]
fn interpreter_rejects_a_register_of_the_wrong_width() {
    let err = Module::parse(&ptx_text("copy.ptx").replacen("%v, %in_block;", "%v, %v;", 1))
        .err()
        .expect("a 64-bit register where 32 bits are needed");
    assert!(err.contains("is 64 bits wide"), "{err}");
}

#[test]
fn interpreter_faults_when_a_kernel_runs_past_an_allocation() {
    let module = kernel_module("copy.ptx");
    let mut device = Device::default();
    let src = device.memory.alloc(64);
    let dst = device.memory.alloc(64);
    let params = [
        Param::U64(dst),
        Param::U64(src),
        Param::U64(80),
        Param::U32(1),
    ];
    let fault = device
        .launch(&module, "p2p_copy", 1, 1, &params)
        .expect_err("copying 80 bytes out of 64 must fault");
    assert!(
        fault.to_string().contains("outside the 64-byte allocation"),
        "{fault}"
    );
}
