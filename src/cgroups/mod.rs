//! Control groups: the one interface the rest of berth uses to place a
//! container in cgroups, apply and update `linux.resources`, freeze, kill,
//! read stats and clean up.
//!
//! The host is probed once in [`Cgroup::plan`] (pure v2, hybrid v1+v2, or v1)
//! and the resolved directories are stored in the `Cgroup`, which lives in
//! state.json, so later commands never probe again. Relative or absent
//! `cgroupsPath` nests under the caller's own cgroup in every hierarchy.
//! Every limit asked for is applied or the command fails naming the field,
//! controller or file; nothing is skipped silently. This module must never
//! move a cgroup it did not create, nor remove anything at or above the
//! caller's own cgroup.

mod devices_bpf;
mod files;
mod probe;
mod resources;
#[cfg(test)]
mod root_tests;
mod stats;
mod v1;
mod v2;

use std::collections::{BTreeMap, BTreeSet};

use crate::sorted::inserted;
use std::os::fd::OwnedFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use crate::spec::types::LinuxResources;
use anyhow::{anyhow, bail, Context, Result};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};

use files::{read_file, write_file};
use probe::{Mount, Target};
use resources::{Host, Purpose};

/// Which cgroup layout the host had when the container was created.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// cgroup2 at /sys/fs/cgroup.
    #[default]
    V2,
    /// v1 controllers, plus cgroup2 beside them for what only v2 has.
    Hybrid,
    /// v1 only.
    V1,
}

/// The container's cgroup in one hierarchy.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
struct Node {
    /// The container's cgroup directory.
    path: PathBuf,
    /// Where v2 controllers are enabled from, downwards: the caller's own
    /// cgroup, or the hierarchy's root for an absolute path.
    top: PathBuf,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default)]
pub struct Cgroup {
    #[serde(default)]
    mode: Mode,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    v2: Option<Node>,
    /// v1 controller name → its cgroup (co-mounted controllers share one).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    v1: BTreeMap<String, Node>,
    /// A rootless caller's delegated cgroup: no device rules (see
    /// [`Purpose::Rootless`]).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    rootless: bool,
}

/// A cgroup between [`Cgroup::create_first`] and [`Cgroup::create_rest`].
#[derive(Default)]
#[must_use = "the cgroup is half made until create_rest"]
pub struct Creating {
    /// None for [`Cgroup::none`]: nothing to make.
    plan: Option<resources::Plan>,
    /// The topmost directory made in each hierarchy, to undo a failure.
    made: Vec<PathBuf>,
}

impl Creating {
    /// On error, remove what was made (deepest first) and pass the error on.
    fn undo_if(self, result: Result<()>) -> Result<Self> {
        match result {
            Ok(()) => Ok(self),
            Err(e) => {
                for dir in self.made.iter().rev() {
                    let _ = files::remove_tree(dir);
                }
                Err(e)
            }
        }
    }
}

/// Nodes by path, each directory once (co-mounted v1 controllers share one).
fn distinct<'a>(nodes: impl Iterator<Item = &'a Node>) -> Vec<&'a Node> {
    let mut nodes: Vec<&Node> = nodes.collect();
    nodes.sort_unstable_by(|a, b| a.path.cmp(&b.path));
    nodes.dedup_by(|a, b| a.path == b.path);
    nodes
}

/// Whether the cgroup at `dir` already lists `pid` in its `cgroup.procs`.
/// Reading it takes no global lock; any error reads as "no".
fn holds_pid(dir: &Path, pid: &str) -> bool {
    read_file(dir, "cgroup.procs").is_ok_and(|procs| procs.lines().any(|l| l.trim() == pid))
}

/// v2 controllers berth enables for accounting on a pure v2 host when
/// possible, so `events --stats` has numbers even without limits.
const ACCOUNTING: &[&str] = &["cpu", "io", "memory", "pids"];

impl Cgroup {
    #[cfg(test)]
    pub fn plan(id: &str, cgroups_path: Option<&Path>, systemd: bool) -> Result<Cgroup> {
        Self::plan_and_mountinfo(id, cgroups_path, systemd).map(|(cgroup, _)| cgroup)
    }

