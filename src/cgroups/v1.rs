//! cgroup v1: the per-controller file names and value formats, and the few
//! v1 quirks an executor must honour (cpuset starts empty, memory+swap must
//! stay ≥ memory, the freezer passes through FREEZING). Planners are pure;
//! executors take the controller's cgroup directory as a parameter.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::spec::types::{LinuxBlockIo, LinuxCpu, LinuxHugepageLimit, LinuxMemory, LinuxNetwork};
use anyhow::{bail, Result};

use super::files::{read_file, wait_until, write_file, write_values};
use super::resources::{Ctl, DeviceRule, Write};

pub fn plan_memory(m: &LinuxMemory) -> Result<Vec<Write>> {
    let mut w = Vec::new();
    if m.kernel().is_some() {
        bail!("linux.resources.memory.kernel is not supported: kernel memory limits are deprecated and ignored by the kernel");
    }
    // 0 means "not set", as in runc; -1 is unlimited and v1 takes it as is.
    if let Some(limit) = m.limit().filter(|v| *v != 0) {
        w.push(Write::new(Ctl::Memory, "memory.limit_in_bytes", limit));
    }
    // OCI's swap is memory+swap, which is exactly v1's memsw.
    if let Some(swap) = m.swap().filter(|v| *v != 0) {
        w.push(Write::new(Ctl::Memory, "memory.memsw.limit_in_bytes", swap));
    }
    if let Some(r) = m.reservation().filter(|v| *v != 0) {
        w.push(Write::new(Ctl::Memory, "memory.soft_limit_in_bytes", r));
    }
    if let Some(t) = m.kernel_tcp().filter(|v| *v != 0) {
        w.push(Write::new(Ctl::Memory, "memory.kmem.tcp.limit_in_bytes", t));
    }
    if let Some(s) = m.swappiness() {
        if s > 100 {
            bail!("linux.resources.memory.swappiness {s} is out of range 0-100");
        }
        w.push(Write::new(Ctl::Memory, "memory.swappiness", s));
    }
    if m.disable_oom_killer() == Some(true) {
        w.push(Write::new(Ctl::Memory, "memory.oom_control", 1));
    }
    // use_hierarchy is always 1 on current kernels; nothing to write.
    Ok(w)
}

pub fn plan_cpu(c: &LinuxCpu) -> Result<Vec<Write>> {
    let mut w = Vec::new();
    if let Some(s) = c.shares().filter(|v| *v != 0) {
        w.push(Write::new(Ctl::Cpu, "cpu.shares", s));
    }
    // Period before quota: the kernel checks quota against the period.
    if let Some(p) = c.period().filter(|v| *v != 0) {
        w.push(Write::new(Ctl::Cpu, "cpu.cfs_period_us", p));
    }
    if let Some(q) = c.quota().filter(|v| *v != 0) {
        w.push(Write::new(Ctl::Cpu, "cpu.cfs_quota_us", q));
    }
    if let Some(b) = c.burst() {
        w.push(Write::new(Ctl::Cpu, "cpu.cfs_burst_us", b));
    }
    if let Some(i) = c.idle() {
        w.push(Write::new(Ctl::Cpu, "cpu.idle", i));
    }
    if let Some(p) = c.realtime_period().filter(|v| *v != 0) {
        w.push(Write::new(Ctl::Cpu, "cpu.rt_period_us", p));
    }
    if let Some(r) = c.realtime_runtime().filter(|v| *v != 0) {
        w.push(Write::new(Ctl::Cpu, "cpu.rt_runtime_us", r));
    }
    Ok(w)
}

pub fn plan_blkio(b: &LinuxBlockIo) -> Vec<Write> {
    let mut w = Vec::new();
    // Kernels without CFQ only have BFQ's files; same 1-1000 scale.
    if let Some(v) = b.weight() {
        w.push(Write::new(Ctl::Io, "blkio.weight", v).or("blkio.bfq.weight", v));
    }
    if let Some(v) = b.leaf_weight() {
        w.push(Write::new(Ctl::Io, "blkio.leaf_weight", v));
    }
    for d in b.weight_device().iter().flatten() {
        let dev = format!("{}:{}", d.major(), d.minor());
        if let Some(v) = d.weight() {
            w.push(
                Write::new(Ctl::Io, "blkio.weight_device", format!("{dev} {v}"))
                    .or("blkio.bfq.weight_device", format!("{dev} {v}")),
            );
        }
        if let Some(v) = d.leaf_weight() {
            w.push(Write::new(
                Ctl::Io,
                "blkio.leaf_weight_device",
                format!("{dev} {v}"),
            ));
        }
    }
    let throttles = [
        (
            "blkio.throttle.read_bps_device",
            b.throttle_read_bps_device(),
        ),
        (
            "blkio.throttle.write_bps_device",
            b.throttle_write_bps_device(),
        ),
        (
            "blkio.throttle.read_iops_device",
            b.throttle_read_iops_device(),
        ),
        (
            "blkio.throttle.write_iops_device",
            b.throttle_write_iops_device(),
        ),
    ];
    for (file, list) in throttles {
        for d in list.iter().flatten() {
            w.push(Write::new(
                Ctl::Io,
                file,
                format!("{}:{} {}", d.major(), d.minor(), d.rate()),
            ));
        }
    }
    w
}

