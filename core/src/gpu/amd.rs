//! AMD GPUs (Instinct MI100 … MI300X, MI300A APUs, Radeon) as ROCm numbers them, and as
//! `ROCR_VISIBLE_DEVICES`, then `HIP_VISIBLE_DEVICES` (or `CUDA_VISIBLE_DEVICES`) select them.
//!
//! Facts this follows, with where they come from:
//! - PCI: vendor 0x1002; amdgpu binds classes 0x030000 (VGA), 0x038000 (display, MI100/MI200) and
//!   0x120000 (processing accelerator, MI300X/MI300A): `pciidlist` in the kernel's
//!   drivers/gpu/drm/amd/amdgpu/amdgpu_drv.c (`PCI_CLASS_ACCELERATOR_PROCESSING` since 2023).
//!   Audio functions (0x0403) and bridges are not GPUs.
//! - Order: ROCr numbers GPU agents in KFD topology node order (`BuildTopology` in ROCR-Runtime's
//!   core/runtime/amd_topology.cpp, over libhsakmt's nodes, which skip nodes this process may not
//!   read), and HIP keeps that order (clr rocclr/device/rocm/rocdevice.cpp). KFD appends GPU nodes
//!   in driver probe order, usually but not always PCI bus order; rocm-smi sorts by BDF instead, so
//!   its indices may differ from HIP's. Without a KFD tree (no amdgpu driver, or a snapshot) the
//!   order is PCI bus order.
//! - KFD node files (amdkfd/kfd_topology.c, `node_show`): `gpu_id` is 0 for CPU nodes;
//!   `properties` holds `key value` lines, among them `simd_count` (0 on CPU nodes),
//!   `location_id` = (bus << 8) | (device << 3) | function, `domain`, `unique_id`,
//!   `drm_render_minor`, `device_id`. A partitioned MI300 (CPX/TPX/DPX) ORs the partition index
//!   into the function bits, so several KFD nodes share one PCI function.
//! - UUIDs: `GPU-` + 16 lowercase hex digits of `unique_id` (ROCr's `HSA_AMD_AGENT_INFO_UUID`);
//!   `unique_id` 0 means none.
//! - `ROCR_VISIBLE_DEVICES` (ROCR-Runtime core/runtime/amd_filter_device.cpp, `RvdFilter`): comma
//!   separated; an index is read as C's `strtol(.., 0)` (decimal, 0x hex, 0 octal); a token starting
//!   with `G` is a UUID prefix matched case-insensitively; the first invalid, out-of-range,
//!   ambiguous or repeated entry ends the list; set but empty means no GPU.
//! - HIP (clr `Device::init`): `HIP_VISIBLE_DEVICES` when non-empty, else `CUDA_VISIBLE_DEVICES`,
//!   indexes the GPUs ROCr left; an entry containing `GPU-` is matched as a substring of the
//!   lowercase UUID, first match wins; an index must be plain decimal and in range, else it and
//!   everything after it is dropped; repeats are skipped; an empty value means every GPU.

use super::pci::{self, normalize_bdf, parse_bdf, PCI_DIR};
use super::{DeviceEnv, Gpu, GpuReads, GpuSource, Vendor, Visible};
use crate::sysfs::Fs;

/// AMD's PCI vendor id.
const AMD: u32 = 0x1002;
/// VGA, other display, processing accelerator.
const GPU_CLASSES: &[u32] = &[0x0300, 0x0380, 0x1200];
const KFD_NODES: &str = "sys/class/kfd/kfd/topology/nodes";

/// AMD's side of the seam.
pub struct Amd;

impl GpuSource for Amd {
    fn vendor(&self) -> Vendor {
        Vendor::Amd
    }

    fn visible_vars(&self) -> &'static [&'static str] {
        &[
            "ROCR_VISIBLE_DEVICES",
            "HIP_VISIBLE_DEVICES",
            "CUDA_VISIBLE_DEVICES",
        ]
    }

    fn claims(&self, env: &DeviceEnv) -> bool {
        env.get("ROCR_VISIBLE_DEVICES").is_some() || env.get("HIP_VISIBLE_DEVICES").is_some()
    }

    /// The KFD `properties` file gives the UUID with the address: nothing extra to read.
    fn reads(&self, _env: &DeviceEnv) -> crate::Result<GpuReads> {
        Ok(GpuReads::NONE)
    }

    fn discover(&self, fs: &Fs, reads: GpuReads) -> crate::Result<Vec<Gpu>> {
        let mut gpus = match kfd_gpus(fs, reads.defer_nodes)? {
            Some(g) => g,
            None => pci_gpus(fs, reads.defer_nodes)?,
        };
        for (i, g) in gpus.iter_mut().enumerate() {
            g.index = i;
        }
        Ok(gpus)
    }

    fn resolve_visible(&self, gpus: &[Gpu], env: &DeviceEnv) -> crate::Result<Visible> {
        resolve(gpus, env)
    }
}

