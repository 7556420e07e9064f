//! The parsed form of a kernel: what the parser produces and the executor runs.

/// Index of a register in a thread's register file.
pub type Reg = usize;

/// A parsed `.visible .entry`.
pub struct Kernel {
    pub name: String,
    pub params: Vec<ParamDecl>,
    pub reg_count: usize,
    pub code: Vec<Inst>,
}

/// One `.param .uN name`, in declaration order.
pub struct ParamDecl {
    pub name: String,
    pub bits: u32,
}

/// One instruction, with where it came from so faults can quote it.
pub struct Inst {
    pub guard: Option<Guard>,
    pub op: Op,
    pub line: usize,
    pub text: String,
}

/// `@%p` (run when true) or `@!%p` (run when false).
#[derive(Clone, Copy)]
pub struct Guard {
    pub pred: Reg,
    pub negated: bool,
}

/// The read-only special registers the kernels use.
#[derive(Clone, Copy)]
pub enum Special {
    TidX,
    NtidX,
    CtaidX,
    NctaidX,
    /// `%clock64`: the SM's cycle counter.
    Clock64,
}

impl Special {
    pub fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "%tid.x" => Self::TidX,
            "%ntid.x" => Self::NtidX,
            "%ctaid.x" => Self::CtaidX,
            "%nctaid.x" => Self::NctaidX,
            "%clock64" => Self::Clock64,
            _ => return None,
        })
    }

    pub fn bits(self) -> u32 {
        match self {
            Self::Clock64 => 64,
            Self::TidX | Self::NtidX | Self::CtaidX | Self::NctaidX => 32,
        }
    }
}

pub enum Operand {
    Reg(Reg),
    Imm(u64),
    Special(Special),
}

/// `[%reg]` or `[%reg+offset]`.
pub struct Address {
    pub base: Reg,
    pub offset: u64,
}

#[derive(Clone, Copy)]
pub enum BinOp {
    Add,
    Sub,
    MulLo,
    Shl,
    Shr,
    Xor,
    And,
    /// `min.uN`: the smaller as unsigned numbers.
    MinU,
}

#[derive(Clone, Copy)]
pub enum UnOp {
    Brev,
    Clz,
}

#[derive(Clone, Copy)]
pub enum Cmp {
    Lt,
    Ge,
    Ne,
    Eq,
}

#[derive(Clone, Copy)]
pub enum AtomOp {
    Add,
    Min,
}

/// Register widths are checked by the parser, so every variant can assume its operands hold
/// no more bits than the instruction type says.
pub enum Op {
    LdParam {
        dst: Reg,
        param: usize,
    },
    /// `mov`, and `cvta.to.global`, which is the identity in a flat address space.
    Mov {
        dst: Reg,
        src: Operand,
    },
    /// Zero-extends or truncates to `bits`.
    Cvt {
        dst: Reg,
        src: Operand,
        bits: u32,
    },
    /// `mul.wide.u32`: the full 64-bit product of two 32-bit values.
    MulWide {
        dst: Reg,
        a: Operand,
        b: Operand,
    },
    Binary {
        op: BinOp,
        bits: u32,
        dst: Reg,
        a: Operand,
        b: Operand,
    },
    /// 32-bit only (`brev.b32`, `clz.b32`).
    Unary {
        op: UnOp,
        dst: Reg,
        src: Operand,
    },
    Selp {
        dst: Reg,
        a: Operand,
        b: Operand,
        pred: Reg,
    },
    /// Unsigned comparison; `dst` is a predicate.
    Setp {
        cmp: Cmp,
        dst: Reg,
        a: Operand,
        b: Operand,
    },
    Bra {
        target: usize,
    },
    Ret,
    /// Scalar (one `dsts`) or vector load of `elem_bytes`-byte little-endian elements.
    Load {
        elem_bytes: usize,
        dsts: Vec<Reg>,
        addr: Address,
    },
    /// Stores the low `elem_bytes` of each source, one after another.
    Store {
        elem_bytes: usize,
        srcs: Vec<Operand>,
        addr: Address,
    },
    /// 64-bit atomic read-modify-write; `dst` receives the old value.
    Atom {
        op: AtomOp,
        dst: Reg,
        addr: Address,
        src: Operand,
    },
}

/// All ones in the low `bits` bits.
pub fn mask(bits: u32) -> u64 {
    if bits >= 64 {
        u64::MAX
    } else {
        (1 << bits) - 1
    }
}
