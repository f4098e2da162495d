//! `gpuaff check` discovery through NVML: a process NVML lists as a compute process is checked even
//! when nothing under /proc marks it (no rank variable, no device file open).

mod nvml_support;
use gpuaff_core::check::{check, Selection};
use gpuaff_core::procfs::ProcFs;
use nvml_support::*;

#[test]
fn nvml_compute_processes_are_found() {
    let (dir, lib) = fake_machine(
        "check-nvml",
        Variant::Full,
        "gpu pci=00000000:07:00.0 uuid=GPU-0 node=0 cpus=0-1 memnode=- model=X minor=0 migs=- pids=500,77777\n",
    );
    let proc_dir = dir.join("proc");
    // SAFETY: getuid has no preconditions and cannot fail.
    let uid = unsafe { libc::getuid() };
    for (pid, name) in [(500u32, "worker"), (600, "bystander")] {
        let d = proc_dir.join(pid.to_string());
        std::fs::create_dir_all(d.join(format!("task/{pid}"))).unwrap();
        let status = format!(
            "Name:\t{name}\nPPid:\t1\nUid:\t{uid}\t{uid}\t{uid}\t{uid}\nCpus_allowed_list:\t0-1\n"
        );
        std::fs::write(d.join("status"), &status).unwrap();
        std::fs::write(d.join(format!("task/{pid}/status")), &status).unwrap();
        std::fs::write(d.join("environ"), "PATH=/bin\0").unwrap();
    }
    let pfs = ProcFs::new(&proc_dir);
    let sel = Selection {
        discover: true,
        uid,
        nvml: Some(Some(lib.clone())),
        ..Selection::default()
    };
    let r = check(&pfs, &sel);
    let found: Vec<(u32, &str)> = r.processes.iter().map(|p| (p.pid, p.found_by)).collect();
    // 77777 is not under this /proc (another pid namespace): ignored.
    assert_eq!(found, [(500, "NVML")]);
    assert!(
        r.notes
            .iter()
            .any(|n| n.contains("pid 500 (worker) is a compute process on a GPU (NVML)")),
        "{:?}",
        r.notes
    );
    // Without NVML asked, nothing marks it.
    let r = check(&pfs, &Selection { nvml: None, ..sel });
    assert!(r.processes.is_empty());
}
