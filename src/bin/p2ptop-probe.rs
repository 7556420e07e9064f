//! p2ptop-probe: the measuring worker. Commands in on stdin, events out on stdout, one JSON
//! object per line. The only binary that links the CUDA driver.

#[path = "../probe/cuda/mod.rs"]
mod cuda;

use clap::Parser;
use cuda::engine::{Probe, StartError};
use p2ptop::exit;
use p2ptop::probe::numbering;
use p2ptop::probe::protocol::Event;
use p2ptop::probe::session::{self, End};
use std::io::Write;
use std::process::ExitCode;

const ABOUT: &str = "\
Measures GPU peer-to-peer, host and device-local bandwidth and latency with hand-written PTX \
kernels (engine sm) and the copy engines (engine ce). It is the worker behind p2ptop and can be \
driven from scripts on its own.";

const PROTOCOL_HELP: &str = r#"PROTOCOL
  Newline-delimited JSON. The probe prints {"event":"hello",...} with the protocol version, the
  GPUs and CUDA's peer-access matrix, then reads commands from stdin, one per line:

    {"cmd":"measure","id":1,"pairs":[{"src":0,"dst":1},{"src":"host","dst":0}],
     "ops":["read","write","bidir","latency"],"engines":["sm","ce"],
     "settings":{"buffer_mib":512,"samples":5}}
    {"cmd":"stop"}        skip the rest of the running measure command

  A node is a GPU's number or "host" (pinned host memory mapped into the GPUs): CUDA's ordinal,
  or, when P2PTOP_GPU_NUMBERS maps PCI bus ids to numbers (0000:18:00.0=0,0000:38:00.0=2, as
  p2ptop sets it to speak NVML's numbering), the number it gives; devices it leaves out are not
  opened. src → dst is the direction the data moves. read runs on dst, write on src, bidir is
  both directions at once (each a write); on host paths the GPU end does the work. GB/s = 10^9 bytes/s; a device-local
  copy counts its bytes once.

  settings (all optional): buffer_mib 512, samples 5, warmup 2, min_sample_ms 10,
  block_size 512, blocks_per_sm 2, gate_timeout_ms 2000, sample_timeout_ms 10000 (the deadline
  of work calibration cannot time: warm-up, filling, verifying; timed samples get five times
  their calibrated length), latency_steps 100000 (at most 10000000).

  Events: sample (one timed sample, with its verification), result (median, min, max and
  coefficient of variation per direction), latency, stress_total (a stress run's bytes over its
  joined span), progress (a step starts that may take up to deadline_ms), pair_error (the probe
  goes on with the next pair), done (per command; complete=false when stopped), bad_command,
  fatal.

  The probe exits after the last command once stdin closes, and when its parent dies.

EXAMPLE
  echo '{"cmd":"measure","id":1,"pairs":[{"src":0,"dst":0},{"src":"host","dst":0}],"ops":["read"],"engines":["sm","ce"]}' \
    | p2ptop-probe

EXIT CODES
  0 done   2 usage error   3 no driver or no GPU   4 the GPU state became unusable (hung or
  faulted work; see the fatal event)"#;

#[derive(Parser)]
#[command(name = "p2ptop-probe", version, about = ABOUT, after_help = PROTOCOL_HELP)]
struct Args {}

/// Streams a GPU gives the probe their own hardware queue: as many as the probe makes lanes
/// (`gpu::MAX_LANES`). The driver's default of 8 would have a stress run's 9th stream wait
/// behind the 1st.
const HARDWARE_QUEUES: u32 = 32;

fn main() -> ExitCode {
    Args::parse();
    die_with_parent();
    ask_for_hardware_queues();
    let numbers = std::env::var(numbering::VAR).ok();
    let (mut probe, hello) = match Probe::start(numbers.as_deref()) {
        Ok(started) => started,
        Err(StartError::Driver(err)) => {
            return fail(
                format!("no usable CUDA device: {err}"),
                Some(err.code),
                exit::ENVIRONMENT,
            );
        }
        Err(StartError::Numbers(message)) => return fail(message, None, exit::USAGE),
    };
    emit(&hello);
    let commands = session::read_commands(std::io::BufReader::new(std::io::stdin()));
    match session::run(&mut probe, commands, &mut emit) {
        End::Finished => exit::code(exit::OK),
        End::Fatal => {
            eprintln!(
                "p2ptop-probe: stopped: the GPU state is no longer usable (see the fatal event)"
            );
            // Exit now, without freeing anything: freeing synchronizes with the GPU, and after
            // a hang the work it would wait for never ends. The process's end releases it all.
            std::process::exit(exit::INTERNAL.into())
        }
    }
}

/// Sets `CUDA_DEVICE_MAX_CONNECTIONS` before the driver starts (it reads it once, at `cuInit`),
/// unless the user asked for at least as many.
fn ask_for_hardware_queues() {
    const VAR: &str = "CUDA_DEVICE_MAX_CONNECTIONS";
    let asked = std::env::var(VAR).ok().and_then(|v| v.parse::<u32>().ok());
    if asked.is_none_or(|n| n < HARDWARE_QUEUES) {
        // SAFETY: called first thing in main, before any other thread exists.
        unsafe { std::env::set_var(VAR, HARDWARE_QUEUES.to_string()) };
    }
}

/// Says why the probe cannot start, on stderr and as a `fatal` event, and gives `code`.
fn fail(message: String, cuda_error: Option<i32>, code: u8) -> ExitCode {
    eprintln!("p2ptop-probe: {message}");
    emit(&Event::Fatal {
        message,
        cuda_error,
    });
    exit::code(code)
}

fn emit(event: &Event) {
    let mut out = std::io::stdout().lock();
    // A closed stdout means nobody is listening any more; the parent-death signal or the end
    // of stdin ends the probe, so a failed write is not worth a panic.
    let _ = writeln!(out, "{}", event.to_line());
    let _ = out.flush();
}

/// Asks the kernel to kill the probe when its parent dies, so no probe (and no kernel it
/// launched) outlives p2ptop, even when p2ptop is killed with SIGKILL.
fn die_with_parent() {
    // SAFETY: prctl with PR_SET_PDEATHSIG takes a signal number and has no memory effects.
    unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) };
}
