//! JSON: the report itself (what `check --baseline` and `fleet` read back), followed by the
//! verdict, findings and estimate derived from it. Readers of a report ignore the derived keys,
//! so a `check` output serves as a baseline too.

use crate::report::diagnosis::Finding;
use crate::report::run::Report;
use crate::report::training::Estimate;
use crate::report::verdict::Verdict;
use serde::Serialize;

#[derive(Serialize)]
struct Output<'a> {
    #[serde(flatten)]
    report: &'a Report,
    verdict: &'a Verdict,
    findings: &'a [Finding],
    allreduce_estimate: Option<&'a Estimate>,
}

pub fn render(
    report: &Report,
    verdict: &Verdict,
    findings: &[Finding],
    estimate: Option<&Estimate>,
) -> String {
    let output = Output {
        report,
        verdict,
        findings,
        allreduce_estimate: estimate,
    };
    // Plain structs with string keys: serializing cannot fail (non-finite floats become null).
    let mut text = serde_json::to_string_pretty(&output).expect("reports always serialize");
    text.push('\n');
    text
}
