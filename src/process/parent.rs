//! The parent stage: everything `berth create` (and the first half of `berth
//! run`) does. Validation happens before the first file is made; from the
//! first file on, a `Cleanup` guard undoes every step if a later one fails, so
//! a failed create leaves no state dir, layer, cgroup or process behind.
//!
//! Between `Go` and `Ready` the child may ask for the runtime-namespace
//! create hooks (`Hooks`, answered `HooksDone`) and hand over its pty master
//! (`Pty`); see `hooks` for where each hook kind runs.

use std::fs;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::spec::types::{LinuxIdMapping, Spec};
use anyhow::{bail, Context, Result};
use nix::sys::signal::{kill, Signal};
use nix::sys::stat::Mode;
use nix::sys::wait::waitpid;
use nix::unistd::{getpid, mkfifo, Pid};

use super::child;
use super::sync::{self, Msg};
use super::ExecError;
use crate::cgroups::Cgroup;
use crate::hooks::{self, Kind};
use crate::state::{self, Lock, State, Status};
use crate::tty::ConsoleTarget;
use crate::{logging, namespaces, notify, rootfs, spec, sys};

/// What `create` needs besides the spec.
pub struct CreateOptions<'a> {
    pub root: &'a Path,
    pub layer_root: &'a Path,
    pub id: &'a str,
    /// Absolute bundle dir.
    pub bundle: &'a Path,
    pub pid_file: Option<&'a Path>,
    pub no_pivot: bool,
    pub preserve_fds: u32,
    pub systemd_cgroup: bool,
    /// Where the pty master goes when `process.terminal` is true.
    pub console: Option<ConsoleTarget>,
    /// Make `<state dir>/notify` for the container's NOTIFY_SOCKET mount.
    pub notify: bool,
    /// Rootless mode (`--rootless`): without a delegated cgroup the
    /// container stays in the caller's cgroups, with one warning if the
    /// config asks for limits.
    pub rootless: bool,
    /// Start the process as soon as it is ready, while its state is
    /// written: no exec fifo, no `start`, and no `Commit` unless a pid file
    /// is asked for (a foreground `run` with nothing to do in between).
    pub start: bool,
}

/// A container whose process waits on the exec fifo (or, with
/// `CreateOptions::start`, runs). The state lock is held until this is
/// dropped.
pub struct Created {
    pub dir: PathBuf,
    pub pid: Pid,
    pub lock: Lock,
    /// The pty master, when the child sent it to us (`ConsoleTarget::Parent`).
    pub pty: Option<OwnedFd>,
    /// Released at commit (`CreateOptions::start`): the process runs.
    pub started: bool,
}

