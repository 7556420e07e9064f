//! Registers per thread of each kernel in `ptx/` for each GPU generation, as ptxas allocates them
//! (ptxas 12.9.86, `-v`, with the strict flags of `tests/ptxas.rs`, which checks this table
//! against ptxas whenever the kernels change). The emulated driver uses them to decide how many
//! blocks of a launch fit on an SM at once, as the hardware does.

/// The targets p2ptop's kernels are assembled for, oldest first.
pub const TARGETS: [&str; 9] = [
    "sm_60", "sm_70", "sm_75", "sm_80", "sm_86", "sm_89", "sm_90", "sm_100", "sm_120",
];

/// Per kernel, registers in the order of [`TARGETS`].
const TABLE: [(&str, [u32; 9]); 4] = [
    ("p2p_copy", [64, 56, 64, 48, 48, 48, 48, 48, 48]),
    ("p2p_gate", [7, 10, 8, 10, 10, 10, 10, 10, 8]),
    ("p2p_chase", [15, 14, 14, 14, 14, 14, 11, 11, 12]),
    ("p2p_pattern", [18, 22, 20, 20, 20, 20, 20, 20, 20]),
];

/// Registers per thread of `kernel` on `target` (e.g. "sm_90"), if both are in the table.
pub fn registers(kernel: &str, target: &str) -> Option<u32> {
    let column = TARGETS.iter().position(|t| *t == target)?;
    TABLE
        .iter()
        .find(|(name, _)| *name == kernel)
        .map(|(_, regs)| regs[column])
}

/// The newest target in [`TARGETS`] that a GPU of compute capability `major.minor` runs.
pub fn target_for(major: u32, minor: u32) -> &'static str {
    let capability = major * 10 + minor;
    TARGETS
        .iter()
        .rev()
        .find(|t| t[3..].parse::<u32>().is_ok_and(|sm| sm <= capability))
        .copied()
        .unwrap_or(TARGETS[0])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_gpu_runs_the_newest_target_at_or_below_its_capability() {
        assert_eq!(target_for(9, 0), "sm_90");
        assert_eq!(target_for(8, 6), "sm_86");
        assert_eq!(target_for(8, 7), "sm_86");
        assert_eq!(target_for(6, 1), "sm_60");
        assert_eq!(target_for(12, 0), "sm_120");
        assert_eq!(registers("p2p_copy", "sm_90"), Some(48));
        assert_eq!(registers("p2p_copy", "sm_61"), None);
    }
}
