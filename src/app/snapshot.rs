//! `s` in the live view: what is on screen, as JSON and Markdown files named with the time.
//! Each file is written whole or not at all (a temporary file, then a rename).

use super::board::Board;
use super::reading::{self, Reading, failure_code, figure, line_rate_gbps};
use super::view::{Units, View};
use crate::probe::protocol::{Engine, Op};
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
            match reading::read(board, src, dst, op, engine) {
                Reading::Figure {
                    gbps,
                    share,
                    throttled,
                    corrupt,
                } => {
                    fields.insert("gbps".into(), json!(gbps));
                    fields.insert("efficiency".into(), json!(share));
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
            out += &format!(" {} |", cell_text(board, view, src, dst, op, engine));
        }
        out += "\n";
    }
    out += "\n`!` a GPU of the pair was throttling · `BAD` wrong data · `HUNG`/`ERR`/`GATE` failed · \
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
    op: Op,
    engine: Engine,
) -> String {
    match reading::read(board, src, dst, op, engine) {
        Reading::Figure {
            gbps,
            share,
            throttled,
            corrupt,
        } => {
            let mark = if throttled { " !" } else { "" };
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

/// Writes both reports into `dir` as `p2ptop-<stamp>.json` and `.md` (adding `-2`, `-3`… when
/// a snapshot of that second exists) and returns their paths.
pub fn write(
    dir: &Path,
    board: &Board,
    view: &View,
    buffer_mib: u64,
    time: SystemTime,
) -> std::io::Result<(PathBuf, PathBuf)> {
    let taken = stamp(time);
    let mut base = format!("p2ptop-{taken}");
    let mut n = 1;
    while dir.join(format!("{base}.json")).exists() || dir.join(format!("{base}.md")).exists() {
        n += 1;
        base = format!("p2ptop-{taken}-{n}");
    }
    let json_text = serde_json::to_string_pretty(&json(board, view, buffer_mib, &taken))
        .map_err(std::io::Error::other)?;
    let json_path = dir.join(format!("{base}.json"));
    let md_path = dir.join(format!("{base}.md"));
    write_whole(&json_path, &(json_text + "\n"))?;
    write_whole(&md_path, &markdown(board, view, buffer_mib, &taken))?;
    Ok((json_path, md_path))
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
