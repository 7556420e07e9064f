//! Checks a machine file's values before anything is built from them: every number must be one
//! the model can run on (a memory peak of 0 GB/s or a NaN temperature would stall the
//! simulation or print nonsense), and choices that contradict each other are refused. Each
//! error names the key, as the file spells it, and what it must be.

use super::spec::{Fault, HostSpec, ModelSpec, Spec, parse_pcie};

/// Every value of `spec` the model depends on, checked.
pub fn spec(spec: &Spec) -> Result<(), String> {
    if let Some(host) = &spec.host {
        self::host(host)?;
    }
    for (key, model) in &spec.models {
        self::model(&format!("models.{key}"), model)?;
    }
    for (name, root) in &spec.roots {
        let key = format!("roots.{name}");
        positive(&format!("{key}.gbps"), root.gbps)?;
        if let Some(link) = &root.pcie {
            pcie(&format!("{key}.pcie"), link)?;
        }
    }
    for (name, switch) in &spec.switches {
        if spec.roots.contains_key(name) {
            return Err(format!(
                "switches.{name}: a root port has the same name, so `attach` and `up` could not \
                 tell them apart; rename one of them"
            ));
        }
        pcie(&format!("switches.{name}.pcie"), &switch.pcie)?;
    }
    for (i, gpu) in spec.gpus.iter().enumerate() {
        let key = format!("gpus[{i}]");
        if let Some(cooling) = gpu.cooling_c_per_w {
            positive(&format!("{key}.cooling_c_per_w"), cooling)?;
        }
        if let Some(slot) = &gpu.slot {
            pcie(&format!("{key}.slot"), slot)?;
        }
    }
    if spec.nvlink.nvswitch_links.is_some() && !spec.nvlink.bridges.is_empty() {
        return Err(
            "nvlink: give either bridges or nvswitch_links, not both (a GPU's NVLinks end at a \
             bridge or at the switch fabric)"
                .into(),
        );
    }
    if spec.nvlink.nvswitch_links == Some(0) {
        return Err("nvlink.nvswitch_links must be at least 1 (leave it out for none)".into());
    }
    for (i, r) in spec.reference.iter().enumerate() {
        let key = format!("reference[{i}]");
        positive(&format!("{key}.gbps"), r.gbps)?;
        if let Some([lo, hi]) = r.range {
            positive(&format!("{key}.range"), lo)?;
            positive(&format!("{key}.range"), hi)?;
            if !(lo <= r.gbps && r.gbps <= hi) {
                return Err(format!(
                    "{key}: gbps = {} lies outside its range [{lo}, {hi}]",
                    r.gbps
                ));
            }
        }
    }
    for (i, fault) in spec.faults.iter().enumerate() {
        self::fault(&format!("faults[{i}]"), fault)?;
    }
    Ok(())
}

fn host(h: &HostSpec) -> Result<(), String> {
    if h.sockets == 0 {
        return Err("host.sockets must be at least 1".into());
    }
    if !(1..=8).contains(&h.threads_per_core) {
        return Err(format!(
            "host.threads_per_core = {}: must be from 1 to 8",
            h.threads_per_core
        ));
    }
    let per_core_row = h.sockets * h.threads_per_core;
    if h.cpus == 0 || !h.cpus.is_multiple_of(per_core_row) {
        return Err(format!(
            "host.cpus = {}: must be a positive multiple of sockets × threads_per_core ({per_core_row})",
            h.cpus
        ));
    }
    if !["off", "passthrough", "translated"].contains(&h.iommu.as_str()) {
        return Err(format!(
            "host.iommu = {:?}: must be \"off\", \"passthrough\" or \"translated\"",
            h.iommu
        ));
    }
    within("host.ambient_c", h.ambient_c, -40.0, 80.0, "°C")?;
    for (key, value) in [
        ("host.socket_link_gbps", h.socket_link_gbps),
        ("host.root_p2p_gbps", h.root_p2p_gbps),
        ("host.memory_gbps", h.memory_gbps),
    ] {
        if let Some(v) = value {
            positive(key, v)?;
        }
    }
    if let Some(share) = h.read_request_share {
        within("host.read_request_share", share, 0.0, 1.0, "(a share)")?;
    }
    if let Some(ms) = h.staging_ms_per_gb {
        within("host.staging_ms_per_gb", ms, 0.0, 1000.0, "ms per GB")?;
    }
    Ok(())
}

