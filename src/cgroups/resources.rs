//! The planner: `linux.resources` → the cgroup file writes (and the device
//! rules) that enforce it, per backend. Pure: it reads no files, so every
//! conversion is unit-tested without root. It decides, per controller, whether
//! v1 or v2 handles it (on a hybrid host a v2-only controller such as hugetlb
//! goes through v2) and refuses — naming the field and the controller — any
//! limit this host cannot apply. It must never drop a limit silently.

use std::collections::BTreeSet;

use crate::spec::types::{LinuxDeviceCgroup, LinuxDeviceType, LinuxResources};
use anyhow::{bail, Result};

use super::{v1, v2};

/// A resource controller, named independently of the cgroup version.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Ctl {
    Cpu,
    Cpuset,
    Memory,
    Pids,
    Io,
    Hugetlb,
    NetCls,
    NetPrio,
    Rdma,
    Devices,
}

impl Ctl {
    pub fn v1_name(self) -> &'static str {
        match self {
            Ctl::Cpu => "cpu",
            Ctl::Cpuset => "cpuset",
            Ctl::Memory => "memory",
            Ctl::Pids => "pids",
            Ctl::Io => "blkio",
            Ctl::Hugetlb => "hugetlb",
            Ctl::NetCls => "net_cls",
            Ctl::NetPrio => "net_prio",
            Ctl::Rdma => "rdma",
            Ctl::Devices => "devices",
        }
    }

    /// The v2 controller, if v2 has one (devices is a BPF program there).
    pub fn v2_name(self) -> Option<&'static str> {
        match self {
            Ctl::Cpu => Some("cpu"),
            Ctl::Cpuset => Some("cpuset"),
            Ctl::Memory => Some("memory"),
            Ctl::Pids => Some("pids"),
            Ctl::Io => Some("io"),
            Ctl::Hugetlb => Some("hugetlb"),
            Ctl::Rdma => Some("rdma"),
            Ctl::NetCls | Ctl::NetPrio | Ctl::Devices => None,
        }
    }

    fn field(self) -> &'static str {
        match self {
            Ctl::Cpu => "linux.resources.cpu",
            Ctl::Cpuset => "linux.resources.cpu.cpus/mems",
            Ctl::Memory => "linux.resources.memory",
            Ctl::Pids => "linux.resources.pids",
            Ctl::Io => "linux.resources.blockIO",
            Ctl::Hugetlb => "linux.resources.hugepageLimits",
            Ctl::NetCls => "linux.resources.network.classID",
            Ctl::NetPrio => "linux.resources.network.priorities",
            Ctl::Rdma => "linux.resources.rdma",
            Ctl::Devices => "linux.resources.devices",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    V1,
    V2,
}

/// One write of `value` to `file` in the controller's cgroup directory.
/// `alt` is tried instead when `file` does not exist (BFQ's weight files).
#[derive(Clone, Debug, PartialEq)]
pub struct Write {
    pub ctl: Option<Ctl>,
    pub file: String,
    pub value: String,
    pub alt: Option<(String, String)>,
}

impl Write {
    /// (file, value) pairs of a plan, for tests to compare against.
    #[cfg(test)]
    pub fn pairs(w: &[Write]) -> Vec<(&str, &str)> {
        w.iter()
            .map(|w| (w.file.as_str(), w.value.as_str()))
            .collect()
    }

    pub fn new(ctl: Ctl, file: impl Into<String>, value: impl ToString) -> Write {
        Write {
            ctl: Some(ctl),
            file: file.into(),
            value: value.to_string(),
            alt: None,
        }
    }
    pub fn or(mut self, file: impl Into<String>, value: impl ToString) -> Write {
        self.alt = Some((file.into(), value.to_string()));
        self
    }
}

/// A device rule after defaults are filled in: type `a`, `b` or `c`,
/// `None` for a `*` number, access a non-empty subset of `rwm`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceRule {
    pub allow: bool,
    pub kind: char,
    pub major: Option<u32>,
    pub minor: Option<u32>,
    pub access: String,
}

impl std::fmt::Display for DeviceRule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let num = |n: Option<u32>| n.map_or("*".to_string(), |n| n.to_string());
        write!(
            f,
            "{} {}:{} {}",
            self.kind,
            num(self.major),
            num(self.minor),
            self.access
        )
    }
}

