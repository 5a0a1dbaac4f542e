//! AppArmor: `process.apparmorProfile`, set as the exec label of the
//! container process so that the kernel confines it from its execve on.
//!
//! A profile asked for on a host without AppArmor is an error (validation
//! calls [`check`]); the profile itself must already be loaded in the kernel.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use anyhow::{bail, Context, Result};
use nix::errno::Errno;
use nix::fcntl::{openat, openat2, OFlag, OpenHow, ResolveFlag};
use nix::sys::stat::Mode;

/// The kernel's switch: "Y" when AppArmor is built in, enabled and active.
const ENABLED: &str = "/sys/module/apparmor/parameters/enabled";

/// The exec label of the calling thread, below the (container's) /proc: the
/// LSM-specific file first, the shared one of kernels before 5.8 second.
const EXEC_ATTRS: &[&str] = &["thread-self/attr/apparmor/exec", "thread-self/attr/exec"];

/// Whether this host has AppArmor enabled.
pub fn enabled() -> bool {
    std::fs::read_to_string(ENABLED).is_ok_and(|s| s.trim() == "Y")
}

/// Validation of `process.apparmorProfile` (an empty one means none).
pub fn check(profile: &str) -> Result<()> {
    if profile.is_empty() {
        return Ok(());
    }
    if profile.chars().any(|c| c.is_control()) {
        bail!("process.apparmorProfile {profile:?}: contains a control character");
    }
    if !enabled() {
        bail!("process.apparmorProfile {profile:?}: AppArmor is not enabled on this host");
    }
    Ok(())
}

/// Make `profile` the profile this thread changes to at its next execve.
///
/// Runs in the container's mount namespace, so /proc is the container's:
/// /proc is opened without following symlinks and checked to be procfs, the
/// attr file is resolved beneath it without crossing a mount (where openat2
/// exists) and is checked to be procfs too, so that a /proc or attr file
/// mounted over by the bundle cannot swallow or redirect the write.
pub fn apply_on_exec(profile: &str) -> Result<()> {
    if profile.is_empty() {
        return Ok(());
    }
    let proc_dir = open_fd(
        None,
        "/proc",
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
    )
    .context("open /proc for the AppArmor exec label")?;
    check_procfs(&proc_dir, "/proc")?;
    let (fd, path) = open_exec_attr(&proc_dir)?;
    check_procfs(&fd, &path)?;
    let data = format!("exec {profile}");
    let n = nix::unistd::write(&fd, data.as_bytes()).with_context(|| {
        format!("process.apparmorProfile {profile:?}: write {data:?} to {path}")
    })?;
    if n != data.len() {
        bail!(
            "process.apparmorProfile {profile:?}: short write to {path} ({n} of {} bytes)",
            data.len()
        );
    }
    Ok(())
}

/// The first of [`EXEC_ATTRS`] that exists, opened for writing.
fn open_exec_attr(proc_dir: &OwnedFd) -> Result<(OwnedFd, String)> {
    let flags = OFlag::O_WRONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    let mut last = Errno::ENOENT;
    for rel in EXEC_ATTRS {
        let path = format!("/proc/{rel}");
        match open_fd(Some(proc_dir), rel, flags) {
            Ok(fd) => return Ok((fd, path)),
            Err(Errno::ENOENT) => last = Errno::ENOENT,
            Err(e) => return Err(e).with_context(|| format!("open {path}")),
        }
    }
    Err(last).with_context(|| format!("open {} (or {})", EXEC_ATTRS[0], EXEC_ATTRS[1]))
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
        bail!("{path} is not procfs: refusing to write the AppArmor exec label there");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_profile_is_none() {
        assert!(check("").is_ok());
        assert!(apply_on_exec("").is_ok());
    }

    #[test]
    fn check_follows_the_host() {
        let err = check("berth-test").err().map(|e| format!("{e:#}"));
        if enabled() {
            assert_eq!(err, None);
        } else {
            assert_eq!(
                err.as_deref(),
                Some(
                    r#"process.apparmorProfile "berth-test": AppArmor is not enabled on this host"#
                )
            );
        }
    }

    #[test]
    fn control_characters_are_refused() {
        assert!(check("a\nb").is_err());
    }
}
