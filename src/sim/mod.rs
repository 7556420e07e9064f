//! Simulated machines: presets and machine files that drive p2ptop without a GPU.
//!
//! A simulation answers the probe's commands and the telemetry sampler's reads with the same
//! event types as the real ones (see [`simulation`]), so the live view, the reports and the
//! checks have one path; only the `simulated` flag tells them apart.

pub mod bandwidth;
pub mod check;
pub mod machine;
pub mod paths;
pub mod simulation;
pub mod spec;
pub mod thermal;

use machine::Machine;
use spec::Spec;
use std::path::Path;

/// The built-in machines, by name, as TOML in the machine-file format.
pub const PRESETS: [(&str, &str); 7] = [
    ("3090-bridge", include_str!("presets/3090-bridge.toml")),
    ("3090-pcie", include_str!("presets/3090-pcie.toml")),
    ("4090x4", include_str!("presets/4090x4.toml")),
    ("dgx-a100", include_str!("presets/dgx-a100.toml")),
    ("hgx-h100", include_str!("presets/hgx-h100.toml")),
    ("h100-single", include_str!("presets/h100-single.toml")),
    (
        "pcie-dual-socket",
        include_str!("presets/pcie-dual-socket.toml"),
    ),
];

/// Readings a model may declare unsupported (as GeForce cards answer only part of NVML).
pub const READINGS: [&str; 5] = [
    "thresholds",
    "power",
    "pcie_counters",
    "nvlink_counters",
    "errors",
];

/// `--sim list`: one line per preset.
pub fn list() -> String {
    PRESETS
        .iter()
        .map(|(name, text)| {
            let summary = parse(text, name).map_or_else(|e| e, |s| s.summary);
            let summary = if summary.is_empty() {
                "(no summary)".to_owned()
            } else {
                summary
            };
            format!("{name:<18} {summary}\n")
        })
        .collect()
}

/// A preset by name, or a machine file (TOML, or JSON by its `.json` extension).
pub fn load(name_or_file: &str) -> Result<Machine, String> {
    let spec = match preset_text(name_or_file) {
        Some(text) => parse(text, name_or_file)?,
        None => {
            let path = Path::new(name_or_file);
            if !path.exists() {
                return Err(format!(
                    "{name_or_file:?} is neither a preset nor a file; presets: {} (see `p2ptop --sim list`)",
                    PRESETS.map(|(n, _)| n).join(", ")
                ));
            }
            let text = read_capped(path).map_err(|e| format!("cannot read {name_or_file}: {e}"))?;
            let spec = parse(&text, name_or_file)?;
            merge_preset(spec).map_err(|e| format!("{name_or_file}: {e}"))?
        }
    };
    Machine::build(spec)
}

/// Machine files are small (a 1024-GPU NVSwitch machine is under 100 KiB); anything larger is
/// not one, and `/dev/zero` must not be read without end.
pub const MAX_FILE_BYTES: u64 = 4 << 20;

fn read_capped(path: &Path) -> Result<String, String> {
    use std::io::Read;
    let file = std::fs::File::open(path).map_err(|e| e.to_string())?;
    let mut bytes = Vec::new();
    file.take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| e.to_string())?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(format!(
            "it is over {} MiB, which no machine file is",
            MAX_FILE_BYTES >> 20
        ));
    }
    String::from_utf8(bytes).map_err(|_| "it is not UTF-8 text (TOML or JSON)".to_owned())
}

fn preset_text(name: &str) -> Option<&'static str> {
    PRESETS.iter().find(|(n, _)| *n == name).map(|(_, t)| *t)
}

fn parse(text: &str, origin: &str) -> Result<Spec, String> {
    let spec: Spec = if origin.ends_with(".json") {
        serde_json::from_str(text).map_err(|e| format!("{origin}: {e}"))?
    } else {
        toml::from_str(text).map_err(|e| format!("{origin}: {e}"))?
    };
    for model in spec.models.values() {
        if let Some(bad) = model
            .unsupported
            .iter()
            .find(|r| !READINGS.contains(&r.as_str()))
        {
            return Err(format!(
                "{origin}: model {:?} lists unknown reading {bad:?} as unsupported; known: {}",
                model.name,
                READINGS.join(", ")
            ));
        }
    }
    Ok(spec)
}

/// A file that names a preset takes the preset's machine and adds its own faults.
fn merge_preset(file: Spec) -> Result<Spec, String> {
    let Some(preset) = file.preset.clone() else {
        return Ok(file);
    };
    let text = preset_text(&preset).ok_or_else(|| {
        format!(
            "preset {preset:?} does not exist; presets: {}",
            PRESETS.map(|(n, _)| n).join(", ")
        )
    })?;
    if file.host.is_some() || !file.gpus.is_empty() || !file.models.is_empty() {
        return Err(format!(
            "a file based on preset {preset:?} may add faults but not [host], [models] or [[gpus]]"
        ));
    }
    let mut spec = parse(text, &preset)?;
    spec.name = file.name;
    if !file.summary.is_empty() {
        spec.summary = file.summary;
    }
    spec.sources.extend(file.sources);
    spec.faults.extend(file.faults);
    Ok(spec)
}
