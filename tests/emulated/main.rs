//! The real binaries (no `--sim`) on emulated NVIDIA drivers: the probe's engine and p2ptop's
//! NVML layer run every command on emulated 1–8 GPU machines, checked against the simulator on
//! the same machine, with no misuse of the driver APIs. See tests/emu and docs/EMULATION.md.

mod harness;

mod exports;
mod faults;
mod live;
mod measure;
mod nvml;
mod probe;
mod stress;
mod topo;
mod unusable;