    /// Resolve where the container's cgroup lives; touches nothing. Also
    /// gives back the host's /proc/self/mountinfo it read (the child plans
    /// its cgroup mounts from it instead of reading it again).
    pub fn plan_and_mountinfo(
        id: &str,
        cgroups_path: Option<&Path>,
        systemd: bool,
    ) -> Result<(Cgroup, String)> {
        let target = probe::resolve_target(id, cgroups_path, systemd)?;
        let (layout, mountinfo) = probe::probe_layout_and_mountinfo()?;
        let own = match target {
            Target::Nested(_) => probe::read_own_cgroups()?,
            _ => probe::OwnCgroups::default(),
        };
        let node = |m: &Mount, own_path: Option<&PathBuf>| -> Node {
            match &target {
                Target::Nested(rel) => {
                    let top =
                        probe::dir_in_mount(m, own_path.map_or(Path::new("/"), |p| p.as_path()));
                    Node {
                        path: top.join(rel),
                        top,
                    }
                }
                Target::Absolute(p) => Node {
                    path: probe::dir_in_mount(m, p),
                    top: m.point.clone(),
                },
                Target::Systemd(p) => Node {
                    path: probe::dir_in_mount(m, p),
                    top: m.point.clone(),
                },
            }
        };
        let mut v1 = BTreeMap::new();
        for m in &layout.v1 {
            let own_path = m.controllers.iter().find_map(|c| own.v1.get(c));
            let n = node(m, own_path);
            for c in &m.controllers {
                v1.insert(c.clone(), n.clone());
            }
        }
        let v2 = layout.v2.as_ref().map(|m| node(m, own.v2.as_ref()));
        let mode = match (layout.pure_v2, v1.is_empty()) {
            (true, _) | (false, true) => Mode::V2,
            (false, false) if v2.is_some() => Mode::Hybrid,
            _ => Mode::V1,
        };
        let cgroup = Cgroup {
            mode,
            v2,
            v1,
            rootless: false,
        };
        Ok((cgroup, mountinfo))
    }

    /// No cgroup at all: a rootless container whose caller has no cgroup
    /// delegated to it stays in the caller's cgroups.
    pub fn none() -> Cgroup {
        Cgroup::default()
    }

    /// Mark this as a rootless caller's delegated cgroup.
    pub fn set_rootless(&mut self) {
        self.rootless = true;
    }

    /// How a new cgroup's limits are planned.
    fn create_purpose(&self) -> Purpose {
        if self.rootless {
            Purpose::Rootless
        } else {
            Purpose::Create
        }
    }

    /// Whether this is [`Cgroup::none`]: nothing to make, apply or remove.
    pub fn is_none(&self) -> bool {
        self.v2.is_none() && self.v1.is_empty()
    }

    /// Whether this process may make the container's cgroup in every
    /// hierarchy: the nearest existing directory on the way is writable.
    /// Only a cgroup delegated to the caller is, for a non-root caller.
    pub fn writable(&self) -> bool {
        self.nodes().iter().all(|n| {
            let Some(dir) = n.path.ancestors().find(|d| d.exists()) else {
                return false;
            };
            nix::unistd::access(
                dir,
                nix::unistd::AccessFlags::W_OK | nix::unistd::AccessFlags::X_OK,
            )
            .is_ok()
        })
    }

    /// A directory of the container's cgroup, for messages.
    pub fn describe(&self) -> String {
        self.nodes()
            .first()
            .map_or_else(|| "-".into(), |n| n.path.display().to_string())
    }

    pub fn mode(&self) -> Mode {
        self.mode
    }

    #[cfg(test)]
    /// Every directory of the container's cgroup (one per hierarchy).
    pub fn dirs(&self) -> Vec<PathBuf> {
        let mut dirs: Vec<PathBuf> = self.v1.values().map(|n| n.path.clone()).collect();
        dirs.extend(self.v2.iter().map(|n| n.path.clone()));
        dirs.sort();
        dirs.dedup();
        dirs
    }

    fn nodes(&self) -> Vec<&Node> {
        distinct(self.v1.values().chain(self.v2.iter()))
    }