pub fn create(opts: &CreateOptions, spec: &Spec) -> Result<Created> {
    // 1. Check everything before touching the system.
    state::validate_id(opts.id)?;
    spec::validate(spec, opts.bundle)?;
    rootfs::validate(spec, opts.bundle)?;
    let root_path = spec
        .root()
        .as_ref()
        .context("config.json: root is missing")?;
    let rootfs = opts.bundle.join(root_path.path());
    let ns = namespaces::plan(spec);
    // Made while we prepare the rest, off the clone's critical path.
    let mut net_prefetch = namespaces::NetPrefetch::start(&ns, opts.rootless);
    let mode = rootfs::choose_mode(spec, &rootfs)?;
    let linux = spec.linux().as_ref();
    let cgroups_path = linux.and_then(|l| l.cgroups_path().as_deref());
    let (mut cgroup, mountinfo) =
        Cgroup::plan_and_mountinfo(opts.id, cgroups_path, opts.systemd_cgroup)?;
    // The child plans a v1 `cgroup` mount from our mountinfo instead of
    // reading its own (~0.1 ms on its way to execve) when its mount
    // namespace is a copy of ours, not one joined by path.
    let v1_cgroup_mount = cgroup.mode() != crate::cgroups::Mode::V2
        && spec
            .mounts()
            .iter()
            .flatten()
            .any(|m| m.typ().as_deref() == Some("cgroup"));
    let mut resources = linux.and_then(|l| l.resources().as_ref());
    if opts.rootless && !cgroup.writable() {
        // As runc does in rootless mode: no delegation, no cgroup; said once.
        if crate::cgroups::asks_for_limits(resources) {
            logging::warn(&format!(
                "rootless: cgroup {} is not writable (no delegated cgroup): linux.resources limits are not applied",
                cgroup.describe()
            ));
        }
        cgroup = Cgroup::none();
        resources = None;
    } else if opts.rootless {
        cgroup.set_rootless();
    }
    cgroup.check(resources)?;
    let joins_mounts = ns
        .child_joins
        .iter()
        .any(|(f, _)| f.contains(nix::sched::CloneFlags::CLONE_NEWNS));
    let host_mountinfo = (v1_cgroup_mount && !joins_mounts).then_some(mountinfo.as_str());
    let id_maps = user_ns_maps(spec, &ns)?;

    // 2. The state dir appears atomically, already locked and holding state.json.
    let me = getpid().as_raw();
    let mut st = State {
        oci_version: state::OCI_VERSION.into(),
        id: opts.id.into(),
        status: Status::Creating,
        pid: 0,
        bundle: opts.bundle.into(),
        annotations: spec.annotations().clone().unwrap_or_default(),
        rootfs: rootfs.clone(),
        created: logging::rfc3339_now(),
        owner: owner_name(),
        pid_start_time: 0,
        creator_pid: me,
        creator_start_time: state::process_start_time(me).unwrap_or(0),
        cgroup: cgroup.clone(),
        rootfs_mode: mode,
        layer_dir: (mode == rootfs::Mode::Overlay).then(|| opts.layer_root.join(opts.id)),
        process: spec.process().clone(),
        hooks: spec.hooks().clone(),
        seccomp: spec.linux().as_ref().and_then(|l| l.seccomp().clone()),
        own_pid_ns: ns.clone_flags & libc::CLONE_NEWPID as u64 != 0,
    };
    let (dir, lock) = state::create_locked(opts.root, opts.id, &st)?;
    let mut cleanup = Cleanup {
        state: st.clone(),
        dir: dir.clone(),
        child: None,
        armed: true,
        poststop: false,
    };

    // 3. Layer, cgroup, exec fifo.
    if let Some(layer) = &st.layer_dir {
        rootfs::create_layer(layer)?;
        // The container's root writes the upper dir: it must own it.
        if let Some((uid, gid)) = id_maps.as_ref().and_then(|m| m.layer_owner) {
            rootfs::chown_layer(layer, uid, gid)?;
        }
    }
    // Without a user namespace the child joins its cgroups itself. Late,
    // as a rule: only the v2 directory must exist for the clone; the v1
    // ones and the limits are made while the child builds its root.
    let child_joins_cgroup = !ns.new_user && ns.join_user.is_none();
    let cgroups_late = child_joins_cgroup && namespaces::cgroups_late(&ns);
    let creating = cgroup.create_first(resources)?;
    let creating = if cgroups_late {
        Some(creating)
    } else {
        cgroup.create_rest(creating)?;
        None
    };
    // Started at Ready, the child waits for no Commit unless a pid file
    // must be written first.
    let commit = !opts.start || opts.pid_file.is_some();
    let fifo = if opts.start {
        None
    } else {
        Some(make_exec_fifo(&dir)?)
    };
    let with_notify;
    let spec = if opts.notify {
        notify::make_dir(&dir)?;
        let mut s = spec.clone();
        notify::add_mount(&mut s, &dir)?;
        with_notify = s;
        &with_notify
    } else {
        spec
    };
    let (parent_chan, child_chan) = sync::pair()?;
    let cgroup_fd = cgroup.open_v2_dir()?;
    namespaces::prepare_parent(&ns)?;
    // Compiled here, once; the child only loads it (and inherits the
    // connection to a notify listener).
    let seccomp = crate::security::seccomp::prepare(
        st.seccomp.as_ref(),
        Some(&opts.root.join(crate::security::seccomp::CACHE_DIR)),
    )?;
    let seccomp_state = seccomp.as_ref().is_some_and(|f| f.needs_state());

    // 4. Clone the child: it becomes the container process. Without a user
    // namespace it moves itself into its cgroups; with one, it may not.
    let net_ns = net_prefetch
        .as_mut()
        .and_then(namespaces::NetPrefetch::take);
    let clone_flags = match net_ns {
        Some(_) => ns.clone_flags & !(libc::CLONE_NEWNET as u64),
        None => ns.clone_flags,
    };
    let cloned = match &ns.join_user {
        Some(path) => namespaces::clone_in_user_ns(path, clone_flags)?,
        None if !ns.pre_user_joins.is_empty() => {
            namespaces::clone_entered(|| namespaces::join(&ns.pre_user_joins), clone_flags)?
        }
        None => sys::clone_child(clone_flags, cgroup_fd.as_ref().map(|f| f.as_fd()))?,
    };
    let Some(pid) = cloned else {
        drop(parent_chan);
        // The cgroup dir is the parent's: never a host fd in the container.
        drop(cgroup_fd);
        child::run(child::ChildContext {
            spec,
            bundle: opts.bundle,
            rootfs: &rootfs,
            mode,
            layer_dir: st.layer_dir.as_deref(),
            no_pivot: opts.no_pivot,
            preserve_fds: opts.preserve_fds,
            ns: &ns,
            net_ns,
            fifo,
            commit,
            host_mountinfo,
            chan: child_chan,
            console: opts.console.as_ref(),
            lock: &lock,
            seccomp: seccomp.as_ref(),
            join_cgroup: child_joins_cgroup.then_some(&cgroup),
            cgroups_late,
        });
    };
    cleanup.child = Some(pid);
    // The child holds its namespace now.
    drop(net_ns);
    drop(child_chan);
    drop(fifo);
    // Only the child may hold the listener connection: it closes at execve.
    drop(seccomp);

    // 5. Place it, let it build its root, record it, release it. Without a
    // user namespace it was born in its v2 cgroup (CLONE_INTO_CGROUP) and
    // joins the v1 ones itself (its setup fails if it cannot): before `Go`,
    // or, late, after `Cgroups` below. Nothing to place or check afterwards.
    if !child_joins_cgroup {
        cgroup.add_process(pid.as_raw())?;
    }
    // A new user namespace gets its maps before the child does anything in it.
    if let Some(m) = id_maps.as_ref().filter(|_| ns.new_user) {
        namespaces::write_id_maps(pid, &m.uid, &m.gid, m.deny_setgroups)?;
    }
    if let Some(adj) = spec.process().as_ref().and_then(|p| p.oom_score_adj()) {
        let path = format!("/proc/{pid}/oom_score_adj");
        fs::write(&path, adj.to_string())
            .with_context(|| format!("process.oomScoreAdj: write {adj} to {path}"))?;
    }
    send(&parent_chan, &Msg::Go)?;
    let hooks = spec.hooks().as_ref();
    // The OCI state hooks and a seccomp agent read (only the OCI fields,
    // which the state written below leaves alone): made when one needs it.
    st.pid = pid.as_raw();
    if child::needs_hook_state(hooks) || seccomp_state {
        let creating = hooks::state_json(&st, Status::Creating);
        send(&parent_chan, &Msg::HookState(creating))?;
    }
    if let Some(creating) = creating {
        cgroup.create_rest(creating)?;
        let tasks = cgroup.open_tasks()?;
        parent_chan
            .send_cgroups(&tasks)
            .or_else(|e| child_error_or(&parent_chan, e))?;
    }
    // The state.json that `Ready` makes true, written while the child
    // builds its root: all it needs (pid, the pid's start time) is known
    // since the clone. Placed only once the child is ready.
    st.pid_start_time =
        state::child_start_time(st.pid).context("read the start time of the container process")?;
    st.status = if opts.start {
        Status::Running
    } else {
        Status::Created
    };
    st.creator_pid = 0;
    st.creator_start_time = 0;
    let staged = st.stage(&dir)?;
    let mut pty = None;
    loop {
        match parent_chan.recv_fd()? {
            (Msg::Ready, _) => break,
            (Msg::Hooks, _) => {
                // Whatever these hooks set up, poststop is their undo.
                cleanup.poststop = true;
                let creating = hooks::state_json(&st, Status::Creating);
                hooks::run(hooks, Kind::Prestart, &creating)?;
                hooks::run(hooks, Kind::CreateRuntime, &creating)?;
                parent_chan.send(&Msg::HooksDone)?;
            }
            (Msg::Pty, Some(fd)) => pty = Some(fd),
            (Msg::Error { code, msg }, _) => return Err(ExecError::from_child(code, msg)),
            (m, _) => bail!("sync channel: expected Ready, got {m:?}"),
        }
    }
    // Without a Commit to wait for (a foreground run), the child is on its
    // way to execve already: a failure to place state.json kills it
    // (cleanup is armed). Nothing else here can fail then.
    let replaced = staged.place()?;
    if let Some(pid_file) = opts.pid_file {
        write_pid_file(pid_file, pid.as_raw())?;
    }
    if commit {
        send(&parent_chan, &Msg::Commit)?;
    }
    replaced.remove();
    // Started at Ready, the child sends no Ack: we stay to wait for it.
    if !opts.start {
        parent_chan.expect(Msg::Ack)?;
    }
    cleanup.armed = false;
    Ok(Created {
        dir,
        pid,
        lock,
        pty,
        started: opts.start,
    })
}

