//! Where the emulated libraries find their machine, their shared state and their misuse log,
//! and which calls they refuse: environment variables, read once per process.
//!
//! - `P2PTOP_EMU`: the machine, a preset name or a machine file, as `--sim` takes it. Without it
//!   the libraries behave like a driver with no GPU and say why on stderr.
//! - `P2PTOP_EMU_STATE`: the state file the CUDA and NVML sides share (optional; by default one
//!   per machine and login session in the temporary directory, so `p2ptop` and the probe it
//!   starts find the same one).
//! - `P2PTOP_EMU_LOG`: a file every misuse is appended to (optional; stderr otherwise).
//! - `P2PTOP_EMU_REFUSE`: entry points to refuse, comma separated, each `name` or `name=code`
//!   (optional): they answer that code, or NVML's "function not found", as an older or stricter
//!   driver would, so the caller's fallbacks can be tried.

use p2ptop::sim::machine::Machine;
use std::path::PathBuf;

pub const MACHINE_VAR: &str = "P2PTOP_EMU";
pub const STATE_VAR: &str = "P2PTOP_EMU_STATE";
pub const LOG_VAR: &str = "P2PTOP_EMU_LOG";
pub const REFUSE_VAR: &str = "P2PTOP_EMU_REFUSE";

/// The emulated machine and where its state lives.
pub struct Config {
    pub machine: Machine,
    pub state_path: PathBuf,
}

/// Reads the environment; the error says what to set.
pub fn load() -> Result<Config, String> {
    let name = std::env::var(MACHINE_VAR).map_err(|_| {
        format!("{MACHINE_VAR} is not set: name a simulated machine (a preset or a machine file)")
    })?;
    let machine = p2ptop::sim::load(&name).map_err(|e| format!("{MACHINE_VAR}={name}: {e}"))?;
    let state_path = std::env::var_os(STATE_VAR)
        .map(PathBuf::from)
        .unwrap_or_else(|| default_state_path(&name));
    Ok(Config {
        machine,
        state_path,
    })
}

/// Whether `P2PTOP_EMU_REFUSE` names `call`, and with which code if it gives one.
pub fn refusal(call: &str) -> Option<Option<i64>> {
    static REFUSED: std::sync::OnceLock<Vec<(String, Option<i64>)>> = std::sync::OnceLock::new();
    let refused = REFUSED.get_or_init(|| {
        std::env::var(REFUSE_VAR)
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|item| !item.is_empty())
            .map(|item| match item.split_once('=') {
                Some((name, code)) => (name.to_owned(), code.trim().parse().ok()),
                None => (item.to_owned(), None),
            })
            .collect()
    });
    refused
        .iter()
        .find(|(name, _)| name == call)
        .map(|(_, code)| *code)
}

/// One state file per machine name and login session: `p2ptop` and the probe it starts share a
/// session, two terminals do not.
fn default_state_path(machine: &str) -> PathBuf {
    // SAFETY: getsid(0) and getuid() read the calling process's ids; no memory is involved.
    let (session, user) = unsafe { (libc::getsid(0), libc::getuid()) };
    let name: String = machine
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    std::env::temp_dir().join(format!("p2ptop-emu-{user}-{session}-{name}.state"))
}