    fn v1_dirs(&self) -> BTreeMap<String, PathBuf> {
        inserted(self.v1.iter().map(|(c, n)| (c.clone(), n.path.clone())))
    }

    /// What this host offers, for the planner: one read of cgroup.controllers.
    fn host(&self) -> Result<Host> {
        let v2 = match &self.v2 {
            Some(n) => match read_file(&n.top, "cgroup.controllers") {
                Ok(text) => Some(inserted(text.split_whitespace().map(str::to_string))),
                Err(e) if self.mode == Mode::V2 => return Err(e),
                Err(_) => Some(BTreeSet::new()),
            },
            None => None,
        };
        Ok(Host {
            pure_v2: self.mode == Mode::V2,
            v1: inserted(self.v1.keys().cloned()),
            v2,
        })
    }

    /// Check that every limit asked for can be applied on this host.
    pub fn check(&self, resources: Option<&LinuxResources>) -> Result<()> {
        if self.is_none() {
            return Ok(());
        }
        let default = LinuxResources::default();
        let plan = resources::plan(
            resources.unwrap_or(&default),
            &self.host()?,
            self.create_purpose(),
        )?;
        if let Some(n) = &self.v2 {
            if n.top.exists() {
                v2::check_top(&n.top, &plan.v2_controllers)?;
            }
        }
        Ok(())
    }

    /// Create the cgroup directories and apply the limits; on error, remove
    /// the directories this call made.
    #[cfg(test)]
    pub fn create(&self, resources: Option<&LinuxResources>) -> Result<()> {
        let first = self.create_first(resources)?;
        self.create_rest(first)
    }

    /// The part of [`Cgroup::create`] that must come before the clone: the
    /// v2 directory, which `CLONE_INTO_CGROUP` puts the child into, with
    /// its controllers enabled. [`Cgroup::create_rest`] does the rest (v1
    /// directories, every limit) while the child builds its root; the child
    /// joins the v1 ones before anything that depends on them (see
    /// `child::init`). On error, what this call made is removed.
    pub fn create_first(&self, resources: Option<&LinuxResources>) -> Result<Creating> {
        let mut c = Creating::default();
        if self.is_none() {
            return Ok(c);
        }
        let default = LinuxResources::default();
        let host = self.host()?;
        let plan = resources::plan(resources.unwrap_or(&default), &host, self.create_purpose())?;
        let result = self.create_v2_dir(&host, &plan, &mut c.made);
        c.plan = Some(plan);
        c.undo_if(result)
    }

    /// The rest of [`Cgroup::create`]: the v1 directories and the limits.
    /// On error, the directories both calls made are removed.
    pub fn create_rest(&self, mut c: Creating) -> Result<()> {
        let Some(plan) = c.plan.take() else {
            return Ok(());
        };
        let result = self
            .create_v1_dirs(&mut c.made)
            .and_then(|()| self.apply(&plan));
        c.undo_if(result).map(drop)
    }

    /// Make one node's directory; `made` gets the topmost one this call made.
    fn make_node(node: &Node, made: &mut Vec<PathBuf>) -> Result<()> {
        let new = files::make_dirs(&node.path)?;
        // Same id under another --root maps to the same cgroup: never
        // share a live one.
        if new.is_empty() && v2::has_processes(&node.path) {
            bail!(
                "cgroup {} already exists and holds processes (a container with the same id under another --root?)",
                node.path.display()
            );
        }
        made.extend(new.first().cloned());
        Ok(())
    }

    fn create_v2_dir(
        &self,
        host: &Host,
        plan: &resources::Plan,
        made: &mut Vec<PathBuf>,
    ) -> Result<()> {
        let Some(n) = &self.v2 else {
            return Ok(());
        };
        Self::make_node(n, made)?;
        let wanted: BTreeSet<String> = match (&host.v2, self.mode) {
            (Some(avail), Mode::V2) => inserted(
                ACCOUNTING
                    .iter()
                    .map(|c| c.to_string())
                    .filter(|c| avail.contains(c)),
            ),
            _ => BTreeSet::new(),
        };
        v2::enable_controllers(&n.top, &n.path, &plan.v2_controllers, &wanted)
    }