/// The GPUs of the KFD topology, in node order; None without a KFD tree.
fn kfd_gpus(fs: &Fs, defer_nodes: bool) -> crate::Result<Option<Vec<Gpu>>> {
    let Some(names) = fs.list_dir_opt(KFD_NODES)? else {
        return Ok(None);
    };
    let mut ids: Vec<usize> = names.iter().filter_map(|n| n.parse().ok()).collect();
    ids.sort_unstable();
    let mut gpus = Vec::new();
    for id in ids {
        // A node this process may not read (the device cgroup denies the GPU) is skipped, as
        // libhsakmt skips it: the GPU is not this process's.
        let Ok(Some(text)) = fs.read_opt_fmt(format_args!("{KFD_NODES}/{id}/properties")) else {
            continue;
        };
        let props = Props(&text);
        let gpu_id = match fs.read_str_fmt(format_args!("{KFD_NODES}/{id}/gpu_id")) {
            Ok(Some(v)) => v.trim().parse::<u64>().ok(),
            _ => None,
        };
        let is_gpu = gpu_id.map_or(props.get("simd_count").unwrap_or(0) > 0, |g| g != 0);
        if !is_gpu {
            continue;
        }
        let (Some(loc), Some(domain)) = (props.get("location_id"), props.get("domain")) else {
            continue;
        };
        let bdf = format!(
            "{:04x}:{:02x}:{:02x}.{:x}",
            domain,
            (loc >> 8) & 0xff,
            (loc >> 3) & 0x1f,
            loc & 0x7
        );
        // A partition of an MI300 carries its index in the function bits: its PCI function is .0.
        let (bdf, pdir) = if fs.exists(&format!("{PCI_DIR}/{bdf}")) {
            let dir = format!("{PCI_DIR}/{bdf}");
            (bdf, dir)
        } else {
            let base = format!("{}.0", &bdf[..bdf.len() - 2]);
            let dir = format!("{PCI_DIR}/{base}");
            (base, dir)
        };
        let loc = pci::locality(fs, &pdir, defer_nodes)?;
        gpus.push(Gpu {
            vendor: Vendor::Amd,
            pci_bus_id: bdf,
            numa_node: loc.numa_node,
            local_cpus: loc.local_cpus,
            pending_node: loc.pending_node,
            uuid: props
                .get("unique_id")
                .filter(|&u| u != 0)
                .map(|u| format!("GPU-{u:016x}")),
            minor: props
                .get("drm_render_minor")
                .and_then(|m| u32::try_from(m).ok()),
            model: props
                .get("device_id")
                .map(|d| format!("PCI device {d:#06x}")),
            ..Gpu::default()
        });
    }
    Ok(Some(gpus))
}

/// The AMD GPUs among the PCI functions, in bus order (no KFD tree to say otherwise).
fn pci_gpus(fs: &Fs, defer_nodes: bool) -> crate::Result<Vec<Gpu>> {
    let mut found = Vec::new();
    for name in fs.list_dir(PCI_DIR)? {
        let (Some(key), Some(bdf)) = (parse_bdf(&name), normalize_bdf(&name)) else {
            continue;
        };
        let dir = format!("{PCI_DIR}/{name}");
        if !pci::is_function(fs, &dir, AMD, GPU_CLASSES)? {
            continue;
        }
        let loc = pci::locality(fs, &dir, defer_nodes)?;
        found.push((
            key,
            Gpu {
                vendor: Vendor::Amd,
                pci_bus_id: bdf,
                numa_node: loc.numa_node,
                local_cpus: loc.local_cpus,
                pending_node: loc.pending_node,
                model: pci::device_model(fs, &dir)?,
                ..Gpu::default()
            },
        ));
    }
    found.sort_by_key(|(k, _)| *k);
    Ok(found.into_iter().map(|(_, g)| g).collect())
}

/// `key value` lines of a KFD `properties` file.
struct Props<'a>(&'a str);

impl Props<'_> {
    fn get(&self, key: &str) -> Option<u64> {
        self.0.lines().find_map(|l| {
            let (k, v) = l.trim().split_once(char::is_whitespace)?;
            (k == key).then(|| v.trim().parse().ok()).flatten()
        })
    }
}

