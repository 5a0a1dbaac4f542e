//! cgroup v2: file names and value formats (runc's conversions for values
//! whose scale changed from v1), enabling controllers down the tree under the
//! no-internal-processes rule, and the core freeze file. Planners are pure;
//! executors take the cgroup directory as a parameter.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::spec::types::{LinuxBlockIo, LinuxCpu, LinuxHugepageLimit, LinuxMemory};
use anyhow::{anyhow, bail, Result};

use super::files::{read_file, wait_until, write_file};
use super::resources::{Ctl, Write};
use super::v1::check_page_size;

/// `-1` is unlimited, spelled `max` in v2.
fn bytes(v: i64) -> String {
    if v < 0 {
        "max".to_string()
    } else {
        v.to_string()
    }
}

/// runc's mapping of v1 shares (2-262144) onto v2 weight (1-10000).
pub fn shares_to_weight(shares: u64) -> u64 {
    let shares = shares.clamp(2, 262_144);
    1 + ((shares - 2) * 9999) / 262_142
}

/// runc's mapping of v1 blkio weight (10-1000) onto v2 io.weight (1-10000).
pub fn blkio_to_io_weight(w: u16) -> u64 {
    let w = u64::from(w.clamp(10, 1000));
    1 + ((w - 10) * 9999) / 990
}

/// OCI swap is memory+swap; v2's memory.swap.max is swap alone.
pub fn swap_max(swap: i64, limit: Option<i64>) -> Result<String> {
    if swap < 0 {
        return Ok("max".into());
    }
    match limit {
        Some(l) if l > 0 => {
            if swap < l {
                bail!("linux.resources.memory.swap {swap} is below memory.limit {l}: swap is memory+swap and must be at least the limit");
            }
            Ok((swap - l).to_string())
        }
        _ => bail!("linux.resources.memory.swap needs memory.limit to be set on cgroup v2 (swap is memory+swap)"),
    }
}

pub fn plan_memory(m: &LinuxMemory) -> Result<Vec<Write>> {
    let mut w = Vec::new();
    let unsupported =
        |field: &str| anyhow!("linux.resources.memory.{field} is not supported on cgroup v2");
    if m.kernel().is_some() {
        return Err(unsupported("kernel"));
    }
    if m.kernel_tcp().is_some() {
        return Err(unsupported("kernelTCP"));
    }
    if m.swappiness().is_some() {
        return Err(unsupported("swappiness"));
    }
    if m.disable_oom_killer() == Some(true) {
        return Err(unsupported("disableOOMKiller"));
    }
    let limit = m.limit().filter(|v| *v != 0);
    if let Some(swap) = m.swap().filter(|v| *v != 0) {
        w.push(Write::new(
            Ctl::Memory,
            "memory.swap.max",
            swap_max(swap, limit)?,
        ));
    }
    if let Some(l) = limit {
        w.push(Write::new(Ctl::Memory, "memory.max", bytes(l)));
    }
    if let Some(r) = m.reservation().filter(|v| *v != 0) {
        w.push(Write::new(Ctl::Memory, "memory.low", bytes(r)));
    }
    Ok(w)
}

pub fn plan_cpu(c: &LinuxCpu) -> Result<Vec<Write>> {
    let mut w = Vec::new();
    if c.realtime_runtime().is_some() || c.realtime_period().is_some() {
        bail!("linux.resources.cpu.realtimeRuntime/realtimePeriod are not supported on cgroup v2");
    }
    if let Some(s) = c.shares().filter(|v| *v != 0) {
        w.push(Write::new(Ctl::Cpu, "cpu.weight", shares_to_weight(s)));
    }
    let quota = c.quota().filter(|v| *v != 0);
    let period = c.period().filter(|v| *v != 0);
    if quota.is_some() || period.is_some() {
        let mut max = quota
            .filter(|q| *q > 0)
            .map_or("max".to_string(), |q| q.to_string());
        if let Some(p) = period {
            max.push_str(&format!(" {p}"));
        }
        w.push(Write::new(Ctl::Cpu, "cpu.max", max));
    }
    if let Some(b) = c.burst() {
        w.push(Write::new(Ctl::Cpu, "cpu.max.burst", b));
    }
    if let Some(i) = c.idle() {
        w.push(Write::new(Ctl::Cpu, "cpu.idle", i));
    }
    Ok(w)
}