/// Devices every container may use, appended after the spec's rules as runc
/// does: null, zero, full, random, urandom, tty, console, ptmx, pts, tun.
pub const DEFAULT_DEVICES: &[(u32, Option<u32>)] = &[
    (1, Some(3)),
    (1, Some(5)),
    (1, Some(7)),
    (1, Some(8)),
    (1, Some(9)),
    (5, Some(0)),
    (5, Some(1)),
    (5, Some(2)),
    (136, None),
    (10, Some(200)),
];

/// What the host offers, as the planner needs to know it.
#[derive(Clone, Debug, Default)]
pub struct Host {
    pub pure_v2: bool,
    /// Controllers of the mounted v1 hierarchies.
    pub v1: BTreeSet<String>,
    /// Controllers available in the v2 hierarchy where the container goes;
    /// `None` when no cgroup2 is mounted.
    pub v2: Option<BTreeSet<String>>,
}

impl Host {
    /// Which backend handles `ctl`, if any: v1 where mounted, else v2.
    pub fn backend(&self, ctl: Ctl) -> Option<Backend> {
        if !self.pure_v2 && self.v1.contains(ctl.v1_name()) {
            return Some(Backend::V1);
        }
        let v2 = self.v2.as_ref()?;
        match ctl.v2_name() {
            Some(name) if v2.contains(name) => Some(Backend::V2),
            None if ctl == Ctl::Devices => Some(Backend::V2),
            _ => None,
        }
    }