/// `2MB`, `1GB`, `64KB`: the size names the kernel uses in hugetlb files.
pub fn check_page_size(size: &str) -> Result<()> {
    let digits = size.trim_end_matches(['K', 'M', 'G', 'B']);
    let unit = &size[digits.len()..];
    if digits.is_empty()
        || !digits.bytes().all(|b| b.is_ascii_digit())
        || !["KB", "MB", "GB"].contains(&unit)
    {
        bail!("linux.resources.hugepageLimits: page size {size:?} is not like 2MB or 1GB");
    }
    Ok(())
}

pub fn plan_hugetlb(h: &[LinuxHugepageLimit]) -> Result<Vec<Write>> {
    h.iter()
        .map(|l| {
            check_page_size(l.page_size())?;
            Ok(Write::new(
                Ctl::Hugetlb,
                format!("hugetlb.{}.limit_in_bytes", l.page_size()),
                l.limit(),
            ))
        })
        .collect()
}

pub fn plan_net_cls(n: &LinuxNetwork) -> Vec<Write> {
    n.class_id()
        .map(|id| Write::new(Ctl::NetCls, "net_cls.classid", id))
        .into_iter()
        .collect()
}

pub fn plan_net_prio(n: &LinuxNetwork) -> Vec<Write> {
    n.priorities()
        .iter()
        .flatten()
        .map(|p| {
            Write::new(
                Ctl::NetPrio,
                "net_prio.ifpriomap",
                format!("{} {}", p.name(), p.priority()),
            )
        })
        .collect()
}

/// `devices.deny a` first (the list starts with it), then each rule.
pub fn device_writes(rules: &[DeviceRule]) -> Vec<Write> {
    rules
        .iter()
        .map(|r| {
            let file = if r.allow {
                "devices.allow"
            } else {
                "devices.deny"
            };
            if r.kind == 'a' && r.major.is_none() && r.minor.is_none() && r.access == "rwm" {
                Write::new(Ctl::Devices, file, "a")
            } else {
                Write::new(Ctl::Devices, file, r)
            }
        })
        .collect()
}

/// Apply v1 writes, each in its controller's directory.
pub fn apply(writes: &[Write], dirs: &BTreeMap<String, PathBuf>) -> Result<()> {
    let dir_of = |w: &Write| -> Result<&PathBuf> {
        let name = w.ctl.map(|c| c.v1_name()).unwrap_or_default();
        dirs.get(name)
            .ok_or_else(|| anyhow::anyhow!("no cgroup v1 {name} hierarchy for {}", w.file))
    };
    let mut done = vec![false; writes.len()];
    for i in 0..writes.len() {
        if done[i] {
            continue;
        }
        let w = &writes[i];
        let dir = dir_of(w)?;
        if w.ctl == Some(Ctl::Devices) {
            // Device rules come in runs for one file: one open, one write
            // per rule (cgroupfs takes a rule per write), a rule repeated
            // right after itself written once.
            let run = writes[i..]
                .iter()
                .take_while(|x| x.ctl == w.ctl && x.file == w.file && x.alt.is_none())
                .count();
            let mut values: Vec<&str> = writes[i..i + run]
                .iter()
                .map(|x| x.value.as_str())
                .collect();
            values.dedup();
            write_values(&dir.join(&w.file), &values)?;
            done[i..i + run].iter_mut().for_each(|d| *d = true);
            continue;
        }
        if let Err(err) = write_one(dir, w) {
            // Raising the limit above the current memory+swap limit is
            // refused until memsw is raised first (runc does the same dance).
            let memsw = (w.file == "memory.limit_in_bytes")
                .then(|| {
                    writes
                        .iter()
                        .position(|x| x.file == "memory.memsw.limit_in_bytes")
                })
                .flatten()
                .filter(|j| *j > i);
            let Some(j) = memsw else { return Err(err) };
            write_one(dir, &writes[j])?;
            write_one(dir, w)?;
            done[j] = true;
        }
    }
    Ok(())
}