/// Send to the child. One that failed and exited cannot be sent to any
/// more: its error, queued on the channel, is then the one to report.
fn send(chan: &sync::Channel, msg: &Msg) -> Result<()> {
    chan.send(msg).or_else(|e| child_error_or(chan, e))
}

/// A failed send's error, or the child's own when it is gone and left one.
fn child_error_or(chan: &sync::Channel, e: anyhow::Error) -> Result<()> {
    let gone = matches!(
        e.downcast_ref::<nix::errno::Errno>(),
        Some(nix::errno::Errno::EPIPE | nix::errno::Errno::ECONNRESET)
    );
    match gone.then(|| chan.recv()) {
        Some(Ok(Msg::Error { code, msg })) => Err(ExecError::from_child(code, msg)),
        _ => Err(e),
    }
}

/// A container's user namespace maps, checked, and what the parent does
/// with them.
struct IdMaps {
    uid: Vec<LinuxIdMapping>,
    gid: Vec<LinuxIdMapping>,
    /// Without root, gid_map may only be written once setgroups is denied.
    deny_setgroups: bool,
    /// The host uid/gid of the container's root: owner of the layer dirs
    /// (only when berth runs as root: otherwise they are the caller's already).
    layer_owner: Option<(u32, u32)>,
}

/// None without a user namespace. For a new one, the maps must be ones
/// this caller may write (see `namespaces::check_id_maps`).
fn user_ns_maps(spec: &Spec, ns: &namespaces::Plan) -> Result<Option<IdMaps>> {
    if !ns.new_user && ns.join_user.is_none() {
        return Ok(None);
    }
    if ns.join_user.is_some() && !ns.parent_joins.is_empty() {
        bail!("linux.namespaces: joining a user namespace together with a pid or time namespace by path is not supported");
    }
    let linux = spec.linux().as_ref();
    let uid = linux
        .and_then(|l| l.uid_mappings().clone())
        .unwrap_or_default();
    let gid = linux
        .and_then(|l| l.gid_mappings().clone())
        .unwrap_or_default();
    let euid = nix::unistd::geteuid().as_raw();
    if ns.new_user {
        namespaces::check_id_maps(&uid, &gid, euid, nix::unistd::getegid().as_raw())?;
    }
    let layer_owner = match (namespaces::host_root(&uid), namespaces::host_root(&gid)) {
        (Some(u), Some(g)) if euid == 0 => Some((u, g)),
        _ => None,
    };
    Ok(Some(IdMaps {
        uid,
        gid,
        deny_setgroups: euid != 0,
        layer_owner,
    }))
}

