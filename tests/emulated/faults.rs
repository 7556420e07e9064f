//! Faults planted in the machine file reach the real probe through the emulated drivers, and
//! each gives the user what it should.

use crate::harness::{self, Emu};

/// A preset with `faults` (TOML `[[faults]]` tables) added.
fn faulty(preset: &str, faults: &str) -> Emu {
    Emu::from_file(&format!(
        "name = \"{preset}-faulty\"\nsummary = \"{preset} with faults\"\npreset = \"{preset}\"\n{faults}"
    ))
}

#[test]
fn a_corrupting_peer_copy_is_bad_data_with_its_first_offset_and_the_rest_is_clean() {
    let emu = faulty(
        "3090-bridge",
        "[[faults]]\nkind = \"corrupt\"\nsrc = \"0\"\ndst = \"1\"\n",
    );
    let output = emu.p2ptop(&[
        "check",
        "--format",
        "json",
        "--buffer-mib",
        "1",
        "--samples",
        "2",
    ]);
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