/// Write `w`, falling back to its alternative file when the first is absent.
pub fn write_one(dir: &Path, w: &Write) -> Result<()> {
    match &w.alt {
        Some((file, value)) if !dir.join(&w.file).exists() && dir.join(file).exists() => {
            write_file(dir, file, value)
        }
        _ => write_file(dir, &w.file, &w.value),
    }
}

/// A new v1 cpuset cgroup has empty cpus and mems, and a process cannot join
/// it until they are set: copy them down from the nearest ancestor, for each
/// directory in `chain` (top-down, ending with the container's).
///
/// A level above the container's that berth has to fill (one it made, or
/// one left empty) also gets `cgroup.clone_children`, so that the kernel
/// fills every cgroup made under it at mkdir (as LXC has it). The next
/// container's then costs a read per file, instead of a write that the
/// kernel checks against every sibling cpuset and follows with a rebuild
/// of the scheduler domains. A filled parent is left as it is.
pub fn init_cpuset(chain: &[PathBuf]) -> Result<()> {
    let Some((leaf, levels)) = chain.split_last() else {
        return Ok(());
    };
    let filled = |dir: &Path, file: &str| -> Result<Option<String>> {
        let v = read_file(dir, file)?.trim().to_string();
        Ok((!v.is_empty()).then_some(v))
    };
    let mut ours: Vec<&PathBuf> = Vec::new();
    for file in ["cpuset.cpus", "cpuset.mems"] {
        // The container's first: filled at mkdir, nothing above is read.
        if filled(leaf, file)?.is_some() {
            continue;
        }
        // The value of the level above, carried down the chain: each file
        // is read once per level, the parent of the first level only if
        // that one is empty.
        let mut above: Option<String> = None;
        let fill = |dir: &Path, above: Option<String>| -> Result<String> {
            let value = match above {
                Some(v) => v,
                None => {
                    let parent = dir.parent().unwrap_or(dir);
                    read_file(parent, file)?.trim().to_string()
                }
            };
            write_file(dir, file, &value)?;
            Ok(value)
        };
        for dir in levels {
            above = Some(match filled(dir, file)? {
                Some(own) => own,
                None => {
                    if !ours.contains(&dir) {
                        ours.push(dir);
                    }
                    fill(dir, above.take())?
                }
            });
        }
        fill(leaf, above)?;
    }
    for dir in ours {
        // Only a saving for the next container: without it, that one is
        // filled by writes, as this one was.
        let _ = write_file(dir, "cgroup.clone_children", "1");
    }
    Ok(())
}

const FREEZE_TIMEOUT: Duration = Duration::from_secs(2);

/// Freeze via freezer.state, waiting (bounded) for FREEZING to become FROZEN.
pub fn freeze(dir: &Path) -> Result<()> {
    let frozen = wait_until(FREEZE_TIMEOUT, || {
        // Re-writing FROZEN nudges tasks that were forking when we began.
        write_file(dir, "freezer.state", "FROZEN")?;
        Ok(read_file(dir, "freezer.state")?.trim() == "FROZEN")
    })?;
    if !frozen {
        let _ = write_file(dir, "freezer.state", "THAWED");
        bail!(
            "freeze {}: still FREEZING after {:?}; thawed again",
            dir.display(),
            FREEZE_TIMEOUT
        );
    }
    Ok(())
}

pub fn thaw(dir: &Path) -> Result<()> {
    write_file(dir, "freezer.state", "THAWED")
}