    fn create_v1_dirs(&self, made: &mut Vec<PathBuf>) -> Result<()> {
        for node in distinct(self.v1.values()) {
            Self::make_node(node, made)?;
        }
        if let Some(cpuset) = self.v1.get("cpuset") {
            // Every level below the caller's cgroup, in case one was left
            // half-made by a crash.
            let mut chain: Vec<PathBuf> = cpuset
                .path
                .ancestors()
                .take_while(|d| *d != cpuset.top)
                .map(Path::to_path_buf)
                .collect();
            chain.reverse();
            v1::init_cpuset(&chain)?;
        }
        Ok(())
    }

    fn apply(&self, plan: &resources::Plan) -> Result<()> {
        v1::apply(&plan.v1, &self.v1_dirs())?;
        if let Some(n) = &self.v2 {
            v2::apply(&plan.v2, &n.path)?;
            if let Some(rules) = &plan.bpf_devices {
                devices_bpf::install(&n.path, rules)?;
            }
        } else if !plan.v2.is_empty() || plan.bpf_devices.is_some() {
            bail!(
                "cgroup v2 limits planned but no cgroup v2 hierarchy is known for this container"
            );
        }
        Ok(())
    }

    /// Change the limits of a live container: only what `resources` sets.
    pub fn update(&self, resources: &LinuxResources) -> Result<()> {
        if self.is_none() {
            bail!("this rootless container has no cgroup of its own (no delegated cgroup when it was created): its limits cannot be changed");
        }
        let host = self.host()?;
        let purpose = if self.rootless {
            Purpose::Rootless
        } else {
            Purpose::Update
        };
        let plan = resources::plan(resources, &host, purpose)?;
        self.check_memory_usage(resources)?;
        if let Some(n) = &self.v2 {
            v2::enable_controllers(&n.top, &n.path, &plan.v2_controllers, &BTreeSet::new())?;
        }
        self.apply(&plan)
    }

    /// `memory.checkBeforeUpdate`: refuse a limit below what is in use.
    fn check_memory_usage(&self, resources: &LinuxResources) -> Result<()> {
        let Some(m) = resources.memory() else {
            return Ok(());
        };
        let Some(limit) = m
            .limit()
            .filter(|l| *l > 0 && m.check_before_update() == Some(true))
        else {
            return Ok(());
        };
        let usage = match (self.v1.get("memory"), &self.v2) {
            (Some(n), _) => files::read_u64(&n.path, "memory.usage_in_bytes")?,
            (None, Some(n)) => files::read_u64(&n.path, "memory.current")?,
            _ => return Ok(()),
        };
        if usage > limit as u64 {
            bail!("linux.resources.memory.limit {limit} is below the current usage {usage} (checkBeforeUpdate)");
        }
        Ok(())
    }

