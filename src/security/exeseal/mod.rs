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
//!
//! The overlay re-exec normally happens before glibc has even started
//! ([`early`]); `ensure_sealed` in `main` is where it happens when that
//! could not (and where the copy is made).

pub(crate) mod early;

use std::ffi::{CString, OsString};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::Path;

use anyhow::{bail, Context, Result};

use early::{Failure, SEALS};

/// Chooses the mechanism: `overlay` (default, falls back to `copy`) or `copy`.
pub const SEAL_ENV: &str = "BERTH_EXE_SEAL";

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
    // berth_entry has looked already unless the environment asks for the
    // copy (then only a sealed memfd will do).
    if early::found_sealed() || early::running_sealed(copy_only)? {
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
    let (argv, envp) = (c_array(&argv), c_array(&envp));
    if !copy_only {
        // Either no overlay could be made (not root, no overlayfs, the
        // binary is gone) or its exec failed: the copy works wherever
        // memfds do.
        // SAFETY: NULL-terminated arrays of the C strings above, which
        // outlive the call.
        let failed = unsafe { early::exec_sealed_overlay(argv.as_ptr(), envp.as_ptr()) };
        let failed = anyhow::Error::from(failed);
        crate::logging::debug(&format!("{failed:#}; copying berth into a sealed memfd"));
    }
    let copy = sealed_copy()?;
    // SAFETY: the fd is ours; argv and envp are NULL-terminated arrays of
    // C strings that outlive the call. On success it does not return.
    unsafe {
        libc::syscall(
            libc::SYS_execveat,
            copy.as_raw_fd(),
            c"".as_ptr(),
            argv.as_ptr(),
            envp.as_ptr(),
            libc::AT_EMPTY_PATH,
        )
    };
    Err(io::Error::last_os_error()).context("execute berth's sealed memfd copy")
}

impl From<Failure> for anyhow::Error {
    fn from(f: Failure) -> Self {
        match f.errno {
            0 => anyhow::anyhow!(f.step),
            e => anyhow::Error::new(io::Error::from_raw_os_error(e)).context(f.step),
        }
    }
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

/// The pointers of `strings` and a NULL: what execve takes.
fn c_array(strings: &[CString]) -> Vec<*const libc::c_char> {
    strings
        .iter()
        .map(|c| c.as_ptr())
        .chain(std::iter::once(std::ptr::null()))
        .collect()
}

fn fd_or_err(rc: libc::c_long, what: &str) -> Result<OwnedFd> {
    if rc < 0 {
        return Err(io::Error::last_os_error()).context(what.to_string());
    }
    // SAFETY: the syscall returned a new fd that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(rc as libc::c_int) })
}
