//! CVE-2019-5736: the berth image that makes a container's final `execve`
//! must not be a file the container can write.
//!
//! The create/run/exec child is a clone of the berth process and makes the
//! container's final `execve`, where `/proc/self/exe` is still berth: a
//! `#!/proc/self/exe` entrypoint (or a symlink to it) runs berth's own image
//! inside the container, where a container process can open its
//! `/proc/<pid>/exe` and, once it exits, write through it. So create, run
//! and exec re-execute themselves once, at start, from a view of the binary
//! that refuses every write:
//!
//! 1. **A sealed overlay** (as runc ≥ 1.2 does): a detached, read-only
//!    overlayfs whose only layers are the binary's directory and `/dev`
//!    (overlayfs wants a second lower layer when it has no upper one), with
//!    no upper layer. Nothing is copied; the mount is reachable only
//!    through the running image and cannot be made writable (an overlay
//!    without an upper layer has nowhere to write, whatever its mount
//!    flags). Needs CAP_SYS_ADMIN.
//! 2. **A sealed memfd copy** otherwise (rootless, no overlayfs, a deleted
//!    or replaced binary): the whole binary copied into a memfd whose seals
//!    refuse writes (crun, runc 1.1). Copying the 2.9 MB binary took ~2.9 ms
//!    per start on the bench machine; the overlay ~0.3 ms.
//!
//! `BERTH_EXE_SEAL=copy` chooses the copy always: the container then never
//! even reads the host's file, which also keeps it out of reach of a kernel
//! bug that lets a reader write the page cache (Dirty Pipe and its kind),
//! at the copy's cost. `overlay` (the default) is the order above.

use std::ffi::{CStr, CString, OsString};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::Path;

use anyhow::{bail, Context, Result};

/// Chooses the mechanism: `overlay` (default, falls back to `copy`) or `copy`.
pub const SEAL_ENV: &str = "BERTH_EXE_SEAL";
const OVERLAYFS_SUPER_MAGIC: libc::c_long = 0x794c_7630;
const TMPFS_MAGIC: libc::c_long = 0x0102_1994;
const SEALS: libc::c_int =
    libc::F_SEAL_SEAL | libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_WRITE;

/// Make sure this process runs from a write-proof image of berth,
/// re-executing once if it does not.
pub fn ensure_sealed() -> Result<()> {
    let copy_only = match std::env::var_os(SEAL_ENV) {
        None => false,
        Some(v) if v == "overlay" => false,
        Some(v) if v == "copy" => true,
        Some(v) => bail!(
            "{SEAL_ENV}={}: expected overlay or copy",
            v.to_string_lossy()
        ),
    };
    if running_sealed(copy_only)? {
        // An fd exec names the process after the fd or the file: give ps,
        // pkill and the OCI hooks' view back the name it was started by.
        set_name_from_argv0();
        return Ok(());
    }
    let argv = cstrings(std::env::args_os())?;
    let envp = cstrings(std::env::vars_os().map(|(k, v)| {
        let mut kv = k;
        kv.push("=");
        kv.push(v);
        kv
    }))?;
    if !copy_only {
        // Either no overlay could be made (not root, no overlayfs, the
        // binary is gone) or its exec failed: the copy works wherever
        // memfds do.
        let failed = match sealed_overlay() {
            Ok((mnt, name)) => anyhow::Error::new(exec_at(&mnt, &name, 0, &argv, &envp))
                .context("execute berth from its sealed overlay"),
            Err(e) => e,
        };
        crate::logging::debug(&format!("{failed:#}; copying berth into a sealed memfd"));
    }
    let copy = sealed_copy()?;
    let err = exec_at(&copy, c"", libc::AT_EMPTY_PATH, &argv, &envp);
    Err(err).context("execute berth's sealed memfd copy")
}

