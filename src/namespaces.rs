//! Namespaces: which are created by the clone, which are joined by `path`,
//! and the few that need care about *when* (cgroup after the cgroup move, pid
//! and time before the clone because they apply to children only), and the
//! user namespace: its id maps (checked here, written by the parent through
//! a procfs handle that cannot be redirected) and the child becoming root in
//! it. Must never write an id map for a caller that could not have written
//! it by hand: berth has no setuid helper.

use std::fs::File;
use std::io::Write;
use std::os::fd::{AsFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI32, Ordering};

use crate::spec::types::{LinuxIdMapping, LinuxNamespaceType, Spec};
use anyhow::{bail, Context, Result};
use nix::fcntl::{openat, OFlag};
use nix::sched::{setns, unshare, CloneFlags};
use nix::sys::signal::{pthread_sigmask, SigSet, SigmaskHow};
use nix::sys::stat::Mode;
use nix::unistd::{setresgid, setresuid, Gid, Pid, Uid};

/// What to do with namespaces, decided once from the spec.
#[derive(Debug, Default, Clone)]
pub struct Plan {
    /// New namespaces created by the clone itself.
    pub clone_flags: u64,
    /// Create a cgroup namespace after the process is in its cgroup.
    pub new_cgroup: bool,
    /// Create a time namespace (unshared by the parent before the clone).
    pub new_time: bool,
    /// A new network namespace: its loopback is brought up.
    pub new_net: bool,
    /// A new uts namespace: hostname/domainname may be set.
    pub new_uts: bool,
    /// A new user namespace (`CLONE_NEWUSER` is in `clone_flags`): the
    /// parent writes its id maps before releasing the child.
    pub new_user: bool,
    /// A user namespace joined by path: entered before the clone (by a
    /// short-lived helper), so every new namespace is owned by it.
    pub join_user: Option<PathBuf>,
    /// Namespaces the parent joins before the clone (pid, time: they take
    /// effect for children only).
    pub parent_joins: Vec<(CloneFlags, PathBuf)>,
    /// Namespaces the child joins, in spec order.
    pub child_joins: Vec<(CloneFlags, PathBuf)>,
    /// With a new user namespace: the namespaces other than mount joined by
    /// path, entered before the clone by a helper that still has the host's
    /// privileges. From inside the new user namespace the child could not
    /// join them: they are owned by another one (runc joins first too).
    pub pre_user_joins: Vec<(CloneFlags, PathBuf)>,
}

pub fn plan(spec: &Spec) -> Plan {
    let mut p = Plan::default();
    let namespaces = spec
        .linux()
        .as_ref()
        .and_then(|l| l.namespaces().clone())
        .unwrap_or_default();
    for ns in namespaces {
        let typ = ns.typ();
        let flag = CloneFlags::from_bits_retain(typ as i32);
        match ns.path() {
            Some(path) if typ == LinuxNamespaceType::User => p.join_user = Some(path.clone()),
            Some(path) if matches!(typ, LinuxNamespaceType::Pid | LinuxNamespaceType::Time) => {
                p.parent_joins.push((flag, path.clone()))
            }
            Some(path) => p.child_joins.push((flag, path.clone())),
            None => match typ {
                LinuxNamespaceType::Cgroup => p.new_cgroup = true,
                LinuxNamespaceType::Time => p.new_time = true,
                _ => {
                    p.clone_flags |= typ as u64;
                    p.new_net |= typ == LinuxNamespaceType::Network;
                    p.new_uts |= typ == LinuxNamespaceType::Uts;
                    p.new_user |= typ == LinuxNamespaceType::User;
                }
            },
        }
    }
    if p.new_user {
        let (mount, others) = std::mem::take(&mut p.child_joins)
            .into_iter()
            .partition(|(flag, _)| *flag == CloneFlags::CLONE_NEWNS);
        p.child_joins = mount;
        p.pre_user_joins = others;
    }
    p
}

/// Open every namespace file first (a joined mount namespace would hide the
/// later paths), then setns into each.
pub fn join(joins: &[(CloneFlags, PathBuf)]) -> Result<()> {
    let files = joins
        .iter()
        .map(|(flag, path)| {
            File::open(path)
                .with_context(|| format!("open namespace {}", path.display()))
                .map(|f| (f, *flag, path))
        })
        .collect::<Result<Vec<_>>>()?;
    for (file, flag, path) in &files {
        setns(file.as_fd(), *flag).with_context(|| format!("join namespace {}", path.display()))?;
    }
    Ok(())
}

