//! Which transfers a (pair, op) stands for, and which GPU runs each one.
//!
//! The words are the design's: a **read** runs on `dst` and pulls from `src`, a **write** runs on
//! `src` and pushes into `dst`, **bidir** is both directions at once (each as a write). The host
//! runs no kernel, so on a path with the host at one end the GPU end does the work for every op:
//! host → GPU is always a GPU read, GPU → host always a GPU write.

use super::protocol::{DirectionSample, DirectionSummary, Engine, Node, Op, Pair, Settings};
use super::stats;
use std::time::Duration;

/// One direction of a measurement: bytes from `src` to `dst`, moved by GPU `executor`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Transfer {
    pub src: Node,
    pub dst: Node,
    pub executor: u32,
}

impl Transfer {
    /// One timed sample of this transfer: `bytes` moved in `seconds`.
    pub fn sample(&self, bytes: u64, seconds: f64) -> DirectionSample {
        DirectionSample {
            src: self.src,
            dst: self.dst,
            executor: self.executor,
            bytes,
            seconds,
            gbps: bytes as f64 / seconds / 1e9,
        }
    }

    /// The summary of this transfer's samples (GB/s); `None` without samples.
    pub fn summary(&self, gbps: &[f64]) -> Option<DirectionSummary> {
        let s = stats::summarize(gbps)?;
        Some(DirectionSummary {
            src: self.src,
            dst: self.dst,
            executor: self.executor,
            median_gbps: s.median,
            min_gbps: s.min,
            max_gbps: s.max,
            cv: s.cv,
        })
    }
}

impl std::fmt::Display for Transfer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} → {}", self.src, self.dst)
    }
}

/// The transfers that measure `op` on `pair`, or why that op makes no sense there.
pub fn transfers(pair: Pair, op: Op) -> Result<Vec<Transfer>, String> {
    if pair.src == Node::Host && pair.dst == Node::Host {
        return Err("host → host involves no GPU; pick a pair with at least one GPU".into());
    }
    match op {
        Op::Read | Op::Latency => Ok(vec![one_way(pair, pair.dst, pair.src)]),
        Op::Write => Ok(vec![one_way(pair, pair.src, pair.dst)]),
        Op::Bidir if pair.src == pair.dst => Err(format!(
            "bidir needs two different nodes; {} → {} is a device-local copy, measure it with read or write",
            pair.src, pair.dst
        )),
        Op::Bidir => {
            let back = Pair {
                src: pair.dst,
                dst: pair.src,
            };
            Ok(vec![
                one_way(pair, pair.src, pair.dst),
                one_way(back, back.src, back.dst),
            ])
        }
    }
}

/// A transfer run by `preferred`, or by `other` when `preferred` is the host.
fn one_way(pair: Pair, preferred: Node, other: Node) -> Transfer {
    let executor = match (preferred, other) {
        (Node::Gpu(gpu), _) | (Node::Host, Node::Gpu(gpu)) => gpu,
        (Node::Host, Node::Host) => unreachable!("host → host is rejected before planning"),
    };
    Transfer {
        src: pair.src,
        dst: pair.dst,
        executor,
    }
}

/// Repeat counts stay within these, whatever the calibration says. The kernel repeats inside one
/// launch; the copy engines need one queued copy per repeat, all held behind the gate, and a
/// stream's queue holds only so many before enqueueing blocks the host (which would then miss
/// the gate), so their samples may be shorter than `min_sample_ms` on small buffers.
pub const MAX_KERNEL_REPEATS: u32 = 100_000;
pub const MAX_COPY_ENGINE_REPEATS: u32 = 128;

/// How many passes over the buffer one sample makes so that it lasts at least
/// `min_sample_ms`, given how long one pass took.
pub fn repeats(settings: &Settings, one_pass_ms: f64, engine: Engine) -> u32 {
    let repeats = (settings.min_sample_ms / one_pass_ms.max(1e-3)).ceil();
    let most = match engine {
        Engine::Sm => MAX_KERNEL_REPEATS,
        Engine::Ce => MAX_COPY_ENGINE_REPEATS,
    };
    (repeats as u32).clamp(1, most)
}

/// How long timed work that calibration says takes `expected` may run before it counts as
/// hung: five times that, and at least a second (a GPU clocking up, the host scheduling). A
/// sample's deadline follows its own length: a fixed one would call a long sample on a slow
/// link hung, or wait minutes for a short one that is.
pub fn sample_deadline(expected: Duration) -> Duration {
    (expected.saturating_mul(5)).max(MIN_SAMPLE_DEADLINE)
}

/// The shortest deadline a timed sample gets.
pub const MIN_SAMPLE_DEADLINE: Duration = Duration::from_secs(1);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_samples_deadline_follows_its_calibrated_length() {
        assert_eq!(
            sample_deadline(Duration::from_millis(1)),
            MIN_SAMPLE_DEADLINE
        );
        assert_eq!(
            sample_deadline(Duration::from_millis(800)),
            Duration::from_secs(4)
        );
        assert_eq!(
            sample_deadline(Duration::from_secs(60)),
            Duration::from_secs(300)
        );
        assert_eq!(sample_deadline(Duration::MAX), Duration::MAX, "no overflow");
    }

    fn pair(src: Node, dst: Node) -> Pair {
        Pair { src, dst }
    }

    #[test]
    fn read_runs_on_the_destination_and_write_on_the_source() {
        let p = pair(Node::Gpu(0), Node::Gpu(1));
        assert_eq!(transfers(p, Op::Read).unwrap()[0].executor, 1);
        assert_eq!(transfers(p, Op::Write).unwrap()[0].executor, 0);
        assert_eq!(transfers(p, Op::Latency).unwrap()[0].executor, 1);
    }

    #[test]
    fn the_gpu_end_runs_every_host_path() {
        for op in [Op::Read, Op::Write, Op::Latency] {
            let to_gpu = transfers(pair(Node::Host, Node::Gpu(2)), op).unwrap();
            assert_eq!(to_gpu[0].executor, 2, "{op:?}");
            let to_host = transfers(pair(Node::Gpu(2), Node::Host), op).unwrap();
            assert_eq!(to_host[0].executor, 2, "{op:?}");
        }
    }

    #[test]
    fn bidir_is_two_writes_in_opposite_directions() {
        let t = transfers(pair(Node::Gpu(0), Node::Gpu(1)), Op::Bidir).unwrap();
        assert_eq!(
            t,
            vec![
                Transfer {
                    src: Node::Gpu(0),
                    dst: Node::Gpu(1),
                    executor: 0
                },
                Transfer {
                    src: Node::Gpu(1),
                    dst: Node::Gpu(0),
                    executor: 1
                },
            ]
        );
        let host = transfers(pair(Node::Host, Node::Gpu(1)), Op::Bidir).unwrap();
        assert!(host.iter().all(|t| t.executor == 1));
        assert_eq!((host[1].src, host[1].dst), (Node::Gpu(1), Node::Host));
    }

    #[test]
    fn meaningless_requests_say_why() {
        let err = transfers(pair(Node::Host, Node::Host), Op::Read).unwrap_err();
        assert!(err.contains("no GPU"), "{err}");
        let err = transfers(pair(Node::Gpu(0), Node::Gpu(0)), Op::Bidir).unwrap_err();
        assert!(err.contains("device-local"), "{err}");
    }
}
