//! The child: a clone of `berth create` that turns itself into the container
//! process. `init` is the whole checklist, in the order that security needs;
//! every step is a small call. It never returns: it either `execve`s the
//! user's program or reports its error over the sync channel and exits.

use std::convert::Infallible;
use std::ffi::CString;
use std::fs;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::spec::types::{Hooks, Process, Spec};
use anyhow::{Context, Result};
use nix::sys::signal::{sigprocmask, SigSet, SigmaskHow, Signal};
use nix::sys::stat::{umask, Mode};
use nix::unistd::{chdir, execve};

use super::sync::{Channel, Closed, Msg};
use super::ExecError;
use crate::hooks::{self, Kind};
use crate::tty::{self, ConsoleTarget};
use crate::{namespaces, rootfs, security, sys};

/// Everything the child needs, prepared by the parent before the clone.
pub struct ChildContext<'a> {
    pub spec: &'a Spec,
    pub bundle: &'a Path,
    pub rootfs: &'a Path,
    pub mode: rootfs::Mode,
    pub layer_dir: Option<&'a Path>,
    pub no_pivot: bool,
    pub preserve_fds: u32,
    pub ns: &'a namespaces::Plan,
    /// The new network namespace the parent made on the side
    /// (`namespaces::NetPrefetch`): the clone made none, we join this one.
    pub net_ns: Option<OwnedFd>,
    /// The exec fifo, opened O_RDWR by the parent: reading blocks until
    /// `start`. None when the parent starts us at `Ready` (a foreground
    /// `run`): we exec right after sending it.
    pub fifo: Option<OwnedFd>,
    /// Wait for `Commit` after `Ready`: always with a fifo, and without one
    /// when the parent still has a step that may fail (the pid file), so
    /// that the process never runs if it does.
    pub commit: bool,
    /// The parent's /proc/self/mountinfo, to plan the v1 cgroup mounts
    /// from (see `rootfs::RootfsConfig::host_mountinfo`).
    pub host_mountinfo: Option<&'a str>,
    pub chan: Channel,
    /// `process.terminal`: where the pty master goes.
    pub console: Option<&'a ConsoleTarget>,
    /// The parent's lock on the state dir: the child must not hold it.
    pub lock: &'a crate::state::Lock,
    /// The compiled `linux.seccomp`, loaded last.
    pub seccomp: Option<&'a security::seccomp::Filter>,
    /// The cgroup to join by ourselves (cheaper than the parent's
    /// cgroup.procs write); None when the parent places us (user namespaces).
    pub join_cgroup: Option<&'a crate::cgroups::Cgroup>,
    /// Join it late: the parent makes the v1 cgroups and applies the limits
    /// while we build the root, and says `Cgroups` when they are ready.
    pub cgroups_late: bool,
}

/// Whether the parent sends `HookState`: the child runs createContainer
/// and startContainer hooks itself and needs the state they read.
pub fn needs_hook_state(hooks: Option<&Hooks>) -> bool {
    !hooks::list(hooks, Kind::CreateContainer).is_empty()
        || !hooks::list(hooks, Kind::StartContainer).is_empty()
}

/// Run the child and never return.
pub fn run(mut ctx: ChildContext) -> ! {
    // Into the new network namespace before anything else: from our first
    // message on (hooks read /proc/<pid>/ns/net), it is ours. Its fd is
    // closed once joined: a created container holds no host fd.
    let joined = namespaces::enter_prefetched_net(ctx.net_ns.take());
    let err = match joined.and_then(|()| init(&ctx)) {
        Ok(never) => match never {},
        Err(e) => e,
    };
    if err.downcast_ref::<Closed>().is_some() {
        // The parent closed the channel: it failed and says why on its own
        // (a second line from us would only repeat its failure as ours).
        // SAFETY: as below.
        unsafe { libc::_exit(1) }
    }
    let (code, msg) = match err.downcast_ref::<ExecError>() {
        Some(e) => (e.code, e.msg.clone()),
        None => (1, format!("{err:#}")),
    };
    if ctx
        .chan
        .send(&Msg::Error {
            code,
            msg: msg.clone(),
        })
        .is_err()
    {
        // After start there is nobody listening: say it on our stderr.
        eprintln!("berth: {msg}");
    }
    // SAFETY: _exit skips the parent's atexit handlers and stdio buffers that
    // this forked copy must not run or flush twice.
    unsafe { libc::_exit(code as i32) }
}