/// Parent side, before the clone: join or create the namespaces that only
/// apply to children (pid, time).
pub fn prepare_parent(plan: &Plan) -> Result<()> {
    join(&plan.parent_joins)?;
    if plan.new_time {
        unshare(CloneFlags::from_bits_retain(libc::CLONE_NEWTIME))
            .context("create time namespace")?;
    }
    Ok(())
}

/// Child side: join namespaces by path. The cgroup namespace comes once
/// the child is in its cgroups ([`enter_cgroup_ns`]).
pub fn enter_child(plan: &Plan) -> Result<()> {
    join(&plan.child_joins)
}

/// Whether the child may join its cgroups late, while it builds its root:
/// only when it enters neither a mount namespace (which could hide the
/// host's cgroup files) nor a cgroup namespace by path.
pub fn cgroups_late(plan: &Plan) -> bool {
    let early = CloneFlags::CLONE_NEWNS | CloneFlags::CLONE_NEWCGROUP;
    !plan.child_joins.iter().any(|(f, _)| f.intersects(early))
}

/// The child's new cgroup namespace, rooted at the cgroup it is in now.
pub fn enter_cgroup_ns(plan: &Plan) -> Result<()> {
    if plan.new_cgroup {
        unshare(CloneFlags::CLONE_NEWCGROUP).context("create cgroup namespace")?;
    }
    Ok(())
}

/// The most lines a uid_map or gid_map may hold (kernel >= 4.15).
const MAX_ID_MAP_LINES: usize = 340;

/// Check `linux.uidMappings`/`gidMappings` for a new user namespace before
/// anything is touched: both present, ranges sane, container root mapped
/// (the child becomes root in the namespace to build the container), and,
/// for a caller without root (`euid != 0`), nothing but its own ids: the
/// kernel lets an unprivileged process map exactly one id, its own, and
/// berth has no setuid helper (newuidmap) to do more.
pub fn check_id_maps(
    uid_maps: &[LinuxIdMapping],
    gid_maps: &[LinuxIdMapping],
    euid: u32,
    egid: u32,
) -> Result<()> {
    for (field, maps, own) in [
        ("linux.uidMappings", uid_maps, euid),
        ("linux.gidMappings", gid_maps, egid),
    ] {
        if maps.is_empty() {
            bail!("{field}: a new user namespace needs at least one mapping");
        }
        if maps.len() > MAX_ID_MAP_LINES {
            bail!(
                "{field}: {} mappings, the kernel takes at most {MAX_ID_MAP_LINES}",
                maps.len()
            );
        }
        for (i, m) in maps.iter().enumerate() {
            let end = |start: u32| u64::from(start) + u64::from(m.size());
            if m.size() == 0 {
                bail!("{field}[{i}]: size must be greater than 0");
            }
            if end(m.container_id()) > 1 << 32 || end(m.host_id()) > 1 << 32 {
                bail!("{field}[{i}]: range goes past id 4294967295");
            }
            for (j, o) in maps[..i].iter().enumerate() {
                let overlap = |a: u32, b: u32| {
                    u64::from(a) < u64::from(b) + u64::from(o.size()) && u64::from(b) < end(a)
                };
                if overlap(m.container_id(), o.container_id()) {
                    bail!("{field}[{i}]: container ids overlap {field}[{j}]");
                }
                if overlap(m.host_id(), o.host_id()) {
                    bail!("{field}[{i}]: host ids overlap {field}[{j}]");
                }
            }
        }
        if !maps.iter().any(|m| m.container_id() == 0) {
            bail!("{field}: container id 0 must be mapped (berth sets the container up as root in its user namespace)");
        }
        if euid != 0 {
            let own_only = maps.len() == 1 && maps[0].size() == 1 && maps[0].host_id() == own;
            if !own_only {
                bail!(
                    "{field}: running without root, only your own id can be mapped (one mapping, hostID {own}, size 1); berth uses no setuid helper such as newuidmap"
                );
            }
        }
    }
    Ok(())
}

