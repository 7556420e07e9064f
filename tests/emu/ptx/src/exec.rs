//! Runs a kernel's threads one after another on a simulated device.

use std::fmt;

use crate::ir::{Address, AtomOp, BinOp, Cmp, Inst, Kernel, Op, Operand, Special, UnOp, mask};
use crate::memory::Memory;
use crate::parse::Module;

/// Virtual SM cycles that pass per executed instruction: enough for %clock64 to move, so spin
/// loops with a timeout end, deterministically.
const CYCLES_PER_INSTRUCTION: u64 = 1;
/// %clock64 at power-on; not zero, like a counter that has been running for a while.
const CLOCK_START: u64 = 1_000_000_000;
/// Instructions one thread may execute before it is declared stuck in an endless loop.
const STEP_LIMIT: u64 = 1_000_000;

/// A kernel argument, in declaration order; its type must match the `.param` declaration.
#[derive(Clone, Copy)]
pub enum Param {
    U32(u32),
    U64(u64),
}

/// Why a launch stopped early: a bad memory access or a thread that never finished.
pub struct Fault(String);

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Device memory plus the virtual cycle counter behind %clock64.
pub struct Device {
    pub memory: Memory,
    cycles: u64,
    /// Atomic operations executed so far: on a GPU, atomics to one address serialize.
    atomics: u64,
    /// Bytes the host writes while a kernel runs: (at which cycle, where, what), in cycle order.
    host_writes: Vec<(u64, u64, Vec<u8>)>,
}

impl Default for Device {
    fn default() -> Self {
        Self {
            memory: Memory::default(),
            cycles: CLOCK_START,
            atomics: 0,
            host_writes: Vec::new(),
        }
    }
}

/// The special registers that tell a thread where it is in the grid.
#[derive(Clone, Copy)]
struct ThreadIds {
    tid: u32,
    ntid: u32,
    ctaid: u32,
    nctaid: u32,
}

struct Thread {
    regs: Vec<u64>,
    ids: ThreadIds,
}

impl Thread {
    fn address(&self, addr: &Address) -> u64 {
        self.regs[addr.base].wrapping_add(addr.offset)
    }
}

/// Where execution goes after an instruction.
enum Flow {
    Next,
    Jump(usize),
    Exit,
}

impl Device {
    /// Has the host write `bytes` at `addr` once %clock64 reaches `cycle`, in the middle of
    /// whatever kernel runs then (as the host releases a spinning gate).
    pub fn write_at_cycle(&mut self, cycle: u64, addr: u64, bytes: &[u8]) {
        self.host_writes.push((cycle, addr, bytes.to_vec()));
        self.host_writes.sort_by_key(|(at, _, _)| *at);
    }

    /// Atomic operations executed since the device was made.
    pub fn atomics(&self) -> u64 {
        self.atomics
    }

    /// The current %clock64 value.
    pub fn now_cycles(&self) -> u64 {
        self.cycles
    }

    /// Runs every thread of a `grid_blocks` x `block_threads` launch to completion, one
    /// after another. A kernel the module lacks, or `params` that do not match its declaration,
    /// fault before any thread runs.
    pub fn launch(
        &mut self,
        module: &Module,
        kernel: &str,
        grid_blocks: u32,
        block_threads: u32,
        params: &[Param],
    ) -> Result<(), Fault> {
        let kernel = module
            .kernel(kernel)
            .ok_or_else(|| Fault(format!("the module has no kernel named {kernel}")))?;
        let params = bind_params(kernel, params)?;
        for ctaid in 0..grid_blocks {
            for tid in 0..block_threads {
                let ids = ThreadIds {
                    tid,
                    ntid: block_threads,
                    ctaid,
                    nctaid: grid_blocks,
                };
                self.run_thread(kernel, &params, ids)?;
            }
        }
        Ok(())
    }

