//! What a test does when something it needs is missing on this machine (tmux, ptxas, readelf, a
//! daemon) or when the machine cannot show what it checks (a system-wide CUDA driver): it fails
//! and says how to get it, unless `P2PTOP_ALLOW_SKIP` names it — a comma-separated list such as
//! `P2PTOP_ALLOW_SKIP=tmux,ptxas` — and then it says SKIPPED and returns. Under `CI=true`
//! nothing may be skipped, whatever the variable says: CI installs everything (`.ci/run`).
//!
//! Each test decides from the condition itself (the program found or not, the library loaded
//! or not), never from the message the code under test printed, so a reworded message fails
//! rather than passing as a skip.

#![allow(dead_code)] // each test file uses part of this

use std::path::{Path, PathBuf};

/// The environment variable that lists what may be skipped.
pub const ALLOW_SKIP: &str = "P2PTOP_ALLOW_SKIP";

/// Whether `names` (a tool and its package, say) may be skipped here: one of them is listed in
/// `P2PTOP_ALLOW_SKIP` and this is not CI.
pub fn allowed(names: &[&str]) -> bool {
    allowed_by(
        std::env::var("CI").ok().as_deref(),
        &std::env::var(ALLOW_SKIP).unwrap_or_default(),
        names,
    )
}

/// [`allowed`], given the values of `CI` and `P2PTOP_ALLOW_SKIP`.
pub fn allowed_by(ci: Option<&str>, listed: &str, names: &[&str]) -> bool {
    ci != Some("true") && listed.split(',').map(str::trim).any(|n| names.contains(&n))
}

/// Called by a test that cannot run because of `why` (what is missing): returns, after saying
/// SKIPPED, when one of `names` may be skipped; otherwise fails with `remedy` (how to install
/// it) and how to opt out.
pub fn skip(names: &[&str], why: &str, remedy: &str) {
    let name = names.first().copied().unwrap_or("?");
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "{why}; CI=true requires it: {remedy}"
    );
    // Not CI: only what is listed may skip.
    assert!(
        allowed(names),
        "{why}: {remedy}; or set {ALLOW_SKIP}={name} to let this test skip"
    );
    eprintln!("SKIPPED ({ALLOW_SKIP} lists {name}): {why}; this test did not run");
}

/// `program` on PATH (or in the sbin directories a root PATH has), if it is anywhere.
pub fn which(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/local/sbin"].map(PathBuf::from))
        .map(|dir| dir.join(program))
        .find(|p| is_executable(p))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Whether `program` is installed; if not, [`skip`]s (or fails) naming `package`.
pub fn have(program: &str, package: &str, remedy: &str) -> bool {
    if which(program).is_some() {
        return true;
    }
    skip(
        &[program, package],
        &format!("{program} ({package}) is not installed"),
        remedy,
    );
    false
}
