//! The calling thread's LSM attribute files (`/proc/thread-self/attr/...`),
//! shared by the AppArmor and SELinux exec labels.
//!
//! These writes run in the container's mount namespace, where /proc is the
//! container's: /proc is opened without following symlinks and checked to
//! be procfs, the attr file is resolved beneath it without crossing a mount
//! (where openat2 exists) and is checked to be procfs too, so that a /proc
//! or attr file mounted over by the bundle cannot swallow or redirect the
//! write (CVE-2019-16884). This module must never write anywhere else.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use anyhow::{bail, Context, Result};
use nix::errno::Errno;
use nix::fcntl::{openat, openat2, OFlag, OpenHow, ResolveFlag};
use nix::sys::stat::Mode;

/// Write `data` to the first of `candidates` (paths below /proc, e.g.
/// `thread-self/attr/apparmor/exec`) that exists: the LSM-specific file
/// first, the shared one of older kernels (or of LSMs without their own
/// directory, like SELinux) last.
pub fn write_exec_attr(candidates: &[&str], data: &str) -> Result<()> {
    let proc_dir = open_fd(
        None,
        "/proc",
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
    )
    .context("open /proc for the exec label")?;
    check_procfs(&proc_dir, "/proc")?;
    let (fd, path) = open_first(&proc_dir, candidates)?;
    check_procfs(&fd, &path)?;
    let n = nix::unistd::write(&fd, data.as_bytes())
        .with_context(|| format!("write {data:?} to {path}"))?;
    if n != data.len() {
        bail!("short write to {path} ({n} of {} bytes)", data.len());
    }
    Ok(())
}

/// The first of `candidates` that exists, opened for writing.
fn open_first(proc_dir: &OwnedFd, candidates: &[&str]) -> Result<(OwnedFd, String)> {
    let flags = OFlag::O_WRONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    for rel in candidates {
        let path = format!("/proc/{rel}");
        match open_fd(Some(proc_dir), rel, flags) {
            Ok(fd) => return Ok((fd, path)),
            Err(Errno::ENOENT) => {}
            Err(e) => return Err(e).with_context(|| format!("open {path}")),
        }
    }
    let names: Vec<String> = candidates.iter().map(|c| format!("/proc/{c}")).collect();
    let tried = match names.split_first() {
        Some((first, [])) => first.clone(),
        Some((first, rest)) => format!("{first} (or {})", rest.join(", ")),
        None => "no exec attr file".into(),
    };
    Err(Errno::ENOENT).with_context(|| format!("open {tried}"))
}

/// `path` opened with `flags`, relative to `dir` (beneath it and on its
/// mount, when the kernel has openat2), or absolute.
fn open_fd(dir: Option<&OwnedFd>, path: &str, flags: OFlag) -> nix::Result<OwnedFd> {
    let raw = match dir {
        Some(dir) => {
            let how = OpenHow::new().flags(flags).resolve(
                ResolveFlag::RESOLVE_BENEATH
                    | ResolveFlag::RESOLVE_NO_XDEV
                    | ResolveFlag::RESOLVE_NO_MAGICLINKS,
            );
            match openat2(dir.as_raw_fd(), path, how) {
                // Kernels before 5.6 (or a seccomp filter that hides it).
                Err(Errno::ENOSYS) => openat(Some(dir.as_raw_fd()), path, flags, Mode::empty()),
                r => r,
            }
        }
        None => openat(None, path, flags, Mode::empty()),
    }?;
    // SAFETY: openat/openat2 returned a new fd that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(raw) })
}

fn check_procfs(fd: &OwnedFd, path: &str) -> Result<()> {
    let st = nix::sys::statfs::fstatfs(fd).with_context(|| format!("statfs {path}"))?;
    if st.filesystem_type() != nix::sys::statfs::PROC_SUPER_MAGIC {
        bail!("{path} is not procfs: refusing to write the exec label there");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_candidates_are_named() {
        let err = write_exec_attr(&["self/berth-no-such", "self/berth-nor-this"], "x")
            .err()
            .map(|e| format!("{e:#}"));
        assert_eq!(
            err.as_deref(),
            Some("open /proc/self/berth-no-such (or /proc/self/berth-nor-this): ENOENT: No such file or directory")
        );
    }
}