    fn run_thread(&mut self, kernel: &Kernel, params: &[u64], ids: ThreadIds) -> Result<(), Fault> {
        let mut thread = Thread {
            regs: vec![0; kernel.reg_count],
            ids,
        };
        let mut pc = 0;
        for _ in 0..STEP_LIMIT {
            // Reaching the closing brace returns, as an implicit `ret` would.
            let Some(inst) = kernel.code.get(pc) else {
                return Ok(());
            };
            self.cycles += CYCLES_PER_INSTRUCTION;
            self.apply_host_writes();
            let flow = if guard_passes(inst, &thread) {
                self.execute(&inst.op, &mut thread, params)
                    .map_err(|why| fault(kernel, ids, inst, &why))?
            } else {
                Flow::Next
            };
            pc = match flow {
                Flow::Next => pc + 1,
                Flow::Jump(target) => target,
                Flow::Exit => return Ok(()),
            };
        }
        Err(Fault(format!(
            "{}: block {} thread {}: still running after {STEP_LIMIT} instructions",
            kernel.name, ids.ctaid, ids.tid
        )))
    }

    /// Makes the host writes that are due by now.
    fn apply_host_writes(&mut self) {
        while let Some((at, _, _)) = self.host_writes.first() {
            if *at > self.cycles {
                break;
            }
            let (_, addr, bytes) = self.host_writes.remove(0);
            self.memory.write(addr, &bytes);
        }
    }

    fn execute(&mut self, op: &Op, thread: &mut Thread, params: &[u64]) -> Result<Flow, String> {
        match op {
            Op::Bra { target } => return Ok(Flow::Jump(*target)),
            Op::Ret => return Ok(Flow::Exit),
            Op::LdParam { dst, param } => thread.regs[*dst] = params[*param],
            Op::Mov { dst, src } => thread.regs[*dst] = self.read(thread, src),
            Op::Cvt { dst, src, bits } => thread.regs[*dst] = self.read(thread, src) & mask(*bits),
            Op::MulWide { dst, a, b } => {
                thread.regs[*dst] = self.read(thread, a) * self.read(thread, b);
            }
            Op::Binary {
                op,
                bits,
                dst,
                a,
                b,
            } => {
                thread.regs[*dst] = binary(*op, *bits, self.read(thread, a), self.read(thread, b));
            }
            Op::Unary { op, dst, src } => thread.regs[*dst] = unary(*op, self.read(thread, src)),
            Op::Selp { dst, a, b, pred } => {
                let chosen = if thread.regs[*pred] != 0 { a } else { b };
                thread.regs[*dst] = self.read(thread, chosen);
            }
            Op::Setp { cmp, dst, a, b } => {
                let holds = compare(*cmp, self.read(thread, a), self.read(thread, b));
                thread.regs[*dst] = u64::from(holds);
            }
            Op::Load {
                elem_bytes,
                dsts,
                addr,
            } => self.load(thread, *elem_bytes, dsts, addr)?,
            Op::Store {
                elem_bytes,
                srcs,
                addr,
            } => self.store(thread, *elem_bytes, srcs, addr)?,
            Op::Atom { op, dst, addr, src } => {
                thread.regs[*dst] = self.atom(thread, *op, addr, src)?;
            }
        }
        Ok(Flow::Next)
    }

    fn read(&self, thread: &Thread, operand: &Operand) -> u64 {
        let ids = thread.ids;
        match operand {
            Operand::Reg(reg) => thread.regs[*reg],
            Operand::Imm(value) => *value,
            Operand::Special(Special::TidX) => u64::from(ids.tid),
            Operand::Special(Special::NtidX) => u64::from(ids.ntid),
            Operand::Special(Special::CtaidX) => u64::from(ids.ctaid),
            Operand::Special(Special::NctaidX) => u64::from(ids.nctaid),
            Operand::Special(Special::Clock64) => self.cycles,
        }
    }

    /// Reads `dsts.len()` consecutive elements in one access, aligned to its whole size as a
    /// vector access must be.
    fn load(
        &self,
        thread: &mut Thread,
        elem_bytes: usize,
        dsts: &[usize],
        addr: &Address,
    ) -> Result<(), String> {
        let bytes = self
            .memory
            .load(thread.address(addr), elem_bytes * dsts.len())?;
        for (dst, element) in dsts.iter().zip(bytes.chunks(elem_bytes)) {
            thread.regs[*dst] = little_endian(element);
        }
        Ok(())
    }