fn init(ctx: &ChildContext) -> Result<Infallible> {
    // The state lock stays with the parent alone.
    ctx.lock.close_inherited();
    let process = ctx
        .spec
        .process()
        .as_ref()
        .context("config.json: process is missing")?;
    // Die with the parent until it has recorded us in state.json. Had it died
    // before this line, the `Go` below reads end-of-stream and we exit.
    sys::set_parent_death_signal(libc::SIGKILL)?;
    // Nothing in the container may ptrace us or open our /proc/self/exe (the
    // berth binary) until execve replaces this image (CVE-2019-5736). In a
    // new user namespace this waits for `Go`: a non-dumpable process's /proc
    // files belong to host root, and an unprivileged parent must still open
    // our uid_map. Until `Go` we run nothing of the container's.
    if !ctx.ns.new_user {
        sys::set_dumpable(false)?;
    }
    // Into our cgroups: writing `0` to the v1 `tasks` files moves just this
    // thread, sparing the kernel's global threadgroup lock that the
    // parent's cgroup.procs write would take. Before anything else runs,
    // or, late, once the parent has made them (see `enter_cgroups`).
    if let Some(cgroup) = ctx.join_cgroup.filter(|_| !ctx.cgroups_late) {
        cgroup.join_self()?;
    }
    // Wait until the parent has put us in our cgroups (and written our id maps).
    ctx.chan.expect(Msg::Go)?;
    if ctx.ns.new_user {
        sys::set_dumpable(false)?;
    }
    // In a user namespace, become its root: every capability in it, and
    // the owner of everything made below.
    if ctx.ns.new_user || ctx.ns.join_user.is_some() {
        namespaces::become_root()?;
    }
    let hooks = ctx.spec.hooks().as_ref();
    let hook_state = if needs_hook_state(hooks) || ctx.seccomp.is_some_and(|f| f.needs_state()) {
        match ctx.chan.recv()? {
            Msg::HookState(json) => json,
            m => anyhow::bail!("sync channel: expected HookState, got {m:?}"),
        }
    } else {
        String::new()
    };
    // Join namespaces by path. The new cgroup namespace is rooted at our
    // cgroup: it comes once we are in it, late or now.
    namespaces::enter_child(ctx.ns)?;
    // A new network namespace starts with lo down; runc brings it up, also
    // before the root is built. Done now it costs nothing: it fills the
    // time the parent spends making the v1 cgroups the child waits for.
    if ctx.ns.new_net {
        sys::loopback_up()?;
    }
    let entered = std::cell::OnceCell::new();
    let enter_cgroups = || -> Result<Option<String>> {
        if let Some(proc_cgroup) = entered.get() {
            return Ok(Option::clone(proc_cgroup));
        }
        if ctx.cgroups_late {
            match ctx.chan.recv_fds()? {
                (Msg::Cgroups, tasks) => crate::cgroups::join_through(&tasks)?,
                (Msg::Error { code, msg }, _) => return Err(ExecError::from_child(code, msg)),
                (m, _) => anyhow::bail!("sync channel: expected Cgroups, got {m:?}"),
            }
        }
        // Our cgroups as the host names them, for the cgroup mounts: read
        // before the new cgroup namespace renames them all "/".
        let proc_cgroup = match ctx.host_mountinfo {
            Some(_) => {
                let text = sys::read_to_string("/proc/self/cgroup");
                Some(text.context("read /proc/self/cgroup")?)
            }
            None => None,
        };
        namespaces::enter_cgroup_ns(ctx.ns)?;
        let _ = entered.set(proc_cgroup.clone());
        Ok(proc_cgroup)
    };
    if !ctx.cgroups_late {
        enter_cgroups()?;
    }
    // Sysctls: before rootfs::setup makes /proc/sys read-only. /proc/sys/net
    // and the ipc/uts keys resolve to the writer's namespaces, entered above.
    write_sysctls(ctx.spec)?;
    // Build the root (overlay or bind, mounts, /dev) and pivot into it.
    rootfs::setup(&rootfs::RootfsConfig {
        spec: ctx.spec,
        bundle: ctx.bundle,
        rootfs: ctx.rootfs,
        mode: ctx.mode,
        layer_dir: ctx.layer_dir,
        no_pivot: ctx.no_pivot,
        enter_cgroups: &enter_cgroups,
        host_mountinfo: ctx.host_mountinfo,
        // Create-time hooks: the runtime's (run by the parent), then the
        // container's, after the root is built and before pivot_root.
        before_pivot: &|| run_create_hooks(ctx, hooks, &hook_state),
    })?;
    // The terminal: a pty of the container's devpts becomes our stdio and
    // controlling terminal; its master goes to the console socket or berth.
    if let Some(target) = ctx.console {
        setup_console(&ctx.chan, target, process, true)?;
    }
    // Hostname and domainname belong to the container's uts namespace.
    set_names(ctx.spec)?;
    // Limits, working directory, and the program resolved now, so that a
    // typo is a create-time error (exit 127).
    let mut prepared = prepare_exec(process)?;
    // Report ready. The bounding set (a prctl per capability) is dropped
    // while the parent writes state.
    ctx.chan.send(&Msg::Ready)?;
    prepared.drop_bounding(process)?;
    // A parent that exits once we are committed (create, run -d) sends
    // Commit when state.json says we are created, and waits for the Ack
    // that says we no longer die with it. A foreground run (no fifo) sends
    // no Commit unless it writes a pid file: it places state.json
    // ("running") while we exec, kills us if that fails, and then waits
    // for our exit, reading nothing more. A Commit costs two wake-ups
    // before our execve (50-200 µs each on this machine's vCPUs), an Ack
    // one more on this CPU (~150 µs). Either way the parent reads nothing
    // after this: an error from here on must reach our stderr, not a
    // socket buffer nobody drains.
    if ctx.commit {
        ctx.chan.expect(Msg::Commit)?;
    }
    let ack = ctx.fifo.is_some();
    if !ack {
        ctx.chan.close_send()?;
    }
    sys::set_parent_death_signal(0)?;
    if ack {
        ctx.chan.send(&Msg::Ack)?;
        ctx.chan.close_send()?;
    }
    // Block until `berth start` writes to the exec fifo.
    if let Some(fifo) = &ctx.fifo {
        wait_for_start(fifo)?;
    }
    exec_prepared(
        process,
        &prepared,
        ctx.preserve_fds,
        ctx.seccomp,
        &hook_state,
        || run_start_hooks(hooks, &hook_state),
    )
}