fn model(key: &str, m: &ModelSpec) -> Result<(), String> {
    for (field, value) in [
        ("sm_count", m.sm_count),
        ("sm_clock_max_mhz", m.sm_clock_max_mhz),
        ("mem_clock_max_mhz", m.mem_clock_max_mhz),
    ] {
        if value == 0 {
            return Err(format!("{key}.{field} must be at least 1"));
        }
    }
    if m.memory_mib() == 0 || m.bar1_mib == 0 {
        let field = if m.memory_mib() == 0 {
            "memory_mib"
        } else {
            "bar1_mib"
        };
        return Err(format!("{key}.{field} must be at least 1"));
    }
    for (field, value) in [
        ("memory_peak_gbps", m.memory_peak_gbps),
        ("power_limit_w", m.power_limit_w),
        ("idle_power_w", m.idle_power_w),
        ("copy_power_w", m.copy_power_w),
        ("cooling_c_per_w", m.cooling_c_per_w),
        ("thermal_time_constant_s", m.thermal_time_constant_s),
    ] {
        positive(&format!("{key}.{field}"), value)?;
    }
    for (field, value) in [
        ("nvlink_link_gbps", m.nvlink_link_gbps),
        ("l2_cache_mib", m.l2_cache_mib),
    ] {
        if let Some(v) = value {
            positive(&format!("{key}.{field}"), v)?;
        }
    }
    if m.idle_power_w >= m.power_limit_w || m.copy_power_w < m.idle_power_w {
        return Err(format!(
            "{key}: power must rise from idle_power_w ({}) to copy_power_w ({}), and idle must \
             stay below power_limit_w ({})",
            m.idle_power_w, m.copy_power_w, m.power_limit_w
        ));
    }
    within(&format!("{key}.slowdown_c"), m.slowdown_c, 0.0, 150.0, "°C")?;
    within(&format!("{key}.shutdown_c"), m.shutdown_c, 0.0, 150.0, "°C")?;
    if m.shutdown_c < m.slowdown_c {
        return Err(format!(
            "{key}: shutdown_c ({}) must not be below slowdown_c ({})",
            m.shutdown_c, m.slowdown_c
        ));
    }
    pcie(&format!("{key}.pcie"), &m.pcie)
}

fn fault(key: &str, fault: &Fault) -> Result<(), String> {
    match fault {
        Fault::Corrupt { src, dst }
        | Fault::Hang { src, dst }
        | Fault::GateTimeout { src, dst, .. }
            if src == "host" && dst == "host" =>
        {
            Err(format!(
                "{key}: host → host involves no GPU, so no copy p2ptop makes could show it; \
                 name a GPU at one end"
            ))
        }
        Fault::PowerCap { watts, .. } => positive(&format!("{key}.watts"), *watts),
        Fault::GateTimeout { share, .. } if !(*share > 0.0 && *share <= 1.0) => Err(format!(
            "{key}.share is {share}: the share of samples whose gate times out is above 0 and \
             at most 1"
        )),
        _ => Ok(()),
    }
}

fn pcie(key: &str, text: &str) -> Result<(), String> {
    parse_pcie(text)
        .map(|_| ())
        .map_err(|e| format!("{key}: {e}"))
}

fn positive(key: &str, value: f64) -> Result<(), String> {
    if value.is_finite() && value > 0.0 {
        Ok(())
    } else {
        Err(format!("{key} = {value}: must be a positive number"))
    }
}

fn within(key: &str, value: f64, lo: f64, hi: f64, unit: &str) -> Result<(), String> {
    if value.is_finite() && (lo..=hi).contains(&value) {
        Ok(())
    } else {
        Err(format!("{key} = {value}: must be from {lo} to {hi} {unit}"))
    }
}