pub fn is_frozen(dir: &Path) -> bool {
    read_file(dir, "freezer.state")
        .map(|s| s.trim() == "FROZEN")
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::super::files::testdir::TempDir;
    use super::*;

    fn files(w: &[Write]) -> Vec<(&str, &str)> {
        Write::pairs(w)
    }

    #[test]
    fn memory_plan() {
        let m: LinuxMemory = serde_json::from_str(
            r#"{"limit":-1,"swap":200,"reservation":50,"swappiness":10,"disableOOMKiller":true}"#,
        )
        .unwrap();
        assert_eq!(
            files(&plan_memory(&m).unwrap()),
            [
                ("memory.limit_in_bytes", "-1"),
                ("memory.memsw.limit_in_bytes", "200"),
                ("memory.soft_limit_in_bytes", "50"),
                ("memory.swappiness", "10"),
                ("memory.oom_control", "1")
            ]
        );
        let bad: LinuxMemory = serde_json::from_str(r#"{"swappiness":101}"#).unwrap();
        assert!(plan_memory(&bad).is_err());
        let kmem: LinuxMemory = serde_json::from_str(r#"{"kernel":1000}"#).unwrap();
        assert!(plan_memory(&kmem)
            .unwrap_err()
            .to_string()
            .contains("memory.kernel"));
    }

    #[test]
    fn cpu_plan_orders_period_first() {
        let c: LinuxCpu = serde_json::from_str(r#"{"shares":512,"quota":10000,"period":100000,"realtimeRuntime":950,"realtimePeriod":1000}"#).unwrap();
        assert_eq!(
            files(&plan_cpu(&c).unwrap()),
            [
                ("cpu.shares", "512"),
                ("cpu.cfs_period_us", "100000"),
                ("cpu.cfs_quota_us", "10000"),
                ("cpu.rt_period_us", "1000"),
                ("cpu.rt_runtime_us", "950")
            ]
        );
    }

    #[test]
    fn blkio_plan() {
        let b: LinuxBlockIo = serde_json::from_str(
            r#"{"weight":300,"weightDevice":[{"major":8,"minor":0,"weight":500}],"throttleReadBpsDevice":[{"major":8,"minor":0,"rate":1048576}]}"#,
        )
        .unwrap();
        let w = plan_blkio(&b);
        assert_eq!(
            files(&w),
            [
                ("blkio.weight", "300"),
                ("blkio.weight_device", "8:0 500"),
                ("blkio.throttle.read_bps_device", "8:0 1048576")
            ]
        );
        assert_eq!(w[0].alt, Some(("blkio.bfq.weight".into(), "300".into())));
    }

    #[test]
    fn hugetlb_and_network_plan() {
        let h: Vec<LinuxHugepageLimit> =
            serde_json::from_str(r#"[{"pageSize":"2MB","limit":1024}]"#).unwrap();
        assert_eq!(
            files(&plan_hugetlb(&h).unwrap()),
            [("hugetlb.2MB.limit_in_bytes", "1024")]
        );
        assert!(
            check_page_size("2M").is_err()
                && check_page_size("MB").is_err()
                && check_page_size("1GB").is_ok()
        );
        let n: LinuxNetwork = serde_json::from_str(
            r#"{"classID":1048577,"priorities":[{"name":"eth0","priority":5}]}"#,
        )
        .unwrap();
        assert_eq!(files(&plan_net_cls(&n)), [("net_cls.classid", "1048577")]);
        assert_eq!(
            files(&plan_net_prio(&n)),
            [("net_prio.ifpriomap", "eth0 5")]
        );
    }

    #[test]
    fn executor_on_fixture_dir() {
        let t = TempDir::new("v1");
        for f in [
            "memory.limit_in_bytes",
            "memory.memsw.limit_in_bytes",
            "blkio.bfq.weight",
        ] {
            t.put(f, "");
        }
        let dirs: BTreeMap<String, PathBuf> = [
            ("memory".to_string(), t.path().to_path_buf()),
            ("blkio".to_string(), t.path().to_path_buf()),
        ]
        .into();
        let writes = vec![
            Write::new(Ctl::Memory, "memory.limit_in_bytes", 100),
            Write::new(Ctl::Memory, "memory.memsw.limit_in_bytes", 200),
            Write::new(Ctl::Io, "blkio.weight", 300).or("blkio.bfq.weight", 300),
        ];
        apply(&writes, &dirs).unwrap();
        assert_eq!(
            std::fs::read_to_string(t.path().join("memory.memsw.limit_in_bytes")).unwrap(),
            "200"
        );
        assert_eq!(
            std::fs::read_to_string(t.path().join("blkio.bfq.weight")).unwrap(),
            "300"
        );
        let err = apply(&[Write::new(Ctl::Pids, "pids.max", 1)], &dirs).unwrap_err();
        assert!(err.to_string().contains("no cgroup v1 pids hierarchy"));
    }

    #[test]
    fn cpuset_copied_from_parent() {
        let t = TempDir::new("cpuset");
        t.put("cpuset.cpus", "0-1\n");
        t.put("cpuset.mems", "0\n");
        let child = t.path().join("c");
        std::fs::create_dir(&child).unwrap();
        std::fs::write(child.join("cpuset.cpus"), "\n").unwrap();
        std::fs::write(child.join("cpuset.mems"), "").unwrap();
        init_cpuset(std::slice::from_ref(&child)).unwrap();
        assert_eq!(
            std::fs::read_to_string(child.join("cpuset.cpus")).unwrap(),
            "0-1"
        );
    }
}
