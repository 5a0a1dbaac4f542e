//! The foreground half of `berth run`: forward every catchable signal to the
//! container process, reap children, and turn the container's end into an
//! exit status (its code, or 128+N for death by signal N), as a shell does.

use anyhow::{Context, Result};
use nix::errno::Errno;
use nix::sys::signal::{kill, sigprocmask, SigSet, SigmaskHow, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

/// Block every signal so none is lost or acts on berth between now and the
/// forwarding loop. The child restores an empty mask before execve.
pub fn block_all_signals() -> Result<()> {
    sigprocmask(SigmaskHow::SIG_BLOCK, Some(&SigSet::all()), None).context("block signals")
}

/// Forward signals to `pid` until it exits; return the exit status to use.
pub fn forward_until_exit(pid: Pid) -> Result<u8> {
    let sfd = SignalFd::with_flags(&SigSet::all(), SfdFlags::SFD_CLOEXEC)
        .context("signalfd for signal forwarding")?;
    // The child may already be gone before the first SIGCHLD is read.
    if let Some(code) = reap(pid)? {
        return Ok(code);
    }
    loop {
        let info = match sfd.read_signal() {
            Ok(Some(info)) => info,
            Ok(None) | Err(Errno::EINTR) => continue,
            Err(e) => return Err(e).context("read signalfd"),
        };
        let Ok(sig) = Signal::try_from(info.ssi_signo as i32) else {
            continue;
        };
        match sig {
            Signal::SIGCHLD => {
                if let Some(code) = reap(pid)? {
                    return Ok(code);
                }
            }
            // Terminal resizes and urgent-data notices are not the container's.
            Signal::SIGWINCH | Signal::SIGURG => {}
            other => match kill(pid, other) {
                Ok(()) | Err(Errno::ESRCH) => {}
                Err(e) => return Err(e).with_context(|| format!("forward {other} to {pid}")),
            },
        }
    }
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