/// The host id that container id 0 maps to (the owner the parent gives the
/// overlay layer dirs), if 0 is mapped.
pub fn host_root(maps: &[LinuxIdMapping]) -> Option<u32> {
    maps.iter()
        .find(|m| m.container_id() == 0 && m.size() > 0)
        .map(|m| m.host_id())
}

/// The text of a uid_map or gid_map file: one `inside outside count` line
/// per mapping, written with one write(2) as the kernel requires.
pub fn id_map_text(maps: &[LinuxIdMapping]) -> String {
    maps.iter()
        .map(|m| format!("{} {} {}\n", m.container_id(), m.host_id(), m.size()))
        .collect()
}

/// Parent side, while the child waits for `Go`: write the new user
/// namespace's maps. Without root the kernel requires setgroups to be
/// denied before an unprivileged gid_map is written.
pub fn write_id_maps(
    pid: Pid,
    uid_maps: &[LinuxIdMapping],
    gid_maps: &[LinuxIdMapping],
    deny_setgroups: bool,
) -> Result<()> {
    let dir = open_proc_pid(pid)?;
    if deny_setgroups {
        write_proc_file(&dir, pid, "setgroups", "deny")?;
    }
    write_proc_file(&dir, pid, "uid_map", &id_map_text(uid_maps))?;
    write_proc_file(&dir, pid, "gid_map", &id_map_text(gid_maps))
}

/// `/proc/<pid>` as a directory fd, refusing anything that is not procfs
/// (a bind mount or tmpfs planted on /proc) and any symlink on the way.
fn open_proc_pid(pid: Pid) -> Result<OwnedFd> {
    let flags = OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    let proc: OwnedFd = File::open("/proc").context("open /proc")?.into();
    check_procfs(&proc, Path::new("/proc"))?;
    let raw = openat(
        Some(std::os::fd::AsRawFd::as_raw_fd(&proc)),
        pid.to_string().as_str(),
        flags | OFlag::O_RDONLY,
        Mode::empty(),
    )
    .with_context(|| format!("open /proc/{pid}"))?;
    // SAFETY: openat returned a new fd that nothing else owns.
    let dir = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(raw) };
    check_procfs(&dir, &Path::new("/proc").join(pid.to_string()))?;
    Ok(dir)
}

fn check_procfs(fd: &OwnedFd, path: &Path) -> Result<()> {
    let st = nix::sys::statfs::fstatfs(fd).with_context(|| format!("statfs {}", path.display()))?;
    if st.filesystem_type() != nix::sys::statfs::PROC_SUPER_MAGIC {
        bail!("{} is not procfs", path.display());
    }
    Ok(())
}

/// Write one file below `/proc/<pid>`, opened relative to `dir` without
/// following symlinks and checked to be procfs itself.
fn write_proc_file(dir: &OwnedFd, pid: Pid, name: &str, text: &str) -> Result<()> {
    let path = format!("/proc/{pid}/{name}");
    let raw = openat(
        Some(std::os::fd::AsRawFd::as_raw_fd(dir)),
        name,
        OFlag::O_WRONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .with_context(|| format!("open {path}"))?;
    // SAFETY: openat returned a new fd that nothing else owns.
    let fd = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(raw) };
    check_procfs(&fd, Path::new(&path))?;
    let mut f = File::from(fd);
    f.write_all(text.as_bytes())
        .with_context(|| format!("write {:?} to {path}", text.trim_end()))
}

/// Child side, once the maps are written (or the namespace was joined):
/// become root of the user namespace, which holds every capability in it
/// and owns the namespaces made with it. `process.user` is applied later.
pub fn become_root() -> Result<()> {
    let root_gid = Gid::from_raw(0);
    let root_uid = Uid::from_raw(0);
    setresgid(root_gid, root_gid, root_gid)
        .context("become root in the user namespace: setresgid 0 (is gid 0 mapped?)")?;
    setresuid(root_uid, root_uid, root_uid)
        .context("become root in the user namespace: setresuid 0 (is uid 0 mapped?)")
}

/// Whether this process runs in a user namespace other than the host's:
/// the initial one maps every id to itself.
pub fn in_user_ns() -> bool {
    crate::sys::read_to_string("/proc/self/uid_map")
        .map(|m| !m.split_whitespace().eq(["0", "0", "4294967295"]))
        .unwrap_or(false)
}