/// Undo a partial create: kill and reap the child, then remove everything.
struct Cleanup {
    state: State,
    dir: PathBuf,
    child: Option<Pid>,
    armed: bool,
    /// Create-time hooks ran: the runtime-spec continues at poststop.
    poststop: bool,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        if let Some(pid) = self.child {
            let _ = kill(pid, Signal::SIGKILL);
            let _ = waitpid(pid, None);
        }
        if let Err(e) = destroy(&self.state, &self.dir) {
            logging::warn(&format!("cleanup after failed create: {e:#}"));
        }
        if self.poststop {
            hooks::run_poststop(&self.state);
        }
    }
}

/// Kill whatever is left of a container and remove its cgroup, layer and
/// state dir. Used by `delete` and by a failed `create`.
pub fn destroy(st: &State, dir: &Path) -> Result<()> {
    // With a pid namespace of its own and its init gone, the kernel has
    // killed the container's every process already (runc skips the kill
    // then too), and the cgroup dirs go with one rmdir each. Anything else
    // found in the cgroup (moved in from outside) makes an rmdir fail, and
    // is killed then.
    let alive = st.process_alive();
    let removed = st.own_pid_ns && !alive && st.cgroup.remove_if_empty();
    if !removed {
        // SIGKILL everything first: kill_all also thaws a frozen cgroup,
        // whose tasks (on v1) would otherwise never act on the signal.
        st.cgroup.kill_all(libc::SIGKILL)?;
        if alive {
            kill_and_wait(st.pid, st.pid_start_time)?;
        }
        if !st.cgroup.remove_if_empty() {
            // Dying tasks not yet released, or one kill_all did not see.
            // Should the kill fail, the removal below names what is left.
            if let Err(e) = st.cgroup.kill_listed(nix::sys::signal::Signal::SIGKILL) {
                logging::debug(&format!("kill what is left in the cgroup: {e:#}"));
            }
            st.cgroup.destroy()?;
        }
    }
    if let Some(layer) = &st.layer_dir {
        rootfs::remove_layer(layer)?;
    }
    // A created, never started container still has its exec fifo.
    sys::remove_dir_known(
        dir,
        &[(state::EXEC_FIFO, false), (state::STATE_FILE, false)],
    )
    .with_context(|| format!("remove state dir {}", dir.display()))
}

