//! The probe's wire protocol: newline-delimited JSON, one message per line.
//!
//! Commands go to `p2ptop-probe` on stdin, events come back on stdout. Both binaries use these
//! types, so the two ends cannot disagree about a field. The first event is always `hello` (or
//! `fatal`), carrying [`PROTOCOL_VERSION`]; a reader that sees another version must stop.
//!
//! Units live in the key names (`gbps`, `seconds`, `bytes`, `mib`, `ns`); GB/s is 10^9 bytes/s.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// Bumped whenever a message changes shape.
pub const PROTOCOL_VERSION: u32 = 2;

/// One end of a transfer: a GPU (by CUDA ordinal) or the host's pinned memory.
///
/// On the wire a GPU is its ordinal (`0`) and the host is the string `"host"`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Node {
    Gpu(u32),
    Host,
}

impl fmt::Display for Node {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Node::Gpu(ordinal) => write!(f, "GPU{ordinal}"),
            Node::Host => f.write_str("host"),
        }
    }
}

impl Serialize for Node {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Node::Gpu(ordinal) => serializer.serialize_u32(*ordinal),
            Node::Host => serializer.serialize_str("host"),
        }
    }
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Wire {
            Ordinal(u32),
            Name(String),
        }
        match Wire::deserialize(deserializer)? {
            Wire::Ordinal(ordinal) => Ok(Node::Gpu(ordinal)),
            Wire::Name(name) if name == "host" => Ok(Node::Host),
            Wire::Name(name) => Err(serde::de::Error::custom(format!(
                "unknown node {name:?}: a node is a GPU ordinal (0, 1, …) or \"host\""
            ))),
        }
    }
}

/// A data flow: bytes move from the memory of `src` into the memory of `dst`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Pair {
    pub src: Node,
    pub dst: Node,
}

/// What to measure for a pair.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Op {
    /// The copy runs on `dst` and pulls from `src`'s memory.
    Read,
    /// The copy runs on `src` and pushes into `dst`'s memory.
    Write,
    /// Both directions at once, each as a write; reported per direction and summed.
    Bidir,
    /// Pointer chase across the path: the GPU end follows a chain of addresses in the other
    /// end's memory (`dst` in `src`'s for two GPUs; a GPU in its own for a device-local pair).
    Latency,
}

/// Who moves the bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Engine {
    /// p2ptop's PTX copy kernel, run on the streaming multiprocessors.
    Sm,
    /// The GPU's copy engines (`cuMemcpyPeerAsync` / `cuMemcpyAsync`).
    Ce,
}

/// How a measurement is taken. Every field has a default, so `{}` is valid.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// Size of each source and destination buffer.
    pub buffer_mib: u64,
    /// Timed samples per measurement; the result is their median.
    pub samples: u32,
    /// Untimed copies before the first sample (at least one is made: it also sizes the repeat
    /// count).
    pub warmup: u32,
    /// Each sample repeats the copy inside one launch until it lasts at least this long.
    pub min_sample_ms: f64,
    /// Threads per block of the copy kernel.
    pub block_size: u32,
    /// Blocks per streaming multiprocessor of the copy kernel.
    pub blocks_per_sm: u32,
    /// How long the start gate waits for the host before the sample is rejected.
    pub gate_timeout_ms: u64,
    /// A sample not finished after this long is reported as hung.
    pub sample_timeout_ms: u64,
    /// Links followed by one latency measurement.
    pub latency_steps: u64,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            buffer_mib: 512,
            samples: 5,
            warmup: 2,
            min_sample_ms: 10.0,
            block_size: 512,
            blocks_per_sm: 2,
            gate_timeout_ms: 2_000,
            sample_timeout_ms: 10_000,
            latency_steps: 100_000,
        }
    }
}

/// The largest buffer accepted: far beyond any GPU today, small enough that sizes never overflow.
const MAX_BUFFER_MIB: u64 = 1 << 20;
/// The longest pointer chase accepted: at a generous 20 µs per access, under four minutes.
pub const MAX_LATENCY_STEPS: u64 = 10_000_000;

