//! `exec`: a new process inside a running container. The parent joins only
//! the container's pid namespace (which applies to its children), clones a
//! child into the container's cgroup, and the child joins every other
//! namespace in one `setns(pidfd, flags)` call, then runs the same last steps
//! as the container's own process. The berth image is non-dumpable from the
//! moment it can be seen from inside (CVE-2019-5736).

use std::convert::Infallible;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

use crate::spec::types::Process;
use anyhow::{bail, Context, Result};

use super::child::{exec_prepared, prepare_exec, setup_console};
use super::sync::{self, Channel, Msg};
use super::{parent, wait, ExecError};
use crate::state::{same_process, State};
use crate::tty::{self, ConsoleTarget};
use crate::{namespaces, sys};

/// Namespaces `exec` joins, with their /proc names.
const NAMESPACES: [(&str, i32); 7] = [
    ("ipc", libc::CLONE_NEWIPC),
    ("uts", libc::CLONE_NEWUTS),
    ("net", libc::CLONE_NEWNET),
    ("pid", libc::CLONE_NEWPID),
    ("mnt", libc::CLONE_NEWNS),
    ("cgroup", libc::CLONE_NEWCGROUP),
    ("time", libc::CLONE_NEWTIME),
];

pub struct ExecOptions<'a> {
    pub preserve_fds: u32,
    pub pid_file: Option<&'a Path>,
    pub detach: bool,
    /// `process.terminal`: where the pty master goes.
    pub console: Option<ConsoleTarget>,
    /// Where compiled seccomp programs are kept (under `--root`).
    pub seccomp_cache: PathBuf,
}

/// Run `process` in the container of `st`; returns the exit status to use.
pub fn exec(st: &State, process: &Process, opts: &ExecOptions) -> Result<u8> {
    let pidfd =
        sys::pidfd_open(st.pid).with_context(|| format!("container {} is not running", st.id))?;
    // The pidfd pins the process; make sure it is still the container's.
    if !same_process(st.pid, st.pid_start_time) {
        bail!("container {} is not running", st.id);
    }
    let flags = namespace_flags(st.pid);
    if !opts.detach {
        wait::block_all_signals()?;
    }
    // A user-namespaced container's pid namespace can only be entered from
    // inside its user namespace, which berth itself must not join: a helper
    // joins both and clones the child (see `namespaces::clone_entered`).
    let user_ns = differs(st.pid, "user");
    if flags & libc::CLONE_NEWPID != 0 && !user_ns {
        // Only our children enter it: berth itself stays outside.
        sys::setns_pidfd(pidfd.as_fd(), libc::CLONE_NEWPID)
            .context("join the container's pid namespace")?;
    }
    let (parent_chan, child_chan) = sync::pair()?;
    let cgroup_fd = st.cgroup.open_v2_dir()?;
    // The container's filter applies to every process in it.
    let seccomp =
        crate::security::seccomp::prepare(st.seccomp.as_ref(), Some(&opts.seccomp_cache))?;
    let seccomp_state = seccomp.as_ref().is_some_and(|f| f.needs_state());
    let cloned = if user_ns {
        let join = libc::CLONE_NEWUSER | (flags & libc::CLONE_NEWPID);
        namespaces::clone_entered(
            || {
                sys::setns_pidfd(pidfd.as_fd(), join)
                    .context("join the container's user and pid namespaces")
            },
            0,
        )?
    } else {
        sys::clone_child(0, cgroup_fd.as_ref().map(|f| f.as_fd()))?
    };
    let Some(pid) = cloned else {
        drop(parent_chan);
        drop(cgroup_fd);
        run_child(
            &child_chan,
            &pidfd,
            flags & !libc::CLONE_NEWPID,
            process,
            opts,
            seccomp.as_ref(),
        );
    };
    drop(child_chan);
    drop(seccomp);
    let started = (|| {
        st.cgroup.add_process(pid.as_raw())?;
        parent_chan.send(&Msg::Go)?;
        if seccomp_state {
            // A notify listener gets the container's state with this process's pid.
            let mut s = st.clone();
            s.pid = pid.as_raw();
            let json = crate::hooks::state_json(&s, crate::state::Status::Running);
            parent_chan.send(&Msg::HookState(json))?;
        }
        let mut pty = None;
        loop {
            match parent_chan.recv_fd()? {
                (Msg::Ready, _) => break,
                (Msg::Pty, Some(fd)) => pty = Some(fd),
                (Msg::Error { code, msg }, _) => return Err(ExecError::from_child(code, msg)),
                (m, _) => bail!("sync channel: expected Ready, got {m:?}"),
            }
        }
        wait_exec(&parent_chan)?;
        if let Some(path) = opts.pid_file {
            parent::write_pid_file(path, pid.as_raw())?;
        }
        let mut fg = wait::Foreground::default();
        if let Some(master) = pty {
            fg.tty = Some(tty::Proxy::start(
                master,
                tty::console_size(process).is_some(),
            )?);
        }
        Ok::<_, anyhow::Error>(fg)
    })();
    let mut fg = match started {
        Ok(fg) => fg,
        Err(e) => {
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
            let _ = nix::sys::wait::waitpid(pid, None);
            return Err(e);
        }
    };
    if opts.detach {
        return Ok(0);
    }
    wait::forward_until_exit(pid, &mut fg)
}

