//! Entering the new root: `pivot_root` (the default), or `MS_MOVE` + `chroot`
//! for `--no-pivot` (roots on ramfs, where pivot_root is refused). Like
//! firecracker's jailer, each step says why. Must never leave the old root
//! reachable after `pivot_root`, nor let its unmount reach the host.

use std::os::fd::AsRawFd;
use std::path::Path;

use anyhow::{Context, Result};
use nix::mount::{umount2, MntFlags, MsFlags};
use nix::unistd::{chdir, chroot, fchdir, pivot_root};

use super::paths::Root;
use super::syscalls::{self, SysError};

pub fn enter_with_pivot_root(root: &Root) -> Result<()> {
    let host = root.host().display();
    // Work on the root by fd, so "." is exactly the mount we built.
    fchdir(root.fd().as_raw_fd())
        .map_err(SysError)
        .with_context(|| format!("chdir to new root {host}"))?;
    // pivot_root(".", ".") stacks the old root on top of the new one at "/";
    // no put_old directory is needed inside the container's tree.
    pivot_root(".", ".")
        .map_err(SysError)
        .with_context(|| format!("pivot_root to {host}"))?;
    // The old root is on top now; make it a slave so the detach below cannot
    // propagate an unmount to the host (it already receives nothing back).
    syscalls::set_propagation(Path::new("."), MsFlags::MS_SLAVE | MsFlags::MS_REC)
        .context("make old root rslave (flags slave|rec)")?;
    // Detach the old root: the container can no longer reach any host mount.
    umount2(".", MntFlags::MNT_DETACH)
        .map_err(SysError)
        .context("unmount old root")?;
    // The cwd may point into the detached old root; re-anchor at the new "/".
    chdir("/").map_err(SysError).context("chdir to /")?;
    Ok(())
}

/// For roots where pivot_root is impossible. Weaker: the old root stays
/// mounted (hidden under the chroot) in this mount namespace.
pub fn enter_with_move(root: &Root) -> Result<()> {
    let host = root.host().display();
    // Be inside the new root so "." names it after the move.
    fchdir(root.fd().as_raw_fd())
        .map_err(SysError)
        .with_context(|| format!("chdir to new root {host}"))?;
    // Put the new root's mount over "/".
    syscalls::mount(
        Some(Path::new(".")),
        Path::new("/"),
        None,
        MsFlags::MS_MOVE,
        None,
    )
    .with_context(|| format!("move mount {host} on / (flags move)"))?;
    // Make that mount the process's root directory.
    chroot(".")
        .map_err(SysError)
        .context("chroot to new root")?;
    // Leave no cwd outside the chroot (the classic chroot escape).
    chdir("/").map_err(SysError).context("chdir to /")?;
    Ok(())
}