impl Settings {
    /// Refuses settings that cannot work, before anything is allocated or launched.
    pub fn check(&self) -> Result<(), String> {
        let problem = if !(1..=MAX_BUFFER_MIB).contains(&self.buffer_mib) {
            format!("buffer_mib must be from 1 to {MAX_BUFFER_MIB} (1 TiB)")
        } else if self.samples == 0 {
            "samples must be at least 1".into()
        } else if !(32..=1024).contains(&self.block_size) || !self.block_size.is_multiple_of(32) {
            "block_size must be a multiple of 32 from 32 to 1024".into()
        } else if !(1..=32).contains(&self.blocks_per_sm) {
            "blocks_per_sm must be from 1 to 32".into()
        } else if !(self.min_sample_ms.is_finite() && self.min_sample_ms > 0.0) {
            "min_sample_ms must be a positive number".into()
        } else if self.gate_timeout_ms == 0 {
            "gate_timeout_ms must be at least 1".into()
        } else if (self.sample_timeout_ms as f64) < 4.0 * self.min_sample_ms {
            "sample_timeout_ms must be at least 4 × min_sample_ms, or healthy samples would be \
             declared hung"
                .into()
        } else if !(1..=MAX_LATENCY_STEPS).contains(&self.latency_steps) {
            format!("latency_steps must be from 1 to {MAX_LATENCY_STEPS}")
        } else {
            return Ok(());
        };
        Err(problem)
    }
}

/// A message to the probe.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case", deny_unknown_fields)]
pub enum Command {
    /// Measure every pair with every op and engine, in that order (pairs outermost).
    Measure {
        /// Echoed in every event this command causes.
        id: u64,
        pairs: Vec<Pair>,
        ops: Vec<Op>,
        engines: Vec<Engine>,
        #[serde(default)]
        settings: Settings,
    },
    /// Stress: measure every pair at once (each sample times all of them together, so they
    /// compete for what they share), for every engine in turn. Events are the same as for
    /// `measure`, one `sample` and `result` per pair.
    Stress {
        id: u64,
        pairs: Vec<Pair>,
        /// read, write or bidir (latency is not a load).
        op: Op,
        engines: Vec<Engine>,
        #[serde(default)]
        settings: Settings,
    },
    /// Finish the current sample, skip the rest of the current command, then go on.
    Stop,
}

/// Static facts about one GPU, as CUDA reports them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DeviceInfo {
    pub ordinal: u32,
    pub name: String,
    /// `domain:bus:device.function`, lower case, as NVML prints it.
    pub pci_bus_id: String,
    pub compute_capability: String,
    pub sm_count: u32,
    pub memory_mib: u64,
    /// `CU_DEVICE_ATTRIBUTE_L2_CACHE_SIZE`: a buffer that fits in it measures the cache.
    pub l2_cache_bytes: u64,
}

/// What CUDA says about peer access from `src` to `dst`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PeerInfo {
    pub src: u32,
    pub dst: u32,
    /// `cuDeviceCanAccessPeer`.
    pub can_access: bool,
    /// `CU_DEVICE_P2P_ATTRIBUTE_NATIVE_ATOMIC_SUPPORTED`.
    pub native_atomics: bool,
    /// `CU_DEVICE_P2P_ATTRIBUTE_PERFORMANCE_RANK`: lower is a better path.
    pub performance_rank: i32,
}

/// One direction of one timed sample.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DirectionSample {
    pub src: Node,
    pub dst: Node,
    /// The GPU whose kernel or copy engine moved the bytes.
    pub executor: u32,
    /// Bytes moved in the timed region (buffer × repeats; a device-local copy counts them once).
    pub bytes: u64,
    pub seconds: f64,
    pub gbps: f64,
}

/// What the destination held after a sample.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verification {
    pub mismatched_bytes: u64,
    /// Smallest byte offset that differs, if any did.
    pub first_bad_offset: Option<u64>,
}

impl Verification {
    pub fn passed(&self) -> bool {
        self.mismatched_bytes == 0
    }

    /// Adds another check of a later sample or another direction.
    pub fn merge(&mut self, other: Verification) {
        self.mismatched_bytes += other.mismatched_bytes;
        self.first_bad_offset = match (self.first_bad_offset, other.first_bad_offset) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
    }
}