/// Wait until the child has execve'd: its end of the channel is CLOEXEC, so
/// end-of-stream means the program runs; an `Error` means execve failed.
/// So `exec -d` and the pid file only ever name the user's program.
fn wait_exec(chan: &Channel) -> Result<()> {
    match chan.recv() {
        Ok(Msg::Error { code, msg }) => Err(ExecError::from_child(code, msg)),
        Ok(m) => bail!("sync channel: unexpected {m:?} after Ready"),
        // End of stream: the child's end closed at execve (or it died,
        // which the wait loop reports as its exit status).
        Err(_) => Ok(()),
    }
}

/// The container's namespaces that differ from ours.
fn namespace_flags(pid: i32) -> i32 {
    NAMESPACES
        .iter()
        .filter(|(name, _)| differs(pid, name))
        .fold(0, |acc, (_, flag)| acc | flag)
}

/// Whether process `pid` is in another namespace of kind `name` than we are.
fn differs(pid: i32, name: &str) -> bool {
    let theirs = std::fs::read_link(format!("/proc/{pid}/ns/{name}"));
    let ours = std::fs::read_link(format!("/proc/self/ns/{name}"));
    matches!((theirs, ours), (Ok(t), Ok(o)) if t != o)
}

fn run_child(
    chan: &Channel,
    pidfd: &OwnedFd,
    flags: i32,
    process: &Process,
    opts: &ExecOptions,
    seccomp: Option<&crate::security::seccomp::Filter>,
) -> ! {
    let err = match child_steps(chan, pidfd, flags, process, opts, seccomp) {
        Ok(never) => match never {},
        Err(e) => e,
    };
    let (code, msg) = match err.downcast_ref::<ExecError>() {
        Some(e) => (e.code, e.msg.clone()),
        None => (1, format!("{err:#}")),
    };
    if chan
        .send(&Msg::Error {
            code,
            msg: msg.clone(),
        })
        .is_err()
    {
        eprintln!("berth: {msg}");
    }
    // SAFETY: _exit skips atexit handlers and stdio buffers of the parent image.
    unsafe { libc::_exit(code as i32) }
}

fn child_steps(
    chan: &Channel,
    pidfd: &OwnedFd,
    flags: i32,
    process: &Process,
    opts: &ExecOptions,
    seccomp: Option<&crate::security::seccomp::Filter>,
) -> Result<Infallible> {
    // Die with `berth exec` until the process is running.
    sys::set_parent_death_signal(libc::SIGKILL)?;
    // Invisible to ptrace and /proc/<pid>/exe from inside the container.
    sys::set_dumpable(false)?;
    chan.expect(Msg::Go)?;
    let state = if seccomp.is_some_and(|f| f.needs_state()) {
        match chan.recv()? {
            Msg::HookState(json) => json,
            m => bail!("sync channel: expected HookState, got {m:?}"),
        }
    } else {
        String::new()
    };
    // Every other namespace at once, so none can change between two joins.
    sys::setns_pidfd(pidfd.as_fd(), flags).context("join the container's namespaces")?;
    // A pty of the container's devpts (now our /dev/pts) as our terminal.
    if let Some(target) = &opts.console {
        setup_console(chan, target, process, false)?;
    }
    let prepared = prepare_exec(process)?;
    // Once running, the process outlives a killed `berth exec` (as with runc);
    // clear the death signal before the parent may exit.
    sys::set_parent_death_signal(0)?;
    chan.send(&Msg::Ready)?;
    // After Ready nobody reads the channel: a failed execve is told on stderr.
    let Err(err) = exec_prepared(
        process,
        &prepared,
        opts.preserve_fds,
        seccomp,
        &state,
        || Ok(()),
    );
    let code = err.downcast_ref::<ExecError>().map_or(1, |e| e.code);
    eprintln!("berth: {err:#}");
    // SAFETY: _exit skips atexit handlers and stdio buffers of the parent image.
    unsafe { libc::_exit(code as i32) }
}