/// prestart and createRuntime in the parent (runtime namespace), then
/// createContainer here (container namespace). A failure aborts create.
fn run_create_hooks(ctx: &ChildContext, hooks: Option<&Hooks>, state: &str) -> Result<()> {
    if !hooks::list(hooks, Kind::Prestart).is_empty()
        || !hooks::list(hooks, Kind::CreateRuntime).is_empty()
    {
        ctx.chan.send(&Msg::Hooks)?;
        ctx.chan.expect(Msg::HooksDone)?;
    }
    hooks::run(hooks, Kind::CreateContainer, state)
}

/// startContainer: in the container, after `start`, just before execve.
fn run_start_hooks(hooks: Option<&Hooks>, creating: &str) -> Result<()> {
    if hooks::list(hooks, Kind::StartContainer).is_empty() {
        return Ok(());
    }
    // The state as `start` sees it: the container is created, not running yet.
    let mut v: serde_json::Value =
        serde_json::from_slice(creating.as_bytes()).context("state for startContainer hooks")?;
    v["status"] = "created".into();
    hooks::run(hooks, Kind::StartContainer, &v.to_string())
}

/// Make a pty of the container's devpts our terminal and send its master
/// on. `console`: bind the slave on /dev/console (the container's first
/// process; not for exec).
pub fn setup_console(
    chan: &Channel,
    target: &ConsoleTarget,
    process: &Process,
    console: bool,
) -> Result<()> {
    let (master, slave, path) = tty::open_pty(tty::console_size(process))?;
    if console {
        tty::mount_console(&path)?;
    }
    match target {
        ConsoleTarget::Socket(sock) => tty::send_master(sock, &master)?,
        ConsoleTarget::Parent => chan.send_pty(&master)?,
    }
    // The container process must never hold the master.
    drop(master);
    tty::make_controlling(&slave)
}

/// The user's program, resolved and ready for execve.
pub struct Prepared {
    exe: CString,
    argv: Vec<CString>,
    envp: Vec<CString>,
    /// [`Prepared::drop_bounding`] ran: `exec_prepared` does not again.
    bounding_dropped: bool,
}

impl Prepared {
    /// Drop the bounding set ahead of [`exec_prepared`], the first of its
    /// privilege steps: it takes nothing the steps in between need (they
    /// use effective capabilities, which it does not touch).
    pub fn drop_bounding(&mut self, process: &Process) -> Result<()> {
        security::drop_bounding(process.capabilities().as_ref())?;
        self.bounding_dropped = true;
        Ok(())
    }
}