    /// An fd of the v2 cgroup dir for clone3(CLONE_INTO_CGROUP), if there
    /// is a v2 hierarchy. Hybrid hosts too: `CLONE_INTO_CGROUP` acts on the v2 hierarchy
    /// whatever the v1 ones do, and spares `add_process` a write there.
    pub fn open_v2_dir(&self) -> Result<Option<OwnedFd>> {
        let Some(n) = self.v2.as_ref() else {
            return Ok(None);
        };
        // O_PATH would not do: the kernel wants a real open file.
        let dir = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_DIRECTORY | libc::O_CLOEXEC)
            .open(&n.path)
            .with_context(|| format!("open cgroup {}", n.path.display()))?;
        Ok(Some(dir.into()))
    }

    /// Move `pid` into the container's cgroup in every hierarchy.
    ///
    /// A hierarchy that already holds `pid` (born there by
    /// `CLONE_INTO_CGROUP`, or joined by itself with [`Cgroup::join_self`])
    /// is left alone: writing a pid to `cgroup.procs` takes the kernel's
    /// global threadgroup lock, whose first taking waits for an RCU grace
    /// period (1-15 ms here, longer on a busy machine) even when the process
    /// is already there.
    pub fn add_process(&self, pid: i32) -> Result<()> {
        let pid_s = pid.to_string();
        for node in self.nodes() {
            if holds_pid(&node.path, &pid_s) {
                continue;
            }
            write_file(&node.path, "cgroup.procs", &pid_s)
                .with_context(|| format!("add process {pid} to its cgroup"))?;
        }
        Ok(())
    }

    /// Move the calling process into the container's cgroup in every v1
    /// hierarchy by writing `0` to `tasks`. Only for a single-threaded
    /// process (the freshly cloned child), whose one thread is the whole
    /// process. Moving the calling thread alone spares the kernel's global
    /// threadgroup lock (and its RCU grace period) that a `cgroup.procs`
    /// write takes: ~0.1 ms instead of 1-15 ms. The v2 node is left to
    /// `CLONE_INTO_CGROUP` ([`Cgroup::open_v2_dir`]); [`Cgroup::add_process`]
    /// afterwards finds the pid everywhere and writes nothing.
    pub fn join_self(&self) -> Result<()> {
        for node in distinct(self.v1.values()) {
            let path = node.path.join("tasks");
            join_tasks(
                || path.display().to_string(),
                || {
                    use std::io::Write;
                    std::fs::OpenOptions::new()
                        .write(true)
                        .open(&path)?
                        .write(b"0")
                },
            )?;
        }
        Ok(())
    }

    /// The v1 `tasks` files, open for writing, one per hierarchy: the
    /// parent opens them for a child that joins late, which then writes
    /// `0` to each ([`join_through`]) without a path walk of its own. The
    /// kernel checks the opener's credentials, the parent's.
    pub fn open_tasks(&self) -> Result<Vec<OwnedFd>> {
        distinct(self.v1.values())
            .into_iter()
            .map(|node| {
                let path = node.path.join("tasks");
                std::fs::OpenOptions::new()
                    .write(true)
                    .custom_flags(libc::O_CLOEXEC)
                    .open(&path)
                    .map(OwnedFd::from)
                    .with_context(|| format!("open {}", path.display()))
            })
            .collect()
    }

    /// The hierarchy whose membership is authoritative: the one the
    /// freezer acts on.
    fn primary(&self) -> Option<&Node> {
        match self.mode {
            Mode::V2 => self.v2.as_ref(),
            _ => self
                .v1
                .get("freezer")
                .or(self.v2.as_ref())
                .or_else(|| self.v1.values().next()),
        }
    }

    /// Every pid in the container's cgroup and its sub-cgroups, sorted.
    pub fn procs(&self) -> Result<Vec<i32>> {
        let Some(node) = self.primary() else {
            return Ok(Vec::new());
        };
        let mut pids = Vec::new();
        collect_procs(&node.path, &mut pids)?;
        pids.sort_unstable();
        pids.dedup();
        Ok(pids)
    }

    /// Signal every process listed in any of the hierarchies. [`kill_all`]
    /// reads one (or empties the v2 cgroup): a process moved into a single
    /// v1 hierarchy from outside is in neither.
    ///
    /// [`kill_all`]: Cgroup::kill_all
    pub fn kill_listed(&self, sig: Signal) -> Result<()> {
        let mut pids = Vec::new();
        for node in self.nodes() {
            collect_procs(&node.path, &mut pids)?;
        }
        pids.sort_unstable();
        pids.dedup();
        for pid in pids {
            match kill(Pid::from_raw(pid), sig) {
                Ok(()) | Err(nix::errno::Errno::ESRCH) => {}
                Err(e) => bail!("kill {pid} with {sig}: {}", e.desc()),
            }
        }
        Ok(())
    }

    pub fn is_frozen(&self) -> bool {
        match (self.v1.get("freezer"), &self.v2) {
            (Some(f), _) => v1::is_frozen(&f.path),
            (None, Some(n)) => v2::is_frozen(&n.path),
            _ => false,
        }
    }

    /// Stop every process of the container (pause); bounded wait.
    pub fn freeze(&self) -> Result<()> {
        match (self.v1.get("freezer"), &self.v2) {
            (Some(f), _) => v1::freeze(&f.path),
            (None, Some(n)) => v2::freeze(&n.path),
            _ => Err(anyhow!(
                "no freezer: this host mounts neither the v1 freezer nor cgroup v2"
            )),
        }
    }

    pub fn thaw(&self) -> Result<()> {
        match (self.v1.get("freezer"), &self.v2) {
            (Some(f), _) => v1::thaw(&f.path),
            (None, Some(n)) => v2::thaw(&n.path),
            _ => Err(anyhow!(
                "no freezer: this host mounts neither the v1 freezer nor cgroup v2"
            )),
        }
    }

    /// Send `sig` to every process in the container's cgroup. SIGKILL uses
    /// v2's `cgroup.kill` when there is one; otherwise the cgroup is frozen
    /// while the pids are read and signalled, so a fork cannot slip by.
    pub fn kill_all(&self, sig: i32) -> Result<()> {
        let sig = Signal::try_from(sig)
            .map_err(|_| anyhow!("kill cgroup processes: {sig} is not a signal"))?;
        if sig == Signal::SIGKILL {
            if let Some(n) = self
                .v2
                .as_ref()
                .filter(|n| n.path.join("cgroup.kill").exists())
            {
                write_file(&n.path, "cgroup.kill", "1")?;
                // A v1-frozen task only dies once thawed.
                if self.is_frozen() {
                    self.thaw()?;
                }
                return Ok(());
            }
        }
        let was_frozen = self.is_frozen();
        let froze = !was_frozen && self.freeze().is_ok();
        let result = self.procs().and_then(|pids| {
            pids.into_iter()
                .try_for_each(|pid| match kill(Pid::from_raw(pid), sig) {
                    Ok(()) | Err(nix::errno::Errno::ESRCH) => Ok(()),
                    Err(e) => Err(anyhow!("kill {pid} with {sig}: {}", e.desc())),
                })
        });
        if froze || (was_frozen && sig == Signal::SIGKILL) {
            self.thaw()?;
        }
        result
    }

    /// runc's `events --stats` `data` object: cpu, memory, pids, blkio, hugetlb.
    pub fn stats(&self) -> Result<serde_json::Value> {
        let dir = self.primary().map(|n| n.path.as_path());
        if !dir.is_some_and(Path::exists) {
            bail!(
                "no cgroup to read stats from (looked for {})",
                dir.unwrap_or(Path::new("-")).display()
            );
        }
        Ok(match self.mode {
            Mode::V2 => self
                .v2
                .as_ref()
                .map_or_else(|| serde_json::json!({}), |n| stats::v2(&n.path)),
            _ => stats::v1(&self.v1_dirs(), self.v2.as_ref().map(|n| n.path.as_path())),
        })
    }

    /// How many times the OOM killer acted in the container's cgroup.
    pub fn oom_count(&self) -> Result<u64> {
        match (self.v1.get("memory"), &self.v2) {
            (Some(n), _) => stats::oom_count_v1(&n.path),
            (None, Some(n)) => stats::oom_count_v2(&n.path),
            _ => Err(anyhow!("no memory controller for this container")),
        }
    }

    /// Remove every directory that is empty, one rmdir each: true when all
    /// are gone, false when one is left (a task or a sub-cgroup inside, or
    /// any error: [`Cgroup::destroy`] then tries every one and says why).
    pub fn remove_if_empty(&self) -> bool {
        let mut all = true;
        for node in self.nodes() {
            all &= files::remove_if_empty(&node.path).unwrap_or(false);
        }
        all
    }

    /// Remove the container's own cgroup directories (sub-cgroups first);
    /// absent is fine. Parents stay, as runc and podman leave theirs: the
    /// shared `…/berth` is made once and reused, instead of a mkdir and a
    /// rmdir in every hierarchy on every run (about 0.8 ms on a hybrid host).
    pub fn destroy(&self) -> Result<()> {
        let mut first_err = None;
        for node in self.nodes() {
            if let Err(e) = files::remove_tree(&node.path) {
                first_err.get_or_insert(e);
            }
        }
        first_err.map_or(Ok(()), Err)
    }
}

