//! Modules and functions: the JIT's checks on PTX text, and what each of p2ptop's kernels is to
//! the emulation.

use super::codes::{INVALID_PTX, UNSUPPORTED_PTX_VERSION};
use p2ptop_ptx::registers;

/// The kernels the emulation can run, by entry name (their doubles are in `p2ptop_ptx::doubles`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Copy,
    Gate,
    Chase,
    Pattern,
}

impl Kind {
    pub fn of(entry: &str) -> Option<Kind> {
        Some(match entry {
            "p2p_copy" => Kind::Copy,
            "p2p_gate" => Kind::Gate,
            "p2p_chase" => Kind::Chase,
            "p2p_pattern" => Kind::Pattern,
            _ => return None,
        })
    }
}

/// A loaded module: its context and its parsed entries.
pub struct Module {
    pub context: usize,
    pub ptx: p2ptop_ptx::Module,
    /// `.version X.Y` as 10 × X + Y.
    pub isa: u32,
}

/// A function of a loaded module.
pub struct Function {
    pub module: usize,
    pub context: usize,
    pub name: String,
    /// Each `.param`'s width in bits, in order.
    pub params: Vec<u32>,
    pub kind: Option<Kind>,
    /// Registers per thread on this GPU, as ptxas allocates them.
    pub registers: u32,
}

impl Function {
    pub fn new(module: usize, m: &Module, name: &str, capability: (u32, u32)) -> Option<Function> {
        let kernel = m.ptx.kernel(name)?;
        let target = registers::target_for(capability.0, capability.1);
        Some(Function {
            module,
            context: m.context,
            name: name.to_owned(),
            params: kernel.params.iter().map(|p| p.bits).collect(),
            kind: Kind::of(name),
            // A kernel the table does not know: ptxas's usual allocation for small kernels.
            registers: registers::registers(name, target).unwrap_or(32),
        })
    }
}

/// The newest PTX ISA a driver of CUDA `major.minor` compiles (PTX ISA release notes), as
/// 10 × major + minor.
fn newest_isa(cuda_major: u32, cuda_minor: u32) -> u32 {
    match (cuda_major, cuda_minor) {
        (11, m) => 70 + m.min(8),
        (12, m @ 0..=5) => 80 + m,
        (12, 6) => 85,
        (12, 7) => 86,
        (12, 8) => 87,
        (12, _) => 88,
        (13, _) => 90,
        (major, _) if major > 13 => 90,
        _ => 60,
    }
}

/// The oldest PTX ISA that may name `target` (PTX ISA, "Target ISA notes").
fn oldest_isa_for(target: u32) -> u32 {
    match target {
        0..=60 => 50,
        61..=70 => 60,
        71..=75 => 63,
        76..=80 => 70,
        81..=86 => 71,
        87..=90 => 78,
        91..=100 => 86,
        _ => 87,
    }
}

/// What the JIT does with PTX text for a GPU of `capability` under a driver of CUDA
/// `driver_cuda`: the parsed module and its ISA version, or the error code and the log the JIT
/// would write.
pub fn compile(
    text: &str,
    capability: (u32, u32),
    driver_cuda: (u32, u32),
) -> Result<(p2ptop_ptx::Module, u32), (i32, String)> {
    let directive = |name: &str| {
        text.lines()
            .map(|l| l.split("//").next().unwrap_or("").trim())
            .find_map(|l| l.strip_prefix(name).map(|rest| rest.trim().to_owned()))
    };
    let version = directive(".version").ok_or((
        INVALID_PTX,
        "ptxas fatal: missing .version directive".to_owned(),
    ))?;
    let isa = version
        .split_once('.')
        .and_then(|(a, b)| Some(a.parse::<u32>().ok()? * 10 + b.parse::<u32>().ok()?))
        .ok_or((INVALID_PTX, format!("ptxas fatal: bad .version {version}")))?;
    let newest = newest_isa(driver_cuda.0, driver_cuda.1);
    if isa > newest {
        return Err((
            UNSUPPORTED_PTX_VERSION,
            format!(
                "ptxas fatal: Unsupported .version {version}; current version is '{}.{}'",
                newest / 10,
                newest % 10
            ),
        ));
    }
    let target_text = directive(".target").ok_or((
        INVALID_PTX,
        "ptxas fatal: missing .target directive".to_owned(),
    ))?;
    let target = target_text
        .strip_prefix("sm_")
        .and_then(|t| {
            t.trim_end_matches(|c: char| c.is_ascii_alphabetic())
                .parse::<u32>()
                .ok()
        })
        .ok_or((
            INVALID_PTX,
            format!("ptxas fatal: unknown .target {target_text}"),
        ))?;
    let device = capability.0 * 10 + capability.1;
    if target > device {
        return Err((
            INVALID_PTX,
            format!("ptxas fatal: .target {target_text} is newer than this GPU (sm_{device})"),
        ));
    }
    if isa < oldest_isa_for(target) {
        return Err((
            INVALID_PTX,
            format!("ptxas fatal: .target {target_text} needs a newer .version than {version}"),
        ));
    }
    let module =
        p2ptop_ptx::Module::parse(text).map_err(|e| (INVALID_PTX, format!("ptxas: {e}")))?;
    Ok((module, isa))
}

#[cfg(test)]
mod tests {
    use super::*;

    const TINY: &str = ".version 6.0\n.target sm_60\n.address_size 64\n\
        .visible .entry k(\n.param .u64 p\n)\n{\nret;\n}\n";

    #[test]
    fn the_jit_checks_version_target_and_text() {
        assert!(compile(TINY, (9, 0), (12, 4)).is_ok());
        let newer = TINY.replace(".version 6.0", ".version 8.8");
        assert_eq!(
            compile(&newer, (9, 0), (12, 4)).err().unwrap().0,
            UNSUPPORTED_PTX_VERSION
        );
        assert!(compile(&newer, (9, 0), (12, 9)).is_ok());
        let too_new_target = TINY.replace("sm_60", "sm_90");
        assert_eq!(
            compile(&too_new_target, (8, 6), (12, 4)).err().unwrap().0,
            INVALID_PTX
        );
        let bad = TINY.replace("ret;", "trap;");
        let (code, log) = compile(&bad, (9, 0), (12, 4)).err().unwrap();
        assert_eq!(code, INVALID_PTX);
        assert!(log.contains("unsupported instruction"), "{log}");
    }
}