/// Whether setgroups(2) is denied in our user namespace (a rootless one):
/// then the supplementary groups cannot be changed at all.
pub fn setgroups_denied() -> bool {
    crate::sys::read_to_string("/proc/self/setgroups").is_ok_and(|s| s.trim() == "deny")
}

/// Clone the container process inside the user namespace at `path`: see
/// [`clone_entered`]. The namespaces the clone creates are owned by it.
pub fn clone_in_user_ns(path: &Path, flags: u64) -> Result<Option<Pid>> {
    let ns = File::open(path).with_context(|| format!("open namespace {}", path.display()))?;
    clone_entered(
        || {
            setns(ns.as_fd(), CloneFlags::CLONE_NEWUSER)
                .with_context(|| format!("join user namespace {}", path.display()))
        },
        flags,
    )
}

/// Clone a child of ours from inside namespaces that berth itself must not
/// enter: a forked helper makes itself non-dumpable (from inside, the
/// container must never ptrace it), runs `enter` (setns into a user
/// namespace needs a single-threaded process, and berth must keep its host
/// privileges), clones the child with `CLONE_PARENT`, so it is berth's own,
/// sends its pid (as the host sees it) and exits. Returns None in the
/// child, as `sys::clone_child` does.
pub fn clone_entered(enter: impl FnOnce() -> Result<()>, flags: u64) -> Result<Option<Pid>> {
    let (rd, wr) = nix::unistd::pipe2(OFlag::O_CLOEXEC).context("pipe for the clone helper")?;
    // SAFETY: berth is single-threaded here; the helper only makes
    // syscalls and leaves with _exit.
    match unsafe { nix::unistd::fork() }.context("fork the clone helper")? {
        nix::unistd::ForkResult::Child => {
            drop(rd);
            let pid = crate::sys::set_dumpable(false)
                .and_then(|()| enter())
                .and_then(|()| crate::sys::clone_child(flags | libc::CLONE_PARENT as u64, None));
            let msg = match pid {
                Ok(None) => {
                    drop(wr);
                    return Ok(None);
                }
                Ok(Some(p)) => p.as_raw().to_string(),
                Err(e) => format!("error: {e:#}"),
            };
            let _ = nix::unistd::write(&wr, msg.as_bytes());
            // SAFETY: leave without running the parent's exit handlers.
            unsafe { libc::_exit(0) }
        }
        nix::unistd::ForkResult::Parent { child } => {
            drop(wr);
            let mut buf = Vec::new();
            let read = std::io::Read::read_to_end(&mut File::from(rd), &mut buf);
            let _ = nix::sys::wait::waitpid(child, None);
            read.context("read from the clone helper")?;
            let text = String::from_utf8_lossy(&buf);
            if let Some(e) = text.strip_prefix("error: ") {
                bail!("{e}");
            }
            let pid = text
                .trim()
                .parse::<i32>()
                .map_err(|_| anyhow::anyhow!("the clone helper exited without a pid"))?;
            Ok(Some(Pid::from_raw(pid)))
        }
    }
}

/// A new network namespace made on the side while the parent prepares the
/// container, instead of by the clone. Setting one up is the costliest part
/// of that clone (~0.5 ms here: every per-namespace init of the network
/// stack), and nothing in it depends on the container; the child joins it
/// first thing, before it sends or mounts anything, so the namespace is its
/// own from its first message on (hooks, `/proc/<pid>/ns/net`, sysfs).
///
/// The helper is a clone sharing our memory and fd table, on a stack of its
/// own, that runs raw system calls only (no libc: it shares our thread's
/// errno and locks) with every signal blocked: unshare the network
/// namespace, open it (the fd lands in our table), leave. Owned by the
/// init user namespace, as the clone's would be; so only for a container
/// without a user namespace, made by root.
///
/// On a machine whose CPUs are all busy, the helper may not have run at
/// all by the time the clone is due, and waiting for it to be scheduled
/// costs more than it saves: the parent then cancels it (it leaves without
/// doing anything), the clone makes the namespace, as it used to, and the
/// helper is reaped once `create` is done.
pub struct NetPrefetch {
    pid: libc::pid_t,
    /// `PENDING` (not started), `RUNNING`, `CANCELLED`, or the helper's
    /// answer: the namespace fd, or -errno.
    answer: Box<AtomicI32>,
    /// Its stack: freed only once the helper is reaped.
    _stack: Vec<u8>,
    reaped: bool,
    /// Our CPUs, when the helper was moved off ours (`move_off_this_cpu`).
    cpus: Option<libc::cpu_set_t>,
}

