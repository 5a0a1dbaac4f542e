//! Thin wrappers over the system calls `rootfs` needs that `nix` lacks or
//! words awkwardly: `openat2`, `mount_setattr`, `mount` with a runc-style
//! error, and the `/proc/self/fd/N` names we mount through. This file owns the
//! module's raw `unsafe`; it must never decide what is mounted where.

use std::fmt;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{OFlag, OpenHow, ResolveFlag};
use nix::mount::MsFlags;

/// An errno that prints as the C library's text ("No such file or
/// directory"), so an error chain reads like runc's. Callers that must branch
/// on the errno `downcast_ref::<SysError>()`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SysError(pub Errno);

impl fmt::Display for SysError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0.desc())
    }
}

impl std::error::Error for SysError {}

impl From<Errno> for SysError {
    fn from(e: Errno) -> Self {
        SysError(e)
    }
}

pub type SysResult<T> = std::result::Result<T, SysError>;

/// `mount(2)`; `None` arguments are passed as NULL.
pub fn mount(
    source: Option<&Path>,
    target: &Path,
    fstype: Option<&str>,
    flags: MsFlags,
    data: Option<&str>,
) -> SysResult<()> {
    nix::mount::mount(source, target, fstype, flags, data).map_err(SysError)
}

/// Change only the propagation type of the mount at `target`.
pub fn set_propagation(target: &Path, propagation: MsFlags) -> SysResult<()> {
    mount(None, target, None, propagation, None)
}

/// `openat2(2)` with `O_CLOEXEC` always added. Retries the `EAGAIN` the
/// kernel returns when a rename raced a `RESOLVE_IN_ROOT` lookup.
pub fn openat2(
    dir: BorrowedFd<'_>,
    path: &Path,
    flags: OFlag,
    resolve: ResolveFlag,
) -> SysResult<OwnedFd> {
    let how = OpenHow::new()
        .flags(flags | OFlag::O_CLOEXEC)
        .resolve(resolve);
    let mut tries = 0;
    loop {
        match nix::fcntl::openat2(dir.as_raw_fd(), path, how) {
            // SAFETY: openat2 just returned this fd and nothing else owns it.
            Ok(fd) => return Ok(unsafe { OwnedFd::from_raw_fd(fd) }),
            Err(Errno::EAGAIN) if tries < 8 => tries += 1,
            Err(e) => return Err(SysError(e)),
        }
    }
}