/// Whether `/proc/self/exe` is one of the two sealed images: a sealed
/// memfd, or a file on a read-only overlay mount. The latter is ours, or
/// berth installed on a read-only overlay (an image's root): writing there
/// first takes a remount by someone with CAP_SYS_ADMIN over that mount,
/// which a container does not have.
fn running_sealed(copy_only: bool) -> Result<bool> {
    let sfs = statfs_exe()?;
    match sfs.f_type {
        OVERLAYFS_SUPER_MAGIC if !copy_only => Ok(sfs.f_flags as u64 & libc::ST_RDONLY != 0),
        TMPFS_MAGIC => {
            let exe = std::fs::File::open("/proc/self/exe").context("open /proc/self/exe")?;
            // SAFETY: F_GET_SEALS reads the seals of an fd we own; a file
            // that is not a memfd answers EINVAL.
            let seals = unsafe { libc::fcntl(exe.as_raw_fd(), libc::F_GET_SEALS) };
            Ok(seals >= 0 && seals & SEALS == SEALS)
        }
        _ => Ok(false),
    }
}

/// The kernel's `struct statfs` (64-bit): libc's hides f_flags.
#[repr(C)]
struct KernelStatfs {
    f_type: libc::c_long,
    f_bsize: libc::c_long,
    f_blocks: libc::c_long,
    f_bfree: libc::c_long,
    f_bavail: libc::c_long,
    f_files: libc::c_long,
    f_ffree: libc::c_long,
    f_fsid: [libc::c_int; 2],
    f_namelen: libc::c_long,
    f_frsize: libc::c_long,
    f_flags: libc::c_long,
    f_spare: [libc::c_long; 4],
}

fn statfs_exe() -> Result<KernelStatfs> {
    // SAFETY: all-zero is a valid KernelStatfs (plain integers).
    let mut sfs: KernelStatfs = unsafe { std::mem::zeroed() };
    // SAFETY: statfs writes one `struct statfs`, which KernelStatfs lays out,
    // into memory we own; the path is a NUL-terminated literal.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_statfs,
            c"/proc/self/exe".as_ptr(),
            &mut sfs as *mut KernelStatfs,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error()).context("statfs /proc/self/exe");
    }
    Ok(sfs)
}

/// The sealed overlay's second layer: any directory that exists everywhere
/// and is neither inside nor above the binary's (overlayfs refuses
/// overlapping layers; berth then falls back to the copy). Its entries are
/// shadowed for the binary's name and unreachable otherwise: the mount is
/// detached, and only the binary's file can be reached, through the image.
const SECOND_LAYER: &[u8] = b"/dev";

/// fsopen/fsconfig/fsmount a read-only overlay of the binary's directory
/// over SECOND_LAYER (the top layer, the binary's, wins for its name).
/// Returns the detached mount and the binary's name in it, after checking
/// that the file there is the one running (same size and mtime).
fn sealed_overlay() -> Result<(OwnedFd, CString)> {
    let exe = std::fs::read_link("/proc/self/exe").context("readlink /proc/self/exe")?;
    let (Some(dir), Some(name)) = (exe.parent(), exe.file_name()) else {
        bail!(
            "/proc/self/exe is {}: no directory to overlay",
            exe.display()
        );
    };
    if !exe.is_absolute() {
        bail!("/proc/self/exe is {}: not a path", exe.display());
    }
    let ctx = fd_or_err(
        // SAFETY: fsopen reads a NUL-terminated fs name and returns a new fd.
        unsafe { libc::syscall(libc::SYS_fsopen, c"overlay".as_ptr(), FSOPEN_CLOEXEC) },
        "fsopen overlay",
    )?;
    let mut lower = escape_lowerdir(dir.as_os_str().as_bytes());
    lower.push(b':');
    lower.extend(SECOND_LAYER);
    let lower = CString::new(lower).context("a binary path with a NUL byte")?;
    fsconfig(&ctx, FSCONFIG_SET_STRING, c"lowerdir", Some(&lower))
        .with_context(|| format!("overlay lowerdir={}", lower.to_string_lossy()))?;
    // Layers on different filesystems would turn xino on, and log about it.
    let _ = fsconfig(&ctx, FSCONFIG_SET_STRING, c"xino", Some(c"off"));
    fsconfig(&ctx, FSCONFIG_CMD_CREATE, c"", None).context("create the sealed overlay")?;
    let mnt = fd_or_err(
        // SAFETY: fsmount takes the context fd we own and plain flags.
        unsafe {
            libc::syscall(
                libc::SYS_fsmount,
                ctx.as_raw_fd(),
                FSMOUNT_CLOEXEC,
                MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV,
            )
        },
        "fsmount the sealed overlay",
    )?;
    let name = CString::new(name.as_bytes()).context("a binary name with a NUL byte")?;
    let seen = size_and_mtime(mnt.as_raw_fd(), &name, libc::AT_SYMLINK_NOFOLLOW)
        .with_context(|| format!("statx {} in the sealed overlay", exe.display()))?;
    let running =
        size_and_mtime(libc::AT_FDCWD, c"/proc/self/exe", 0).context("statx /proc/self/exe")?;
    if seen != running {
        bail!("{} changed since berth started", exe.display());
    }
    Ok((mnt, name))
}