    /// Writes the low `elem_bytes` of each source, consecutively, in one aligned access.
    fn store(
        &mut self,
        thread: &Thread,
        elem_bytes: usize,
        srcs: &[Operand],
        addr: &Address,
    ) -> Result<(), String> {
        let data: Vec<u8> = srcs
            .iter()
            .flat_map(|src| {
                self.read(thread, src)
                    .to_le_bytes()
                    .into_iter()
                    .take(elem_bytes)
            })
            .collect();
        self.memory.store(thread.address(addr), &data)
    }

    /// 64-bit read-modify-write; returns the old value. Threads run one at a time, so a plain
    /// load and store are atomic.
    fn atom(
        &mut self,
        thread: &Thread,
        op: AtomOp,
        addr: &Address,
        src: &Operand,
    ) -> Result<u64, String> {
        self.atomics += 1;
        let at = thread.address(addr);
        let old = little_endian(self.memory.load(at, 8)?);
        let operand = self.read(thread, src);
        let new = match op {
            AtomOp::Add => old.wrapping_add(operand),
            AtomOp::Min => old.min(operand),
        };
        self.memory.store(at, &new.to_le_bytes())?;
        Ok(old)
    }
}

/// Checks the arguments against the `.param` list and returns their raw values.
fn bind_params(kernel: &Kernel, params: &[Param]) -> Result<Vec<u64>, Fault> {
    if params.len() != kernel.params.len() {
        return Err(Fault(format!(
            "{} takes {} parameters, got {}",
            kernel.name,
            kernel.params.len(),
            params.len()
        )));
    }
    kernel
        .params
        .iter()
        .zip(params)
        .map(|(decl, param)| match (decl.bits, *param) {
            (32, Param::U32(value)) => Ok(u64::from(value)),
            (64, Param::U64(value)) => Ok(value),
            _ => Err(Fault(format!(
                "{}: parameter {} is declared with {} bits",
                kernel.name, decl.name, decl.bits
            ))),
        })
        .collect()
}

fn guard_passes(inst: &Inst, thread: &Thread) -> bool {
    inst.guard
        .is_none_or(|guard| (thread.regs[guard.pred] != 0) != guard.negated)
}

fn fault(kernel: &Kernel, ids: ThreadIds, inst: &Inst, why: &str) -> Fault {
    Fault(format!(
        "{} line {} `{}`: block {} thread {}: {why}",
        kernel.name, inst.line, inst.text, ids.ctaid, ids.tid
    ))
}

/// Wraps to `bits`. Shifts by the width or more give 0; right shifts fill with zeros, as for the
/// unsigned and untyped (`.b`) types.
fn binary(op: BinOp, bits: u32, a: u64, b: u64) -> u64 {
    let too_far = b >= u64::from(bits);
    let result = match op {
        BinOp::Add => a.wrapping_add(b),
        BinOp::Sub => a.wrapping_sub(b),
        BinOp::MulLo => a.wrapping_mul(b),
        BinOp::Shl if too_far => 0,
        BinOp::Shl => a << b,
        BinOp::Shr if too_far => 0,
        BinOp::Shr => a >> b,
        BinOp::Xor => a ^ b,
        BinOp::And => a & b,
        BinOp::MinU => a.min(b),
    };
    result & mask(bits)
}

/// 32-bit operations; the parser has checked the source is a 32-bit value.
fn unary(op: UnOp, src: u64) -> u64 {
    let word = src as u32;
    u64::from(match op {
        UnOp::Brev => word.reverse_bits(),
        UnOp::Clz => word.leading_zeros(),
    })
}

fn compare(cmp: Cmp, a: u64, b: u64) -> bool {
    match cmp {
        Cmp::Lt => a < b,
        Cmp::Ge => a >= b,
        Cmp::Ne => a != b,
        Cmp::Eq => a == b,
    }
}

fn little_endian(bytes: &[u8]) -> u64 {
    bytes
        .iter()
        .rev()
        .fold(0, |value, &byte| value << 8 | u64::from(byte))
}
