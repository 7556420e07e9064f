//! The real machine behind a [`Connection`]: NVML for the topology and telemetry, the supervised
//! probe for measurements.

use super::Connection;
use crate::app::feed::Feed;
use crate::nvml::{discover, real, sampler};
use crate::probe::launch::StartError;
use crate::probe::supervisor;
use std::path::Path;
use std::sync::mpsc;
use std::time::Duration;

/// Why the real machine could not be opened.
#[derive(Debug)]
pub enum OpenError {
    /// No NVML: no driver, or it is not loaded.
    Nvml(real::NvmlMissing),
    /// The probe could not start or greet.
    Probe(StartError),
    /// CUDA and NVML disagree on the GPUs.
    Mismatch(String),
}

impl std::fmt::Display for OpenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OpenError::Nvml(e) => e.fmt(f),
            OpenError::Probe(e) => e.fmt(f),
            OpenError::Mismatch(m) => f.write_str(m),
        }
    }
}

/// Opens the GPUs: reads the topology through NVML, starts the probe, samples telemetry every
/// `interval`. GPU numbers are NVML's (as `nvidia-smi` prints them); the probe is started with
/// `CUDA_DEVICE_ORDER=PCI_BUS_ID` so CUDA numbers them the same way, and this is checked.
pub fn open(probe: &Path, interval: Duration) -> Result<Connection, OpenError> {
    let (feed_tx, feed) = mpsc::channel();
    let (supervisor, hello) =
        supervisor::start(probe, feed_tx.clone()).map_err(OpenError::Probe)?;
    // After the probe: without a driver, the probe says best what is missing (libcuda, a
    // device, Fabric Manager).
    let nvml = real::open().map_err(OpenError::Nvml)?;
    let cuda_bus_ids: Vec<String> = hello
        .devices
        .iter()
        .map(|d| discover::normalize_bus_id(&d.pci_bus_id))
        .collect();
    let topology = discover::discover(
        &nvml,
        crate::host::host_facts(Path::new("/")),
        &cuda_bus_ids,
    );
    if let Some(g) = topology
        .gpus
        .iter()
        .find(|g| g.cuda_ordinal != Some(g.index))
    {
        return Err(OpenError::Mismatch(format!(
            "NVML's GPU{} ({}) is {} to CUDA; p2ptop needs both to see the same GPUs in the same \
             order: unset CUDA_VISIBLE_DEVICES and pick GPUs with --devices",
            g.index,
            g.pci_bus_id,
            g.cuda_ordinal
                .map_or("invisible".to_owned(), |o| format!("GPU{o}"))
        )));
    }
    sampler::spawn(nvml, interval, move |frame| {
        feed_tx.send(Feed::Telemetry(frame)).is_ok()
    });
    Ok(Connection {
        topology,
        simulated: None,
        feed,
        commands: supervisor,
    })
}