/// Overlayfs splits lowerdir at ':' and takes '\' as escape.
fn escape_lowerdir(path: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(path.len());
    for &b in path {
        if b == b':' || b == b'\\' {
            out.push(b'\\');
        }
        out.push(b);
    }
    out
}

/// Copy the running binary into a memfd and seal it against every change.
fn sealed_copy() -> Result<OwnedFd> {
    let exe = std::fs::File::open("/proc/self/exe").context("open /proc/self/exe")?;
    let name = c"berth";
    // SAFETY: memfd_create reads a NUL-terminated name and returns a new fd.
    let raw = unsafe {
        libc::memfd_create(
            name.as_ptr(),
            libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING | libc::MFD_EXEC,
        )
    };
    let raw = if raw < 0 && io::Error::last_os_error().raw_os_error() == Some(libc::EINVAL) {
        // Kernels before 6.3 know no MFD_EXEC (their memfds are executable).
        // SAFETY: as above.
        unsafe { libc::memfd_create(name.as_ptr(), libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING) }
    } else {
        raw
    };
    let copy = fd_or_err(raw.into(), "memfd_create for berth's sealed copy")?;
    let len = exe.metadata().context("stat /proc/self/exe")?.len();
    let mut done = 0u64;
    while done < len {
        let want = usize::try_from(len - done).unwrap_or(usize::MAX);
        // SAFETY: in-kernel copy between two fds we own; NULL offset uses
        // and advances the source's file position.
        let n = unsafe {
            libc::sendfile(
                copy.as_raw_fd(),
                exe.as_raw_fd(),
                std::ptr::null_mut(),
                want,
            )
        };
        match n {
            n if n > 0 => done += n as u64,
            0 => bail!("copy berth into a memfd: /proc/self/exe ended at {done} of {len} bytes"),
            _ if io::Error::last_os_error().kind() == io::ErrorKind::Interrupted => {}
            _ => return Err(io::Error::last_os_error()).context("copy berth into a memfd"),
        }
    }
    // SAFETY: F_ADD_SEALS on our memfd; no memory is passed.
    if unsafe { libc::fcntl(copy.as_raw_fd(), libc::F_ADD_SEALS, SEALS) } != 0 {
        return Err(io::Error::last_os_error()).context("seal berth's memfd copy");
    }
    Ok(copy)
}

/// PR_SET_NAME from argv[0]'s basename (at most 15 bytes).
fn set_name_from_argv0() {
    let arg0 = std::env::args_os().next().unwrap_or_default();
    let base = Path::new(&arg0)
        .file_name()
        .map(|n| n.as_bytes().to_vec())
        .unwrap_or_else(|| b"berth".to_vec());
    let mut name = [0u8; 16];
    let n = base.len().min(15);
    name[..n].copy_from_slice(&base[..n]);
    // SAFETY: PR_SET_NAME reads a NUL-terminated name of at most 16 bytes
    // from a buffer we own.
    unsafe { libc::prctl(libc::PR_SET_NAME, name.as_ptr(), 0, 0, 0) };
}

