//! `linux.maskedPaths` and `linux.readonlyPaths`: hiding and freezing kernel
//! interfaces (`/proc/kcore`, `/proc/sys`, ...) inside the container. A
//! masked file gets the container's `/dev/null` bound over it, and only after
//! checking through the open fd that it really is the 1:3 character device; a
//! masked directory gets an empty read-only tmpfs, one for all of them (the
//! first is bound over the rest: every superblock a container holds costs
//! its delete a walk in the kernel's memory-cgroup teardown). Missing paths
//! are skipped, as the spec says. This module must never mount a file it has
//! not verified.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::Path;

use anyhow::{bail, Context, Result};
use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::mount::MsFlags;
use nix::sys::stat::{fstat, major, minor};

use super::mounts::bind_readonly;
use super::paths::{Lookup, Root};
use super::syscalls::{self, fd_path, SysError};

/// Open the container's `/dev/null` and prove it is the real one, so a
/// rootfs that planted a FIFO or a regular file there cannot be bound over
/// `/proc/kcore` and the like.
fn open_dev_null(root: &Root) -> Result<OwnedFd> {
    let fd = root
        .open_in(Path::new("/dev/null"), OFlag::O_PATH, Lookup::InRoot)
        .context("open /dev/null in the container root")?;
    let st = fstat(fd.as_raw_fd())
        .map_err(SysError)
        .context("stat /dev/null in the container root")?;
    let rdev = st.st_rdev;
    if st.st_mode & libc::S_IFMT != libc::S_IFCHR || major(rdev) != 1 || minor(rdev) != 3 {
        bail!(
            "/dev/null in the container root is not the 1:3 character device (mode {:o}, device {}:{})",
            st.st_mode,
            major(rdev),
            minor(rdev)
        );
    }
    Ok(fd)
}

/// `path` in the container root as an O_PATH fd, or None when it does not
/// exist: the spec skips missing masked and readonly paths. Told by the
/// errno alone, before any error (and, with RUST_BACKTRACE, a backtrace)
/// is made of it.
fn open_if_present(root: &Root, path: &Path) -> Result<Option<OwnedFd>, SysError> {
    match root.open_in(path, OFlag::O_PATH, Lookup::InRoot) {
        Ok(fd) => Ok(Some(fd)),
        Err(SysError(Errno::ENOENT)) => Ok(None),
        Err(e) => Err(e),
    }
}

/// `label`: linux.mountLabel, the context of the tmpfs over a directory.
pub fn mask_paths(root: &Root, paths: &[String], label: Option<&str>) -> Result<()> {
    if paths.is_empty() {
        return Ok(());
    }
    let null = open_dev_null(root)?;
    let null_path = fd_path(null.as_fd());
    // The root of the first masked directory's tmpfs, once mounted.
    let mut empty: Option<OwnedFd> = None;
    for p in paths {
        let path = Path::new(p);
        let Some(fd) =
            open_if_present(root, path).with_context(|| format!("open masked path {p}"))?
        else {
            continue;
        };
        let st = fstat(fd.as_raw_fd())
            .map_err(SysError)
            .with_context(|| format!("stat masked path {p}"))?;
        let target = fd_path(fd.as_fd());
        if let (libc::S_IFDIR, Some(empty)) = (st.st_mode & libc::S_IFMT, &empty) {
            // Its mount flags (ro, nosuid, nodev, noexec) come with it.
            syscalls::mount(
                Some(&fd_path(empty.as_fd())),
                &target,
                None,
                MsFlags::MS_BIND,
                None,
            )
            .with_context(|| format!("bind the empty tmpfs on {p} (flags bind)"))?;
        } else if st.st_mode & libc::S_IFMT == libc::S_IFDIR {
            let flags =
                MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
            let data = crate::security::selinux::mount_data("", label);
            let data = (!data.is_empty()).then_some(data.as_str());
            syscalls::mount(
                Some(Path::new("tmpfs")),
                &target,
                Some("tmpfs"),
                flags,
                data,
            )
            .with_context(|| {
                let with = data.map(|d| format!(", data {d}")).unwrap_or_default();
                format!(
                    "mount tmpfs on {p} (flags {}{with})",
                    syscalls::flags_str(flags)
                )
            })?;
            empty =
                Some(mounted_tmpfs(root, path).with_context(|| format!("open the tmpfs on {p}"))?);
        } else {
            syscalls::mount(Some(&null_path), &target, None, MsFlags::MS_BIND, None)
                .with_context(|| format!("bind mount /dev/null on {p} (flags bind)"))?;
        }
    }
    Ok(())
}

/// The root of the read-only tmpfs just mounted on `path`: opened by its
/// path, which crosses into the new mount (the fd the mount went onto
/// still names the directory below it), and checked to be that tmpfs.
fn mounted_tmpfs(root: &Root, path: &Path) -> Result<OwnedFd> {
    let fd = root
        .open_in(path, OFlag::O_PATH, Lookup::InRoot)
        .map_err(anyhow::Error::new)?;
    let fs = nix::sys::statfs::fstatfs(&fd).map_err(SysError)?;
    if fs.filesystem_type() != nix::sys::statfs::TMPFS_MAGIC
        || !fs.flags().contains(nix::sys::statvfs::FsFlags::ST_RDONLY)
    {
        bail!("it is not the read-only tmpfs just mounted");
    }
    Ok(fd)
}

pub fn readonly_paths(root: &Root, paths: &[String]) -> Result<()> {
    for p in paths {
        let path = Path::new(p);
        let Some(fd) =
            open_if_present(root, path).with_context(|| format!("make {p} read-only"))?
        else {
            continue;
        };
        bind_readonly(root, path, fd).with_context(|| format!("make {p} read-only"))?;
    }
    Ok(())
}