/// SIGKILL the process (through a pidfd, so a reused pid is never hit) and
/// wait, bounded, until it is gone.
fn kill_and_wait(pid: i32, start_time: u64) -> Result<()> {
    let pidfd = match sys::pidfd_open(pid) {
        Ok(fd) => fd,
        Err(e) if e.raw_os_error() == Some(libc::ESRCH) => return Ok(()),
        Err(e) => return Err(e).with_context(|| format!("pidfd_open {pid}")),
    };
    // The pidfd pins the process: check it is still ours before signalling.
    if !state::same_process(pid, start_time) {
        return Ok(());
    }
    sys::pidfd_send_signal(pidfd.as_fd(), libc::SIGKILL)
        .or_else(|e| {
            if e.raw_os_error() == Some(libc::ESRCH) {
                Ok(())
            } else {
                Err(e)
            }
        })
        .with_context(|| format!("kill container process {pid}"))?;
    wait_exit(&pidfd, Duration::from_secs(10))
        .with_context(|| format!("wait for container process {pid} to exit"))
}

/// Wait until the process behind `pidfd` has exited.
pub fn wait_exit(pidfd: &OwnedFd, timeout: Duration) -> Result<()> {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    let ms = PollTimeout::try_from(timeout.as_millis().min(i32::MAX as u128) as i32)
        .unwrap_or(PollTimeout::MAX);
    let mut fds = [PollFd::new(pidfd.as_fd(), PollFlags::POLLIN)];
    loop {
        match poll(&mut fds, ms) {
            Ok(0) => bail!("still running after {} s", timeout.as_secs()),
            Ok(_) => return Ok(()),
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(e).context("poll pidfd"),
        }
    }
}

/// mkfifo `<dir>/exec.fifo` and open it read-write: a read-write open never
/// blocks, and the child's read then waits until `start` writes one byte.
fn make_exec_fifo(dir: &Path) -> Result<OwnedFd> {
    let path = dir.join(state::EXEC_FIFO);
    mkfifo(&path, Mode::from_bits_truncate(0o600))
        .with_context(|| format!("mkfifo {}", path.display()))?;
    let f = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_CLOEXEC)
        .open(&path)
        .with_context(|| format!("open {}", path.display()))?;
    Ok(f.into())
}

/// Write the pid file atomically (temp file + rename), as conmon expects.
pub fn write_pid_file(path: &Path, pid: i32) -> Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path.file_name().context("--pid-file has no file name")?;
    let tmp = dir.join(format!(".{}.tmp", name.to_string_lossy()));
    fs::write(&tmp, pid.to_string())
        .with_context(|| format!("write pid file {}", tmp.display()))?;
    fs::rename(&tmp, path).with_context(|| format!("rename pid file to {}", path.display()))
}

/// The name runc shows as OWNER: the user name of our uid in the host's
/// /etc/passwd (read directly, as runc does: an NSS lookup cost a dozen
/// syscalls and two nscd connection attempts on every create).
fn owner_name() -> String {
    let uid = nix::unistd::geteuid().as_raw();
    let passwd = sys::read_to_string("/etc/passwd").unwrap_or_default();
    match sys::passwd_field(&passwd, uid, 0) {
        Some(name) if !name.is_empty() => name.to_string(),
        _ => format!("#{uid}"),
    }
}