/// [`Cgroup::join_self`] through `tasks` files from [`Cgroup::open_tasks`].
pub fn join_through(tasks: &[OwnedFd]) -> Result<()> {
    for f in tasks {
        join_tasks(
            || {
                let fd = std::os::fd::AsRawFd::as_raw_fd(f);
                std::fs::read_link(format!("/proc/self/fd/{fd}"))
                    .map_or_else(|_| "its tasks file".into(), |p| p.display().to_string())
            },
            || nix::unistd::write(f, b"0").map_err(std::io::Error::from),
        )?;
    }
    Ok(())
}

/// Join one v1 cgroup: `write` puts `0` in its `tasks` file (this thread
/// only). Both ways in ([`Cgroup::join_self`], [`join_through`]) fail
/// alike: naming the file (`file`, asked only then) and saying why when
/// the kernel refuses a real-time task.
fn join_tasks(
    file: impl FnOnce() -> String,
    write: impl FnOnce() -> std::io::Result<usize>,
) -> Result<()> {
    let Err(e) = write() else {
        return Ok(());
    };
    // SAFETY: asks for our own scheduling policy; no pointers.
    let policy = unsafe { libc::sched_getscheduler(0) };
    let why = if e.raw_os_error() == Some(libc::EINVAL)
        && (policy == libc::SCHED_FIFO || policy == libc::SCHED_RR)
    {
        " (berth runs real-time, and a real-time task joins a v1 cpu cgroup only with a cpu.rt_runtime_us budget)"
    } else {
        ""
    };
    Err(anyhow!(
        "join the container's cgroup: write 0 to {}{why}: {}",
        file(),
        files::os_reason(&e)
    ))
}