/// Steps that still run with full privileges inside the container: rlimits,
/// the working directory, HOME, and the executable lookup.
pub fn prepare_exec(process: &Process) -> Result<Prepared> {
    // Limits are inherited through execve.
    security::set_rlimits(process.rlimits().as_deref().unwrap_or_default())?;
    // The working directory exists (created like runc does) and we stand in it.
    enter_cwd(process.cwd())?;
    let mut env = process.env().clone().unwrap_or_default();
    add_home(&mut env, process.user().uid());
    let args = process.args().clone().unwrap_or_default();
    let exe = find_executable(args.first().map(String::as_str).unwrap_or(""), &env)?;
    Ok(Prepared {
        exe: CString::new(exe.as_os_str().as_encoded_bytes()).context("executable path")?,
        argv: to_cstrings(&args)?,
        envp: to_cstrings(&env)?,
        bounding_dropped: false,
    })
}

/// The last steps: drop privileges, run `before_exec` (startContainer
/// hooks, as the container's user, as runc does), restore signals, close
/// fds, execve.
pub fn exec_prepared(
    process: &Process,
    p: &Prepared,
    preserve_fds: u32,
    seccomp: Option<&security::seccomp::Filter>,
    state: &str,
    before_exec: impl FnOnce() -> Result<()>,
) -> Result<Infallible> {
    let nnp = process.no_new_privileges().unwrap_or(false);
    // The exec labels (AppArmor profile, SELinux context) take effect at
    // execve; everything before them runs under berth's own.
    let labels = || -> Result<()> {
        if let Some(profile) = process.apparmor_profile() {
            security::apparmor::apply_on_exec(profile)?;
        }
        if let Some(label) = process.selinux_label() {
            security::selinux::apply_on_exec("process.selinuxLabel", label)?;
        }
        Ok(())
    };
    if !nnp {
        // Without no_new_privs, loading a filter needs CAP_SYS_ADMIN, which
        // the process is about to drop: load it now, as runc does. The
        // labels go first, so the filter cannot refuse the procfs open,
        // fstatfs and write that set them (runc's order too). The start
        // hooks then run under both, as they do with runc.
        labels()?;
        if let Some(filter) = seccomp {
            security::seccomp::load(filter, state)?;
        }
    }
    drop_privileges(process, !p.bounding_dropped)?;
    before_exec()?;
    reset_signals()?;
    // Everything but stdio and the preserved fds is closed at execve.
    sys::cloexec_fds_from(3 + preserve_fds)?;
    if nnp {
        // Labels after the start hooks (which a fork would otherwise run
        // under them), and seccomp last: only execve runs under it.
        labels()?;
        if let Some(filter) = seccomp {
            security::seccomp::load(filter, state)?;
        }
    }
    let Err(err) = execve(&p.exe, &p.argv, &p.envp);
    let name = p.argv.first().map(|a| a.to_string_lossy().into_owned());
    Err(exec_error(&name.unwrap_or_default(), err.into()))
}

/// runc sets HOME from the container's /etc/passwd when process.env lacks it.
fn add_home(env: &mut Vec<String>, uid: u32) {
    if env.iter().any(|e| e.starts_with("HOME=")) {
        return;
    }
    let passwd = sys::read_to_string("/etc/passwd").unwrap_or_default();
    let home = sys::passwd_field(&passwd, uid, 5).unwrap_or("/");
    env.push(format!("HOME={home}"));
}

fn set_names(spec: &Spec) -> Result<()> {
    if let Some(name) = spec.hostname() {
        nix::unistd::sethostname(name).with_context(|| format!("set hostname {name:?}"))?;
    }
    if let Some(name) = spec.domainname() {
        // SAFETY: setdomainname reads `len` bytes of a buffer we own.
        let rc = unsafe { libc::setdomainname(name.as_ptr().cast(), name.len()) };
        if rc != 0 {
            return Err(std::io::Error::last_os_error())
                .with_context(|| format!("set domainname {name:?}"));
        }
    }
    Ok(())
}

fn write_sysctls(spec: &Spec) -> Result<()> {
    let Some(sysctl) = spec.linux().as_ref().and_then(|l| l.sysctl().as_ref()) else {
        return Ok(());
    };
    for (key, value) in sysctl {
        let path = PathBuf::from("/proc/sys").join(key.replace('.', "/"));
        fs::write(&path, value)
            .with_context(|| format!("linux.sysctl: write {value:?} to {}", path.display()))?;
    }
    Ok(())
}

fn enter_cwd(cwd: &Path) -> Result<()> {
    if !cwd.exists() {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(cwd)
            .with_context(|| format!("create process.cwd {}", cwd.display()))?;
    }
    chdir(cwd).with_context(|| format!("chdir to process.cwd {}", cwd.display()))?;
    // A magic link (/proc/self/fd/N) can lead anywhere: the kernel says
    // "(unreachable)" (or fails) when the cwd is outside our root
    // (CVE-2024-21626).
    match std::env::current_dir() {
        Ok(p) if p.is_absolute() => Ok(()),
        _ => anyhow::bail!(
            "process.cwd {} is outside the container's root",
            cwd.display()
        ),
    }
}

