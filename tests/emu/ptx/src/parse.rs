//! Turns PTX text into `Kernel`s. Anything outside the supported subset is an error that quotes
//! the line, so a kernel edited to use something new is never half-understood.

use std::collections::HashMap;

use crate::ir::{
    Address, AtomOp, BinOp, Cmp, Guard, Inst, Kernel, Op, Operand, ParamDecl, Reg, Special, UnOp,
    mask,
};

/// A parsed PTX module: its `.visible .entry` kernels.
pub struct Module {
    kernels: Vec<Kernel>,
}

impl Module {
    /// Parses `text`; the error names the line of the first thing outside the supported subset.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut lines = text.lines().enumerate().filter_map(|(index, raw)| {
            let code = raw
                .split_once("//")
                .map_or(raw, |(code, _comment)| code)
                .trim();
            (!code.is_empty()).then_some(Line {
                number: index + 1,
                text: code,
            })
        });
        let mut kernels = Vec::new();
        while let Some(line) = lines.next() {
            match line.text.strip_prefix(".visible .entry ") {
                Some(header) => kernels.push(parse_entry(header, line, &mut lines)?),
                None => check_module_directive(line)?,
            }
        }
        Ok(Self { kernels })
    }

    /// The entry named `name`, if the module has one.
    pub fn kernel(&self, name: &str) -> Option<&Kernel> {
        self.kernels.iter().find(|kernel| kernel.name == name)
    }

    pub fn kernels(&self) -> &[Kernel] {
        &self.kernels
    }
}

/// A non-empty source line without its comment, and its 1-based number for messages.
#[derive(Clone, Copy)]
struct Line<'a> {
    number: usize,
    text: &'a str,
}

impl Line<'_> {
    fn fail(&self, why: &str) -> String {
        format!("PTX line {}: {why}: `{}`", self.number, self.text)
    }
}

fn next_line<'a>(
    lines: &mut impl Iterator<Item = Line<'a>>,
    after: Line,
) -> Result<Line<'a>, String> {
    lines
        .next()
        .ok_or_else(|| after.fail("the file ends in the middle of this entry"))
}

fn check_module_directive(line: Line) -> Result<(), String> {
    match line.text.split_whitespace().collect::<Vec<_>>().as_slice() {
        [".version", _] | [".target", _] | [".address_size", "64"] => Ok(()),
        _ => Err(line.fail("unsupported module-level line")),
    }
}

/// Parses from just after `.visible .entry ` to the entry's closing brace.
fn parse_entry<'a>(
    header: &str,
    first: Line<'a>,
    lines: &mut impl Iterator<Item = Line<'a>>,
) -> Result<Kernel, String> {
    let name = header
        .strip_suffix('(')
        .ok_or_else(|| first.fail("expected `.visible .entry NAME(`"))?
        .trim();
    let mut last = first;
    let mut params = Vec::new();
    loop {
        last = next_line(lines, last)?;
        if last.text == ")" {
            break;
        }
        params.push(parse_param(last)?);
    }
    last = next_line(lines, last)?;
    if last.text != "{" {
        return Err(last.fail("expected `{` after the parameter list"));
    }
    let mut body = Vec::new();
    loop {
        last = next_line(lines, last)?;
        if last.text == "}" {
            break;
        }
        body.push(last);
    }
    parse_body(name, params, &body)
}

fn parse_param(line: Line) -> Result<ParamDecl, String> {
    let decl = line.text.strip_suffix(',').unwrap_or(line.text);
    match decl.split_whitespace().collect::<Vec<_>>().as_slice() {
        [".param", ty, name] => Ok(ParamDecl {
            name: (*name).to_owned(),
            bits: dotted_type_bits(ty, line)?,
        }),
        _ => Err(line.fail("expected `.param .TYPE NAME`")),
    }
}

/// Two passes: declarations and labels first, so instructions can refer to registers and
/// branch to labels wherever they are.
fn parse_body(name: &str, params: Vec<ParamDecl>, body: &[Line]) -> Result<Kernel, String> {
    let mut regs = HashMap::new();
    let mut labels = HashMap::new();
    let mut instructions = Vec::new();
    for &line in body {
        if let Some(decl) = line.text.strip_prefix(".reg ") {
            declare_registers(&mut regs, decl, line)?;
        } else if let Some(label) = line.text.strip_suffix(':') {
            if !is_identifier(label) || labels.insert(label, instructions.len()).is_some() {
                return Err(line.fail("bad or duplicate label"));
            }
        } else {
            instructions.push(line);
        }
    }
    let scope = Scope {
        regs: &regs,
        params: &params,
        labels: &labels,
    };
    let code = instructions
        .iter()
        .map(|&line| scope.instruction(line))
        .collect::<Result<_, _>>()?;
    Ok(Kernel {
        name: name.to_owned(),
        reg_count: regs.len(),
        params,
        code,
    })
}

