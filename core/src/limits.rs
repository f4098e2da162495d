//! Input limits: what gpuaff parses from one variable is bounded, and what it quotes back is short.
//!
//! A list-valued variable longer than `MAX_VALUE_BYTES` or with more than `MAX_ENTRIES` entries is
//! refused with one line (naming it, its size and the limit) before it is parsed, so a hostile or
//! runaway value costs a length check, not seconds and hundreds of megabytes in every process.
//! Messages quote a value through `shown`, which keeps its start and says how long it was.

use crate::{Error, Result};

/// The longest list-valued variable accepted (`GPU_AFFINITY_MAP`, `CUDA_VISIBLE_DEVICES`).
pub const MAX_VALUE_BYTES: usize = 64 * 1024;
/// The most entries accepted in such a list: more local ranks (map) or GPUs (visible devices) than any
/// node has.
pub const MAX_ENTRIES: usize = 4096;
pub use crate::error::SHOWN_BYTES;

/// Refuses a list value beyond the limits, before it is parsed.
pub fn check_list(name: &str, value: &str, sep: char) -> Result<()> {
    if value.len() > MAX_VALUE_BYTES {
        return Err(Error::invalid(format!(
            "{name}={} is {} bytes long, more than the {MAX_VALUE_BYTES} accepted; it is ignored",
            shown(value),
            value.len()
        )));
    }
    let entries = value.bytes().filter(|&b| b == sep as u8).count() + 1;
    if entries > MAX_ENTRIES {
        return Err(Error::invalid(format!(
            "{name}={} has {entries} entries, more than the {MAX_ENTRIES} accepted; it is ignored",
            shown(value)
        )));
    }
    Ok(())
}

pub use crate::error::shown;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_values_whole_long_values_cut_on_a_char_boundary() {
        assert_eq!(shown("0-7"), "\"0-7\"");
        let long = "é".repeat(100);
        let s = shown(&long);
        assert!(s.ends_with("… (200 bytes)"), "{s}");
        assert!(s.len() < 100, "{s}");
    }

    #[test]
    fn lists_beyond_the_limits_are_refused_naming_the_variable() {
        assert!(check_list("V", "0,1,2", ',').is_ok());
        let many = vec!["0"; MAX_ENTRIES + 1].join(",");
        let e = check_list("V", &many, ',').unwrap_err().to_string();
        assert!(
            e.starts_with("V=\"0,0,0") && e.contains("4097 entries"),
            "{e}"
        );
        let long = "1".repeat(MAX_VALUE_BYTES + 1);
        let e = check_list("V", &long, ';').unwrap_err().to_string();
        assert!(e.contains("65537 bytes") && e.len() < 300, "{e}");
    }
}
