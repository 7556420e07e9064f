//! The real machine behind a [`Connection`]: NVML for the topology and telemetry, the supervised
//! probe for measurements.
//!
//! GPU numbers are NVML's, as `nvidia-smi` prints them, everywhere above this module. NVML may
//! count GPUs CUDA cannot use (outside the job's cgroup, fallen off the bus, in MIG mode, left
//! out of `CUDA_VISIBLE_DEVICES`), and CUDA orders the rest its own way; so the probe is told
//! the GPUs to open by PCI bus id, with each one's NVML index to speak (`probe::numbering`). The
//! others stay in the topology, marked with why nothing is measured on them.

use super::Connection;
use crate::app::feed::Feed;
use crate::model::bus_id;
use crate::model::topology::{Gpu, Topology, Unavailable};
use crate::nvml::{discover, real, sampler};
use crate::probe::launch::{Gpus, Hello, StartError};
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

/// Opens the GPUs: reads the topology through NVML, starts the probe on the GPUs it can
/// measure, samples telemetry every `interval`.
pub fn open(probe: &Path, interval: Duration) -> Result<Connection, OpenError> {
    let (feed_tx, feed) = mpsc::channel();
    let nvml = match real::open() {
        Ok(nvml) => nvml,
        // Without NVML, the probe may still say best what is missing (libcuda, a device,
        // Fabric Manager); if it starts, NVML's own reason stands.
        Err(missing) => {
            supervisor::start(probe, None, feed_tx).map_err(OpenError::Probe)?;
            return Err(OpenError::Nvml(missing));
        }
    };
    let root = Path::new("/");
    let mut topology = discover::discover(&nvml, crate::host::host_facts(root), &[]);
    crate::host::add_gpu_paths(root, &mut topology);
    let gpus = measurable(&topology);
    let (supervisor, hello) =
        supervisor::start(probe, Some(&gpus), feed_tx.clone()).map_err(OpenError::Probe)?;
    number_cuda_devices(&mut topology, &hello)?;
    mark_hidden_from_cuda(&mut topology, &gpus);
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

/// The GPUs the probe gets: every one NVML can open and CUDA can use whole, in NVML order.
fn measurable(topology: &Topology) -> Gpus {
    let gpus: Vec<&Gpu> = topology
        .gpus
        .iter()
        .filter(|g| g.not_measurable().is_none())
        .collect();
    Gpus {
        by_bus_id: gpus
            .iter()
            .map(|g| (g.pci_bus_id.clone(), g.index))
            .collect(),
    }
}

/// Marks the GPUs the probe was asked to open but CUDA does not show: `CUDA_VISIBLE_DEVICES`
/// leaves them out, or the driver hides them from this process.
fn mark_hidden_from_cuda(topology: &mut Topology, asked: &Gpus) {
    let visible = std::env::var("CUDA_VISIBLE_DEVICES").ok();
    for gpu in &mut topology.gpus {
        let was_asked = asked.by_bus_id.iter().any(|(_, n)| *n == gpu.index);
        if was_asked && gpu.cuda_ordinal.is_none() {
            let reason = match &visible {
                Some(list) => format!("CUDA does not show it (CUDA_VISIBLE_DEVICES={list})"),
                None => "CUDA does not show it".to_owned(),
            };
            gpu.unavailable = Some(Unavailable {
                lost: false,
                reason,
            });
        }
    }
}

/// Records each GPU's CUDA ordinal from the probe's hello, checking that the device it numbered
/// as an NVML index is that GPU (by PCI bus id).
fn number_cuda_devices(topology: &mut Topology, hello: &Hello) -> Result<(), OpenError> {
    for (ordinal, device) in hello.devices.iter().enumerate() {
        let bus = bus_id::normalize(&device.pci_bus_id);
        let Some(gpu) = topology.gpus.iter_mut().find(|g| g.index == device.ordinal) else {
            return Err(OpenError::Mismatch(format!(
                "the probe answers for GPU{} ({bus}), which NVML does not have",
                device.ordinal
            )));
        };
        if gpu.pci_bus_id != bus {
            return Err(OpenError::Mismatch(format!(
                "CUDA's device {ordinal} is {bus}, but NVML's GPU{} is {}: the probe was given \
                 another GPU than asked for",
                gpu.index, gpu.pci_bus_id
            )));
        }
        gpu.cuda_ordinal = Some(ordinal as u32);
        gpu.l2_cache_bytes = Some(device.l2_cache_bytes);
    }
    Ok(())
}