fn is_identifier(text: &str) -> bool {
    !text.is_empty() && text.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// A declared register: its index in the register file and its width (1 for a predicate).
#[derive(Clone, Copy)]
struct RegDecl {
    index: Reg,
    bits: u32,
}

/// `.reg .b32 %a<4>, %x;` (already without `.reg `) declares %a0..%a3 and %x.
fn declare_registers(
    regs: &mut HashMap<String, RegDecl>,
    decl: &str,
    line: Line,
) -> Result<(), String> {
    let decl = decl
        .strip_suffix(';')
        .ok_or_else(|| line.fail("missing `;`"))?;
    let (ty, names) = decl
        .trim()
        .split_once(char::is_whitespace)
        .ok_or_else(|| line.fail("expected `.reg .TYPE NAMES`"))?;
    let bits = match ty {
        ".pred" => 1,
        _ => dotted_type_bits(ty, line)?,
    };
    for name in names.split(',').map(str::trim) {
        let expanded: Vec<String> = match name.strip_suffix('>').and_then(|n| n.split_once('<')) {
            Some((prefix, count)) => {
                let count: usize = count.parse().map_err(|_| line.fail("bad register count"))?;
                (0..count).map(|i| format!("{prefix}{i}")).collect()
            }
            None => vec![name.to_owned()],
        };
        for name in expanded {
            if !name.starts_with('%') || regs.contains_key(&name) {
                return Err(line.fail(&format!("bad or duplicate register {name}")));
            }
            let index = regs.len();
            regs.insert(name, RegDecl { index, bits });
        }
    }
    Ok(())
}

/// Like `type_bits`, for a declaration's `.TYPE`.
fn dotted_type_bits(ty: &str, line: Line) -> Result<u32, String> {
    let ty = ty
        .strip_prefix('.')
        .ok_or_else(|| line.fail("expected a `.TYPE`"))?;
    type_bits(ty, line)
}

/// Width of an unsigned or untyped integer type name (without the dot).
fn type_bits(ty: &str, line: Line) -> Result<u32, String> {
    match ty {
        "u8" | "b8" => Ok(8),
        "u16" | "b16" => Ok(16),
        "u32" | "b32" => Ok(32),
        "u64" | "b64" => Ok(64),
        _ => Err(line.fail(&format!(
            "unsupported type .{ty} (only unsigned and bit types)"
        ))),
    }
}

/// What register width an operand may have.
#[derive(Clone, Copy)]
enum Width {
    /// Arithmetic: the register is exactly the instruction's width.
    Exact(u32),
    /// Loads and stores of narrow types may use wider registers (zero-extend / truncate).
    AtLeast(u32),
}

impl Width {
    fn bits(self) -> u32 {
        match self {
            Self::Exact(bits) | Self::AtLeast(bits) => bits,
        }
    }

    fn accepts(self, bits: u32) -> bool {
        match self {
            Self::Exact(want) => bits == want,
            Self::AtLeast(want) => bits >= want,
        }
    }
}

/// Everything an instruction can refer to.
struct Scope<'a> {
    regs: &'a HashMap<String, RegDecl>,
    params: &'a [ParamDecl],
    labels: &'a HashMap<&'a str, usize>,
}

impl Scope<'_> {
    fn instruction(&self, line: Line) -> Result<Inst, String> {
        let statement = line
            .text
            .strip_suffix(';')
            .ok_or_else(|| line.fail("missing `;`"))?;
        let (guard, statement) = match statement.strip_prefix('@') {
            Some(guarded) => {
                let (pred, rest) = guarded
                    .split_once(char::is_whitespace)
                    .ok_or_else(|| line.fail("guard without instruction"))?;
                (Some(pred), rest.trim())
            }
            None => (None, statement),
        };
        let (opcode, operands) = statement
            .split_once(char::is_whitespace)
            .unwrap_or((statement, ""));
        let parser = InstParser {
            scope: self,
            line,
            operands: split_operands(operands),
        };
        Ok(Inst {
            guard: guard.map(|pred| parser.guard(pred)).transpose()?,
            op: parser.op(opcode)?,
            line: line.number,
            text: line.text.to_owned(),
        })
    }
}

