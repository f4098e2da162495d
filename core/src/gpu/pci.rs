//! PCI functions in sysfs: addresses, vendor and class, and the locality every vendor's GPU has.

use crate::cpuset::CpuSet;
use crate::sysfs::Fs;

pub const PCI_DIR: &str = "sys/bus/pci/devices";

/// A PCI address `dddd:bb:dd.f` as numbers, for sorting; None when malformed.
pub fn parse_bdf(bdf: &str) -> Option<(u32, u32, u32, u32)> {
    let (dom, rest) = bdf.split_once(':')?;
    let (bus, rest) = rest.split_once(':')?;
    let (dev, func) = rest.split_once('.')?;
    Some((
        u32::from_str_radix(dom, 16).ok()?,
        u32::from_str_radix(bus, 16).ok()?,
        u32::from_str_radix(dev, 16).ok()?,
        u32::from_str_radix(func, 16).ok()?,
    ))
}

/// The sysfs form of a PCI address: lower case, 4-digit (or wider) domain.
pub fn normalize_bdf(bdf: &str) -> Option<String> {
    let (d, b, dev, f) = parse_bdf(bdf.trim())?;
    Some(format!("{d:04x}:{b:02x}:{dev:02x}.{f:x}"))
}

pub fn parse_hex(s: &str) -> Option<u32> {
    let s = s.trim();
    let s = s
        .strip_prefix("0x")
        .or_else(|| s.strip_prefix("0X"))
        .unwrap_or(s);
    u32::from_str_radix(s, 16).ok()
}

/// A PCI function's locality, as `Gpu` holds it.
pub struct Locality {
    pub numa_node: Option<u32>,
    pub local_cpus: CpuSet,
    /// `dir`, when its `numa_node` was left unread (see `locality`).
    pub pending_node: Option<String>,
}

/// A PCI function's locality: its `numa_node` (None for -1) and `local_cpulist` (or the
/// `local_cpus` mask; empty when neither is there). With `defer_node`, a function with local CPUs
/// leaves its `numa_node` unread (`pending_node`): a plan binds to a GPU's local CPUs and needs
/// the node only of its own GPU (`GpuReads::defer_nodes`).
pub fn locality(fs: &Fs, dir: &str, defer_node: bool) -> crate::Result<Locality> {
    // The node first unless it may be deferred (the order a full discovery always had).
    let node = if defer_node {
        None
    } else {
        Some(numa_node(fs, dir)?)
    };
    let local_cpus = fs
        .read_cpuset_fmt(
            format_args!("{dir}/local_cpulist"),
            format_args!("{dir}/local_cpus"),
        )?
        .unwrap_or_default();
    let (numa_node, pending_node) = match node {
        Some(n) => (n, None),
        None if local_cpus.is_empty() => (numa_node(fs, dir)?, None),
        None => (None, Some(dir.to_string())),
    };
    Ok(Locality {
        numa_node,
        local_cpus,
        pending_node,
    })
}

/// A PCI function's `numa_node`; None for -1 (or absent).
pub fn numa_node(fs: &Fs, dir: &str) -> crate::Result<Option<u32>> {
    Ok(fs
        .read_i64_fmt(format_args!("{dir}/numa_node"))?
        .and_then(|n| u32::try_from(n).ok()))
}

/// True when the PCI function in `dir` has vendor `vendor` and a class whose upper 16 bits
/// (class, subclass) are among `classes`. Vendor first: one read rejects every other vendor's
/// function, odd class files included.
pub fn is_function(fs: &Fs, dir: &str, vendor: u32, classes: &[u32]) -> crate::Result<bool> {
    let ours = fs
        .read_str_fmt(format_args!("{dir}/vendor"))?
        .is_some_and(|v| parse_hex(&v) == Some(vendor));
    if !ours {
        return Ok(false);
    }
    let class = match fs.read_str_fmt(format_args!("{dir}/class"))? {
        Some(c) => parse_hex(&c).ok_or_else(|| {
            crate::Error::file(
                &fs.path(&format!("{dir}/class")),
                format!("{c:?} is not a hex PCI class (expected e.g. 0x030200)"),
            )
        })?,
        None => return Ok(false),
    };
    Ok(classes.contains(&(class >> 8)))
}

/// The model as the PCI device id says it ("PCI device 0x20b2"), for telling models apart.
pub fn device_model(fs: &Fs, dir: &str) -> crate::Result<Option<String>> {
    Ok(fs
        .read_str_fmt(format_args!("{dir}/device"))?
        .and_then(|d| parse_hex(&d))
        .map(|d| format!("PCI device {d:#06x}")))
}