/// `PATH` lookup as a shell does, with the container's own `PATH`.
fn find_executable(name: &str, env: &[String]) -> Result<PathBuf> {
    if name.contains('/') {
        let p = PathBuf::from(name);
        return check_executable(&p).map(|_| p);
    }
    let path_var = env
        .iter()
        .rev()
        .find_map(|e| e.strip_prefix("PATH="))
        .unwrap_or("/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
    let mut not_executable = None;
    for dir in path_var.split(':').filter(|d| !d.is_empty()) {
        let candidate = Path::new(dir).join(name);
        match check_executable(&candidate) {
            Ok(()) => return Ok(candidate),
            Err(e) if e.downcast_ref::<ExecError>().is_some_and(|x| x.code == 126) => {
                not_executable.get_or_insert(e);
            }
            Err(_) => {}
        }
    }
    Err(not_executable.unwrap_or_else(|| {
        ExecError {
            code: 127,
            msg: format!("exec {name:?}: executable file not found in $PATH"),
        }
        .into()
    }))
}

fn check_executable(path: &Path) -> Result<()> {
    let meta = fs::metadata(path).map_err(|e| ExecError {
        code: if e.kind() == std::io::ErrorKind::NotFound {
            127
        } else {
            126
        },
        msg: format!("exec {}: {e}", path.display()),
    })?;
    if meta.is_dir() || meta.permissions().mode() & 0o111 == 0 {
        return Err(ExecError {
            code: 126,
            msg: format!("exec {}: permission denied", path.display()),
        }
        .into());
    }
    Ok(())
}

fn exec_error(name: &str, err: std::io::Error) -> anyhow::Error {
    let code = if err.kind() == std::io::ErrorKind::NotFound {
        127
    } else {
        126
    };
    ExecError {
        code,
        msg: format!("exec {name:?}: {err}"),
    }
    .into()
}

fn to_cstrings(items: &[String]) -> Result<Vec<CString>> {
    items
        .iter()
        .map(|s| CString::new(s.as_bytes()).with_context(|| format!("{s:?} contains a NUL byte")))
        .collect()
}

fn wait_for_start(fifo: &OwnedFd) -> Result<()> {
    let mut byte = [0u8; 1];
    loop {
        match nix::unistd::read(fifo.as_raw_fd(), &mut byte) {
            Ok(_) => return Ok(()),
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(e).context("wait on the exec fifo"),
        }
    }
}

/// The bounding set (unless dropped already), user, groups, umask,
/// capabilities and no_new_privs, in that order.
fn drop_privileges(process: &Process, bounding: bool) -> Result<()> {
    if bounding {
        security::drop_bounding(process.capabilities().as_ref())?;
    }
    security::set_user(process.user())?;
    if let Some(mask) = process.user().umask() {
        umask(Mode::from_bits_truncate(mask as libc::mode_t));
    }
    match process.capabilities() {
        Some(c) => security::set_capabilities(c)?,
        None => security::drop_all_capabilities()?,
    }
    if process.no_new_privileges().unwrap_or(false) {
        sys::set_no_new_privs()?;
    }
    Ok(())
}

/// Undo what berth's own runtime set up: Rust ignores SIGPIPE, and `run`
/// blocks every signal while it forwards them. Ignored signals and the mask
/// both survive execve, so reset them.
fn reset_signals() -> Result<()> {
    // SAFETY: restoring the default disposition installs no handler code.
    unsafe { nix::sys::signal::signal(Signal::SIGPIPE, nix::sys::signal::SigHandler::SigDfl) }
        .context("reset SIGPIPE")?;
    sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None).context("unblock signals")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_follows_the_container_path() {
        let env = vec!["PATH=/nonexistent:/bin".to_string()];
        assert_eq!(
            find_executable("sh", &env).expect("sh"),
            PathBuf::from("/bin/sh")
        );
        let e = find_executable("no-such-cmd", &env).unwrap_err();
        let e = e.downcast_ref::<ExecError>().expect("typed");
        assert_eq!(e.code, 127);
        assert!(e.msg.contains("no-such-cmd"));
        let e = find_executable("/etc/passwd", &env).unwrap_err();
        assert_eq!(e.downcast_ref::<ExecError>().expect("typed").code, 126);
    }
}
