//! Faults planted in the machine file reach the real probe through the emulated drivers, and
//! each gives the user what it should.

use crate::harness::{self, Emu};

#[test]
fn a_corrupting_peer_copy_is_bad_data_with_its_first_offset_and_the_rest_is_clean() {
    let emu = Emu::with_faults(
        "3090-bridge",
        "[[faults]]\nkind = \"corrupt\"\nsrc = \"0\"\ndst = \"1\"\n",
    );
    let output = emu.p2ptop(&harness::SMALL_CHECK);
    assert_eq!(output.status.code(), Some(1), "corruption fails the check");
    let report = harness::json(&output);
    for cell in report["cells"].as_array().unwrap() {
        let bad = cell["mismatched_bytes"].as_u64().unwrap_or(0);
        let corrupting = cell["src"] == 0 && cell["dst"] == 1 && cell["op"] != "bidir";
        if corrupting {
            assert!(bad > 0, "{cell}");
            assert!(cell["first_bad_offset"].is_u64(), "{cell}");
        } else if cell["op"] != "bidir" || cell["src"] != 0 || cell["dst"] != 1 {
            assert_eq!(bad, 0, "only 0 → 1 corrupts: {cell}");
        }
    }
    emu.assert_no_misuse();
    assert!(
        emu.log().contains(" FAULT "),
        "the planted fault is logged as such"
    );
}

/// Every cell's failure kind (or "ok"), by (src, dst, op, engine).
fn outcomes(report: &serde_json::Value) -> Vec<(String, String)> {
    report["cells"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            let key = format!("{} → {} {} {}", c["src"], c["dst"], c["op"], c["engine"]);
            let kind = c["failure"]["kind"].as_str().unwrap_or("ok").to_owned();
            (key, kind)
        })
        .collect()
}

#[test]
fn a_hung_peer_copy_is_hung_the_rest_is_measured_and_the_probe_exits_by_itself() {
    let emu = Emu::with_faults(
        "3090-bridge",
        "[[faults]]\nkind = \"hang\"\nsrc = \"0\"\ndst = \"1\"\n",
    );
    let started = std::time::Instant::now();
    let output = emu.p2ptop(&harness::SMALL_CHECK);
    let took = started.elapsed();
    assert_eq!(output.status.code(), Some(1));
    let report = harness::json(&output);
    let cells = outcomes(&report);
    let hung: Vec<&(String, String)> = cells.iter().filter(|(_, k)| k == "hung").collect();
    assert_eq!(
        hung.len(),
        1,
        "one measurement hangs, the rest of the pair is skipped: {cells:?}"
    );
    for (key, kind) in &cells {
        let on_pair =
            key.starts_with("0 → 1 ") || key.starts_with("1 → 0 ") && key.contains("bidir");
        if !on_pair {
            assert_eq!(kind, "ok", "{key} should be measured: {cells:?}");
        }
    }
    // The hung probe exits at once after its fatal event, instead of blocking in the driver
    // until the watchdog kills it.
    let problems = report["problems"].to_string();
    assert!(!problems.contains("said nothing"), "{problems}");
    assert!(took.as_secs() < 25, "the check took {took:?}");
    emu.assert_no_misuse();
}

#[test]
fn a_sticky_error_restarts_the_probe_marks_its_pair_and_the_rest_is_measured() {
    let emu = Emu::with_faults(
        "hgx-h100",
        "[[faults]]\nkind = \"sticky_error\"\ngpu = 1\nafter_launches = 40\n",
    );
    let output = emu.p2ptop(&harness::SMALL_CHECK);
    assert_eq!(output.status.code(), Some(1));
    let report = harness::json(&output);
    let cells = outcomes(&report);
    let failed: Vec<&(String, String)> = cells
        .iter()
        .filter(|(_, k)| !matches!(k.as_str(), "ok" | "skipped"))
        .collect();
    assert!(!failed.is_empty(), "the fault must strike: {cells:?}");
    assert!(
        failed.iter().all(|(key, _)| key.contains('1')),
        "only a pair of GPU1 fails: {failed:?}"
    );
    let measured = cells.iter().filter(|(_, k)| k == "ok").count();
    assert!(
        measured > cells.len() * 9 / 10,
        "{measured} of {} measured",
        cells.len()
    );
    assert!(
        report["problems"].to_string().contains("restart"),
        "{}",
        report["problems"]
    );
    emu.assert_no_misuse();
}

#[test]
fn an_nvlink_down_shows_in_topo_and_fails_the_check() {
    let emu = Emu::with_faults(
        "hgx-h100",
        "[[faults]]\nkind = \"nvlink_down\"\ngpu = 6\nlink = 0\n",
    );
    let topo = String::from_utf8(emu.p2ptop(&["topo"]).stdout).unwrap();
    assert!(topo.contains("NV17"), "{topo}");
    let output = emu.p2ptop(&[
        "check",
        "--format",
        "json",
        "--buffer-mib",
        "1",
        "--samples",
        "1",
        "--engine",
        "ce",
    ]);
    assert_eq!(output.status.code(), Some(1));
    let report = harness::json(&output);
    let causes = report["verdict"]["causes"].as_array().unwrap();
    assert!(
        causes
            .iter()
            .any(|c| c["kind"] == "nvlink_down" && c["subject"] == "GPU6"),
        "{causes:?}"
    );
    emu.assert_no_misuse();
}