pub fn plan_io(b: &LinuxBlockIo) -> Result<Vec<Write>> {
    let mut w = Vec::new();
    if b.leaf_weight().is_some()
        || b.weight_device()
            .iter()
            .flatten()
            .any(|d| d.leaf_weight().is_some())
    {
        bail!("linux.resources.blockIO leafWeight is not supported on cgroup v2");
    }
    // BFQ takes the v1 scale as is; io.weight needs runc's conversion.
    if let Some(v) = b.weight() {
        w.push(
            Write::new(Ctl::Io, "io.bfq.weight", v)
                .or("io.weight", format!("default {}", blkio_to_io_weight(v))),
        );
    }
    for d in b.weight_device().iter().flatten() {
        if let Some(v) = d.weight() {
            let dev = format!("{}:{}", d.major(), d.minor());
            w.push(
                Write::new(Ctl::Io, "io.bfq.weight", format!("{dev} {v}"))
                    .or("io.weight", format!("{dev} {}", blkio_to_io_weight(v))),
            );
        }
    }
    let throttles = [
        ("rbps", b.throttle_read_bps_device()),
        ("wbps", b.throttle_write_bps_device()),
        ("riops", b.throttle_read_iops_device()),
        ("wiops", b.throttle_write_iops_device()),
    ];
    for (key, list) in throttles {
        for d in list.iter().flatten() {
            w.push(Write::new(
                Ctl::Io,
                "io.max",
                format!("{}:{} {key}={}", d.major(), d.minor(), d.rate()),
            ));
        }
    }
    Ok(w)
}

pub fn plan_hugetlb(h: &[LinuxHugepageLimit]) -> Result<Vec<Write>> {
    h.iter()
        .map(|l| {
            check_page_size(l.page_size())?;
            Ok(Write::new(
                Ctl::Hugetlb,
                format!("hugetlb.{}.max", l.page_size()),
                bytes(l.limit()),
            ))
        })
        .collect()
}

/// Apply v2 writes in the container's cgroup `dir`.
pub fn apply(writes: &[Write], dir: &Path) -> Result<()> {
    writes.iter().try_for_each(|w| super::v1::write_one(dir, w))
}

/// The directories whose `cgroup.subtree_control` hands controllers to the
/// container's cgroup: from `top` down to the leaf's parent.
pub fn chain(top: &Path, leaf: &Path) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = leaf
        .ancestors()
        .skip(1)
        .take_while(|d| d.starts_with(top))
        .map(Path::to_path_buf)
        .collect();
    dirs.reverse();
    dirs
}

/// Enable `needed` (and, best effort, `wanted`) controllers from `top` down
/// to `leaf`'s parent. Failing on `needed` names the cgroup and controller.
pub fn enable_controllers(
    top: &Path,
    leaf: &Path,
    needed: &BTreeSet<String>,
    wanted: &BTreeSet<String>,
) -> Result<()> {
    if needed.is_empty() && wanted.is_empty() {
        return Ok(());
    }
    let all: BTreeSet<&String> = crate::sorted::inserted(needed.iter().chain(wanted));
    for dir in chain(top, leaf) {
        // Only what is not enabled yet: a level above a delegated subtree
        // (the root, for a rootless caller) is not ours to write, and its
        // controllers are usually on already.
        let on: BTreeSet<String> = read_file(&dir, "cgroup.subtree_control")
            .map(|s| crate::sorted::inserted(s.split_whitespace().map(str::to_string)))
            .unwrap_or_default();
        let missing: Vec<&String> = all.iter().copied().filter(|c| !on.contains(*c)).collect();
        if missing.is_empty() {
            continue;
        }
        let line = missing
            .iter()
            .map(|c| format!("+{c}"))
            .collect::<Vec<_>>()
            .join(" ");
        if write_file(&dir, "cgroup.subtree_control", &line).is_ok() {
            continue;
        }
        // Retry one at a time so the error names the controller at fault.
        for c in needed.iter().filter(|c| !on.contains(*c)) {
            if let Err(err) = write_file(&dir, "cgroup.subtree_control", &format!("+{c}")) {
                if has_processes(&dir) {
                    return Err(internal_processes(&dir, c));
                }
                return Err(
                    err.context(format!("enable cgroup v2 controller {c} for the container"))
                );
            }
        }
        for c in wanted {
            let _ = write_file(&dir, "cgroup.subtree_control", &format!("+{c}"));
        }
    }
    Ok(())
}

pub fn has_processes(dir: &Path) -> bool {
    read_file(dir, "cgroup.procs")
        .map(|s| !s.trim().is_empty())
        .unwrap_or(false)
}

pub fn is_root(dir: &Path) -> bool {
    !dir.join("cgroup.type").exists()
}

pub fn internal_processes(dir: &Path, ctl: &str) -> anyhow::Error {
    anyhow!(
        "cannot enable the cgroup v2 controller {ctl} below {}: that cgroup holds processes, and cgroup v2 hands controllers \
         only to the children of a cgroup without processes (no-internal-processes rule); run berth from a leaf cgroup \
         whose parent it may use, or give an absolute cgroupsPath",
        dir.display()
    )
}

