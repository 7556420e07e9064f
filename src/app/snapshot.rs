//! `s` in the live view: what is on screen, as JSON and Markdown files named with the time.
//! Each file is written whole or not at all (a temporary file, then a rename).

use super::board::Board;
use super::reading::{self, Reading, failure_code, figure, line_rate_gbps};
use super::view::{Units, View};
use serde_json::{Value, json};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

/// Bumped whenever the JSON changes shape.
pub const SCHEMA: u32 = 1;

/// The matrix on screen as JSON: numbers are numbers, units in key names.
pub fn json(board: &Board, view: &View, buffer_mib: u64, taken: &str) -> Value {
    let (op, engine) = (view.shown_op(), view.engine);
    let nodes = board.nodes();
    let mut cells = Vec::new();
    for &src in &nodes {
        for &dst in &nodes {
            let mut cell = json!({ "src": src, "dst": dst });
            // `json!({..})` always makes an object.
            let fields = cell.as_object_mut().expect("built as an object above");
            // As the screen judges it: in stress, against the fair share, old figures stale.
            match reading::read_view(board, view, src, dst) {
                Reading::Figure {
                    gbps,
                    share,
                    grade,
                    degraded,
                    throttled,
                    corrupt,
                    stale,
                    ..
                } => {
                    fields.insert("gbps".into(), json!(gbps));
                    fields.insert("efficiency".into(), json!(share));
                    fields.insert("stale".into(), json!(stale));
                    fields.insert(
                        "below_floor".into(),
                        json!(grade.map(|g| g == reading::Grade::Below)),
                    );
                    fields.insert("path_degraded".into(), json!(degraded));
                    fields.insert("throttled".into(), json!(throttled));
                    fields.insert("verification_passed".into(), json!(!corrupt));
                }
                Reading::Failed(f) => {
                    fields.insert("failure".into(), json!(f.kind));
                    fields.insert("message".into(), json!(f.message));
                }
                Reading::Impossible(status) => {
                    fields.insert("p2p".into(), json!(status));
                }
                Reading::NoPath => continue,
                Reading::Pending => {}
            }
            fields.insert(
                "line_rate_gbps".into(),
                json!(line_rate_gbps(board, src, dst, op)),
            );
            fields.insert(
                "floor_share".into(),
                json!(reading::floor(board, src, dst, op, engine)),
            );
            if let Some(c) = board.capacity(src, dst).filter(|c| c.degraded()) {
                fields.insert("gap".into(), json!(reading::gap(&c)));
                fields.insert("now_line_rate_gbps".into(), json!(c.now.gbps));
            }
            cells.push(cell);
        }
    }
    json!({
        "schema": SCHEMA,
        "simulated": board.simulated.is_some(),
        "emulated": board.topology.host.emulated(),
        "machine": board.simulated,
        "taken_utc": taken,
        "mode": view.mode.name(),
        "op": op,
        "engine": engine,
        "buffer_mib": buffer_mib,
        "host": board.topology.host,
        "cells": cells,
        "telemetry": board.telemetry,
        "throttled_gpus": board.throttled_ever,
        "problems": board.problems,
    })
}

/// The matrix on screen as a Markdown report.
pub fn markdown(board: &Board, view: &View, buffer_mib: u64, taken: &str) -> String {
    let (op, engine) = (view.shown_op(), view.engine);
    let host = &board.topology.host;
    let machine = match &board.simulated {
        Some(name) => format!("SIMULATED: {name}"),
        None if host.emulated() => format!(
            "EMULATED drivers: {}",
            host.hostname.as_deref().unwrap_or("host n/a")
        ),
        None => host.hostname.clone().unwrap_or_else(|| "host n/a".into()),
    };
    let unit = match view.units {
        Units::Gbps => "GB/s",
        Units::LineRate => "% of line rate",
    };
    let mut out = format!(
        "# p2ptop snapshot\n\n{machine} · taken {taken} · mode {} · op {} · engine {} · buffer {buffer_mib} MiB\n\n\
         {} {unit}, rows are the source and columns the destination (data moves src → dst).\n\n",
        view.mode.name(),
        op.name(),
        engine.name(),
        op.name(),
    );
    let nodes = board.nodes();
    out += "| src → dst |";
    for n in &nodes {
        out += &format!(" {n} |");
    }
    out += "\n|---|";
    out += &"---:|".repeat(nodes.len());
    out += "\n";
    for &src in &nodes {
        out += &format!("| {src} |");
        for &dst in &nodes {
            out += &format!(" {} |", cell_text(board, view, src, dst));
        }
        out += "\n";
    }
    out += "\n`↓` below `check`'s floor for its link class and engine (as a share of what the path was built for) · `!` a GPU of the pair was throttling · `BAD` wrong data · `HUNG`/`ERR`/`GATE` failed · \
            P2P codes as `nvidia-smi topo -p2p` · `·` not measured yet\n";
    if !board.problems.is_empty() {
        out += "\n## Problems\n\n";
        for p in &board.problems {
            out += &format!("- {p}\n");
        }
    }
    out
}