/// Median, spread and extremes of one direction over all accepted samples.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DirectionSummary {
    pub src: Node,
    pub dst: Node,
    pub executor: u32,
    pub median_gbps: f64,
    pub min_gbps: f64,
    pub max_gbps: f64,
    /// Coefficient of variation: standard deviation / mean, as a fraction (0.01 = 1%).
    pub cv: f64,
}

impl Op {
    /// The name used on the wire and in every report.
    pub fn name(self) -> &'static str {
        match self {
            Op::Read => "read",
            Op::Write => "write",
            Op::Bidir => "bidir",
            Op::Latency => "latency",
        }
    }
}

impl Engine {
    /// The name used on the wire and in every report.
    pub fn name(self) -> &'static str {
        match self {
            Engine::Sm => "sm",
            Engine::Ce => "ce",
        }
    }
}

/// Why a pair could not be measured.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureKind {
    /// The request makes no sense for this pair (e.g. host → host); fix the command.
    Invalid,
    /// The hardware or driver cannot do it (e.g. no peer access for SM copies).
    Unsupported,
    /// A CUDA call failed.
    Driver,
    /// A sample did not finish in time; the probe exits after reporting this.
    Hung,
    /// Every sample's start gate timed out, so no sample could be trusted.
    GateTimeout,
    /// The probe died while measuring this pair (reported by p2ptop's supervisor, never by the
    /// probe itself).
    Crashed,
    /// Not measured: the pair hung or crashed the probe earlier, and the restarted probe runs
    /// without it (reported by the supervisor).
    Skipped,
}

/// A message from the probe.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// First line after start: who is here and how they connect.
    Hello {
        protocol: u32,
        /// e.g. "12.4", from `cuDriverGetVersion`.
        cuda_driver_version: String,
        devices: Vec<DeviceInfo>,
        peers: Vec<PeerInfo>,
    },
    /// One accepted timed sample.
    Sample {
        id: u64,
        pair: Pair,
        op: Op,
        engine: Engine,
        index: u32,
        directions: Vec<DirectionSample>,
        verification: Verification,
    },
    /// The summary of one (pair, op, engine) after all its samples.
    Result {
        id: u64,
        pair: Pair,
        op: Op,
        engine: Engine,
        buffer_mib: u64,
        repeats: u32,
        samples: u32,
        /// Samples thrown away because their start gate timed out.
        rejected_samples: u32,
        directions: Vec<DirectionSummary>,
        /// Sum of the directions' medians (the bidir total; equal to the one direction otherwise).
        total_gbps: f64,
        /// All samples' checks together.
        verification: Verification,
    },
    /// A pointer-chase result.
    Latency {
        id: u64,
        pair: Pair,
        executor: u32,
        steps: u64,
        ns_per_access: f64,
        /// Whether the chase ended where following the chain on the host says it must.
        chain_ok: bool,
    },
    /// One pair (op, engine) failed; the probe goes on with the rest unless `kind` is `hung`.
    PairError {
        id: u64,
        pair: Pair,
        op: Op,
        engine: Engine,
        kind: FailureKind,
        message: String,
        /// The CUDA error code, when a driver call failed.
        #[serde(skip_serializing_if = "Option::is_none", default)]
        cuda_error: Option<i32>,
    },
    /// Stress: all pairs' bytes over the span from their common start to the last one's end,
    /// per sample (other streams' end events joined into one), and its summary over the
    /// samples. Unlike the per-pair results, it counts contention at its true length.
    StressTotal {
        id: u64,
        op: Op,
        engine: Engine,
        samples: u32,
        median_gbps: f64,
        min_gbps: f64,
        max_gbps: f64,
        cv: f64,
    },
    /// The probe starts a step that may take up to `deadline_ms` before its next event (a
    /// sample, a warm-up, allocating buffers): whoever watches it should wait that long.
    Progress {
        id: u64,
        step: String,
        deadline_ms: u64,
    },
    /// A command finished; `complete` is false when it was stopped early.
    Done { id: u64, complete: bool },
    /// A command line that could not be understood; the probe goes on reading.
    BadCommand { message: String },
    /// The probe cannot go on (no driver, no device, a poisoned context); it exits after this.
    Fatal {
        message: String,
        #[serde(skip_serializing_if = "Option::is_none", default)]
        cuda_error: Option<i32>,
    },
}