    fn missing(&self, ctl: Ctl) -> anyhow::Error {
        let name = ctl
            .v2_name()
            .filter(|_| self.pure_v2)
            .unwrap_or(ctl.v1_name());
        anyhow::anyhow!(
            "{} needs the cgroup controller {name}, which this host does not have ({})",
            ctl.field(),
            if self.pure_v2 {
                "not listed in cgroup.controllers"
            } else {
                "not mounted as cgroup v1 nor available in cgroup v2"
            }
        )
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Purpose {
    /// A new cgroup: the device rules are always applied.
    Create,
    /// `update`: only what the resources mention changes.
    Update,
    /// A rootless caller's delegated cgroup: every limit but the device
    /// rules, as runc does. Loading a BPF device program (or writing v1
    /// `devices.*`) needs privileges a delegatee lacks, and the container's
    /// user namespace gives it no device its user could not open anyway.
    Rootless,
}

/// Everything to do to a cgroup, in order.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Plan {
    pub v1: Vec<Write>,
    pub v2: Vec<Write>,
    /// Rules for a v2 BPF device program, when v2 handles devices.
    pub bpf_devices: Option<Vec<DeviceRule>>,
    /// v2 controllers that must be enabled down to the container's cgroup.
    pub v2_controllers: BTreeSet<String>,
}

impl Plan {
    fn add(
        &mut self,
        host: &Host,
        ctl: Ctl,
        plan_v1: impl FnOnce() -> Result<Vec<Write>>,
        plan_v2: impl FnOnce() -> Result<Vec<Write>>,
    ) -> Result<()> {
        let (backend, writes) = match host.backend(ctl) {
            Some(Backend::V1) => (Backend::V1, plan_v1()?),
            Some(Backend::V2) => (Backend::V2, plan_v2()?),
            // Plan anyway: a section whose fields are all unset needs nothing.
            None if host.pure_v2 => (Backend::V2, plan_v2()?),
            None => (Backend::V1, plan_v1()?),
        };
        if writes.is_empty() {
            return Ok(());
        }
        if host.backend(ctl).is_none() {
            return Err(host.missing(ctl));
        }
        match backend {
            Backend::V1 => self.v1.extend(writes),
            Backend::V2 => {
                if let Some(name) = ctl.v2_name() {
                    self.v2_controllers.insert(name.to_string());
                }
                self.v2.extend(writes);
            }
        }
        Ok(())
    }
}

/// Plan every limit in `res` for this host.
pub fn plan(res: &LinuxResources, host: &Host, purpose: Purpose) -> Result<Plan> {
    let mut p = Plan::default();
    if let Some(m) = res.memory() {
        p.add(
            host,
            Ctl::Memory,
            || v1::plan_memory(m),
            || v2::plan_memory(m),
        )?;
    }
    if let Some(c) = res.cpu() {
        p.add(host, Ctl::Cpu, || v1::plan_cpu(c), || v2::plan_cpu(c))?;
        p.add(
            host,
            Ctl::Cpuset,
            || Ok(plan_cpuset(c)),
            || Ok(plan_cpuset(c)),
        )?;
    }
    if let Some(pids) = res.pids() {
        p.add(
            host,
            Ctl::Pids,
            || Ok(plan_pids(pids.limit())),
            || Ok(plan_pids(pids.limit())),
        )?;
    }
    if let Some(b) = res.block_io() {
        p.add(host, Ctl::Io, || Ok(v1::plan_blkio(b)), || v2::plan_io(b))?;
    }
    if let Some(h) = res.hugepage_limits() {
        p.add(
            host,
            Ctl::Hugetlb,
            || v1::plan_hugetlb(h),
            || v2::plan_hugetlb(h),
        )?;
    }
    if let Some(n) = res.network() {
        p.add(
            host,
            Ctl::NetCls,
            || Ok(v1::plan_net_cls(n)),
            || Ok(v1::plan_net_cls(n)),
        )?;
        p.add(
            host,
            Ctl::NetPrio,
            || Ok(v1::plan_net_prio(n)),
            || Ok(v1::plan_net_prio(n)),
        )?;
    }
    if let Some(r) = res.rdma() {
        p.add(host, Ctl::Rdma, || Ok(plan_rdma(r)), || Ok(plan_rdma(r)))?;
    }
    if purpose == Purpose::Create || (purpose == Purpose::Update && res.devices().is_some()) {
        let rules = device_rules(res.devices().as_deref().unwrap_or_default())?;
        match host.backend(Ctl::Devices) {
            Some(Backend::V1) => p.v1.extend(v1::device_writes(&rules)),
            Some(Backend::V2) => p.bpf_devices = Some(rules),
            None => return Err(host.missing(Ctl::Devices)),
        }
    }
    if let Some(u) = res.unified() {
        plan_unified(&mut p, host, u)?;
    }
    Ok(p)
}

fn plan_cpuset(c: &crate::spec::types::LinuxCpu) -> Vec<Write> {
    let mut w = Vec::new();
    if let Some(cpus) = c.cpus().as_deref().filter(|s| !s.is_empty()) {
        w.push(Write::new(Ctl::Cpuset, "cpuset.cpus", cpus));
    }
    if let Some(mems) = c.mems().as_deref().filter(|s| !s.is_empty()) {
        w.push(Write::new(Ctl::Cpuset, "cpuset.mems", mems));
    }
    w
}

/// runc's meaning: 0 leaves the limit alone, negative is unlimited.
fn plan_pids(limit: i64) -> Vec<Write> {
    match limit {
        0 => vec![],
        l if l < 0 => vec![Write::new(Ctl::Pids, "pids.max", "max")],
        l => vec![Write::new(Ctl::Pids, "pids.max", l)],
    }
}

fn plan_rdma(r: &std::collections::BTreeMap<String, crate::spec::types::LinuxRdma>) -> Vec<Write> {
    // A BTreeMap: the devices come in name order.
    r.iter()
        .filter_map(|(dev, lim)| {
            let mut line = dev.clone();
            if let Some(h) = lim.hca_handles() {
                line.push_str(&format!(" hca_handle={h}"));
            }
            if let Some(o) = lim.hca_objects() {
                line.push_str(&format!(" hca_object={o}"));
            }
            (line.len() > dev.len()).then(|| Write::new(Ctl::Rdma, "rdma.max", line))
        })
        .collect()
}

/// `unified` keys are v2 file names; on a hybrid host only those whose
/// controller lives in v2 (or core `cgroup.*` files) can be honoured.
fn plan_unified(
    p: &mut Plan,
    host: &Host,
    u: &std::collections::BTreeMap<String, String>,
) -> Result<()> {
    // A BTreeMap: the same key is checked (and reported) first on every run.
    for (key, value) in u {
        if key.is_empty() || key.contains('/') || key.starts_with('.') || !key.contains('.') {
            bail!("linux.resources.unified: {key:?} is not a cgroup v2 file name");
        }
        let Some(avail) = host.v2.as_ref() else {
            bail!(
                "linux.resources.unified.{key} needs cgroup v2, which is not mounted on this host"
            );
        };
        let ctl = key.split('.').next().unwrap_or_default();
        if ctl != "cgroup" {
            if !avail.contains(ctl) {
                let why = if host.v1.contains(ctl) && !host.pure_v2 {
                    "it is a cgroup v1 controller on this hybrid host"
                } else {
                    "the controller is not available in cgroup v2 here"
                };
                bail!("linux.resources.unified.{key} needs the cgroup v2 controller {ctl}: {why}");
            }
            p.v2_controllers.insert(ctl.to_string());
        }
        p.v2.push(Write {
            ctl: None,
            file: key.clone(),
            value: value.clone(),
            alt: None,
        });
    }
    Ok(())
}

/// The full rule list: deny all, the spec's rules in order, then the default
/// devices (rules later in the list win).
pub fn device_rules(spec: &[LinuxDeviceCgroup]) -> Result<Vec<DeviceRule>> {
    let mut rules = vec![DeviceRule {
        allow: false,
        kind: 'a',
        major: None,
        minor: None,
        access: "rwm".into(),
    }];
    for (i, d) in spec.iter().enumerate() {
        let what = || format!("linux.resources.devices[{i}]");
        let kind = match d.typ().unwrap_or(LinuxDeviceType::A) {
            LinuxDeviceType::A => 'a',
            LinuxDeviceType::B => 'b',
            LinuxDeviceType::C | LinuxDeviceType::U => 'c',
            LinuxDeviceType::P => bail!("{}: type p (fifo) cannot be a cgroup device rule", what()),
        };
        let num = |n: Option<i64>, name: &str| -> Result<Option<u32>> {
            match n {
                None | Some(-1) => Ok(None),
                Some(n) => u32::try_from(n)
                    .map(Some)
                    .map_err(|_| anyhow::anyhow!("{}: {name} {n} is out of range", what())),
            }
        };
        let access = d.access().as_deref().unwrap_or("");
        if let Some(c) = access.chars().find(|c| !"rwm".contains(*c)) {
            bail!(
                "{}: access {access:?} has {c:?}; only r, w and m are allowed",
                what()
            );
        }
        let access: String = ['r', 'w', 'm']
            .into_iter()
            .filter(|c| access.is_empty() || access.contains(*c))
            .collect();
        rules.push(DeviceRule {
            allow: d.allow(),
            kind,
            major: num(d.major(), "major")?,
            minor: num(d.minor(), "minor")?,
            access,
        });
    }
    for &(major, minor) in DEFAULT_DEVICES {
        rules.push(DeviceRule {
            allow: true,
            kind: 'c',
            major: Some(major),
            minor,
            access: "rwm".into(),
        });
    }
    Ok(rules)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn res(json: &str) -> LinuxResources {
        serde_json::from_str(json).expect("fixture json")
    }

    fn hybrid() -> Host {
        Host {
            pure_v2: false,
            v1: [
                "cpu", "cpuacct", "cpuset", "memory", "devices", "freezer", "blkio", "pids",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect(),
            v2: Some(["hugetlb".to_string()].into()),
        }
    }

    fn pure_v2() -> Host {
        Host {
            pure_v2: true,
            v1: BTreeSet::new(),
            v2: Some(
                ["cpu", "cpuset", "memory", "pids", "io", "hugetlb"]
                    .iter()
                    .map(|s| s.to_string())
                    .collect(),
            ),
        }
    }

    #[test]
    fn hybrid_splits_by_controller() {
        let r = res(
            r#"{"memory":{"limit":33554432},"pids":{"limit":20},"hugepageLimits":[{"pageSize":"2MB","limit":4194304}]}"#,
        );
        let p = plan(&r, &hybrid(), Purpose::Update).unwrap();
        assert_eq!(
            Write::pairs(&p.v1),
            [("memory.limit_in_bytes", "33554432"), ("pids.max", "20")]
        );
        assert_eq!(Write::pairs(&p.v2), [("hugetlb.2MB.max", "4194304")]);
        assert_eq!(p.v2_controllers, ["hugetlb".to_string()].into());
    }

    #[test]
    fn missing_controller_is_named() {
        let r = res(r#"{"rdma":{"mlx5_0":{"hcaHandles":3}}}"#);
        let err = plan(&r, &hybrid(), Purpose::Update)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("linux.resources.rdma needs the cgroup controller rdma"),
            "{err}"
        );
        let r = res(r#"{"network":{"classID":1}}"#);
        let err = plan(&r, &pure_v2(), Purpose::Update)
            .unwrap_err()
            .to_string();
        assert!(err.contains("controller net_cls"), "{err}");
        // An empty section asks for nothing.
        assert!(plan(&res(r#"{"rdma":{}}"#), &hybrid(), Purpose::Update).is_ok());
    }

    #[test]
    fn unified_rules() {
        let r = res(r#"{"unified":{"memory.high":"1000000"}}"#);
        let err = plan(&r, &hybrid(), Purpose::Update)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("cgroup v1 controller on this hybrid host"),
            "{err}"
        );
        let p = plan(&r, &pure_v2(), Purpose::Update).unwrap();
        assert_eq!(Write::pairs(&p.v2), [("memory.high", "1000000")]);
        assert!(plan(
            &res(r#"{"unified":{"../x":"1"}}"#),
            &pure_v2(),
            Purpose::Update
        )
        .is_err());
        let p = plan(
            &res(r#"{"unified":{"cgroup.max.depth":"3"}}"#),
            &hybrid(),
            Purpose::Update,
        )
        .unwrap();
        assert!(p.v2_controllers.is_empty());
    }

    #[test]
    fn devices_in_order_with_defaults() {
        let r = res(
            r#"{"devices":[{"allow":true,"type":"b","major":7,"minor":0,"access":"mr"},{"allow":false,"major":-1}]}"#,
        );
        let rules = device_rules(r.devices().as_deref().unwrap()).unwrap();
        let text: Vec<String> = rules
            .iter()
            .map(|r| format!("{}{}", if r.allow { "+" } else { "-" }, r))
            .collect();
        assert_eq!(&text[..3], ["-a *:* rwm", "+b 7:0 rm", "-a *:* rwm"]);
        assert_eq!(text.len(), 3 + DEFAULT_DEVICES.len());
        assert_eq!(text.last().unwrap(), "+c 10:200 rwm");
        assert!(text.contains(&"+c 136:* rwm".to_string()));
        // v1: always on create, only when asked on update.
        let p = plan(&res("{}"), &hybrid(), Purpose::Create).unwrap();
        assert_eq!(Write::pairs(&p.v1)[0], ("devices.deny", "a"));
        assert!(plan(&res("{}"), &hybrid(), Purpose::Update)
            .unwrap()
            .v1
            .is_empty());
        let p = plan(&res("{}"), &pure_v2(), Purpose::Create).unwrap();
        assert_eq!(
            p.bpf_devices.map(|r| r.len()),
            Some(1 + DEFAULT_DEVICES.len())
        );
        let bad = res(r#"{"devices":[{"allow":true,"access":"rx"}]}"#);
        assert!(plan(&bad, &hybrid(), Purpose::Create).is_err());
        // Rootless: no device rules at all, the other limits as usual.
        let r = res(r#"{"devices":[{"allow":true,"access":"rwm"}],"pids":{"limit":5}}"#);
        let p = plan(&r, &pure_v2(), Purpose::Rootless).unwrap();
        assert_eq!(
            (p.bpf_devices, Write::pairs(&p.v2)),
            (None, vec![("pids.max", "5")])
        );
        assert!(plan(&r, &hybrid(), Purpose::Rootless)
            .unwrap()
            .v1
            .iter()
            .all(|w| !w.file.starts_with("devices.")));
    }

    #[test]
    fn pids_and_rdma() {
        assert!(plan_pids(0).is_empty());
        assert_eq!(plan_pids(-1)[0].value, "max");
        let r = res(r#"{"rdma":{"mlx5_0":{"hcaHandles":3,"hcaObjects":9}}}"#);
        assert_eq!(
            plan_rdma(r.rdma().as_ref().unwrap())[0].value,
            "mlx5_0 hca_handle=3 hca_object=9"
        );
    }
}