/// The GPUs the process sees: ROCr's filter, then HIP's on what ROCr left.
pub fn resolve(gpus: &[Gpu], env: &DeviceEnv) -> crate::Result<Visible> {
    for var in [
        "ROCR_VISIBLE_DEVICES",
        "HIP_VISIBLE_DEVICES",
        "CUDA_VISIBLE_DEVICES",
    ] {
        if let Some(v) = env.get(var) {
            crate::limits::check_list(var, v, ',')?;
        }
    }
    let mut vis = Visible::default();
    let rocr: Vec<usize> = match env.get("ROCR_VISIBLE_DEVICES") {
        None => (0..gpus.len()).collect(),
        Some(v) if v.trim().is_empty() => {
            vis.none_by = Some("ROCR_VISIBLE_DEVICES");
            return Ok(vis);
        }
        Some(v) => rocr_filter(gpus, v, &mut vis.warnings),
    };
    let (name, value) = match env.get("HIP_VISIBLE_DEVICES") {
        Some(h) if !h.is_empty() => ("HIP_VISIBLE_DEVICES", Some(h)),
        _ => ("CUDA_VISIBLE_DEVICES", env.get("CUDA_VISIBLE_DEVICES")),
    };
    vis.gpus = match value {
        Some(v) if !v.is_empty() => hip_filter(gpus, &rocr, name, v, &mut vis.warnings),
        _ => rocr,
    };
    Ok(vis)
}

/// `ROCR_VISIBLE_DEVICES` over the machine's GPUs.
fn rocr_filter(gpus: &[Gpu], value: &str, warnings: &mut Vec<String>) -> Vec<usize> {
    let tokens: Vec<String> = value
        .split(',')
        .map(|t| t.trim().to_ascii_uppercase())
        .collect();
    let mut out: Vec<usize> = Vec::new();
    // ROCr looks at no more entries than there are GPUs.
    for (i, tok) in tokens.iter().enumerate().take(gpus.len()) {
        let found = if tok.starts_with('G') {
            let matches: Vec<usize> = (0..gpus.len())
                .filter(|&g| {
                    gpus[g].uuid.as_deref().is_some_and(|u| {
                        (5..=20).contains(&tok.len())
                            && u.to_ascii_uppercase().starts_with(tok.as_str())
                    })
                })
                .collect();
            match matches.as_slice() {
                [one] => Ok(*one),
                [] => Err("no GPU has this UUID".to_string()),
                _ => Err("several GPUs' UUIDs start with it".to_string()),
            }
        } else {
            match c_strtol(tok) {
                Some(g) if g < gpus.len() => Ok(g),
                Some(_) => Err("no such GPU".to_string()),
                None => Err("not an index or a GPU- UUID".to_string()),
            }
        };
        let why = match found {
            Ok(g) if out.contains(&g) => format!("GPU {g} is already listed"),
            Ok(g) => {
                out.push(g);
                continue;
            }
            Err(why) => why,
        };
        warnings.push(super::list_ended(
            "ROCR_VISIBLE_DEVICES",
            value,
            &tokens[i],
            &why,
            &tokens[i + 1..],
            "ROCm",
        ));
        break;
    }
    out
}

/// `HIP_VISIBLE_DEVICES` (or `CUDA_VISIBLE_DEVICES`) over the GPUs ROCr left (`rocr`, in its order).
fn hip_filter(
    gpus: &[Gpu],
    rocr: &[usize],
    name: &str,
    value: &str,
    warnings: &mut Vec<String>,
) -> Vec<usize> {
    let tokens: Vec<&str> = value.split(',').collect();
    let mut out = Vec::new();
    for (i, tok) in tokens.iter().enumerate() {
        let found = if tok.contains("GPU-") {
            rocr.iter()
                .copied()
                .find(|&g| gpus[g].uuid.as_deref().is_some_and(|u| u.contains(tok)))
                .ok_or("no GPU has this UUID")
        } else {
            match tok.parse::<usize>() {
                Ok(n) if n.to_string() == *tok && n < rocr.len() => Ok(rocr[n]),
                Ok(n) if n.to_string() == *tok => Err("no such GPU"),
                _ => Err("not an index or a GPU- UUID"),
            }
        };
        match found {
            // HIP skips a repeated device without a word.
            Ok(g) if out.contains(&g) => {}
            Ok(g) => out.push(g),
            Err(why) => {
                let rest: Vec<String> = tokens[i + 1..].iter().map(|t| t.to_string()).collect();
                warnings.push(super::list_ended(name, value, tok, why, &rest, "HIP"));
                break;
            }
        }
    }
    out
}

