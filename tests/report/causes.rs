//! Root causes: each fault alone is one cause, several faults as many, worst first, and every
//! finding that follows from a cause is listed under it once.

use crate::common::{Run, gpu_pair, with_faults, with_host};
use p2ptop::probe::protocol::{Engine, Node, Op};
use p2ptop::report::cause::Kind;
use p2ptop::report::run::Report;
use p2ptop::report::verdict::{Floors, Level, Verdict, judge};
use p2ptop::sim::machine::Machine;

/// The machine file of the issue that asked for causes: a PCIe link trained down, a corrupting
/// pair, an NVLink down and a power cap that does not throttle yet.
const FOUR_FAULTS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/report/hgx-four-faults.toml"
);

pub fn four_faults() -> Machine {
    p2ptop::sim::load(FOUR_FAULTS).unwrap()
}

/// What `p2ptop check` would say about `machine`, measured as `check` measures.
fn checked(machine: Machine, gpus: u32) -> (Report, Verdict) {
    let report = Run::new(machine).as_check(&with_host(gpus)).report();
    let verdict = judge(&report, &Floors::default(), None);
    (report, verdict)
}

fn kinds(verdict: &Verdict) -> Vec<(Kind, Level)> {
    verdict.causes.iter().map(|c| (c.kind, c.level)).collect()
}

/// No finding is listed under two causes.
fn each_once(verdict: &Verdict) {
    let mut subjects: Vec<String> = verdict
        .causes
        .iter()
        .flat_map(|c| c.evidence.iter())
        .filter(|e| e.subject != "probe")
        .map(|e| e.subject.clone())
        .collect();
    let all = subjects.len();
    subjects.sort();
    subjects.dedup();
    assert_eq!(
        subjects.len(),
        all,
        "a finding under two causes: {subjects:?}"
    );
}

#[test]
fn each_fault_alone_is_exactly_one_cause() {
    let cases: [(&str, u32, &str, Kind, Level); 8] = [
        (
            "hgx-h100",
            2,
            "kind = \"pcie_downgraded\"\ngpu = 1\ngeneration = 4\nwidth = 8",
            Kind::PcieTrainedDown,
            Level::Fail,
        ),
        (
            "hgx-h100",
            2,
            "kind = \"corrupt\"\nsrc = \"0\"\ndst = \"1\"",
            Kind::Corruption,
            Level::Fail,
        ),
        (
            "hgx-h100",
            2,
            "kind = \"nvlink_down\"\ngpu = 1\nlink = 4",
            Kind::NvlinkDown,
            Level::Fail,
        ),
        (
            "3090-bridge",
            2,
            "kind = \"nvlink_down\"\ngpu = 0\nlink = 1",
            Kind::NvlinkDown,
            Level::Fail,
        ),
        (
            "3090-bridge",
            2,
            "kind = \"hang\"\nsrc = \"1\"\ndst = \"0\"",
            Kind::Hang,
            Level::Fail,
        ),
        (
            "hgx-h100",
            2,
            "kind = \"power_cap\"\ngpu = 1\nwatts = 400",
            Kind::PowerLimit,
            Level::Warn,
        ),
        // A hard cap slows the capped GPU's copies below their floors: under the cap, not apart.
        (
            "3090-bridge",
            2,
            "kind = \"power_cap\"\ngpu = 0\nwatts = 150",
            Kind::PowerLimit,
            Level::Fail,
        ),
        (
            "hgx-h100",
            2,
            "kind = \"hang\"\nsrc = \"host\"\ndst = \"1\"",
            Kind::Hang,
            Level::Fail,
        ),
    ];
    for (preset, gpus, fault, kind, level) in cases {
        let (_, healthy) = checked(p2ptop::sim::load(preset).unwrap(), gpus);
        assert_eq!(kinds(&healthy), [], "{preset} healthy");
        let (_, verdict) = checked(with_faults(preset, &format!("[[faults]]\n{fault}\n")), gpus);
        assert_eq!(
            kinds(&verdict),
            [(kind, level)],
            "{preset} with {fault}: {:#?}",
            verdict.causes
        );
        each_once(&verdict);
    }
}