const PENDING: i32 = i32::MIN;
const RUNNING: i32 = i32::MIN + 1;
const CANCELLED: i32 = i32::MIN + 2;
const HELPER_STACK: usize = 16 * 1024;

/// The helper's whole life.
extern "C" fn make_net_ns(answer: *mut libc::c_void) -> libc::c_int {
    // SAFETY: `answer` is the NetPrefetch's AtomicI32, kept alive until the
    // helper is reaped; the path is a NUL-terminated static.
    let answer = unsafe { &*(answer as *const AtomicI32) };
    if answer
        .compare_exchange(PENDING, RUNNING, Ordering::AcqRel, Ordering::Acquire)
        .is_err()
    {
        return 0; // cancelled
    }
    // SAFETY: raw system calls on a static path; the fd is the parent's.
    let result = unsafe {
        crate::sys::raw_syscall(libc::SYS_unshare, [libc::CLONE_NEWNET as usize, 0, 0, 0, 0])
            .and_then(|_| {
                crate::sys::raw_syscall(
                    libc::SYS_openat,
                    [
                        libc::AT_FDCWD as isize as usize,
                        c"/proc/self/ns/net".as_ptr() as usize,
                        (libc::O_RDONLY | libc::O_CLOEXEC) as usize,
                        0,
                        0,
                    ],
                )
            })
    };
    answer.store(
        match result {
            Ok(fd) => fd as i32,
            Err(errno) => -errno,
        },
        Ordering::Release,
    );
    0
}

impl NetPrefetch {
    /// Start making the namespace when the plan wants a new one and the
    /// helper can make it as the clone would: None otherwise, or when the
    /// helper cannot be started (the clone then makes it, as before).
    pub fn start(plan: &Plan, rootless: bool) -> Option<NetPrefetch> {
        if !plan.new_net
            || plan.new_user
            || plan.join_user.is_some()
            || rootless
            || !nix::unistd::geteuid().is_root()
        {
            return None;
        }
        let answer = Box::new(AtomicI32::new(PENDING));
        let mut stack = Vec::<u8>::with_capacity(HELPER_STACK);
        // The stack grows down from its 16-byte aligned top.
        let top = (stack.as_mut_ptr() as usize + HELPER_STACK) & !15;
        let mut old = SigSet::empty();
        pthread_sigmask(
            SigmaskHow::SIG_SETMASK,
            Some(&SigSet::all()),
            Some(&mut old),
        )
        .ok()?;
        // SAFETY: the helper runs `make_net_ns` on its own stack, which
        // lives as long as the NetPrefetch; it shares our memory but touches
        // only `answer`. Exit signal 0: reaped with __WCLONE, it never
        // disturbs a wait for other children.
        let pid = unsafe {
            libc::clone(
                make_net_ns,
                top as *mut libc::c_void,
                libc::CLONE_VM | libc::CLONE_FILES,
                &*answer as *const AtomicI32 as *mut libc::c_void,
            )
        };
        let _ = pthread_sigmask(SigmaskHow::SIG_SETMASK, Some(&old), None);
        (pid > 0).then(|| NetPrefetch {
            pid,
            answer,
            _stack: stack,
            reaped: false,
            cpus: move_off_this_cpu(pid),
        })
    }

    /// Wait for the helper; its answer.
    fn reap(&mut self) -> i32 {
        if let Some(cpus) = self.cpus.take() {
            if matches!(self.answer.load(Ordering::Acquire), RUNNING | CANCELLED) {
                // Not done yet, or cancelled and maybe not gone (the other
                // CPUs are busy): allowed back on ours, it runs there as
                // soon as we block for it.
                // SAFETY: sets the affinity of our own helper from a set we own.
                unsafe { libc::sched_setaffinity(self.pid, std::mem::size_of_val(&cpus), &cpus) };
            }
        }
        while !self.reaped {
            // SAFETY: waits for our own clone; no status is read.
            let r = unsafe { libc::waitpid(self.pid, std::ptr::null_mut(), libc::__WCLONE) };
            self.reaped = r == self.pid || nix::errno::Errno::last() != nix::errno::Errno::EINTR;
        }
        self.answer.swap(CANCELLED, Ordering::AcqRel)
    }

