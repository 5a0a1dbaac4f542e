//! `create`, `start` and `run`: the lifecycle's first half, with what a
//! terminal and systemd need around it (console target, pty proxy, notify
//! relay, poststart hooks).

use std::fs;
use std::io::ErrorKind;
use std::os::fd::AsFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use crate::spec::types::Spec;
use anyhow::{bail, Context, Result};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};

use super::load_locked;
use crate::cli::{Cli, CreateArgs, RunArgs};
use crate::notify::{self, Relay};
use crate::process::parent::{self, CreateOptions, Created};
use crate::process::wait::{self, Foreground};
use crate::state::{container_dir, State, Status, EXEC_FIFO};
use crate::{hooks, spec, sys, tty};

pub fn create(cli: &Cli, args: &CreateArgs) -> Result<u8> {
    create_container(cli, args, true, false).map(|_| 0)
}

/// `start`: release the process, run poststart, and with NOTIFY_SOCKET
/// wait for the service's `READY=1` (as runc does).
pub fn start(root: &Path, id: &str) -> Result<()> {
    let relay = bind_notify(root, id)?;
    let st = release(root, id, true)?;
    if let Some(relay) = relay {
        wait_ready(&relay, &st)?;
    }
    Ok(())
}

pub fn run(cli: &Cli, args: &RunArgs) -> Result<u8> {
    let foreground = !args.detach;
    if foreground {
        wait::block_all_signals()?;
    }
    // With nothing to do between create and start (no terminal to proxy,
    // no notify socket to bind, no poststart hook to order), the process
    // starts when its state is committed: one handoff, no exec fifo.
    let start = foreground && notify::host_socket().is_none();
    let created = create_container(cli, &args.create, args.detach, start)?;
    let Created {
        dir,
        pid,
        lock,
        pty,
        started,
    } = created;
    drop(lock);
    let id = &args.create.id;
    let prepared = (|| {
        if started {
            return Ok((Foreground::default(), None));
        }
        let mut fg = Foreground {
            notify: bind_notify(&cli.root, id)?,
            ..Default::default()
        };
        // Raw mode and the window size before the process runs, so its
        // first `stty size` is already right.
        if let Some(master) = pty {
            let sized = load_process_size(&dir);
            fg.tty = Some(tty::Proxy::start(master, sized)?);
        }
        // A foreground run waits for the exit anyway: only poststart
        // hooks need to know when the process has started.
        let st = release(&cli.root, id, !foreground)?;
        Ok::<_, anyhow::Error>((fg, Some(st)))
    })();
    let (mut fg, st) = match prepared {
        Ok(v) => v,
        Err(e) => {
            let _ = super::delete::delete_container(&cli.root, id, true);
            return Err(e);
        }
    };
    if !foreground {
        if let (Some(relay), Some(st)) = (&fg.notify, &st) {
            wait_ready(relay, st)?;
        }
        return Ok(0);
    }
    let code = wait::forward_until_exit(pid, &mut fg);
    // The user's terminal is theirs again before anything else is printed.
    drop(fg);
    let code = code?;
    if !args.keep {
        super::delete::delete_container(&cli.root, id, true)
            .with_context(|| format!("delete {} after it exited", dir.display()))?;
    }
    Ok(code)
}

/// Whether `process.consoleSize` was set (the child sized the pty then).
fn load_process_size(dir: &Path) -> bool {
    let id = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    State::load(dir, &id)
        .ok()
        .and_then(|st| st.process)
        .is_some_and(|p| tty::console_size(&p).is_some())
}

/// With NOTIFY_SOCKET in our environment, listen on the container's socket
/// (its dir was mounted into the container at create).
fn bind_notify(root: &Path, id: &str) -> Result<Option<Relay>> {
    let Some(host) = notify::host_socket() else {
        return Ok(None);
    };
    let dir = container_dir(root, id);
    if !dir.join(notify::NOTIFY_DIR).is_dir() {
        // Created without NOTIFY_SOCKET: the container has no socket to listen on.
        return Ok(None);
    }
    Relay::bind(&dir, &host).map(Some)
}

fn wait_ready(relay: &Relay, st: &State) -> Result<()> {
    let pidfd = match sys::pidfd_open(st.pid) {
        Ok(fd) => fd,
        // Already gone: nothing will be ready.
        Err(e) if e.raw_os_error() == Some(libc::ESRCH) => return Ok(()),
        Err(e) => return Err(e).with_context(|| format!("pidfd_open {}", st.pid)),
    };
    relay.wait_ready(&pidfd, st.pid)
}