/// Splits on the commas that are not inside `{...}` or `[...]`.
fn split_operands(text: &str) -> Vec<&str> {
    let mut operands = Vec::new();
    let mut depth = 0;
    let mut start = 0;
    for (i, c) in text.char_indices() {
        match c {
            '{' | '[' => depth += 1,
            '}' | ']' => depth -= 1,
            ',' if depth == 0 => {
                operands.push(text[start..i].trim());
                start = i + 1;
            }
            _ => {}
        }
    }
    let last = text[start..].trim();
    if !last.is_empty() {
        operands.push(last);
    }
    operands
}

/// Parses one instruction's opcode and operands.
struct InstParser<'a> {
    scope: &'a Scope<'a>,
    line: Line<'a>,
    operands: Vec<&'a str>,
}

type Parsed<T> = Result<T, String>;

impl<'a> InstParser<'a> {
    fn fail(&self, why: &str) -> String {
        self.line.fail(why)
    }

    /// `%p` or `!%p`, the part of a guard after the `@`.
    fn guard(&self, pred: &str) -> Parsed<Guard> {
        let (negated, name) = match pred.strip_prefix('!') {
            Some(name) => (true, name),
            None => (false, pred),
        };
        Ok(Guard {
            pred: self.pred(name)?,
            negated,
        })
    }

    fn op(&self, opcode: &str) -> Parsed<Op> {
        let parts: Vec<&str> = opcode.split('.').collect();
        match parts.as_slice() {
            ["ld", "param", ty] => self.ld_param(self.bits(ty)?),
            // Global and generic addresses coincide in the flat simulated address space.
            ["cvta", "to", "global", "u64"] => self.mov(64),
            ["mov", ty] => self.mov(self.bits(ty)?),
            ["cvt", to, from] => self.cvt(self.bits(to)?, self.bits(from)?),
            ["mul", "wide", "u32"] => self.mul_wide(),
            ["mul", "lo", ty] => self.binary(BinOp::MulLo, ty),
            ["add", ty] => self.binary(BinOp::Add, ty),
            ["sub", ty] => self.binary(BinOp::Sub, ty),
            ["xor", ty] => self.binary(BinOp::Xor, ty),
            ["and", ty] => self.binary(BinOp::And, ty),
            ["min", ty] if ty.starts_with('u') => self.binary(BinOp::MinU, ty),
            ["shl", ty] => self.shift(BinOp::Shl, ty),
            ["shr", ty] => self.shift(BinOp::Shr, ty),
            ["brev", "b32"] => self.unary(UnOp::Brev),
            ["clz", "b32"] => self.unary(UnOp::Clz),
            ["selp", ty] => self.selp(self.bits(ty)?),
            ["setp", cmp, ty] => self.setp(cmp, self.bits(ty)?),
            ["bra"] => self.bra(),
            ["ret"] => {
                let [] = self.operands()?;
                Ok(Op::Ret)
            }
            ["ld", access @ ..] => self.load(access),
            ["st", access @ ..] => self.store(access),
            ["atom", "global", op, "u64"] => self.atom(op),
            _ => Err(self.fail("unsupported instruction")),
        }
    }

    fn bits(&self, ty: &str) -> Parsed<u32> {
        type_bits(ty, self.line)
    }

    fn operands<const N: usize>(&self) -> Parsed<[&'a str; N]> {
        self.operands
            .as_slice()
            .try_into()
            .map_err(|_| self.fail(&format!("expected {N} operands")))
    }

    fn reg(&self, name: &str, width: Width) -> Parsed<Reg> {
        let decl = self.declared(name)?;
        if !width.accepts(decl.bits) {
            return Err(self.fail(&format!(
                "{name} is {} bits wide; this operand needs {}",
                decl.bits,
                width.bits()
            )));
        }
        Ok(decl.index)
    }

    fn pred(&self, name: &str) -> Parsed<Reg> {
        let decl = self.declared(name)?;
        if decl.bits != 1 {
            return Err(self.fail(&format!("{name} is not a predicate")));
        }
        Ok(decl.index)
    }

    fn declared(&self, name: &str) -> Parsed<RegDecl> {
        self.scope
            .regs
            .get(name)
            .copied()
            .ok_or_else(|| self.fail(&format!("undeclared register {name}")))
    }

