//! PCI bus ids, as NVML, CUDA and sysfs spell them.

/// A PCI bus id in one spelling for every source: lower case `dddd:bb:dd.f`.
///
/// NVML prints an 8-digit upper-case domain (`00000000:01:00.0`), CUDA a 4-digit one
/// (`0000:01:00.0`). We keep CUDA's and `lspci -D`'s 4-digit form, widening only for domains
/// above 0xffff, so ids from NVML, CUDA and sysfs compare equal as strings.
pub fn normalize(id: &str) -> String {
    let id = id.trim().to_ascii_lowercase();
    match id.split_once(':') {
        Some((domain, rest)) if rest.contains(':') => match u32::from_str_radix(domain, 16) {
            Ok(domain) => format!("{domain:04x}:{rest}"),
            Err(_) => id,
        },
        // No domain given: NVML and CUDA both mean domain 0.
        Some(_) => format!("0000:{id}"),
        None => id,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bus_ids_from_nvml_and_cuda_become_one_spelling() {
        assert_eq!(normalize("00000000:01:00.0"), "0000:01:00.0");
        assert_eq!(normalize("0000:1B:00.0"), "0000:1b:00.0");
        assert_eq!(normalize("00000001:C1:00.0"), "0001:c1:00.0");
        assert_eq!(normalize("00010000:02:00.0"), "10000:02:00.0");
        assert_eq!(normalize("41:00.0"), "0000:41:00.0");
        assert_eq!(normalize("garbage"), "garbage");
    }
}
