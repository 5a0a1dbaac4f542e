//! `kill`: a signal by name (TERM, SIGTERM) or number to the container's
//! process, or with `--all` to every process in its cgroup.

use std::path::Path;
use std::str::FromStr;

use anyhow::{bail, Context, Result};
use nix::sys::signal::Signal;
use std::os::fd::AsFd;

use super::load;
use crate::cli::KillArgs;
use crate::state::{same_process, Status};
use crate::sys;

pub fn run(root: &Path, args: &KillArgs) -> Result<u8> {
    let sig = parse_signal(&args.signal)?;
    let (st, dir) = load(root, &args.id)?;
    let status = st.status(&dir);
    if args.all {
        // runc: `kill --all` of a stopped container whose cgroup is empty (or
        // gone) succeeds; containerd's shim sends it on `ctr task delete -f`.
        if status == Status::Stopped && st.cgroup.procs().map_or(true, |p| p.is_empty()) {
            return Ok(0);
        }
        st.cgroup.kill_all(sig)?;
        return Ok(0);
    }
    if !matches!(status, Status::Created | Status::Running | Status::Paused) {
        bail!("container {} is not running", args.id);
    }
    let pidfd = sys::pidfd_open(st.pid).with_context(|| format!("pidfd_open {}", st.pid))?;
    // The pidfd pins the process: make sure it is still the container's.
    if !same_process(st.pid, st.pid_start_time) {
        bail!("container {} is not running", args.id);
    }
    sys::pidfd_send_signal(pidfd.as_fd(), sig)
        .with_context(|| format!("send signal {sig} to process {}", st.pid))?;
    // A frozen task acts on SIGKILL only once thawed (v1); runc thaws for
    // SIGKILL alone, other signals wait in the queue until `resume`.
    if status == Status::Paused && sig == libc::SIGKILL {
        st.cgroup.thaw()?;
    }
    Ok(0)
}

/// `TERM`, `SIGTERM`, `term` or `15`; `RTMIN+3` style real-time signals too.
pub fn parse_signal(s: &str) -> Result<i32> {
    if let Ok(n) = s.parse::<i32>() {
        if (1..=libc::SIGRTMAX()).contains(&n) {
            return Ok(n);
        }
        bail!("invalid signal {s:?}");
    }
    let upper = s.to_ascii_uppercase();
    let name = upper.strip_prefix("SIG").unwrap_or(&upper);
    if let Some(off) = name.strip_prefix("RTMIN") {
        let n = libc::SIGRTMIN() + parse_offset(off, s)?;
        if n <= libc::SIGRTMAX() {
            return Ok(n);
        }
    } else if let Some(off) = name.strip_prefix("RTMAX") {
        let n = libc::SIGRTMAX() - parse_offset(off.trim_start_matches('-'), s)?.abs();
        if n >= libc::SIGRTMIN() {
            return Ok(n);
        }
    } else if let Ok(sig) = Signal::from_str(&format!("SIG{name}")) {
        return Ok(sig as i32);
    }
    bail!("invalid signal {s:?}")
}

fn parse_offset(off: &str, orig: &str) -> Result<i32> {
    if off.is_empty() {
        return Ok(0);
    }
    off.trim_start_matches('+')
        .parse()
        .with_context(|| format!("invalid signal {orig:?}"))
}

#[cfg(test)]
mod tests {
    use super::parse_signal;

    #[test]
    fn signal_names_and_numbers() {
        assert_eq!(parse_signal("TERM").unwrap(), libc::SIGTERM);
        assert_eq!(parse_signal("SIGKILL").unwrap(), libc::SIGKILL);
        assert_eq!(parse_signal("hup").unwrap(), libc::SIGHUP);
        assert_eq!(parse_signal("9").unwrap(), 9);
        assert_eq!(parse_signal("RTMIN+2").unwrap(), libc::SIGRTMIN() + 2);
        for bad in ["0", "999", "NOPE", "RTMIN+99", ""] {
            assert!(parse_signal(bad).is_err(), "{bad}");
        }
    }
}