#[test]
fn a_failed_fan_is_one_cause_once_its_gpu_throttles() {
    // Four minutes of copies within GPU0's memory: the hardest work for its cooling.
    let load = |machine: Machine| {
        let mut run = Run::new(machine);
        while run.sim.now_s() < 240.0 {
            run.measure(vec![gpu_pair(0, 0)], &[Op::Write], &[Engine::Sm]);
        }
        judge(&run.report(), &Floors::default(), None)
    };
    assert_eq!(kinds(&load(p2ptop::sim::load("3090-pcie").unwrap())), []);
    let verdict = load(with_faults(
        "3090-pcie",
        "[[faults]]\nkind = \"fan_failed\"\ngpu = 0\n",
    ));
    assert_eq!(verdict.causes.len(), 1, "{:#?}", verdict.causes);
    let cause = &verdict.causes[0];
    assert_eq!(
        (cause.kind, cause.subject.as_str()),
        (Kind::Throttling, "GPU0")
    );
    assert!(
        cause.what.contains("its fan read 0% under load"),
        "{}",
        cause.what
    );
    each_once(&verdict);
}

#[test]
fn four_faults_are_four_causes_worst_first_with_their_findings_under_them() {
    let (report, verdict) = checked(four_faults(), 8);
    let lines: Vec<String> = verdict.causes.iter().map(|c| c.line()).collect();
    assert_eq!(
        kinds(&verdict),
        [
            (Kind::Corruption, Level::Fail),
            (Kind::NvlinkDown, Level::Fail),
            (Kind::PcieTrainedDown, Level::Fail),
            (Kind::PowerLimit, Level::Warn),
        ],
        "{lines:#?}"
    );
    let subjects: Vec<&str> = verdict.causes.iter().map(|c| c.subject.as_str()).collect();
    assert_eq!(subjects, ["GPU3 → GPU5", "GPU6", "GPU3", "GPU2"]);
    assert!(
        lines[3].contains("power limit 400 W, below the board's default 700 W"),
        "{lines:?}"
    );
    // Every failing cell is under a cause, and each once.
    each_once(&verdict);
    let listed: usize = verdict.causes.iter().map(|c| c.evidence.len()).sum();
    assert_eq!(listed, verdict.failed_cells(), "{lines:#?}");
    // GPU3's slow host copies are counted in its cause, not repeated beside it.
    let pcie = &verdict.causes[2];
    assert!(
        pcie.evidence.iter().all(|e| e.subject.contains("host")),
        "{:?}",
        pcie.evidence
    );
    assert!(
        pcie.what.ends_with(&format!(
            "{} measurement(s) below their floor follow from it",
            pcie.evidence.len()
        )),
        "{}",
        pcie.what
    );
    // GPU6's pairs are judged against NV18 (built), not NV17 (now).
    let to_gpu6 = report
        .cell(Node::Gpu(0), Node::Gpu(6), Op::Write, Engine::Ce)
        .unwrap();
    assert_eq!(to_gpu6.line_rate_gbps, Some(450.0));
    assert_eq!(to_gpu6.line_rate_now_gbps, Some(425.0));
}

#[test]
fn a_slow_cell_goes_under_what_explains_it_when_two_faults_share_its_path() {
    // A hard cap on GPU2: its copies to GPU6 (17 of 18 links up) fail even against the 17 links
    // GPU6 has now, so the cap, not the link, is what they follow from.
    let mut machine = four_faults();
    machine.gpus[2].power_limit_w = 150.0;
    let (_, verdict) = checked(machine, 8);
    let link = &verdict.causes[1];
    assert_eq!(
        (link.kind, link.subject.as_str()),
        (Kind::NvlinkDown, "GPU6")
    );
    assert_eq!(link.evidence, [], "{}", link.what);
    let cap = &verdict.causes[3];
    assert_eq!((cap.kind, cap.level), (Kind::PowerLimit, Level::Fail));
    assert!(
        cap.evidence
            .iter()
            .any(|e| e.subject.starts_with("GPU2 → GPU6")),
        "{:?}",
        cap.evidence
    );
    assert!(cap.evidence.iter().all(|e| e.subject.contains("GPU2")));
    each_once(&verdict);
}
