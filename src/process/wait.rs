//! The foreground half of `berth run` and `berth exec`: forward every
//! catchable signal to the container process, reap children, proxy the
//! user's terminal (`-t`), relay systemd notifications, and turn the
//! container's end into an exit status (its code, or 128+N for death by
//! signal N), as a shell does. One `poll` loop, no threads.

use std::os::fd::{AsFd, BorrowedFd};

use anyhow::{Context, Result};
use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{kill, sigprocmask, SigSet, SigmaskHow, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use crate::notify::Relay;
use crate::tty::Proxy;

/// Block every signal so none is lost or acts on berth between now and the
/// forwarding loop. The child restores an empty mask before execve.
pub fn block_all_signals() -> Result<()> {
    sigprocmask(SigmaskHow::SIG_BLOCK, Some(&SigSet::all()), None).context("block signals")
}

/// What the loop serves besides signals.
#[derive(Default)]
pub struct Foreground {
    /// `-t` without a console socket: the user's terminal ↔ the pty master.
    pub tty: Option<Proxy>,
    /// `NOTIFY_SOCKET`: the container's notify socket, relayed to the host.
    pub notify: Option<Relay>,
}

/// Forward signals to `pid` until it exits; return the exit status to use.
pub fn forward_until_exit(pid: Pid, fg: &mut Foreground) -> Result<u8> {
    let sfd = SignalFd::with_flags(
        &SigSet::all(),
        SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK,
    )
    .context("signalfd for signal forwarding")?;
    let main_pid = std::process::id() as i32;
    // The child may already be gone before the first SIGCHLD is read.
    if let Some(code) = reap(pid)? {
        return finish(fg, main_pid, code);
    }
    loop {
        let (sig_ready, stdin_ready, master_ready, master_writable, notify_ready) = {
            let mut fds = vec![PollFd::new(sfd.as_fd(), PollFlags::POLLIN)];
            let mut at = [None; 4];
            if let Some(t) = &fg.tty {
                if t.wants_stdin() {
                    // SAFETY: fd 0 stays open for the life of berth.
                    let stdin = unsafe { BorrowedFd::borrow_raw(0) };
                    at[0] = Some(fds.len());
                    fds.push(PollFd::new(stdin, PollFlags::POLLIN));
                }
                if t.wants_master() {
                    let mut ev = PollFlags::POLLIN;
                    if t.wants_master_write() {
                        ev |= PollFlags::POLLOUT;
                    }
                    at[1] = Some(fds.len());
                    fds.push(PollFd::new(t.master(), ev));
                }
            }
            if let Some(n) = &fg.notify {
                at[2] = Some(fds.len());
                fds.push(PollFd::new(n.fd(), PollFlags::POLLIN));
            }
            match poll(&mut fds, PollTimeout::NONE) {
                Ok(_) | Err(Errno::EINTR) => {}
                Err(e) => return Err(e).context("poll in the foreground loop"),
            }
            let rev = |i: Option<usize>| {
                i.and_then(|i| fds[i].revents())
                    .unwrap_or(PollFlags::empty())
            };
            let input = PollFlags::POLLIN | PollFlags::POLLHUP | PollFlags::POLLERR;
            (
                fds[0].revents().is_some_and(|r| r.intersects(input)),
                rev(at[0]).intersects(input),
                rev(at[1]).intersects(input),
                rev(at[1]).contains(PollFlags::POLLOUT),
                rev(at[2]).intersects(input),
            )
        };
        if let Some(t) = fg.tty.as_mut() {
            if master_ready {
                t.on_master()?;
            }
            if master_writable {
                t.flush_input()?;
            }
            if stdin_ready {
                t.on_stdin()?;
            }
        }
        if notify_ready {
            if let Some(n) = &fg.notify {
                n.relay_pending(main_pid)?;
            }
        }
        if !sig_ready {
            continue;
        }
        loop {
            let info = match sfd.read_signal() {
                Ok(Some(i)) => i,
                Ok(None) => break,
                Err(Errno::EINTR) => continue,
                Err(e) => return Err(e).context("read signalfd"),
            };
            let Ok(sig) = Signal::try_from(info.ssi_signo as i32) else {
                continue;
            };
            match sig {
                Signal::SIGCHLD => {
                    if let Some(code) = reap(pid)? {
                        return finish(fg, main_pid, code);
                    }
                }
                // With a terminal, a resize is passed on as the pty's new
                // size (the kernel then signals the container's foreground
                // process group); without one, the signal is forwarded.
                Signal::SIGWINCH if fg.tty.is_some() => {
                    if let Some(t) = &fg.tty {
                        t.resize();
                    }
                }
                // Urgent-data notices are not the container's.
                Signal::SIGURG => {}
                other => match kill(pid, other) {
                    Ok(()) | Err(Errno::ESRCH) => {}
                    Err(e) => return Err(e).with_context(|| format!("forward {other} to {pid}")),
                },
            }
        }
    }
}

/// The container is gone: pass on the last output and notifications.
fn finish(fg: &mut Foreground, main_pid: i32, code: u8) -> Result<u8> {
    if let Some(t) = fg.tty.as_mut() {
        t.drain()?;
    }
    if let Some(n) = &fg.notify {
        n.relay_pending(main_pid)?;
    }
    Ok(code)
}

/// Reap every exited child; Some(status) once `pid` is among them.
fn reap(pid: Pid) -> Result<Option<u8>> {
    loop {
        match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(p, code)) if p == pid => return Ok(Some(code as u8)),
            Ok(WaitStatus::Signaled(p, sig, _)) if p == pid => {
                return Ok(Some(128u8.wrapping_add(sig as u8)))
            }
            Ok(WaitStatus::StillAlive) | Err(Errno::ECHILD) => return Ok(None),
            Ok(_) => continue,
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(e).context("waitpid"),
        }
    }
}
