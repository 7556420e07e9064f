//! `-o` paths that name the node: one command line, one file per node.
//!
//! `srun p2ptop check -o reports/%N.json` runs the same arguments on every node, and srun
//! expands `%N` only in its own `--output`, `--error` and `--input`, never in a program's
//! arguments. So p2ptop expands it itself: `%N` is the node's name as Slurm knows it
//! (`$SLURMD_NODENAME`, set in every job step, prolog and health check), or the short host name
//! outside Slurm; `%%` is a literal `%`. Any other `%` is refused, so a pattern meant for srun
//! (`%j`, `%t`) never silently becomes one file that every node overwrites.

use std::path::PathBuf;

/// `-o`'s value with `%N` and `%%` expanded for this node.
pub fn parse(pattern: &str) -> Result<PathBuf, String> {
    if !pattern.contains('%') {
        return Ok(PathBuf::from(pattern));
    }
    let node = node_name().ok_or_else(|| {
        format!("{pattern}: %N needs the node's name, but neither $SLURMD_NODENAME nor the host name is known")
    })?;
    expand(pattern, &node).map(PathBuf::from)
}

/// Expands `%N` to `node` and `%%` to `%`.
pub fn expand(pattern: &str, node: &str) -> Result<String, String> {
    let mut out = String::with_capacity(pattern.len() + node.len());
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('N') => out.push_str(node),
            Some('%') => out.push('%'),
            other => {
                let what = other.map_or_else(|| "a % at the end".to_owned(), |o| format!("%{o}"));
                return Err(format!(
                    "{pattern}: {what} is not expanded; p2ptop expands %N (the node's name) and \
                     %% (a literal %)"
                ));
            }
        }
    }
    Ok(out)
}

/// Slurm's name for this node, else the host name up to its first dot.
pub fn node_name() -> Option<String> {
    let from_slurm = std::env::var("SLURMD_NODENAME")
        .ok()
        .filter(|n| !n.is_empty());
    from_slurm.or_else(|| {
        sysinfo::System::host_name()
            .and_then(|h| h.split('.').next().map(str::to_owned))
            .filter(|h| !h.is_empty())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_node_name_and_a_literal_percent_are_expanded() {
        assert_eq!(
            expand("reports/%N.json", "gpu017").unwrap(),
            "reports/gpu017.json"
        );
        assert_eq!(expand("a%%b-%N-%N", "n1").unwrap(), "a%b-n1-n1");
        assert_eq!(expand("plain.json", "n1").unwrap(), "plain.json");
    }

    #[test]
    fn other_patterns_are_refused_with_what_is_expanded() {
        let err = expand("reports/%j.json", "n1").unwrap_err();
        assert!(err.contains("%j is not expanded"), "{err}");
        assert!(err.contains("%N (the node's name)"), "{err}");
        let err = expand("report%", "n1").unwrap_err();
        assert!(err.contains("a % at the end"), "{err}");
    }
}