/// An index as C's `strtol(s, &end, 0)` reads a whole token: decimal, `0x` hex or leading-0 octal.
fn c_strtol(s: &str) -> Option<usize> {
    let (digits, radix) = if let Some(h) = s.strip_prefix("0X") {
        (h, 16)
    } else if s.len() > 1 && s.starts_with('0') {
        (&s[1..], 8)
    } else {
        (s, 10)
    };
    if digits.is_empty() {
        return None;
    }
    usize::from_str_radix(digits, radix).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sysfs::TestFs;

    /// Four AMD GPUs whose KFD (probe) order is not bus order: KFD nodes 2..5 hold buses
    /// c2, 02, 82, 42; CPU nodes 0 and 1 first.
    fn tree(name: &str) -> TestFs {
        let t = TestFs::new(name);
        t.file("sys/devices/system/cpu/online", "0-7\n");
        for n in 0..2 {
            t.file(
                &format!("{KFD_NODES}/{n}/properties"),
                "cpu_cores_count 4\nsimd_count 0\nlocation_id 0\ndomain 0\n",
            )
            .file(&format!("{KFD_NODES}/{n}/gpu_id"), "0\n");
        }
        for (k, bus) in [0xc2u32, 0x02, 0x82, 0x42].into_iter().enumerate() {
            let node = k + 2;
            t.file(
                &format!("{KFD_NODES}/{node}/properties"),
                &format!(
                    "cpu_cores_count 0\nsimd_count 912\ndevice_id 29856\nlocation_id {}\ndomain 0\n\
                     drm_render_minor {}\nunique_id {}\n",
                    bus << 8,
                    128 + k,
                    0x1000 + bus as u64
                ),
            )
            .file(
                &format!("{KFD_NODES}/{node}/gpu_id"),
                &format!("{}\n", 1000 + k),
            );
            let d = format!("{PCI_DIR}/0000:{bus:02x}:00.0");
            t.file(&format!("{d}/vendor"), "0x1002\n")
                .file(&format!("{d}/class"), "0x120000\n")
                .file(&format!("{d}/numa_node"), &format!("{}\n", bus >> 7))
                .file(
                    &format!("{d}/local_cpulist"),
                    if bus >= 0x80 { "4-7\n" } else { "0-3\n" },
                );
        }
        t
    }

    fn buses(gpus: &[Gpu], vis: &Visible) -> Vec<String> {
        vis.gpus
            .iter()
            .map(|&g| gpus[g].pci_bus_id[5..7].to_string())
            .collect()
    }

    #[test]
    fn kfd_order_uuids_and_locality() {
        let t = tree("amd-kfd");
        let gpus = Amd.discover(&t.fs(), GpuReads::NONE).unwrap();
        let order: Vec<&str> = gpus.iter().map(|g| g.pci_bus_id.as_str()).collect();
        assert_eq!(
            order,
            [
                "0000:c2:00.0",
                "0000:02:00.0",
                "0000:82:00.0",
                "0000:42:00.0"
            ]
        );
        assert_eq!(gpus[0].uuid.as_deref(), Some("GPU-00000000000010c2"));
        assert_eq!(gpus[0].numa_node, Some(1));
        assert_eq!(gpus[1].local_cpus.to_list(), "0-3");
        assert_eq!(gpus[3].minor, Some(131));
        assert!(gpus.iter().all(|g| g.vendor == Vendor::Amd));
        assert_eq!(
            gpus.iter().map(|g| g.index).collect::<Vec<_>>(),
            [0, 1, 2, 3]
        );
    }

    #[test]
    fn without_kfd_pci_bus_order_and_classes() {
        let t = TestFs::new("amd-pci");
        for (bdf, class) in [
            ("0000:c2:00.0", "0x120000"),
            ("0000:02:00.0", "0x038000"),
            ("0000:02:00.1", "0x040300"),
            ("0000:42:00.0", "0x030000"),
        ] {
            t.file(&format!("{PCI_DIR}/{bdf}/vendor"), "0x1002\n")
                .file(&format!("{PCI_DIR}/{bdf}/class"), &format!("{class}\n"));
        }
        t.file(&format!("{PCI_DIR}/0000:07:00.0/vendor"), "0x10de\n")
            .file(&format!("{PCI_DIR}/0000:07:00.0/class"), "0x030200\n");
        let gpus = Amd.discover(&t.fs(), GpuReads::NONE).unwrap();
        let order: Vec<&str> = gpus.iter().map(|g| g.pci_bus_id.as_str()).collect();
        assert_eq!(order, ["0000:02:00.0", "0000:42:00.0", "0000:c2:00.0"]);
    }

    fn vis(vars: &[(&str, &str)]) -> (Vec<String>, Visible) {
        let t = tree("amd-vis");
        let gpus = Amd.discover(&t.fs(), GpuReads::NONE).unwrap();
        let mut env = DeviceEnv::default();
        for (k, v) in vars {
            env.set(k, *v);
        }
        let v = resolve(&gpus, &env).unwrap();
        (buses(&gpus, &v), v)
    }

    #[test]
    fn rocr_then_hip() {
        assert_eq!(vis(&[]).0, ["c2", "02", "82", "42"]);
        assert_eq!(vis(&[("ROCR_VISIBLE_DEVICES", "3,1")]).0, ["42", "02"]);
        // strtol base 0: hex and octal indices.
        assert_eq!(vis(&[("ROCR_VISIBLE_DEVICES", "0x2,01")]).0, ["82", "02"]);
        // UUID prefixes, any case.
        assert_eq!(
            vis(&[("ROCR_VISIBLE_DEVICES", "gpu-0000000000001082")]).0,
            ["82"]
        );
        // HIP indexes what ROCr left.
        assert_eq!(
            vis(&[
                ("ROCR_VISIBLE_DEVICES", "3,1,0"),
                ("HIP_VISIBLE_DEVICES", "2")
            ])
            .0,
            ["c2"]
        );
        // HIP_VISIBLE_DEVICES wins over CUDA_VISIBLE_DEVICES; an empty one falls through to it.
        assert_eq!(
            vis(&[("HIP_VISIBLE_DEVICES", "1"), ("CUDA_VISIBLE_DEVICES", "2")]).0,
            ["02"]
        );
        assert_eq!(
            vis(&[("HIP_VISIBLE_DEVICES", ""), ("CUDA_VISIBLE_DEVICES", "2")]).0,
            ["82"]
        );
        // HIP: UUID substrings (lowercase), repeats skipped silently.
        let (b, v) = vis(&[("HIP_VISIBLE_DEVICES", "GPU-00000000000010c2,0,3")]);
        assert_eq!(b, ["c2", "42"]);
        assert!(v.warnings.is_empty(), "{:?}", v.warnings);
        // An empty CUDA_VISIBLE_DEVICES means every GPU to HIP.
        assert_eq!(vis(&[("CUDA_VISIBLE_DEVICES", "")]).0.len(), 4);
    }

    #[test]
    fn invalid_entries_end_the_lists_with_one_warning() {
        let (b, v) = vis(&[("ROCR_VISIBLE_DEVICES", "1,9,2")]);
        assert_eq!(b, ["02"]);
        assert_eq!(v.warnings.len(), 1);
        assert!(v.warnings[0].contains("ROCR_VISIBLE_DEVICES") && v.warnings[0].contains("\"9\""));
        let (b, _) = vis(&[("ROCR_VISIBLE_DEVICES", "1,1,2")]);
        assert_eq!(b, ["02"]);
        let (b, v) = vis(&[("HIP_VISIBLE_DEVICES", "1,x,2")]);
        assert_eq!(b, ["02"]);
        assert!(
            v.warnings[0].contains("HIP_VISIBLE_DEVICES"),
            "{:?}",
            v.warnings
        );
        // "01" is not plain decimal to HIP.
        assert!(vis(&[("HIP_VISIBLE_DEVICES", "01")]).0.is_empty());
        // -1 (the usual "hide every GPU") selects none.
        assert!(vis(&[("ROCR_VISIBLE_DEVICES", "-1")]).0.is_empty());
        let (b, v) = vis(&[("ROCR_VISIBLE_DEVICES", "")]);
        assert!(b.is_empty());
        assert_eq!(v.none_by, Some("ROCR_VISIBLE_DEVICES"));
    }

    #[test]
    fn unreadable_and_partition_nodes() {
        let t = tree("amd-part");
        // A CPX partition of the GPU on bus 02: function bits carry partition 1.
        t.file(
            &format!("{KFD_NODES}/6/properties"),
            &format!(
                "simd_count 152\nlocation_id {}\ndomain 0\nunique_id 7\n",
                (0x02 << 8) | 1
            ),
        )
        .file(&format!("{KFD_NODES}/6/gpu_id"), "77\n");
        let gpus = Amd.discover(&t.fs(), GpuReads::NONE).unwrap();
        assert_eq!(gpus.len(), 5);
        assert_eq!(gpus[4].pci_bus_id, "0000:02:00.0");
        assert_eq!(gpus[4].local_cpus.to_list(), "0-3");
    }
}