/// Before anything is created: would `top` refuse to hand `needed` down?
pub fn check_top(top: &Path, needed: &BTreeSet<String>) -> Result<()> {
    if needed.is_empty() || is_root(top) {
        return Ok(());
    }
    let enabled = read_file(top, "cgroup.subtree_control")?;
    let enabled: BTreeSet<&str> = crate::sorted::inserted(enabled.split_whitespace());
    match needed.iter().find(|c| !enabled.contains(c.as_str())) {
        Some(c) if has_processes(top) => Err(internal_processes(top, c)),
        _ => Ok(()),
    }
}

const FREEZE_TIMEOUT: Duration = Duration::from_secs(2);

/// Freeze via cgroup.freeze and wait (bounded) for cgroup.events to say so.
pub fn freeze(dir: &Path) -> Result<()> {
    write_file(dir, "cgroup.freeze", "1")?;
    let frozen = wait_until(FREEZE_TIMEOUT, || {
        let events = read_file(dir, "cgroup.events")?;
        Ok(events.lines().any(|l| l.trim() == "frozen 1"))
    })?;
    if !frozen {
        let _ = write_file(dir, "cgroup.freeze", "0");
        bail!(
            "freeze {}: not frozen after {:?}; thawed again",
            dir.display(),
            FREEZE_TIMEOUT
        );
    }
    Ok(())
}

pub fn thaw(dir: &Path) -> Result<()> {
    write_file(dir, "cgroup.freeze", "0")
}

pub fn is_frozen(dir: &Path) -> bool {
    read_file(dir, "cgroup.freeze")
        .map(|s| s.trim() == "1")
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
    fn conversions_match_runc() {
        assert_eq!(shares_to_weight(2), 1);
        assert_eq!(shares_to_weight(1024), 39);
        assert_eq!(shares_to_weight(262_144), 10_000);
        assert_eq!(blkio_to_io_weight(10), 1);
        assert_eq!(blkio_to_io_weight(500), 4950);
        assert_eq!(blkio_to_io_weight(1000), 10_000);
        assert_eq!(swap_max(-1, None).unwrap(), "max");
        assert_eq!(swap_max(300, Some(100)).unwrap(), "200");
        assert!(swap_max(50, Some(100)).is_err());
        assert!(swap_max(50, None).is_err());
    }

    #[test]
    fn memory_and_cpu_plans() {
        let m: LinuxMemory = serde_json::from_str(r#"{"limit":-1,"reservation":10}"#).unwrap();
        assert_eq!(
            files(&plan_memory(&m).unwrap()),
            [("memory.max", "max"), ("memory.low", "10")]
        );
        let m: LinuxMemory = serde_json::from_str(r#"{"swappiness":0}"#).unwrap();
        assert!(plan_memory(&m)
            .unwrap_err()
            .to_string()
            .contains("swappiness"));
        let c: LinuxCpu = serde_json::from_str(
            r#"{"shares":1024,"quota":10000,"period":100000,"burst":0,"cpus":"0"}"#,
        )
        .unwrap();
        assert_eq!(
            files(&plan_cpu(&c).unwrap()),
            [
                ("cpu.weight", "39"),
                ("cpu.max", "10000 100000"),
                ("cpu.max.burst", "0")
            ]
        );
        let c: LinuxCpu = serde_json::from_str(r#"{"quota":-1}"#).unwrap();
        assert_eq!(files(&plan_cpu(&c).unwrap()), [("cpu.max", "max")]);
        let c: LinuxCpu = serde_json::from_str(r#"{"realtimeRuntime":5}"#).unwrap();
        assert!(plan_cpu(&c).is_err());
    }

    #[test]
    fn io_plan() {
        let b: LinuxBlockIo = serde_json::from_str(
            r#"{"weight":500,"throttleWriteIopsDevice":[{"major":8,"minor":0,"rate":100}]}"#,
        )
        .unwrap();
        let w = plan_io(&b).unwrap();
        assert_eq!(
            files(&w),
            [("io.bfq.weight", "500"), ("io.max", "8:0 wiops=100")]
        );
        assert_eq!(w[0].alt, Some(("io.weight".into(), "default 4950".into())));
    }

    #[test]
    fn chain_and_check_top() {
        assert_eq!(
            chain(Path::new("/cg/own"), Path::new("/cg/own/berth/c1")),
            [PathBuf::from("/cg/own"), PathBuf::from("/cg/own/berth")]
        );
        let t = TempDir::new("v2");
        t.put("cgroup.type", "domain\n");
        t.put("cgroup.subtree_control", "pids\n");
        t.put("cgroup.procs", "42\n");
        let need: BTreeSet<String> = ["pids".to_string()].into();
        check_top(t.path(), &need).unwrap();
        let need: BTreeSet<String> = ["memory".to_string()].into();
        let err = check_top(t.path(), &need).unwrap_err().to_string();
        assert!(
            err.contains("controller memory") && err.contains("no-internal-processes"),
            "{err}"
        );
    }
}