/// Whether `resources` asks for any limit. Device rules do not count: a
/// rootless container cannot make device nodes, and its user namespace
/// gives it no access to devices its user could not already open.
pub fn asks_for_limits(resources: Option<&LinuxResources>) -> bool {
    let Some(r) = resources else {
        return false;
    };
    // Every field named, none with `..`: a field added to LinuxResources
    // does not compile here until it is counted (or not) on purpose.
    let LinuxResources {
        devices: _,
        memory,
        cpu,
        pids,
        block_io,
        hugepage_limits,
        network,
        rdma,
        unified,
    } = r;
    memory.is_some()
        || cpu.is_some()
        || pids.is_some()
        || block_io.is_some()
        || hugepage_limits.is_some()
        || network.is_some()
        || rdma.is_some()
        || unified.is_some()
}

fn collect_procs(dir: &Path, pids: &mut Vec<i32>) -> Result<()> {
    let text = match read_file(dir, "cgroup.procs") {
        Ok(t) => t,
        Err(_) if !dir.exists() => return Ok(()),
        Err(e) => return Err(e),
    };
    pids.extend(
        text.split_whitespace()
            .filter_map(|p| p.parse::<i32>().ok()),
    );
    let entries = std::fs::read_dir(dir).with_context(|| format!("read dir {}", dir.display()))?;
    for entry in entries.flatten() {
        if entry.file_type().map(|t| t.is_dir()).unwrap_or(false) {
            collect_procs(&entry.path(), pids)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod rootless_tests {
    use super::*;

    #[test]
    fn limits_other_than_devices_count() {
        let r = |json: &str| -> LinuxResources { serde_json::from_str(json).unwrap() };
        assert!(!asks_for_limits(None));
        assert!(!asks_for_limits(Some(&r("{}"))));
        assert!(!asks_for_limits(Some(&r(
            r#"{"devices":[{"allow":false,"access":"rwm"}]}"#
        ))));
        assert!(asks_for_limits(Some(&r(r#"{"pids":{"limit":10}}"#))));
        assert!(asks_for_limits(Some(&r(r#"{"memory":{"limit":1000000}}"#))));
    }

    #[test]
    fn none_makes_nothing() {
        let c = Cgroup::none();
        assert!(c.is_none() && c.writable());
        c.check(None).unwrap();
        c.create(None).unwrap();
        c.add_process(1).unwrap();
        c.destroy().unwrap();
        assert!(c.update(&LinuxResources::default()).is_err());
    }
}
