//! NVIDIA GPUs as the machine has them (PCI bus order, which is NVML's) and as CUDA shows them to a
//! process (`CUDA_VISIBLE_DEVICES`, `CUDA_DEVICE_ORDER`).

use super::pci::{self, normalize_bdf, parse_bdf, PCI_DIR};
use super::{DeviceEnv, Gpu, GpuReads, GpuSource, Vendor, Visible};
use crate::sysfs::Fs;

/// NVIDIA's side of the seam.
pub struct Nvidia;

impl GpuSource for Nvidia {
    fn vendor(&self) -> Vendor {
        Vendor::Nvidia
    }

    fn visible_vars(&self) -> &'static [&'static str] {
        &["CUDA_VISIBLE_DEVICES", "CUDA_DEVICE_ORDER"]
    }

    /// `CUDA_VISIBLE_DEVICES` is read by HIP too: no variable says "NVIDIA" on its own.
    fn claims(&self, _env: &DeviceEnv) -> bool {
        false
    }

    /// Only UUID, prefix and MIG entries need the driver's identity files; only FASTEST_FIRST's
    /// mixed-models warning needs to tell models apart.
    fn reads(&self, env: &DeviceEnv) -> crate::Result<GpuReads> {
        let order = DeviceOrder::parse(env.get("CUDA_DEVICE_ORDER"))?;
        Ok(GpuReads {
            defer_nodes: false,
            identity: env
                .get("CUDA_VISIBLE_DEVICES")
                .is_some_and(|cvd| cvd.split(',').any(entry_is_uuid)),
            models: order == DeviceOrder::FastestFirst,
        })
    }

    fn discover(&self, fs: &Fs, reads: GpuReads) -> crate::Result<Vec<Gpu>> {
        discover_sysfs_for(fs, reads)
    }

    fn resolve_visible(&self, gpus: &[Gpu], env: &DeviceEnv) -> crate::Result<Visible> {
        let order = DeviceOrder::parse(env.get("CUDA_DEVICE_ORDER"))?;
        let cvd = env.get("CUDA_VISIBLE_DEVICES");
        let mut vis = resolve_visible(gpus, cvd, order)?;
        // Empty, `-1` (the usual way to hide GPUs) or a list whose first entry is invalid: no GPU.
        if vis.gpus.is_empty() && cvd.is_some() {
            vis.none_by = Some("CUDA_VISIBLE_DEVICES");
        }
        Ok(vis)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum DeviceOrder {
    /// CUDA's default; gpuaff assumes PCI order (warning when models are mixed).
    #[default]
    FastestFirst,
    PciBusId,
}

impl DeviceOrder {
    /// `CUDA_DEVICE_ORDER`: `FASTEST_FIRST` (default) or `PCI_BUS_ID`.
    pub fn parse(value: Option<&str>) -> crate::Result<DeviceOrder> {
        match value.map(str::trim) {
            None | Some("") | Some("FASTEST_FIRST") => Ok(DeviceOrder::FastestFirst),
            Some("PCI_BUS_ID") => Ok(DeviceOrder::PciBusId),
            Some(v) => Err(crate::Error::bad_value(
                "CUDA_DEVICE_ORDER",
                v,
                "FASTEST_FIRST, PCI_BUS_ID",
            )),
        }
    }
}

/// The GPUs a process sees, from `CUDA_VISIBLE_DEVICES` (None: all, in PCI order).
///
/// As CUDA reads it: comma-separated entries, each a decimal index into the machine's GPUs, a
/// `GPU-` UUID or a unique prefix of one (with or without `GPU-`), or a `MIG-` UUID (its parent
/// GPU). The first entry that is invalid (unknown, malformed or a duplicate) ends the list: CUDA
/// ignores it and everything after it; gpuaff does the same and says so. An ambiguous UUID prefix
/// is an error, as is a MIG UUID whose parent is unknown (only NVML can tell).
pub fn resolve_visible(
    gpus: &[Gpu],
    cuda_visible_devices: Option<&str>,
    order: DeviceOrder,
) -> crate::Result<Visible> {
    let mut vis = Visible::default();
    match cuda_visible_devices {
        None => vis.gpus = (0..gpus.len()).collect(),
        Some(cvd) => {
            crate::limits::check_list("CUDA_VISIBLE_DEVICES", cvd, ',')?;
            let entries: Vec<&str> = cvd.split(',').map(str::trim).collect();
            let nonempty = !(entries.len() == 1 && entries.first() == Some(&""));
            for (i, entry) in entries.iter().enumerate().filter(|_| nonempty) {
                let found = resolve_entry(gpus, entry)?;
                let why = match found {
                    Some(idx) if vis.gpus.contains(&idx) => {
                        Some(format!("GPU {idx} is already listed"))
                    }
                    Some(idx) => {
                        vis.gpus.push(idx);
                        None
                    }
                    None => Some("no such GPU".to_string()),
                };
                // Nothing usable at all (`-1`, the usual way to hide GPUs): no GPU, as the empty
                // value, which the caller reports quietly.
                if why.is_some() && vis.gpus.is_empty() {
                    break;
                }
                if let Some(why) = why {
                    let rest = entries.get(i + 1..).unwrap_or_default();
                    vis.warnings.push(super::list_ended(
                        "CUDA_VISIBLE_DEVICES",
                        cvd,
                        entry,
                        &why,
                        rest,
                        "CUDA",
                    ));
                    break;
                }
            }
        }
    }
    // FASTEST_FIRST orders all GPUs before indices apply, so any model mix on the machine matters.
    if order == DeviceOrder::FastestFirst && !vis.gpus.is_empty() {
        let mut models: Vec<&str> = gpus.iter().filter_map(|g| g.model.as_deref()).collect();
        models.sort_unstable();
        models.dedup();
        if models.len() > 1 {
            vis.warnings.push(format!(
                "GPU models differ ({}) and CUDA_DEVICE_ORDER is FASTEST_FIRST: assuming PCI bus \
                 order; set CUDA_DEVICE_ORDER=PCI_BUS_ID to make it certain",
                models.join(", ")
            ));
        }
    }
    Ok(vis)
}

/// One `CUDA_VISIBLE_DEVICES` entry: Ok(Some(index)), Ok(None) when CUDA would find it invalid,
/// Err when it cannot be decided (ambiguous prefix, MIG parent unknown).
fn resolve_entry(gpus: &[Gpu], entry: &str) -> crate::Result<Option<usize>> {
    if entry.is_empty() {
        return Ok(None);
    }
    if entry.bytes().all(|b| b.is_ascii_digit()) {
        return Ok(entry.parse::<usize>().ok().filter(|&i| i < gpus.len()));
    }
    if entry.starts_with("MIG-") {
        let parent = gpus
            .iter()
            .position(|g| g.migs.iter().any(|m| m.eq_ignore_ascii_case(entry)));
        if parent.is_some() {
            return Ok(parent);
        }
        return Err(crate::Error::no_device(format!(
            "CUDA_VISIBLE_DEVICES entry {entry:?}: no known GPU has this MIG instance (finding \
             a MIG instance's parent GPU needs NVML: GPU_AFFINITY_SOURCE=auto or nvml)"
        )));
    }
    // A UUID or a prefix of one, with or without "GPU-".
    let key = entry.to_ascii_lowercase();
    let key = key.strip_prefix("gpu-").unwrap_or(&key);
    let matches: Vec<usize> = gpus
        .iter()
        .enumerate()
        .filter(|(_, g)| {
            g.uuid.as_deref().is_some_and(|u| {
                let u = u.to_ascii_lowercase();
                u.strip_prefix("gpu-").unwrap_or(&u).starts_with(key)
            })
        })
        .map(|(i, _)| i)
        .collect();
    match matches.as_slice() {
        [] => Ok(None),
        [one] => Ok(Some(*one)),
        many => Err(crate::Error::invalid(format!(
            "CUDA_VISIBLE_DEVICES entry {entry:?} is ambiguous: it is a prefix of the UUIDs of GPUs {}",
            many.iter()
                .map(|&i| format!(
                    "{i} ({})",
                    gpus.get(i).and_then(|g| g.uuid.as_deref()).unwrap_or("?")
                ))
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

/// True when `entry` names a GPU by UUID or MIG UUID (not by index).
pub fn entry_is_uuid(entry: &str) -> bool {
    let e = entry.trim();
    !e.is_empty() && !e.bytes().all(|b| b.is_ascii_digit())
}

const NV_PROC: &str = "proc/driver/nvidia/gpus";
/// NVIDIA's PCI vendor id.
const NVIDIA: u32 = 0x10de;
/// VGA and 3D controllers (class 0x0300xx, 0x0302xx).
const DISPLAY_3D: &[u32] = &[0x0300, 0x0302];

/// Facts from the driver's `proc/driver/nvidia/gpus/<bdf>/information`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProcInfo {
    pub model: Option<String>,
    pub uuid: Option<String>,
    pub minor: Option<u32>,
    pub bus_location: Option<String>,
}

/// Parses the `information` file: `Key: \t value` lines; unknown keys are ignored.
pub fn parse_information(text: &str) -> ProcInfo {
    let mut info = ProcInfo::default();
    for line in text.lines() {
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim_matches(|c: char| c.is_whitespace() || c == '\0');
        if value.is_empty() {
            continue;
        }
        match key.trim() {
            "Model" => info.model = Some(value.to_string()),
            "GPU UUID" if value.starts_with("GPU-") => info.uuid = Some(value.to_string()),
            "Device Minor" => info.minor = value.parse().ok(),
            "Bus Location" => info.bus_location = normalize_bdf(value),
            _ => {}
        }
    }
    info
}

/// The node of the GPU's own memory, from the driver's `numa_status` (`Node: 250`), when the GPU
/// memory is onlined as a NUMA node (coherent platforms: POWER9, Grace).
fn parse_numa_status(text: &str) -> Option<u32> {
    let mut node = None;
    let mut online = true;
    for line in text.lines() {
        if let Some((k, v)) = line.split_once(':') {
            match k.trim() {
                "Node" => node = v.trim().parse::<u32>().ok(),
                "Status" => online = v.trim() == "online",
                _ => {}
            }
        }
    }
    node.filter(|_| online)
}

/// The machine's NVIDIA GPUs from sysfs and the driver's procfs, in PCI bus order.
///
/// A PCI function counts when its `vendor` is 0x10de and its `class` a VGA or 3D controller
/// (0x0300xx, 0x0302xx). When the driver's procfs directory `proc/driver/nvidia/gpus/` exists it
/// lists the GPUs this container was given: GPUs absent from it are left out, so indices match
/// what NVML and CUDA show inside the container, and a function it lists is an NVIDIA GPU without
/// reading `vendor` or `class` (the driver binds GPUs only).
pub fn discover_sysfs(fs: &crate::sysfs::Fs) -> crate::Result<Vec<Gpu>> {
    discover_sysfs_for(fs, GpuReads::ALL)
}

/// A PCI address as numbers (`parse_bdf`).
type Bdf = (u32, u32, u32, u32);

/// As `discover_sysfs`, reading the driver's identity files only as `reads` says.
pub fn discover_sysfs_for(fs: &crate::sysfs::Fs, reads: GpuReads) -> crate::Result<Vec<Gpu>> {
    // (address, directory name as the driver spells it); addresses compare as numbers, which is
    // comparing their normalized forms.
    let proc_dirs: Option<Vec<(Bdf, String)>> = fs.list_dir_opt(NV_PROC)?.map(|names| {
        names
            .into_iter()
            .filter_map(|n| Some((parse_bdf(n.trim())?, n)))
            .collect()
    });
    let mut found: Vec<(Bdf, Gpu)> = Vec::new();
    for name in fs.list_dir(PCI_DIR)? {
        let Some(key) = parse_bdf(&name) else {
            continue;
        };
        // With the driver's procfs, only what it lists can be a GPU of this process: the other PCI
        // functions (hundreds on a real server) cost no reads at all.
        let proc_dir = match &proc_dirs {
            None => None,
            Some(dirs) => match dirs.iter().find(|(k, _)| *k == key) {
                Some((_, n)) => Some(n.as_str()),
                None => continue,
            },
        };
        let Some(bdf) = normalize_bdf(&name) else {
            continue;
        };
        let dir = format!("{PCI_DIR}/{name}");
        if proc_dir.is_none() && !pci::is_function(fs, &dir, NVIDIA, DISPLAY_3D)? {
            continue;
        }
        let loc = pci::locality(fs, &dir, reads.defer_nodes)?;
        let mut gpu = Gpu {
            pci_bus_id: bdf,
            numa_node: loc.numa_node,
            local_cpus: loc.local_cpus,
            pending_node: loc.pending_node,
            ..Gpu::default()
        };
        if let Some(pdir) = proc_dir {
            if reads.identity {
                if let Some(text) = fs.read_opt_fmt(format_args!("{NV_PROC}/{pdir}/information"))? {
                    let info = parse_information(&text);
                    gpu.uuid = info.uuid;
                    gpu.minor = info.minor;
                    gpu.model = info.model;
                }
                if let Some(text) = fs.read_opt_fmt(format_args!("{NV_PROC}/{pdir}/numa_status"))? {
                    gpu.mem_node = parse_numa_status(&text);
                }
            } else if reads.models {
                gpu.model = pci::device_model(fs, &dir)?;
            }
        }
        found.push((key, gpu));
    }
    found.sort_by_key(|(k, _)| *k);
    Ok(found
        .into_iter()
        .enumerate()
        .map(|(index, (_, g))| Gpu { index, ..g })
        .collect())
}

/// True when a `CUDA_VISIBLE_DEVICES` entry is a UUID or MIG UUID that `gpus` cannot resolve.
pub fn needs_nvml(gpus: &[Gpu], cuda_visible_devices: Option<&str>) -> bool {
    let Some(cvd) = cuda_visible_devices else {
        return false;
    };
    cvd.split(',').map(str::trim).any(|e| {
        if !entry_is_uuid(e) {
            false
        } else if e.starts_with("MIG-") {
            !gpus
                .iter()
                .any(|g| g.migs.iter().any(|m| m.eq_ignore_ascii_case(e)))
        } else {
            gpus.iter().any(|g| g.uuid.is_none())
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sysfs::TestFs;

    fn pci(t: &TestFs, dir: &str, vendor: Option<&str>, class: &str) {
        t.file(&format!("{dir}/class"), &format!("{class}\n"));
        if let Some(v) = vendor {
            t.file(&format!("{dir}/vendor"), &format!("{v}\n"));
        }
    }

    #[test]
    fn discovers_plain_and_linked_functions_in_bus_order() {
        let t = TestFs::new("pci");
        let d = "sys/bus/pci/devices";
        // A live-system layout: links into sys/devices.
        let real = "sys/devices/pci0000:80/0000:81:00.0";
        pci(&t, real, Some("0x10de"), "0x030200");
        t.file(&format!("{real}/local_cpulist"), "8-15\n")
            .file(&format!("{real}/numa_node"), "1\n");
        t.dir(d);
        std::os::unix::fs::symlink(t.root.join(real), t.root.join(format!("{d}/0000:81:00.0")))
            .unwrap();
        // A snapshot layout: plain dirs; numa_node -1; mask only.
        pci(&t, &format!("{d}/0000:07:00.0"), Some("0x10de"), "0x030000");
        t.file(&format!("{d}/0000:07:00.0/local_cpus"), "000000ff\n")
            .file(&format!("{d}/0000:07:00.0/numa_node"), "-1\n");
        // Bus 0x1b sorts after 0x07 and before 0x81 (numerically, not as text after 0x0a).
        pci(&t, &format!("{d}/0000:1b:00.0"), Some("0x10de"), "0x030200");
        // Not GPUs: an NVIDIA audio function, another vendor's display, a bridge.
        pci(&t, &format!("{d}/0000:07:00.1"), Some("0x10de"), "0x040300");
        pci(&t, &format!("{d}/0000:02:00.0"), Some("0x1002"), "0x030000");
        pci(&t, &format!("{d}/0000:00:01.0"), Some("0x10de"), "0x060400");
        let gpus = discover_sysfs(&t.fs()).unwrap();
        let ids: Vec<&str> = gpus.iter().map(|g| g.pci_bus_id.as_str()).collect();
        assert_eq!(ids, ["0000:07:00.0", "0000:1b:00.0", "0000:81:00.0"]);
        assert_eq!(gpus.iter().map(|g| g.index).collect::<Vec<_>>(), [0, 1, 2]);
        assert_eq!(gpus[0].numa_node, None);
        assert_eq!(gpus[0].local_cpus.to_list(), "0-7");
        assert!(gpus[1].local_cpus.is_empty());
        assert_eq!(gpus[2].numa_node, Some(1));
        assert_eq!(gpus[2].local_cpus.to_list(), "8-15");
        assert_eq!(gpus[2].uuid, None);
    }

    #[test]
    fn deferred_nodes_are_read_only_where_there_are_no_local_cpus_or_when_asked() {
        let t = TestFs::new("pci-defer");
        let d = "sys/bus/pci/devices";
        pci(&t, &format!("{d}/0000:07:00.0"), Some("0x10de"), "0x030200");
        t.file(&format!("{d}/0000:07:00.0/local_cpulist"), "8-15\n")
            .file(&format!("{d}/0000:07:00.0/numa_node"), "1\n");
        // No local CPUs: its node is all a plan has, so it is read at once.
        pci(&t, &format!("{d}/0000:1b:00.0"), Some("0x10de"), "0x030200");
        t.file(&format!("{d}/0000:1b:00.0/numa_node"), "0\n");
        let reads = GpuReads {
            defer_nodes: true,
            ..GpuReads::NONE
        };
        let fs = t.fs();
        let mut gpus = discover_sysfs_for(&fs, reads).unwrap();
        let read = fs.files_read();
        assert_eq!(gpus[0].numa_node, None);
        assert_eq!(
            gpus[0].pending_node.as_deref(),
            Some("sys/bus/pci/devices/0000:07:00.0")
        );
        assert_eq!(gpus[1].numa_node, Some(0));
        assert_eq!(gpus[1].pending_node, None);
        gpus[0].read_pending_node(&fs).unwrap();
        assert_eq!(gpus[0].numa_node, Some(1));
        assert_eq!(gpus[0].pending_node, None);
        assert_eq!(fs.files_read(), read + 1);
        gpus[0].read_pending_node(&fs).unwrap();
        assert_eq!(fs.files_read(), read + 1, "read once");
        // Without deferring, every node at discovery: the same GPUs.
        let full = discover_sysfs_for(&t.fs(), GpuReads::NONE).unwrap();
        assert_eq!(full, gpus);
    }

    #[test]
    fn driver_procfs_gives_identity_and_limits_the_container() {
        let t = TestFs::new("procfs");
        let d = "sys/bus/pci/devices";
        for bdf in ["0000:07:00.0", "0000:0f:00.0"] {
            pci(&t, &format!("{d}/{bdf}"), Some("0x10de"), "0x030200");
        }
        // Trimmed snapshot: no vendor file, but the driver knows the function.
        pci(&t, &format!("{d}/0035:04:00.0"), None, "0x030200");
        t.file(&format!("{d}/0035:04:00.0/local_cpus"), "0000ffff\n");
        t.file(
            "proc/driver/nvidia/gpus/0000:0f:00.0/information",
            "Model: \t\t NVIDIA A100-SXM4-80GB\nIRQ:   \t\t 93\n\
             GPU UUID: \t GPU-8a3f0e11-2222-3333-4444-555566667777\n\
             Video BIOS: \t 92.00.36.00.01\nBus Location: \t 0000:0f:00.0\n\
             Device Minor: \t 3\nBlacklisted:\t No\n",
        )
        .file(
            "proc/driver/nvidia/gpus/0035:04:00.0/numa_status",
            "Node:      250\nStatus:    online\n",
        );
        let gpus = discover_sysfs(&t.fs()).unwrap();
        let ids: Vec<&str> = gpus.iter().map(|g| g.pci_bus_id.as_str()).collect();
        // 0000:07:00.0 is not in this container's procfs: left out.
        assert_eq!(ids, ["0000:0f:00.0", "0035:04:00.0"]);
        assert_eq!(gpus[0].index, 0);
        assert_eq!(gpus[0].model.as_deref(), Some("NVIDIA A100-SXM4-80GB"));
        assert_eq!(
            gpus[0].uuid.as_deref(),
            Some("GPU-8a3f0e11-2222-3333-4444-555566667777")
        );
        assert_eq!(gpus[0].minor, Some(3));
        assert_eq!(gpus[1].mem_node, Some(250));
        assert_eq!(gpus[1].local_cpus.to_list(), "0-15");
    }

    #[test]
    fn procfs_listed_functions_skip_vendor_and_class_and_identity_is_optional() {
        let t = TestFs::new("reads");
        let d = "sys/bus/pci/devices";
        // No vendor or class files at all: the driver's listing is what makes them GPUs.
        for (bdf, device, model) in [
            ("0000:07:00.0", "0x20b2", "NVIDIA A100-SXM4-80GB"),
            ("0000:0f:00.0", "0x2237", "NVIDIA A10G"),
        ] {
            t.file(&format!("{d}/{bdf}/device"), &format!("{device}\n"))
                .file(&format!("{d}/{bdf}/local_cpulist"), "0-3\n")
                .file(&format!("{d}/{bdf}/numa_node"), "0\n")
                .file(
                    &format!("proc/driver/nvidia/gpus/{bdf}/information"),
                    &format!("Model: \t\t {model}\nGPU UUID: \t GPU-{device}\n"),
                );
        }
        let bare = GpuReads {
            identity: false,
            models: false,
            defer_nodes: false,
        };
        let fs = t.fs();
        let gpus = discover_sysfs_for(&fs, bare).unwrap();
        assert_eq!(gpus.len(), 2);
        assert!(gpus.iter().all(|g| g.uuid.is_none() && g.model.is_none()));
        assert_eq!(fs.files_read(), 4, "numa_node and local_cpulist per GPU");

        let fs = t.fs();
        let models = GpuReads {
            identity: false,
            models: true,
            defer_nodes: false,
        };
        let gpus = discover_sysfs_for(&fs, models).unwrap();
        assert_eq!(fs.files_read(), 6, "and the PCI device id");
        assert_eq!(gpus[0].model.as_deref(), Some("PCI device 0x20b2"));
        assert_eq!(gpus[1].uuid, None);
        let v = resolve_visible(&gpus, Some("0"), DeviceOrder::FastestFirst).unwrap();
        assert!(
            v.warnings.iter().any(|w| w.contains("GPU models differ")
                && w.contains("PCI device 0x20b2")
                && w.contains("PCI device 0x2237")),
            "{:?}",
            v.warnings
        );

        let fs = t.fs();
        let gpus = discover_sysfs(&fs).unwrap();
        assert_eq!(gpus[1].model.as_deref(), Some("NVIDIA A10G"));
        assert_eq!(gpus[1].uuid.as_deref(), Some("GPU-0x2237"));
        let v = resolve_visible(&gpus, None, DeviceOrder::FastestFirst).unwrap();
        assert!(
            v.warnings.iter().any(|w| w.contains("NVIDIA A10G")),
            "{:?}",
            v.warnings
        );
    }

    #[test]
    fn bad_class_names_the_file() {
        let t = TestFs::new("badclass");
        pci(
            &t,
            "sys/bus/pci/devices/0000:07:00.0",
            Some("0x10de"),
            "VGA",
        );
        let e = discover_sysfs(&t.fs()).unwrap_err();
        assert!(e.message().contains("0000:07:00.0/class"), "{e}");
    }

    #[test]
    fn information_parsing() {
        let i = parse_information("Model: \t NVIDIA H100\nGPU UUID: \t GPU-abc\nDevice Minor: \t 0\nBus Location: \t 0000:9A:00.0\0");
        assert_eq!(i.model.as_deref(), Some("NVIDIA H100"));
        assert_eq!(i.uuid.as_deref(), Some("GPU-abc"));
        assert_eq!(i.minor, Some(0));
        assert_eq!(i.bus_location.as_deref(), Some("0000:9a:00.0"));
        assert_eq!(parse_information("garbage\n"), ProcInfo::default());
        assert_eq!(normalize_bdf("07:00.0"), None);
        assert_eq!(
            normalize_bdf("00000035:04:00.0").as_deref(),
            Some("0035:04:00.0")
        );
    }

    fn machine() -> Vec<Gpu> {
        let uuids = [
            "GPU-8a3f0e11-0000-0000-0000-000000000000",
            "GPU-8a3f9999-0000-0000-0000-000000000001",
            "GPU-11112222-0000-0000-0000-000000000002",
            "GPU-33334444-0000-0000-0000-000000000003",
        ];
        uuids
            .iter()
            .enumerate()
            .map(|(i, u)| Gpu {
                index: i,
                pci_bus_id: format!("0000:{:02x}:00.0", i + 7),
                uuid: Some(u.to_string()),
                model: Some("NVIDIA H100".into()),
                migs: if i == 3 {
                    vec!["MIG-aaaa-bbbb".into()]
                } else {
                    vec![]
                },
                ..Gpu::default()
            })
            .collect()
    }

    fn vis(cvd: Option<&str>) -> Visible {
        resolve_visible(&machine(), cvd, DeviceOrder::PciBusId).unwrap()
    }

    #[test]
    fn visible_by_index_uuid_prefix_and_mig() {
        assert_eq!(vis(None).gpus, [0, 1, 2, 3]);
        assert_eq!(vis(Some("")).gpus, Vec::<usize>::new());
        assert_eq!(vis(Some(" 2 , 0")).gpus, [2, 0]);
        assert_eq!(
            vis(Some("GPU-11112222-0000-0000-0000-000000000002,1")).gpus,
            [2, 1]
        );
        assert_eq!(vis(Some("GPU-3333")).gpus, [3]);
        assert_eq!(vis(Some("8a3f9")).gpus, [1], "prefix without GPU-");
        assert_eq!(vis(Some("MIG-aaaa-bbbb,0")).gpus, [3, 0]);
        assert!(vis(Some("1,2")).warnings.is_empty());
    }

    #[test]
    fn invalid_entry_ends_the_list_with_a_warning() {
        for (cvd, want, named) in [
            ("0,7,1", vec![0], "\"7\""),
            ("1,GPU-ffff,0", vec![1], "GPU-ffff"),
            ("2,x9,0", vec![2], "x9"),
            ("1,1,2", vec![1], "already listed"),
            ("0,,2", vec![0], "\"\""),
        ] {
            let v = vis(Some(cvd));
            assert_eq!(v.gpus, want, "{cvd}");
            assert_eq!(v.warnings.len(), 1, "{cvd}: {:?}", v.warnings);
            assert!(v.warnings[0].contains(named), "{cvd}: {:?}", v.warnings);
        }
        // Nothing usable (`-1` hides every GPU): no GPU and no warning, as the empty value.
        for cvd in ["-1", "-1,0", "x,0,1", "99"] {
            let v = vis(Some(cvd));
            assert!(v.gpus.is_empty() && v.warnings.is_empty(), "{cvd}: {v:?}");
        }
        // A long list is quoted by its start and length, the warning stays short.
        let long = format!("0,{}", vec!["-1"; 3000].join(","));
        let v = vis(Some(&long));
        assert_eq!(v.gpus, [0]);
        assert!(v.warnings[0].len() < 400, "{}", v.warnings[0]);
        assert!(v.warnings[0].starts_with("CUDA_VISIBLE_DEVICES=\"0,-1"));
        assert!(vis_err(&vec!["0"; 5000].join(",")).contains("5000 entries"));
    }

    fn vis_err(cvd: &str) -> String {
        resolve_visible(&machine(), Some(cvd), DeviceOrder::PciBusId)
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn ambiguous_prefix_and_unknown_mig_are_errors() {
        let e = resolve_visible(&machine(), Some("GPU-8a3f"), DeviceOrder::PciBusId).unwrap_err();
        assert!(
            e.message().contains("GPU-8a3f0e11") && e.message().contains("GPU-8a3f9999"),
            "{e}"
        );
        let e = resolve_visible(&machine(), Some("MIG-zzzz"), DeviceOrder::PciBusId).unwrap_err();
        assert!(e.message().contains("NVML"), "{e}");
    }

    #[test]
    fn fastest_first_warns_on_mixed_models() {
        let mut gpus = machine();
        let v = resolve_visible(&gpus, None, DeviceOrder::FastestFirst).unwrap();
        assert!(v.warnings.is_empty(), "{:?}", v.warnings);
        gpus[2].model = Some("NVIDIA A10".into());
        let v = resolve_visible(&gpus, Some("0"), DeviceOrder::FastestFirst).unwrap();
        assert_eq!(v.gpus, [0]);
        assert!(
            v.warnings.iter().any(|w| w.contains("NVIDIA A10")),
            "{:?}",
            v.warnings
        );
        let v = resolve_visible(&gpus, None, DeviceOrder::PciBusId).unwrap();
        assert!(v.warnings.is_empty());
    }

    #[test]
    fn device_order_parse() {
        assert_eq!(DeviceOrder::parse(None).unwrap(), DeviceOrder::FastestFirst);
        assert_eq!(
            DeviceOrder::parse(Some("FASTEST_FIRST")).unwrap(),
            DeviceOrder::FastestFirst
        );
        assert_eq!(
            DeviceOrder::parse(Some("PCI_BUS_ID")).unwrap(),
            DeviceOrder::PciBusId
        );
        let e = DeviceOrder::parse(Some("pci")).unwrap_err();
        assert!(e.message().contains("CUDA_DEVICE_ORDER"), "{e}");
    }
}