fn cell_text(
    board: &Board,
    view: &View,
    src: crate::probe::protocol::Node,
    dst: crate::probe::protocol::Node,
) -> String {
    match reading::read_view(board, view, src, dst) {
        Reading::Figure {
            gbps,
            share,
            grade,
            throttled,
            corrupt,
            stale,
            ..
        } => {
            let below = if grade == Some(reading::Grade::Below) {
                " ↓"
            } else {
                ""
            };
            let mark = match (throttled, stale) {
                (true, true) => format!("{below} ! ~"),
                (true, false) => format!("{below} !"),
                (false, true) => format!("{below} ~"),
                (false, false) => below.to_owned(),
            };
            if corrupt {
                return format!("BAD ({}){mark}", figure(gbps));
            }
            match (view.units, share) {
                (Units::LineRate, Some(s)) => format!("{:.0}%{mark}", s * 100.0),
                _ => format!("{}{mark}", figure(gbps)),
            }
        }
        Reading::Failed(f) => failure_code(f.kind).to_owned(),
        Reading::Impossible(status) => status.code().to_owned(),
        Reading::NoPath => "—".to_owned(),
        Reading::Pending => "·".to_owned(),
    }
}

/// The telemetry history as CSV: one row per GPU per frame, oldest first; empty fields where
/// a reading was not available.
pub fn history_csv(board: &Board) -> String {
    let mut out = String::from(
        "t_s,gpu,temp_c,sm_clock_mhz,power_w,nvlink_tx_gbps,nvlink_rx_gbps,pcie_tx_gbps,pcie_rx_gbps,throttling\n",
    );
    let field = |v: Option<f64>| v.map_or_else(String::new, |v| format!("{v}"));
    for frame in &board.telemetry_history {
        for p in &frame.gpus {
            out += &format!(
                "{:.3},{},{},{},{},{},{},{},{},{}\n",
                frame.at_s,
                p.gpu,
                field(p.temp_c),
                field(p.sm_clock_mhz),
                field(p.power_w),
                field(p.nvlink_tx_gbps),
                field(p.nvlink_rx_gbps),
                field(p.pcie_tx_gbps),
                field(p.pcie_rx_gbps),
                p.throttling
            );
        }
    }
    out
}

/// `20260314T092653Z`: a UTC time for file names.
pub fn stamp(time: SystemTime) -> String {
    let secs = time.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (days, rest) = (secs / 86_400, secs % 86_400);
    let (year, month, day) = civil_from_days(days as i64);
    format!(
        "{year:04}{month:02}{day:02}T{:02}{:02}{:02}Z",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

/// The proleptic Gregorian date `days` after 1970-01-01 (Howard Hinnant's day-count method).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// Writes the reports into `dir` as `p2ptop-<stamp>.json` and `.md`, and the telemetry
/// history beside them as `p2ptop-<stamp>-history.csv` (adding `-2`, `-3`… to the stamp when a
/// snapshot of that second exists), and returns the paths of the JSON and Markdown.
pub fn write(
    dir: &Path,
    board: &Board,
    view: &View,
    buffer_mib: u64,
    time: SystemTime,
) -> std::io::Result<[PathBuf; 3]> {
    let taken = stamp(time);
    let mut base = format!("p2ptop-{taken}");
    let mut n = 1;
    while dir.join(format!("{base}.json")).exists()
        || dir.join(format!("{base}.md")).exists()
        || dir.join(format!("{base}-history.csv")).exists()
    {
        n += 1;
        base = format!("p2ptop-{taken}-{n}");
    }
    let json_text = serde_json::to_string_pretty(&json(board, view, buffer_mib, &taken))
        .map_err(std::io::Error::other)?;
    let json_path = dir.join(format!("{base}.json"));
    let md_path = dir.join(format!("{base}.md"));
    write_whole(&json_path, &(json_text + "\n"))?;
    write_whole(&md_path, &markdown(board, view, buffer_mib, &taken))?;
    let csv_path = dir.join(format!("{base}-history.csv"));
    write_whole(&csv_path, &history_csv(board))?;
    Ok([json_path, md_path, csv_path])
}

/// Writes `text` to a temporary file beside `path` and renames it into place.
fn write_whole(path: &Path, text: &str) -> std::io::Result<()> {
    let name = path
        .file_name()
        .map_or_else(|| "snapshot".into(), |n| n.to_string_lossy().into_owned());
    let temp = path.with_file_name(format!(".{name}.tmp"));
    let result = std::fs::File::create(&temp)
        .and_then(|mut f| f.write_all(text.as_bytes()).and_then(|()| f.sync_all()))
        .and_then(|()| std::fs::rename(&temp, path));
    if result.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn stamps_are_utc_calendar_times() {
        assert_eq!(stamp(UNIX_EPOCH), "19700101T000000Z");
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400 + 3661); // 2000-02-29 01:01:01
        assert_eq!(stamp(leap), "20000229T010101Z");
    }
}