impl Event {
    /// The event as one line of JSON, without the newline.
    pub fn to_line(&self) -> String {
        // Serializing these plain structs cannot fail: no maps with non-string keys, no
        // non-finite floats are rejected by serde_json's writer (they become null).
        serde_json::to_string(self).expect("events always serialize")
    }

    /// Parses one line from the probe; the error says what was wrong with it.
    pub fn from_line(line: &str) -> Result<Event, serde_json::Error> {
        serde_json::from_str(line)
    }
}

impl Command {
    pub fn to_line(&self) -> String {
        serde_json::to_string(self).expect("commands always serialize")
    }

    pub fn from_line(line: &str) -> Result<Command, serde_json::Error> {
        serde_json::from_str(line)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nodes_are_ordinals_or_host_on_the_wire() {
        let pair = Pair {
            src: Node::Host,
            dst: Node::Gpu(3),
        };
        let line = serde_json::to_string(&pair).unwrap();
        assert_eq!(line, r#"{"src":"host","dst":3}"#);
        assert_eq!(serde_json::from_str::<Pair>(&line).unwrap(), pair);
        let err = serde_json::from_str::<Node>(r#""gpu0""#).unwrap_err();
        assert!(err.to_string().contains("unknown node \"gpu0\""), "{err}");
    }

    #[test]
    fn a_minimal_measure_command_takes_default_settings() {
        let cmd = Command::from_line(
            r#"{"cmd":"measure","id":7,"pairs":[{"src":0,"dst":1}],"ops":["read"],"engines":["sm"]}"#,
        )
        .unwrap();
        let Command::Measure { id, settings, .. } = cmd else {
            panic!("not a measure command: {cmd:?}");
        };
        assert_eq!(id, 7);
        assert_eq!(settings, Settings::default());
    }

    #[test]
    fn unknown_settings_are_refused_not_ignored() {
        let err = Command::from_line(
            r#"{"cmd":"measure","id":1,"pairs":[],"ops":[],"engines":[],"settings":{"bufer_mib":1}}"#,
        )
        .unwrap_err();
        assert!(err.to_string().contains("bufer_mib"), "{err}");
    }

    #[test]
    fn the_default_settings_pass_their_own_check() {
        assert_eq!(Settings::default().check(), Ok(()));
    }

    #[test]
    fn settings_that_cannot_work_are_refused_with_the_field_named() {
        let cases = [
            (
                Settings {
                    buffer_mib: 0,
                    ..Settings::default()
                },
                "buffer_mib",
            ),
            (
                Settings {
                    buffer_mib: u64::MAX,
                    ..Settings::default()
                },
                "buffer_mib",
            ),
            (
                Settings {
                    samples: 0,
                    ..Settings::default()
                },
                "samples",
            ),
            (
                Settings {
                    block_size: 100,
                    ..Settings::default()
                },
                "block_size",
            ),
            (
                Settings {
                    block_size: 2048,
                    ..Settings::default()
                },
                "block_size",
            ),
            (
                Settings {
                    blocks_per_sm: 0,
                    ..Settings::default()
                },
                "blocks_per_sm",
            ),
            (
                Settings {
                    min_sample_ms: f64::NAN,
                    ..Settings::default()
                },
                "min_sample_ms",
            ),
            (
                Settings {
                    gate_timeout_ms: 0,
                    ..Settings::default()
                },
                "gate_timeout_ms",
            ),
            (
                Settings {
                    sample_timeout_ms: 20,
                    ..Settings::default()
                },
                "sample_timeout_ms",
            ),
            (
                Settings {
                    latency_steps: 0,
                    ..Settings::default()
                },
                "latency_steps",
            ),
        ];
        for (settings, field) in cases {
            let err = settings.check().unwrap_err();
            assert!(err.starts_with(field), "{field}: {err}");
        }
    }

    #[test]
    fn every_command_round_trips() {
        let commands = [
            Command::Measure {
                id: 1,
                pairs: vec![Pair {
                    src: Node::Gpu(0),
                    dst: Node::Host,
                }],
                ops: vec![Op::Read, Op::Write, Op::Bidir, Op::Latency],
                engines: vec![Engine::Sm, Engine::Ce],
                settings: Settings {
                    buffer_mib: 64,
                    ..Settings::default()
                },
            },
            Command::Stop,
        ];
        for cmd in commands {
            assert_eq!(Command::from_line(&cmd.to_line()).unwrap(), cmd);
        }
    }

    #[test]
    fn every_event_round_trips() {
        let pair = Pair {
            src: Node::Gpu(0),
            dst: Node::Gpu(1),
        };
        let direction = DirectionSample {
            src: Node::Gpu(0),
            dst: Node::Gpu(1),
            executor: 0,
            bytes: 1 << 30,
            seconds: 0.01,
            gbps: 107.37,
        };
        let events = [
            Event::Hello {
                protocol: PROTOCOL_VERSION,
                cuda_driver_version: "12.4".into(),
                devices: vec![DeviceInfo {
                    ordinal: 0,
                    name: "NVIDIA H100 80GB HBM3".into(),
                    pci_bus_id: "0000:18:00.0".into(),
                    compute_capability: "9.0".into(),
                    sm_count: 132,
                    memory_mib: 81_559,
                    l2_cache_bytes: 50 << 20,
                }],
                peers: vec![PeerInfo {
                    src: 0,
                    dst: 1,
                    can_access: true,
                    native_atomics: true,
                    performance_rank: 0,
                }],
            },
            Event::Sample {
                id: 1,
                pair,
                op: Op::Write,
                engine: Engine::Sm,
                index: 0,
                directions: vec![direction],
                verification: Verification {
                    mismatched_bytes: 3,
                    first_bad_offset: Some(4096),
                },
            },
            Event::Result {
                id: 1,
                pair,
                op: Op::Write,
                engine: Engine::Sm,
                buffer_mib: 512,
                repeats: 8,
                samples: 5,
                rejected_samples: 0,
                directions: vec![DirectionSummary {
                    src: Node::Gpu(0),
                    dst: Node::Gpu(1),
                    executor: 0,
                    median_gbps: 370.5,
                    min_gbps: 369.0,
                    max_gbps: 371.0,
                    cv: 0.002,
                }],
                total_gbps: 370.5,
                verification: Verification::default(),
            },
            Event::Latency {
                id: 1,
                pair,
                executor: 1,
                steps: 100_000,
                ns_per_access: 812.5,
                chain_ok: true,
            },
            Event::PairError {
                id: 1,
                pair,
                op: Op::Read,
                engine: Engine::Sm,
                kind: FailureKind::Unsupported,
                message: "no peer access".into(),
                cuda_error: Some(217),
            },
            Event::StressTotal {
                id: 1,
                op: Op::Write,
                engine: Engine::Sm,
                samples: 5,
                median_gbps: 2900.0,
                min_gbps: 2890.0,
                max_gbps: 2910.0,
                cv: 0.003,
            },
            Event::Progress {
                id: 1,
                step: "sample 2 of 5".into(),
                deadline_ms: 1500,
            },
            Event::Done {
                id: 1,
                complete: false,
            },
            Event::BadCommand {
                message: "expected value".into(),
            },
            Event::Fatal {
                message: "no CUDA device".into(),
                cuda_error: Some(100),
            },
        ];
        for event in events {
            let line = event.to_line();
            assert!(!line.contains('\n'), "one event per line: {line}");
            assert_eq!(Event::from_line(&line).unwrap(), event);
        }
    }

    #[test]
    fn verifications_merge_to_total_count_and_first_offset() {
        let mut total = Verification::default();
        total.merge(Verification {
            mismatched_bytes: 2,
            first_bad_offset: Some(100),
        });
        total.merge(Verification::default());
        total.merge(Verification {
            mismatched_bytes: 1,
            first_bad_offset: Some(40),
        });
        assert_eq!(total.mismatched_bytes, 3);
        assert_eq!(total.first_bad_offset, Some(40));
        assert!(!total.passed());
    }
}
