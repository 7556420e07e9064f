//! Which number each GPU goes by in the probe's commands and events.
//!
//! p2ptop numbers GPUs as NVML and `nvidia-smi` do. CUDA numbers them otherwise: only the GPUs
//! it can use (not one outside the job's cgroup, lost, in MIG mode, or left out of
//! `CUDA_VISIBLE_DEVICES`), in its own order. So p2ptop starts the probe with [`VAR`] mapping
//! each GPU it wants measured, by PCI bus id, to the number p2ptop knows it by. The probe opens
//! only the CUDA devices the map names and speaks their numbers, in its events and its messages
//! alike; `CUDA_VISIBLE_DEVICES` stays as the user set it, so a GPU it hides stays hidden. Run on
//! its own, the probe opens every device CUDA shows and uses CUDA's ordinals.

use crate::model::bus_id;
use std::collections::HashMap;

/// The environment variable that carries the map, e.g. `0000:18:00.0=0,0000:38:00.0=2`.
pub const VAR: &str = "P2PTOP_GPU_NUMBERS";

/// How the probe numbers the CUDA devices it sees.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Numbering {
    /// Every device, by CUDA's ordinal.
    Cuda,
    /// Only the devices whose (normalized) bus id is listed, by the number given.
    ByBusId(HashMap<String, u32>),
}

impl Numbering {
    /// The number of the CUDA device at `ordinal` with `bus_id`, or `None` when it is not to be
    /// opened.
    pub fn number(&self, ordinal: u32, bus_id: &str) -> Option<u32> {
        match self {
            Numbering::Cuda => Some(ordinal),
            Numbering::ByBusId(map) => map.get(&bus_id::normalize(bus_id)).copied(),
        }
    }
}

/// [`VAR`]'s value for GPUs given as (bus id, number).
pub fn encode(gpus: &[(String, u32)]) -> String {
    let items: Vec<String> = gpus
        .iter()
        .map(|(bus, number)| format!("{}={number}", bus_id::normalize(bus)))
        .collect();
    items.join(",")
}

/// Reads [`VAR`]'s `text` (CUDA's ordinals when there is none); the error says what is wrong.
pub fn parse(text: Option<&str>) -> Result<Numbering, String> {
    let Some(text) = text.filter(|t| !t.trim().is_empty()) else {
        return Ok(Numbering::Cuda);
    };
    let mut map = HashMap::new();
    for item in text.split(',').map(str::trim) {
        let parsed = item
            .split_once('=')
            .and_then(|(bus, n)| Some((bus_id::normalize(bus), n.trim().parse::<u32>().ok()?)));
        let Some((bus, number)) = parsed.filter(|(bus, _)| !bus.is_empty()) else {
            return Err(format!(
                "{VAR}={text:?}: {item:?} is not BUS_ID=NUMBER (e.g. 0000:18:00.0=0)"
            ));
        };
        if map.values().any(|&n| n == number) {
            return Err(format!("{VAR}={text:?} gives number {number} to two GPUs"));
        }
        if map.insert(bus.clone(), number).is_some() {
            return Err(format!("{VAR}={text:?} names {bus} twice"));
        }
    }
    Ok(Numbering::ByBusId(map))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cuda_ordinals_unless_told_otherwise() {
        for text in [None, Some(""), Some("  ")] {
            let numbering = parse(text).unwrap();
            assert_eq!(numbering, Numbering::Cuda);
            assert_eq!(numbering.number(3, "0000:18:00.0"), Some(3));
        }
    }

    #[test]
    fn a_map_numbers_the_devices_it_names_and_leaves_out_the_rest() {
        let text = encode(&[("00000000:18:00.0".into(), 0), ("0000:48:00.0".into(), 2)]);
        assert_eq!(text, "0000:18:00.0=0,0000:48:00.0=2");
        let numbering = parse(Some(&text)).unwrap();
        // CUDA's ordinal does not matter, its bus id does, in either spelling.
        assert_eq!(numbering.number(1, "0000:48:00.0"), Some(2));
        assert_eq!(numbering.number(0, "00000000:18:00.0"), Some(0));
        assert_eq!(numbering.number(2, "0000:38:00.0"), None);
    }

    #[test]
    fn a_map_that_cannot_be_meant_is_refused_with_why() {
        let error = |text: &str| parse(Some(text)).unwrap_err();
        assert!(error("0,1").contains("is not BUS_ID=NUMBER"));
        assert!(error("0000:18:00.0=x").contains("is not BUS_ID=NUMBER"));
        assert!(error("=1").contains("is not BUS_ID=NUMBER"));
        assert!(error("0000:18:00.0=1,0000:38:00.0=1").contains("number 1 to two GPUs"));
        assert!(error("0000:18:00.0=1,00000000:18:00.0=2").contains("names 0000:18:00.0 twice"));
    }
}