/// `start`: release the process at commit when its config allows it (see
/// `run`); `Created::started` says whether it did.
fn create_container(cli: &Cli, args: &CreateArgs, detach: bool, start: bool) -> Result<Created> {
    crate::state::validate_id(&args.id)?;
    let bundle = fs::canonicalize(&args.bundle)
        .with_context(|| format!("bundle {}", args.bundle.display()))?;
    let mut spec = spec::load(&bundle)?;
    apply_overrides(&mut spec, args);
    let terminal = spec
        .process()
        .as_ref()
        .is_some_and(|p| p.terminal().unwrap_or(false));
    let console = super::exec::console_target(terminal, args.console_socket.as_deref(), detach)?;
    let start = start && !terminal && !hooks::has_poststart(spec.hooks().as_ref());
    let notify = notify::host_socket().is_some();
    if notify {
        notify::setup_env(&mut spec);
    }
    let mut preserve_fds = args.preserve_fds;
    if let Some(n) = notify::listen_fds() {
        notify::setup_listen_fds(&mut spec, n);
        preserve_fds = preserve_fds.max(n);
    }
    parent::create(
        &CreateOptions {
            root: &cli.root,
            layer_root: &cli.layer_root,
            id: &args.id,
            bundle: &bundle,
            pid_file: args.pid_file.as_deref(),
            no_pivot: args.no_pivot,
            preserve_fds,
            systemd_cgroup: cli.systemd_cgroup,
            console,
            notify,
            rootless: cli.rootless_mode,
            start,
        },
        &spec,
    )
}

/// berth's shell conveniences: a command after the id, `-e`, `-t`.
fn apply_overrides(spec: &mut Spec, args: &CreateArgs) {
    if args.command.is_empty() && args.env.is_empty() && !args.tty {
        return;
    }
    let mut process = spec.process().clone().unwrap_or_default();
    if !args.command.is_empty() {
        process.args = Some(args.command.clone());
    }
    if !args.env.is_empty() {
        let mut env = process.env().clone().unwrap_or_default();
        for kv in &args.env {
            let key = kv.split('=').next().unwrap_or(kv);
            env.retain(|e| e.split('=').next() != Some(key));
            env.push(kv.clone());
        }
        process.env = Some(env);
    }
    if args.tty {
        process.terminal = Some(true);
    }
    spec.process = Some(process);
}

/// Release a created container's process: one byte into its exec fifo;
/// return once it has gone past its startContainer hooks to execve (or
/// died), then run the poststart hooks. Without `wait_exec` and without
/// poststart hooks it returns right after the write.
fn release(root: &Path, id: &str, wait_exec: bool) -> Result<State> {
    let (mut st, dir, _lock) = load_locked(root, id)?;
    match st.status(&dir) {
        Status::Created => {}
        Status::Stopped => bail!("cannot start container {id}: its process has exited"),
        other => bail!("cannot start container {id}: it is {other}, not created"),
    }
    let fifo = dir.join(EXEC_FIFO);
    let mut f = match fs::OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(&fifo)
    {
        Ok(f) => f,
        // ENXIO: no reader, the process waiting on the fifo is gone.
        Err(e) if e.raw_os_error() == Some(libc::ENXIO) => {
            bail!("cannot start container {id}: its process has exited")
        }
        Err(e) if e.kind() == ErrorKind::NotFound => {
            bail!("cannot start container {id}: it has already been started")
        }
        Err(e) => return Err(e).with_context(|| format!("open {}", fifo.display())),
    };
    // A reader of our own, opened while the child's read-write end is open
    // (the open above would have failed with ENXIO otherwise): it hangs up
    // once that end closes (CLOEXEC: at execve). We never read from it, so
    // the byte is the child's.
    let watch = if wait_exec || hooks::has_poststart(st.hooks.as_ref()) {
        fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
            .open(&fifo)
            .ok()
    } else {
        None
    };
    std::io::Write::write_all(&mut f, b"0").with_context(|| format!("write {}", fifo.display()))?;
    drop(f);
    fs::remove_file(&fifo).with_context(|| format!("remove {}", fifo.display()))?;
    st.status = Status::Running;
    st.save(&dir)?;
    if let Some(w) = watch {
        wait_hangup(&w);
    }
    hooks::run_poststart(&st);
    Ok(st)
}

/// Wait until the fifo has no writer left: the container process has
/// execve'd (or exited), so poststart really runs after the process starts.
fn wait_hangup(reader: &fs::File) {
    loop {
        let mut fds = [PollFd::new(reader.as_fd(), PollFlags::empty())];
        match poll(&mut fds, PollTimeout::NONE) {
            Err(nix::errno::Errno::EINTR) => continue,
            Err(_) => return,
            Ok(_) => {
                let hup = fds[0]
                    .revents()
                    .is_some_and(|r| r.intersects(PollFlags::POLLHUP | PollFlags::POLLERR));
                if hup {
                    return;
                }
            }
        }
    }
}
