//! Which NVIDIA nvbandwidth testcase each measured cell matches, and which of the cell's figures
//! is to be held against that testcase's, so a reader can put the two tools' output side by side.
//!
//! The testcase names and what each reports come from NVIDIA/nvbandwidth (`testcase.h`,
//! `testcases_ce.cpp`, `testcases_sm.cpp`, v0.8, and its README):
//!
//! - `device_to_device_memcpy_read_*` runs the copy in the reading GPU's context (p2ptop's read:
//!   the kernel runs on dst and pulls); `device_to_device_memcpy_write_*` in the writing GPU's
//!   (p2ptop's write). The read matrices put the reading GPU in the row, the write matrices the
//!   writing GPU.
//! - `device_to_device_bidirectional_memcpy_write_*` runs a write each way at once, as p2ptop's
//!   bidir does. The CE testcase reports the measured direction only (before v0.6; since then it
//!   also prints each direction as `_write1`/`_write2` and their `_total`); the SM testcase
//!   reports the sum of both directions.
//! - `host_to_device_*` and `device_to_host_*` with `_memcpy_ce`/`_memcpy_sm`; their
//!   `_bidirectional_` forms run the other direction at the same time and report the measured
//!   direction only, so p2ptop's bidir host cell matches two testcases, one per direction.
//! - `device_local_copy` (v0.8, copy engines) counts a device-local copy's bytes once, as p2ptop
//!   does. p2ptop's SM device-local copy has no nvbandwidth counterpart.
//! - nvbandwidth skips GPU pairs without peer access, so p2ptop's staged copies match nothing.
//!
//! Latency is not matched: nvbandwidth chases pointers at a 128 B stride through 2 MiB, p2ptop at
//! 4 KiB-spaced slots through up to 128 MiB, so the figures measure different things.

use crate::probe::protocol::{Engine, Node, Op};
use serde::{Deserialize, Serialize};

/// Which of a cell's figures compares with the testcase's.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "figure", rename_all = "snake_case")]
pub enum Figure {
    /// The cell's `gbps`: one direction's median, for bidir the sum of both.
    Cell,
    /// The median of this one direction of a bidir cell.
    Direction { src: Node, dst: Node },
}

/// One nvbandwidth testcase a cell matches.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Match {
    pub testcase: String,
    #[serde(flatten)]
    pub figure: Figure,
}

/// The testcases a cell matches; `peer_access` says whether two different GPUs can reach each
/// other's memory (nvbandwidth measures only pairs that can).
pub fn matches(src: Node, dst: Node, op: Op, engine: Engine, peer_access: bool) -> Vec<Match> {
    let e = engine.name();
    let cell = |testcase: String| Match {
        testcase,
        figure: Figure::Cell,
    };
    let direction = |testcase: String, src: Node, dst: Node| Match {
        testcase,
        figure: Figure::Direction { src, dst },
    };
    match (src, dst, op) {
        (_, _, Op::Latency) => Vec::new(),
        (Node::Gpu(a), Node::Gpu(b), _) if a == b => match engine {
            Engine::Ce => vec![cell("device_local_copy".into())],
            Engine::Sm => Vec::new(),
        },
        (Node::Gpu(_), Node::Gpu(_), _) if !peer_access => Vec::new(),
        (Node::Gpu(_), Node::Gpu(_), Op::Read) => {
            vec![cell(format!("device_to_device_memcpy_read_{e}"))]
        }
        (Node::Gpu(_), Node::Gpu(_), Op::Write) => {
            vec![cell(format!("device_to_device_memcpy_write_{e}"))]
        }
        (Node::Gpu(_), Node::Gpu(_), Op::Bidir) => {
            let testcase = format!("device_to_device_bidirectional_memcpy_write_{e}");
            vec![match engine {
                Engine::Ce => direction(testcase, src, dst),
                Engine::Sm => cell(testcase),
            }]
        }
        (Node::Host, Node::Gpu(_), Op::Read | Op::Write) => {
            vec![cell(format!("host_to_device_memcpy_{e}"))]
        }
        (Node::Gpu(_), Node::Host, Op::Read | Op::Write) => {
            vec![cell(format!("device_to_host_memcpy_{e}"))]
        }
        (Node::Host, Node::Gpu(_), Op::Bidir) | (Node::Gpu(_), Node::Host, Op::Bidir) => {
            let gpu = if src == Node::Host { dst } else { src };
            vec![
                direction(
                    format!("host_to_device_bidirectional_memcpy_{e}"),
                    Node::Host,
                    gpu,
                ),
                direction(
                    format!("device_to_host_bidirectional_memcpy_{e}"),
                    gpu,
                    Node::Host,
                ),
            ]
        }
        (Node::Host, Node::Host, _) => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(src: Node, dst: Node, op: Op, engine: Engine, peer: bool) -> Vec<String> {
        matches(src, dst, op, engine, peer)
            .into_iter()
            .map(|m| m.testcase)
            .collect()
    }

    #[test]
    fn cells_match_nvbandwidths_testcases_by_op_engine_and_ends() {
        let (g0, g1) = (Node::Gpu(0), Node::Gpu(1));
        assert_eq!(
            names(g0, g1, Op::Read, Engine::Ce, true),
            ["device_to_device_memcpy_read_ce"]
        );
        assert_eq!(
            names(g1, g0, Op::Write, Engine::Sm, true),
            ["device_to_device_memcpy_write_sm"]
        );
        assert_eq!(
            names(Node::Host, g1, Op::Write, Engine::Sm, false),
            ["host_to_device_memcpy_sm"]
        );
        assert_eq!(
            names(g0, Node::Host, Op::Read, Engine::Ce, false),
            ["device_to_host_memcpy_ce"]
        );
        assert_eq!(
            names(g0, g0, Op::Read, Engine::Ce, false),
            ["device_local_copy"]
        );
        assert!(names(g0, g0, Op::Read, Engine::Sm, false).is_empty());
        assert!(
            names(g0, g1, Op::Write, Engine::Ce, false).is_empty(),
            "staged copies"
        );
        assert!(names(g0, g1, Op::Latency, Engine::Sm, true).is_empty());
    }

    #[test]
    fn bidir_names_the_figure_nvbandwidth_reports() {
        let (g0, g1) = (Node::Gpu(0), Node::Gpu(1));
        let ce = matches(g0, g1, Op::Bidir, Engine::Ce, true);
        assert_eq!(
            ce,
            [Match {
                testcase: "device_to_device_bidirectional_memcpy_write_ce".into(),
                figure: Figure::Direction { src: g0, dst: g1 },
            }]
        );
        let sm = matches(g0, g1, Op::Bidir, Engine::Sm, true);
        assert_eq!(sm[0].figure, Figure::Cell, "the SM testcase sums both");
        let host = matches(g1, Node::Host, Op::Bidir, Engine::Ce, false);
        assert_eq!(host.len(), 2);
        assert_eq!(host[0].testcase, "host_to_device_bidirectional_memcpy_ce");
        assert_eq!(
            host[1].figure,
            Figure::Direction {
                src: g1,
                dst: Node::Host
            }
        );
        let json = serde_json::to_string(&host[1]).unwrap();
        assert_eq!(
            json,
            r#"{"testcase":"device_to_host_bidirectional_memcpy_ce","figure":"direction","src":1,"dst":"host"}"#
        );
    }
}