/// `open(2)` of a host path (trusted: it comes from the spec or from berth).
pub fn open_host(path: &Path, flags: OFlag) -> SysResult<OwnedFd> {
    let fd = nix::fcntl::open(
        path,
        flags | OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )?;
    // SAFETY: open just returned this fd and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `openat(2)` relative to `dir`, `O_CLOEXEC` always added.
pub fn openat(
    dir: BorrowedFd<'_>,
    name: &Path,
    flags: OFlag,
    mode: nix::sys::stat::Mode,
) -> SysResult<OwnedFd> {
    let fd = nix::fcntl::openat(Some(dir.as_raw_fd()), name, flags | OFlag::O_CLOEXEC, mode)?;
    // SAFETY: openat just returned this fd and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// The magic-link name of an open fd. Mounting onto it (or from it) acts on
/// exactly the inode the fd holds, with no second path lookup to race.
pub fn fd_path(fd: BorrowedFd<'_>) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()))
}

// Mount attributes for mount_setattr(2), from <linux/mount.h>.
pub const MOUNT_ATTR_RDONLY: u64 = 0x1;
pub const MOUNT_ATTR_NOSUID: u64 = 0x2;
pub const MOUNT_ATTR_NODEV: u64 = 0x4;
pub const MOUNT_ATTR_NOEXEC: u64 = 0x8;
pub const MOUNT_ATTR_ATIME: u64 = 0x70;
pub const MOUNT_ATTR_RELATIME: u64 = 0x0;
pub const MOUNT_ATTR_NOATIME: u64 = 0x10;
pub const MOUNT_ATTR_STRICTATIME: u64 = 0x20;
pub const MOUNT_ATTR_NODIRATIME: u64 = 0x80;

#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

/// `mount_setattr(fd, "", AT_EMPTY_PATH | AT_RECURSIVE)`: change per-mount
/// flags on a whole mount tree at once (kernel 5.12+, `ENOSYS` before).
pub fn mount_setattr_recursive(fd: BorrowedFd<'_>, set: u64, clear: u64) -> SysResult<()> {
    let attr = MountAttr {
        attr_set: set,
        attr_clr: clear,
        propagation: 0,
        userns_fd: 0,
    };
    // SAFETY: the path is a valid NUL-terminated empty string, `attr` is a
    // live, correctly laid out struct whose size we pass, and the kernel only
    // reads it.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            fd.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_EMPTY_PATH | libc::AT_RECURSIVE,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    Errno::result(ret).map(drop).map_err(SysError)
}

/// Read one extended attribute of `path` without following a final symlink.
/// `Ok(None)` when the attribute is absent.
pub fn lgetxattr(path: &Path, name: &std::ffi::CStr, buf: &mut [u8]) -> SysResult<Option<usize>> {
    use std::os::unix::ffi::OsStrExt;
    let cpath =
        std::ffi::CString::new(path.as_os_str().as_bytes()).map_err(|_| SysError(Errno::EINVAL))?;
    // SAFETY: both strings are NUL-terminated and outlive the call; the
    // kernel writes at most `buf.len()` bytes into `buf`.
    let ret = unsafe {
        libc::lgetxattr(
            cpath.as_ptr(),
            name.as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    match Errno::result(ret) {
        Ok(n) => Ok(Some(n as usize)),
        Err(Errno::ENODATA) => Ok(None),
        Err(e) => Err(SysError(e)),
    }
}

/// Render mount flags for an error message: `nosuid|nodev|noexec`.
pub fn flags_str(flags: MsFlags) -> String {
    const NAMES: &[(MsFlags, &str)] = &[
        (MsFlags::MS_RDONLY, "ro"),
        (MsFlags::MS_NOSUID, "nosuid"),
        (MsFlags::MS_NODEV, "nodev"),
        (MsFlags::MS_NOEXEC, "noexec"),
        (MsFlags::MS_SYNCHRONOUS, "sync"),
        (MsFlags::MS_REMOUNT, "remount"),
        (MsFlags::MS_MANDLOCK, "mand"),
        (MsFlags::MS_DIRSYNC, "dirsync"),
        (MsFlags::MS_NOATIME, "noatime"),
        (MsFlags::MS_NODIRATIME, "nodiratime"),
        (MsFlags::MS_BIND, "bind"),
        (MsFlags::MS_MOVE, "move"),
        (MsFlags::MS_REC, "rec"),
        (MsFlags::MS_UNBINDABLE, "unbindable"),
        (MsFlags::MS_PRIVATE, "private"),
        (MsFlags::MS_SLAVE, "slave"),
        (MsFlags::MS_SHARED, "shared"),
        (MsFlags::MS_RELATIME, "relatime"),
        (MsFlags::MS_STRICTATIME, "strictatime"),
    ];
    let mut out = String::new();
    for (f, name) in NAMES {
        if flags.contains(*f) {
            if !out.is_empty() {
                out.push('|');
            }
            out.push_str(name);
        }
    }
    if out.is_empty() {
        out.push('0');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sys_error_prints_libc_text() {
        assert_eq!(
            SysError(Errno::ENOENT).to_string(),
            "No such file or directory"
        );
    }

    #[test]
    fn flags_render_in_kernel_order() {
        let f = MsFlags::MS_NOEXEC | MsFlags::MS_NOSUID | MsFlags::MS_NODEV;
        assert_eq!(flags_str(f), "nosuid|nodev|noexec");
        assert_eq!(flags_str(MsFlags::empty()), "0");
    }
}
