//! Starting `p2ptop-probe` and reading its greeting: what the machine has, or why the probe
//! cannot run here.

use super::protocol::{DeviceInfo, Event, PROTOCOL_VERSION, PeerInfo};
use std::path::PathBuf;
use std::time::Duration;

/// The probe's description of the machine.
#[derive(Debug)]
pub struct Hello {
    pub cuda_driver_version: String,
    pub devices: Vec<DeviceInfo>,
    pub peers: Vec<PeerInfo>,
}

/// Why the probe could not describe the machine.
#[derive(Debug)]
pub enum StartError {
    /// The probe binary is not where it should be.
    Missing(PathBuf),
    /// The CUDA driver library could not be loaded: no NVIDIA driver on this machine.
    NoDriver(String),
    /// The driver loaded but reported a problem (no device, Fabric Manager missing, …).
    Fatal(String),
    /// The probe said something that is not the protocol, or nothing in time.
    Broken(String),
}

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StartError::Missing(path) => write!(
                f,
                "the probe binary {} is missing; build both binaries (cargo build --release) or \
                 install p2ptop-probe next to p2ptop",
                path.display()
            ),
            StartError::NoDriver(detail) => write!(
                f,
                "the NVIDIA driver is not installed or not loadable ({detail})"
            ),
            StartError::Fatal(message) => f.write_str(message),
            StartError::Broken(message) => write!(f, "the probe misbehaved: {message}"),
        }
    }
}

/// The GPUs p2ptop wants the probe to open, by PCI bus id, with the number (NVML's index) each
/// goes by in commands and events.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Gpus {
    pub by_bus_id: Vec<(String, u32)>,
}

impl Gpus {
    /// The probe's environment for these GPUs (see `probe::numbering`).
    pub fn environment(&self) -> Vec<(&'static str, String)> {
        vec![(
            super::numbering::VAR,
            super::numbering::encode(&self.by_bus_id),
        )]
    }
}

/// How long a probe may take to greet: driver start-up on a large machine takes seconds.
pub const HELLO_TIMEOUT: Duration = Duration::from_secs(60);

/// `p2ptop-probe` beside the running executable.
pub fn default_probe_path() -> PathBuf {
    let exe = std::env::current_exe().unwrap_or_default();
    exe.with_file_name("p2ptop-probe")
}

/// Reads the probe's first line (and its stderr, when there is no first line).
pub fn interpret(first: Option<&str>, stderr: &str) -> Result<Hello, StartError> {
    let Some(first) = first else {
        if stderr.contains("libcuda.so") {
            // The loader's line ends with the library and its reason; keep just that part.
            let line = stderr
                .lines()
                .find(|l| l.contains("libcuda.so"))
                .unwrap_or_default();
            let detail = line.rfind("libcuda.so").map_or(line, |at| &line[at..]);
            return Err(StartError::NoDriver(detail.trim().to_string()));
        }
        return Err(StartError::Broken(format!(
            "it printed nothing; its errors: {}",
            stderr.trim()
        )));
    };
    match Event::from_line(first) {
        Ok(Event::Hello {
            protocol,
            cuda_driver_version,
            devices,
            peers,
        }) if protocol == PROTOCOL_VERSION => Ok(Hello {
            cuda_driver_version,
            devices,
            peers,
        }),
        Ok(Event::Hello { protocol, .. }) => Err(StartError::Broken(format!(
            "it speaks protocol {protocol}, this p2ptop speaks {PROTOCOL_VERSION}; install matching binaries"
        ))),
        Ok(Event::Fatal { message, .. }) => Err(StartError::Fatal(message)),
        Ok(other) => Err(StartError::Broken(format!("expected hello, got {other:?}"))),
        Err(err) => Err(StartError::Broken(format!(
            "{err} in its first line: {first}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_driver_library_is_told_apart() {
        let stderr = "p2ptop-probe: error while loading shared libraries: libcuda.so.1: cannot open shared object file: No such file or directory\n";
        let err = interpret(None, stderr).unwrap_err();
        assert!(matches!(err, StartError::NoDriver(_)), "{err:?}");
        assert!(err.to_string().contains("NVIDIA driver is not installed"));
    }

    #[test]
    fn a_fatal_event_carries_the_probes_message() {
        let line = Event::Fatal {
            message: "no usable CUDA device: cuInit failed".into(),
            cuda_error: Some(100),
        }
        .to_line();
        let err = interpret(Some(&line), "").unwrap_err();
        assert_eq!(err.to_string(), "no usable CUDA device: cuInit failed");
    }

    #[test]
    fn another_protocol_version_is_refused() {
        let line = Event::Hello {
            protocol: PROTOCOL_VERSION + 1,
            cuda_driver_version: "12.4".into(),
            devices: vec![],
            peers: vec![],
        }
        .to_line();
        let err = interpret(Some(&line), "").unwrap_err();
        assert!(
            err.to_string().contains("install matching binaries"),
            "{err}"
        );
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        let err = interpret(Some("{not json"), "").unwrap_err();
        assert!(matches!(err, StartError::Broken(_)), "{err:?}");
    }
}