    /// A register, special register or immediate read as a value of `width`.
    fn source(&self, text: &str, width: Width) -> Parsed<Operand> {
        if let Some(special) = Special::from_name(text) {
            if !width.accepts(special.bits()) {
                return Err(self.fail(&format!("{text} has the wrong width for this instruction")));
            }
            Ok(Operand::Special(special))
        } else if text.starts_with('%') {
            Ok(Operand::Reg(self.reg(text, width)?))
        } else {
            Ok(Operand::Imm(self.immediate(text, width.bits())?))
        }
    }

    /// A decimal or `0x` hexadecimal literal that fits in `bits`.
    fn immediate(&self, text: &str, bits: u32) -> Parsed<u64> {
        let parsed = match text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
            Some(hex) => u64::from_str_radix(hex, 16),
            None => text.parse(),
        };
        let value = parsed.map_err(|_| self.fail(&format!("bad operand {text}")))?;
        if value > mask(bits) {
            return Err(self.fail(&format!("immediate {text} does not fit in {bits} bits")));
        }
        Ok(value)
    }

    /// `[%reg]` or `[%reg+offset]`, with a 64-bit base register (`.address_size 64`).
    fn address(&self, text: &str) -> Parsed<Address> {
        let inner = text
            .strip_prefix('[')
            .and_then(|t| t.strip_suffix(']'))
            .ok_or_else(|| self.fail(&format!("expected an address, found {text}")))?;
        let (base, offset) = match inner.split_once('+') {
            Some((base, offset)) => (base.trim(), self.immediate(offset.trim(), 64)?),
            None => (inner.trim(), 0),
        };
        Ok(Address {
            base: self.reg(base, Width::Exact(64))?,
            offset,
        })
    }

    fn ld_param(&self, bits: u32) -> Parsed<Op> {
        let [dst, addr] = self.operands()?;
        let name = addr
            .strip_prefix('[')
            .and_then(|t| t.strip_suffix(']'))
            .ok_or_else(|| self.fail("expected [PARAM]"))?;
        let param = self
            .scope
            .params
            .iter()
            .position(|p| p.name == name)
            .ok_or_else(|| self.fail(&format!("no parameter named {name}")))?;
        if self.scope.params[param].bits != bits {
            return Err(self.fail("the load type differs from the parameter's type"));
        }
        Ok(Op::LdParam {
            dst: self.reg(dst, Width::Exact(bits))?,
            param,
        })
    }

    fn mov(&self, bits: u32) -> Parsed<Op> {
        let [dst, src] = self.operands()?;
        Ok(Op::Mov {
            dst: self.reg(dst, Width::Exact(bits))?,
            src: self.source(src, Width::Exact(bits))?,
        })
    }

    fn cvt(&self, to: u32, from: u32) -> Parsed<Op> {
        let [dst, src] = self.operands()?;
        Ok(Op::Cvt {
            dst: self.reg(dst, Width::Exact(to))?,
            src: self.source(src, Width::Exact(from))?,
            bits: to,
        })
    }

    fn mul_wide(&self) -> Parsed<Op> {
        let [dst, a, b] = self.operands()?;
        Ok(Op::MulWide {
            dst: self.reg(dst, Width::Exact(64))?,
            a: self.source(a, Width::Exact(32))?,
            b: self.source(b, Width::Exact(32))?,
        })
    }

    fn binary(&self, op: BinOp, ty: &str) -> Parsed<Op> {
        let bits = self.bits(ty)?;
        let [dst, a, b] = self.operands()?;
        let width = Width::Exact(bits);
        Ok(Op::Binary {
            op,
            bits,
            dst: self.reg(dst, width)?,
            a: self.source(a, width)?,
            b: self.source(b, width)?,
        })
    }

    /// Like `binary`, but the shift amount is always a 32-bit value, whatever the type.
    fn shift(&self, op: BinOp, ty: &str) -> Parsed<Op> {
        let bits = self.bits(ty)?;
        let [dst, a, amount] = self.operands()?;
        let width = Width::Exact(bits);
        Ok(Op::Binary {
            op,
            bits,
            dst: self.reg(dst, width)?,
            a: self.source(a, width)?,
            b: self.source(amount, Width::Exact(32))?,
        })
    }

    fn unary(&self, op: UnOp) -> Parsed<Op> {
        let [dst, src] = self.operands()?;
        Ok(Op::Unary {
            op,
            dst: self.reg(dst, Width::Exact(32))?,
            src: self.source(src, Width::Exact(32))?,
        })
    }

    fn selp(&self, bits: u32) -> Parsed<Op> {
        let [dst, a, b, pred] = self.operands()?;
        let width = Width::Exact(bits);
        Ok(Op::Selp {
            dst: self.reg(dst, width)?,
            a: self.source(a, width)?,
            b: self.source(b, width)?,
            pred: self.pred(pred)?,
        })
    }

    fn setp(&self, cmp: &str, bits: u32) -> Parsed<Op> {
        let cmp = match cmp {
            "lt" => Cmp::Lt,
            "ge" => Cmp::Ge,
            "ne" => Cmp::Ne,
            "eq" => Cmp::Eq,
            _ => return Err(self.fail(&format!("unsupported comparison .{cmp}"))),
        };
        let [dst, a, b] = self.operands()?;
        let width = Width::Exact(bits);
        Ok(Op::Setp {
            cmp,
            dst: self.pred(dst)?,
            a: self.source(a, width)?,
            b: self.source(b, width)?,
        })
    }

    fn bra(&self) -> Parsed<Op> {
        let [label] = self.operands()?;
        let target = *self
            .scope
            .labels
            .get(label)
            .ok_or_else(|| self.fail(&format!("no label named {label}")))?;
        Ok(Op::Bra { target })
    }

    /// Splits `ld`/`st` qualifiers into element size and vector length. The state space
    /// (`.global` or generic), `.volatile` and the cache operators the instruction allows
    /// (`cache_operators`) change nothing here: memory is one flat space without caches and
    /// threads run one at a time, so every access already sees the latest value.
    fn access(&self, qualifiers: &[&str], cache_operators: &[&str]) -> Parsed<(Width, usize)> {
        let (ty, modifiers) = qualifiers
            .split_last()
            .ok_or_else(|| self.fail("missing type"))?;
        let mut count = 1;
        for modifier in modifiers {
            match *modifier {
                "global" | "volatile" => {}
                "v4" => count = 4,
                cache if cache_operators.contains(&cache) => {}
                _ => return Err(self.fail(&format!("unsupported qualifier .{modifier}"))),
            }
        }
        Ok((Width::AtLeast(self.bits(ty)?), count))
    }

    /// `%r` for one element, `{%a, %b, %c, %d}` for four.
    fn elements(&self, text: &'a str, count: usize) -> Parsed<Vec<&'a str>> {
        let elements: Vec<&str> = match text.strip_prefix('{').and_then(|t| t.strip_suffix('}')) {
            Some(list) => list.split(',').map(str::trim).collect(),
            None => vec![text],
        };
        if elements.len() != count {
            return Err(self.fail(&format!(
                "expected {count} elements, found {}",
                elements.len()
            )));
        }
        Ok(elements)
    }

    fn load(&self, qualifiers: &[&str]) -> Parsed<Op> {
        let (width, count) = self.access(qualifiers, &["ca", "cg", "cs", "lu", "cv"])?;
        let [dsts, addr] = self.operands()?;
        Ok(Op::Load {
            elem_bytes: width.bits() as usize / 8,
            dsts: self
                .elements(dsts, count)?
                .into_iter()
                .map(|dst| self.reg(dst, width))
                .collect::<Parsed<_>>()?,
            addr: self.address(addr)?,
        })
    }

    fn store(&self, qualifiers: &[&str]) -> Parsed<Op> {
        let (width, count) = self.access(qualifiers, &["wb", "cg", "cs", "wt"])?;
        let [addr, srcs] = self.operands()?;
        Ok(Op::Store {
            elem_bytes: width.bits() as usize / 8,
            srcs: self
                .elements(srcs, count)?
                .into_iter()
                .map(|src| self.source(src, width))
                .collect::<Parsed<_>>()?,
            addr: self.address(addr)?,
        })
    }

    fn atom(&self, op: &str) -> Parsed<Op> {
        let op = match op {
            "add" => AtomOp::Add,
            "min" => AtomOp::Min,
            _ => return Err(self.fail(&format!("unsupported atomic .{op}"))),
        };
        let [dst, addr, src] = self.operands()?;
        Ok(Op::Atom {
            op,
            dst: self.reg(dst, Width::Exact(64))?,
            addr: self.address(addr)?,
            src: self.source(src, Width::Exact(64))?,
        })
    }
}