    /// Cancel the helper if it has not started; whether it had not.
    fn cancel(&self) -> bool {
        self.answer
            .compare_exchange(PENDING, CANCELLED, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    /// The namespace, or None when the helper failed or had not started
    /// (the clone then makes it, and reports why if it fails). The helper
    /// is done with, but for its reaping (on drop).
    pub fn take(&mut self) -> Option<OwnedFd> {
        if self.cancel() {
            return None;
        }
        let fd = self.reap();
        // SAFETY: the helper opened this fd in our shared table for us; no
        // one else owns it.
        (fd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(fd) })
    }
}

impl Drop for NetPrefetch {
    /// Reap the helper: cancelled, it only has to leave (a slice of CPU at
    /// worst, and nothing when it already has); still running, it is
    /// waited for and its namespace closed. No task is left behind, and
    /// its stack is freed only after it is gone.
    fn drop(&mut self) {
        if self.reaped {
            return;
        }
        self.cancel();
        let fd = self.reap();
        if fd >= 0 {
            // SAFETY: as in `take`; unused, it is closed here.
            drop(unsafe { OwnedFd::from_raw_fd(fd) });
        }
    }
}

/// A new task starts on its parent's CPU, and an idle one pulls it over
/// only at its next balancing tick (~0.6 ms here): by then the parent has
/// blocked waiting for it. Allowed on every other CPU of ours, the helper
/// runs beside us at once. Best effort: on one CPU it stays where it is.
/// Our CPUs, when it was moved.
fn move_off_this_cpu(pid: libc::pid_t) -> Option<libc::cpu_set_t> {
    // SAFETY: cpu_set_t is plain old data; zeroed is the empty set.
    let mut ours: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    let size = std::mem::size_of::<libc::cpu_set_t>();
    // SAFETY: both calls read or fill a set we own, of the size given.
    unsafe {
        let here = libc::sched_getcpu();
        if here < 0 || libc::sched_getaffinity(0, size, &mut ours) != 0 {
            return None;
        }
        let mut others = ours;
        libc::CPU_CLR(here as usize, &mut others);
        (libc::CPU_COUNT(&others) > 0 && libc::sched_setaffinity(pid, size, &others) == 0)
            .then_some(ours)
    }
}

/// The child's first step with a prefetched namespace: join it, and close it.
pub fn enter_prefetched_net(fd: Option<OwnedFd>) -> Result<()> {
    match fd {
        Some(fd) => setns(fd.as_fd(), CloneFlags::CLONE_NEWNET)
            .context("join the container's new network namespace"),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec_with(ns: &str) -> Spec {
        let json = format!(
            r#"{{"ociVersion":"1.0.2","root":{{"path":"rootfs"}},"linux":{{"namespaces":{ns}}}}}"#
        );
        serde_json::from_str(&json).expect("spec")
    }

    fn net_plan() -> Plan {
        plan(&spec_with(r#"[{"type":"network"},{"type":"mount"}]"#))
    }

    fn ns_inode(fd: &OwnedFd) -> u64 {
        nix::sys::stat::fstat(std::os::fd::AsRawFd::as_raw_fd(fd))
            .expect("fstat")
            .st_ino
    }

    /// The helper's namespace is a new one, not ours, and comes as an fd.
    #[test]
    fn prefetched_network_namespace_is_a_new_one() {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("skipped: needs root");
            return;
        }
        let ours = File::open("/proc/self/ns/net").expect("our netns");
        let mut pf = NetPrefetch::start(&net_plan(), false).expect("helper started");
        // Waiting as the clone would when it is not done.
        while pf.answer.load(Ordering::Acquire) == PENDING {
            std::thread::yield_now();
        }
        let fd = pf.take().expect("a namespace");
        assert_ne!(ns_inode(&fd), ns_inode(&ours.into()));
        assert!(pf.reaped);
        assert!(NetPrefetch::start(&plan(&spec_with("[]")), false).is_none());
        assert!(NetPrefetch::start(&net_plan(), true).is_none(), "rootless");
    }

    /// A prefetch whose helper is stopped before it ran and already
    /// cancelled (`take` answered None, as it would to the clone), or None
    /// when not root. Stopped right after its clone on our only CPU, the
    /// helper has not run yet; a round where it had is retried.
    fn cancelled_before_it_ran() -> Option<(NetPrefetch, Pid)> {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("skipped: needs root");
            return None;
        }
        // SAFETY: cpu sets of this thread, filled by the kernel or by us.
        unsafe {
            let mut one: libc::cpu_set_t = std::mem::zeroed();
            libc::CPU_SET(libc::sched_getcpu().max(0) as usize, &mut one);
            assert_eq!(
                libc::sched_setaffinity(0, std::mem::size_of_val(&one), &one),
                0
            );
        }
        for _ in 0..50 {
            let mut pf = NetPrefetch::start(&net_plan(), false).expect("helper started");
            let pid = Pid::from_raw(pf.pid);
            nix::sys::signal::kill(pid, nix::sys::signal::SIGSTOP).expect("stop the helper");
            if pf.answer.load(Ordering::Acquire) != PENDING {
                // It ran first: this round proves nothing (and the drop
                // waits for it, so it must go on).
                nix::sys::signal::kill(pid, nix::sys::signal::SIGCONT).expect("continue it");
                continue;
            }
            assert!(pf.take().is_none(), "cancelled: no namespace");
            return Some((pf, pid));
        }
        panic!("the helper always ran before it could be stopped");
    }

    /// A helper that has not run by the time the clone is due is cancelled:
    /// `take` answers None at once (the clone makes the namespace), and the
    /// helper, once it runs, leaves without touching anything.
    #[test]
    fn a_prefetch_not_started_is_cancelled_and_does_nothing() {
        let Some((mut pf, pid)) = cancelled_before_it_ran() else {
            return;
        };
        nix::sys::signal::kill(pid, nix::sys::signal::SIGCONT).expect("continue it");
        // SAFETY: a blocking wait for the helper, our own clone.
        let r = unsafe { libc::waitpid(pf.pid, std::ptr::null_mut(), libc::__WCLONE) };
        assert_eq!(r, pf.pid);
        pf.reaped = true;
        assert_eq!(
            pf.answer.load(Ordering::Acquire),
            CANCELLED,
            "it did nothing"
        );
    }

    /// A cancelled helper that has not left yet when the prefetch is
    /// dropped (the end of `create`) is waited for: no task of ours stays
    /// behind, and its stack is not freed under it.
    #[test]
    fn dropping_a_cancelled_prefetch_leaves_no_task_behind() {
        let Some((pf, pid)) = cancelled_before_it_ran() else {
            return;
        };
        let waker = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(50));
            nix::sys::signal::kill(pid, nix::sys::signal::SIGCONT).expect("continue it");
        });
        drop(pf);
        waker.join().expect("waker");
        let proc_dir = format!("/proc/{pid}");
        assert!(!Path::new(&proc_dir).exists(), "{proc_dir} left behind");
    }

    #[test]
    fn plan_splits_new_and_joined() {
        let s = spec_with(
            r#"[{"type":"pid"},{"type":"mount"},{"type":"network","path":"/proc/1/ns/net"},
                {"type":"cgroup"},{"type":"uts"},{"type":"time"}]"#,
        );
        let p = plan(&s);
        assert_eq!(
            p.clone_flags,
            (libc::CLONE_NEWPID | libc::CLONE_NEWNS | libc::CLONE_NEWUTS) as u64
        );
        assert!(p.new_cgroup && p.new_time && p.new_uts && !p.new_net);
        assert_eq!(p.child_joins.len(), 1);
        assert_eq!(p.child_joins[0].0, CloneFlags::CLONE_NEWNET);
        assert!(p.parent_joins.is_empty());
    }

    #[test]
    fn with_a_new_user_namespace_paths_are_joined_before_it() {
        let p = plan(&spec_with(
            r#"[{"type":"user"},{"type":"network","path":"/proc/1/ns/net"},
                {"type":"mount","path":"/proc/1/ns/mnt"},{"type":"ipc","path":"/proc/1/ns/ipc"}]"#,
        ));
        assert!(p.new_user);
        let flags = |j: &[(CloneFlags, PathBuf)]| j.iter().map(|(f, _)| *f).collect::<Vec<_>>();
        assert_eq!(
            flags(&p.pre_user_joins),
            [CloneFlags::CLONE_NEWNET, CloneFlags::CLONE_NEWIPC]
        );
        assert_eq!(flags(&p.child_joins), [CloneFlags::CLONE_NEWNS]);
        // Without one, the child joins them all itself.
        let p = plan(&spec_with(
            r#"[{"type":"network","path":"/proc/1/ns/net"}]"#,
        ));
        assert!(p.pre_user_joins.is_empty() && p.child_joins.len() == 1);
    }

    #[test]
    fn user_namespace_new_or_joined() {
        let p = plan(&spec_with(r#"[{"type":"mount"},{"type":"user"}]"#));
        assert!(p.new_user && p.join_user.is_none());
        assert_eq!(
            p.clone_flags,
            (libc::CLONE_NEWNS | libc::CLONE_NEWUSER) as u64
        );
        let p = plan(&spec_with(
            r#"[{"type":"mount"},{"type":"user","path":"/proc/1/ns/user"}]"#,
        ));
        assert!(!p.new_user);
        assert_eq!(p.join_user.as_deref(), Some(Path::new("/proc/1/ns/user")));
        assert!(
            p.child_joins.is_empty(),
            "the user namespace is entered before the clone"
        );
        assert_eq!(p.clone_flags, libc::CLONE_NEWNS as u64);
    }

    fn maps(json: &str) -> Vec<LinuxIdMapping> {
        serde_json::from_str(json).expect("maps")
    }

    #[test]
    fn id_maps_checked() {
        let wide = maps(r#"[{"containerID":0,"hostID":100000,"size":65536}]"#);
        let own = maps(r#"[{"containerID":0,"hostID":1000,"size":1}]"#);
        let err = |u: &[LinuxIdMapping], g: &[LinuxIdMapping], euid| {
            format!("{:#}", check_id_maps(u, g, euid, euid).unwrap_err())
        };
        check_id_maps(&wide, &wide, 0, 0).expect("root maps any range");
        check_id_maps(&own, &own, 1000, 1000).expect("own id without root");
        assert!(err(&wide, &wide, 1000).starts_with(
            "linux.uidMappings: running without root, only your own id can be mapped (one mapping, hostID 1000, size 1)"
        ));
        assert!(err(&own, &own, 1001).contains("hostID 1001"));
        assert_eq!(
            err(&[], &wide, 0),
            "linux.uidMappings: a new user namespace needs at least one mapping"
        );
        assert_eq!(
            err(
                &wide,
                &maps(r#"[{"containerID":0,"hostID":5,"size":0}]"#),
                0
            ),
            "linux.gidMappings[0]: size must be greater than 0"
        );
        let overlap = maps(
            r#"[{"containerID":0,"hostID":100000,"size":10},{"containerID":5,"hostID":200000,"size":10}]"#,
        );
        assert_eq!(
            err(&overlap, &wide, 0),
            "linux.uidMappings[1]: container ids overlap linux.uidMappings[0]"
        );
        let no_root = maps(r#"[{"containerID":1,"hostID":100000,"size":10}]"#);
        assert!(err(&no_root, &wide, 0).contains("container id 0 must be mapped"));
        let past = maps(r#"[{"containerID":0,"hostID":4294967295,"size":2}]"#);
        assert!(err(&past, &wide, 0).contains("past id 4294967295"));
    }

    #[test]
    fn id_map_file_text() {
        let m = maps(
            r#"[{"containerID":0,"hostID":100000,"size":1000},{"containerID":1000,"hostID":1000,"size":1}]"#,
        );
        assert_eq!(id_map_text(&m), "0 100000 1000\n1000 1000 1\n");
        assert_eq!(host_root(&m), Some(100000));
        assert_eq!(host_root(&m[1..]), None);
    }

    #[test]
    fn proc_handle_refuses_non_procfs() {
        let tmp = tempfile::tempdir().expect("tmp");
        let fd: OwnedFd = File::open(tmp.path()).expect("open").into();
        let e = check_procfs(&fd, tmp.path()).unwrap_err();
        assert!(e.to_string().ends_with("is not procfs"), "{e}");
        let me = Pid::this();
        let dir = open_proc_pid(me).expect("own /proc dir");
        check_procfs(&dir, Path::new("/proc/self")).expect("procfs");
    }

    #[test]
    fn pid_path_is_joined_by_parent() {
        let p = plan(&spec_with(r#"[{"type":"pid","path":"/proc/1/ns/pid"}]"#));
        assert_eq!(p.parent_joins.len(), 1);
        assert_eq!(p.clone_flags, 0);
    }
}