fn cstrings(items: impl Iterator<Item = OsString>) -> Result<Vec<CString>> {
    items
        .map(|s| CString::new(s.into_vec()).context("argument or environment with a NUL byte"))
        .collect()
}

/// execveat(dirfd, name, argv, envp, flags); returns only on failure.
fn exec_at(
    dirfd: &OwnedFd,
    name: &CStr,
    flags: libc::c_int,
    argv: &[CString],
    envp: &[CString],
) -> io::Error {
    let ptrs = |v: &[CString]| -> Vec<*const libc::c_char> {
        v.iter()
            .map(|c| c.as_ptr())
            .chain(std::iter::once(std::ptr::null()))
            .collect()
    };
    let (argv_p, envp_p) = (ptrs(argv), ptrs(envp));
    // SAFETY: the fd is ours; name, argv and envp are NUL-terminated (arrays
    // NULL-terminated) and outlive the call. On success it does not return.
    unsafe {
        libc::syscall(
            libc::SYS_execveat,
            dirfd.as_raw_fd(),
            name.as_ptr(),
            argv_p.as_ptr(),
            envp_p.as_ptr(),
            flags,
        )
    };
    io::Error::last_os_error()
}

// From <linux/mount.h>.
const FSOPEN_CLOEXEC: libc::c_uint = 1;
const FSMOUNT_CLOEXEC: libc::c_uint = 1;
const FSCONFIG_SET_STRING: libc::c_uint = 1;
const FSCONFIG_CMD_CREATE: libc::c_uint = 6;
const MOUNT_ATTR_RDONLY: libc::c_uint = 0x1;
const MOUNT_ATTR_NOSUID: libc::c_uint = 0x2;
const MOUNT_ATTR_NODEV: libc::c_uint = 0x4;

fn fsconfig(ctx: &OwnedFd, cmd: libc::c_uint, key: &CStr, value: Option<&CStr>) -> Result<()> {
    let (key_p, value_p) = match cmd {
        FSCONFIG_CMD_CREATE => (std::ptr::null(), std::ptr::null()),
        _ => (key.as_ptr(), value.map_or(std::ptr::null(), CStr::as_ptr)),
    };
    // SAFETY: fsconfig on a context fd we own; key and value are
    // NUL-terminated strings (or NULL for a command) that outlive the call.
    let rc = unsafe { libc::syscall(libc::SYS_fsconfig, ctx.as_raw_fd(), cmd, key_p, value_p, 0) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error().into())
    }
}

fn fd_or_err(rc: libc::c_long, what: &str) -> Result<OwnedFd> {
    if rc < 0 {
        return Err(io::Error::last_os_error()).context(what.to_string());
    }
    // SAFETY: the syscall returned a new fd that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(rc as libc::c_int) })
}

/// statx(dir, path, flags): the file's size and modification time.
fn size_and_mtime(
    dir: libc::c_int,
    path: &CStr,
    flags: libc::c_int,
) -> io::Result<(u64, i64, u32)> {
    // SAFETY: all-zero is a valid statx (plain integers).
    let mut st: libc::statx = unsafe { std::mem::zeroed() };
    // SAFETY: statx writes into the struct we own; the path is NUL-terminated.
    let rc = unsafe {
        libc::statx(
            dir,
            path.as_ptr(),
            flags,
            libc::STATX_SIZE | libc::STATX_MTIME,
            &mut st,
        )
    };
    if rc == 0 {
        Ok((st.stx_size, st.stx_mtime.tv_sec, st.stx_mtime.tv_nsec))
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lowerdir_escapes_colons_and_backslashes() {
        assert_eq!(escape_lowerdir(b"/usr/bin"), b"/usr/bin");
        assert_eq!(escape_lowerdir(b"/a:b\\c"), b"/a\\:b\\\\c");
    }
}
