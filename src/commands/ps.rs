//! `ps`: the container's processes, as runc shows them: `--format json` is
//! the list of pids; the table is ps(1)'s output (default `-ef`) filtered to
//! the pids in the container's cgroup.

use std::ffi::OsStr;
use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

use nix::fcntl::OFlag;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};

use anyhow::{bail, Context, Result};

use super::load;
use crate::cli::{ListFormat, PsArgs};

pub fn run(root: &Path, args: &PsArgs) -> Result<u8> {
    let (st, _) = load(root, &args.id)?;
    let pids = st.cgroup.procs()?;
    let mut out = std::io::stdout().lock();
    if args.format == ListFormat::Json {
        writeln!(out, "{}", serde_json::to_string(&pids)?)?;
        return Ok(0);
    }
    let ps_args: Vec<&str> = if args.ps_args.is_empty() {
        vec!["-ef"]
    } else {
        args.ps_args.iter().map(String::as_str).collect()
    };
    let (ok, stdout, stderr) = run_ps(&ps_args).context("run ps")?;
    if !ok {
        bail!(
            "ps {}: {}",
            ps_args.join(" "),
            String::from_utf8_lossy(&stderr).trim()
        );
    }
    let text = String::from_utf8_lossy(&stdout);
    let mut lines = text.lines();
    let header = lines.next().context("ps printed nothing")?;
    let col = header
        .split_whitespace()
        .position(|h| h == "PID")
        .context("ps output has no PID column")?;
    writeln!(out, "{header}")?;
    for line in lines {
        let pid = line
            .split_whitespace()
            .nth(col)
            .and_then(|p| p.parse().ok());
        // procs() is sorted and free of duplicates.
        if pid.is_some_and(|p| pids.binary_search(&p).is_ok()) {
            writeln!(out, "{line}")?;
        }
    }
    Ok(0)
}

/// ps(1) with `args`, in berth's environment, stdin on /dev/null: whether
/// it exited 0, and what it wrote to stdout and to stderr.
fn run_ps(args: &[&str]) -> Result<(bool, Vec<u8>, Vec<u8>)> {
    let ps = crate::sys::find_program(Path::new("ps"))?;
    let argv: Vec<&OsStr> = std::iter::once("ps")
        .chain(args.iter().copied())
        .map(OsStr::new)
        .collect();
    let envp: Vec<std::ffi::OsString> = std::env::vars_os()
        .map(|(mut kv, v)| {
            kv.push("=");
            kv.push(v);
            kv
        })
        .collect();
    let null = std::fs::File::open("/dev/null").context("open /dev/null")?;
    let (out_r, out_w) = nix::unistd::pipe2(OFlag::O_CLOEXEC)?;
    let (err_r, err_w) = nix::unistd::pipe2(OFlag::O_CLOEXEC)?;
    let pid = crate::sys::spawn(
        &ps,
        &argv,
        &envp,
        [Some(null.as_fd()), Some(out_w.as_fd()), Some(err_w.as_fd())],
    )?;
    drop((out_w, err_w));
    let read = read_both(out_r, err_r);
    let status = nix::sys::wait::waitpid(pid, None).context("wait for ps")?;
    let (stdout, stderr) = read?;
    Ok((crate::sys::describe_wait(status).0, stdout, stderr))
}

/// Read two pipes to their end side by side, so that neither fills while
/// the other is waited on.
fn read_both(a: OwnedFd, b: OwnedFd) -> Result<(Vec<u8>, Vec<u8>)> {
    let mut files = [Some(std::fs::File::from(a)), Some(std::fs::File::from(b))];
    let mut bufs = [Vec::new(), Vec::new()];
    loop {
        // The pipes still open, by index, and which of them poll reports.
        let open: Vec<usize> = (0..2).filter(|&k| files[k].is_some()).collect();
        if open.is_empty() {
            break;
        }
        let mut fds: Vec<PollFd> = files
            .iter()
            .flatten()
            .map(|f| PollFd::new(f.as_fd(), PollFlags::POLLIN))
            .collect();
        match poll(&mut fds, PollTimeout::NONE) {
            Err(nix::errno::Errno::EINTR) => continue,
            r => r.context("poll ps output")?,
        };
        let ready: Vec<usize> = open
            .into_iter()
            .zip(&fds)
            .filter(|(_, p)| p.revents().is_some_and(|r| !r.is_empty()))
            .map(|(k, _)| k)
            .collect();
        drop(fds);
        for k in ready {
            let mut chunk = [0u8; 8192];
            let Some(file) = files[k].as_mut() else {
                continue;
            };
            match file.read(&mut chunk) {
                Ok(0) => files[k] = None,
                Ok(n) => bufs[k].extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e).context("read ps output"),
            }
        }
    }
    let [out, err] = bufs;
    Ok((out, err))
}
