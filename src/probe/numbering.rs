//! Which number each GPU goes by in the probe's commands and events.
//!
//! p2ptop numbers GPUs as NVML and `nvidia-smi` do. CUDA numbers them otherwise: only the GPUs
//! it can use (not one outside the job's cgroup, lost, or in MIG mode), in its own order. So
//! p2ptop starts the probe with `CUDA_VISIBLE_DEVICES` listing the GPUs it wants, by UUID, and
//! [`VAR`] giving each of them, in the same order, the number p2ptop knows it by; the probe then
//! speaks those numbers, in its events and its messages alike. Run on its own, it uses CUDA's
//! ordinals.

/// The environment variable that carries the numbers, e.g. `0,1,2,4`.
pub const VAR: &str = "P2PTOP_GPU_NUMBERS";

/// The number of each of `count` CUDA devices, from [`VAR`]'s `text` (CUDA's ordinals when
/// there is none); the error says what is wrong with it.
pub fn parse(text: Option<&str>, count: usize) -> Result<Vec<u32>, String> {
    let Some(text) = text.filter(|t| !t.trim().is_empty()) else {
        return Ok((0..count as u32).collect());
    };
    let numbers = text
        .split(',')
        .map(|n| n.trim().parse::<u32>())
        .collect::<Result<Vec<u32>, _>>()
        .map_err(|_| format!("{VAR}={text:?} is not a comma-separated list of GPU numbers"))?;
    if numbers.len() != count {
        return Err(format!(
            "{VAR}={text:?} numbers {} GPU(s) but CUDA sees {count}",
            numbers.len()
        ));
    }
    let mut sorted = numbers.clone();
    sorted.sort_unstable();
    sorted.dedup();
    if sorted.len() != numbers.len() {
        return Err(format!("{VAR}={text:?} gives one number to two GPUs"));
    }
    Ok(numbers)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cuda_ordinals_unless_told_otherwise() {
        assert_eq!(parse(None, 3), Ok(vec![0, 1, 2]));
        assert_eq!(parse(Some(""), 2), Ok(vec![0, 1]));
        assert_eq!(parse(Some("0,1,2,4"), 4), Ok(vec![0, 1, 2, 4]));
    }

    #[test]
    fn a_list_that_does_not_fit_is_refused_with_why() {
        assert!(
            parse(Some("0,1"), 3)
                .unwrap_err()
                .contains("numbers 2 GPU(s) but CUDA sees 3")
        );
        assert!(
            parse(Some("0,x"), 2)
                .unwrap_err()
                .contains("not a comma-separated list")
        );
        assert!(parse(Some("1,1"), 2).unwrap_err().contains("two GPUs"));
    }
}
