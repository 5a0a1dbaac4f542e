//! The sealed overlay re-exec, done before glibc has started.
//!
//! `create`, `run` and `exec` re-execute themselves from a read-only view
//! of the binary (see the parent module). Done from `main`, that costs a
//! whole second start of a static glibc program (0.4-1.1 ms on the bench
//! VMs: its CPU feature probe is 43-90 CPUIDs, each a VM exit, plus the
//! page faults of relocating and initialising) and `main`'s own start-up,
//! all thrown away by the `execveat`. So the ELF entry point is
//! `berth_entry` (`src/build.rs` links with `-e`): it looks at argv and the
//! environment, and when the command is one of the three, makes the overlay
//! and execs through it straight away. Anything unexpected (an unknown
//! flag, `BERTH_EXE_SEAL` set, no overlayfs, not root, a failed step) makes
//! it return to glibc's `_start`, and `main` does the work as before,
//! with its error messages and the memfd fallback. `main` uses the same
//! functions below for its own attempt, so there is one implementation.
//!
//! What runs before glibc may not use anything glibc sets up: no
//! relocations have been applied (no pointer stored in a static, no
//! function pointer, no table of strings), there is no TLS (no errno, no
//! panics, no std) and the IFUNC'd string functions are not resolved (no
//! `memcpy`/`memset`/`bcmp`, which the compiler emits for slice copies,
//! comparisons and zeroed arrays: byte loops here are volatile so that they
//! stay loops). System calls are made directly, returning `-errno`.

use core::arch::global_asm;
use core::mem::MaybeUninit;
use core::ptr::{read_volatile, write_volatile};
use core::sync::atomic::{AtomicBool, Ordering};

use std::ffi::CStr;

use crate::sys::raw_syscall;

const OVERLAYFS_SUPER_MAGIC: i64 = 0x794c_7630;
const TMPFS_MAGIC: i64 = 0x0102_1994;
/// The seals a sealed memfd copy carries.
pub const SEALS: i32 =
    libc::F_SEAL_SEAL | libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_WRITE;

/// The sealed overlay's second layer: any directory that exists everywhere
/// and is neither inside nor above the binary's (overlayfs refuses
/// overlapping layers; berth then falls back to the copy). Its entries are
/// shadowed for the binary's name and unreachable otherwise: the mount is
/// detached, and only the binary's file can be reached, through the image.
const SECOND_LAYER: &[u8] = b":/dev\0";
const PATH_MAX: usize = 4096;
/// The lowerdir string: the directory escaped (at most twice its length),
/// then SECOND_LAYER.
const LOWER_MAX: usize = 2 * PATH_MAX + 8;

// From <linux/mount.h>.
const FSOPEN_CLOEXEC: usize = 1;
const FSMOUNT_CLOEXEC: usize = 1;
const FSCONFIG_SET_STRING: usize = 1;
const FSCONFIG_CMD_CREATE: usize = 6;

/// A step that failed, and its errno (0 when no system call failed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Failure {
    pub step: &'static str,
    pub errno: i32,
}

const fn fail(step: &'static str, errno: i32) -> Failure {
    Failure { step, errno }
}

// ELF entry: keep the kernel's stack pointer (argc, argv, envp, auxv) and
// rdx (the atexit pointer glibc's _start passes on), call pre_start with the
// stack pointer on a 16-byte aligned stack, then (when it did not exec)
// cpuid::before_libc, then enter glibc's _start with both exactly as the
// kernel left them.
global_asm!(
    ".globl berth_entry",
    ".type berth_entry, @function",
    "berth_entry:",
    "    mov r12, rsp",
    "    mov r13, rdx",
    "    mov rdi, rsp",
    "    and rsp, -16",
    "    call {pre_start}",
    "    call {before_libc}",
    "    mov rsp, r12",
    "    mov rdx, r13",
    "    jmp _start",
    ".size berth_entry, . - berth_entry",
    pre_start = sym pre_start,
    before_libc = sym crate::cpuid::before_libc,
);

/// Set by `pre_start` when it found this process already running sealed
/// (the re-executed image), so that `main` does not ask again. A plain
/// store into .bss, which needs no relocation.
static FOUND_SEALED: AtomicBool = AtomicBool::new(false);

/// Whether `berth_entry` found this process running from a sealed image.
/// False means only that it did not look (or that it is not sealed).
pub fn found_sealed() -> bool {
    FOUND_SEALED.load(Ordering::Relaxed)
}

/// Called from `berth_entry` with the initial stack pointer.
///
/// # Safety
/// Only from the entry point: `sp` must be the kernel's initial stack.
unsafe extern "C" fn pre_start(sp: *const usize) {
    // SAFETY: the kernel's initial stack is argc, then argc argv pointers
    // and a NULL, then the environment's pointers and a NULL.
    let (argc, argv, envp) = unsafe {
        let argc = *sp;
        let argv = sp.add(1) as *const *const u8;
        (argc, argv, argv.add(argc + 1))
    };
    // No subcommand at all (or an execve with an empty argv, whose
    // argv[1] would be the environment's first string).
    if argc < 2 {
        return;
    }
    // SAFETY: both are the kernel's NULL-terminated arrays of C strings.
    if !unsafe { command_wants_seal(argv) && overlay_allowed(envp) } {
        return;
    }
    match running_sealed(false) {
        Ok(false) => {}
        Ok(true) => return FOUND_SEALED.store(true, Ordering::Relaxed),
        Err(_) => return,
    }
    // SAFETY: as above; on success this does not return.
    let _ = unsafe { exec_sealed_overlay(argv.cast(), envp.cast()) };
}

/// How a global option (the words before the subcommand) is spelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Global {
    /// `--root DIR`: the next word is its value (unless given `--root=DIR`).
    Value,
    /// `--debug`, `--rootless=auto`: never takes the next word.
    Switch,
    /// Anything else: help, version, a short flag or an unknown one.
    Other,
}

/// The global options by their long name; must agree with
/// `cli::table::GLOBAL_OPTS` (a unit test holds them together). Each name
/// is compared on its own: an array of names would be a table of pointers,
/// which are not relocated yet when this runs.
pub fn global_option(name: &[u8]) -> Global {
    if bytes_eq(name, b"root")
        || bytes_eq(name, b"layer-root")
        || bytes_eq(name, b"log")
        || bytes_eq(name, b"log-format")
        || bytes_eq(name, b"criu")
    {
        Global::Value
    } else if bytes_eq(name, b"debug")
        || bytes_eq(name, b"systemd-cgroup")
        || bytes_eq(name, b"rootless")
    {
        Global::Switch
    } else {
        Global::Other
    }
}

/// Whether the subcommand, past the global options, is one whose child
/// execs into a container: create, run or exec. False on anything it does
/// not understand, which `main` then parses properly.
///
/// # Safety
/// `argv` is a NULL-terminated array of NUL-terminated strings.
pub unsafe fn command_wants_seal(argv: *const *const u8) -> bool {
    let mut i = 1;
    // SAFETY: i stays within the array: the loop ends at its NULL.
    while let Some(word) = unsafe { entry(argv, i) } {
        i += 1;
        if !starts_with(word, b"-") {
            return bytes_eq(word, b"create") || bytes_eq(word, b"run") || bytes_eq(word, b"exec");
        }
        if !starts_with(word, b"--") {
            return false;
        }
        let long = tail(word, 2);
        let (name, inline) = match find(long, b'=') {
            Some(at) => (head(long, at), true),
            None => (long, false),
        };
        match global_option(name) {
            Global::Value if !inline => {
                // SAFETY: as above; the value is the next entry.
                if unsafe { entry(argv, i) }.is_none() {
                    return false;
                }
                i += 1;
            }
            Global::Value | Global::Switch => {}
            Global::Other => return false,
        }
    }
    false
}

/// False when `BERTH_EXE_SEAL` is set to anything but `overlay`: `main`
/// reads it, refuses a bad value and makes the copy when asked.
///
/// # Safety
/// `envp` is a NULL-terminated array of NUL-terminated strings.
unsafe fn overlay_allowed(envp: *const *const u8) -> bool {
    let mut i = 0;
    // SAFETY: i stays within the array: the loop ends at its NULL.
    while let Some(var) = unsafe { entry(envp, i) } {
        i += 1;
        if starts_with(var, b"BERTH_EXE_SEAL=") {
            return bytes_eq(var, b"BERTH_EXE_SEAL=overlay");
        }
    }
    true
}

/// The `i`th string of a NULL-terminated array of C strings, or None at
/// its NULL.
///
/// # Safety
/// `array` is such an array and `i` is at most the index of its NULL.
unsafe fn entry<'a>(array: *const *const u8, i: usize) -> Option<&'a [u8]> {
    // SAFETY: i is within the array (the caller's promise).
    let p = unsafe { read_volatile(array.add(i)) };
    // SAFETY: a non-NULL entry is a NUL-terminated string.
    (!p.is_null()).then(|| unsafe { c_bytes(p) })
}

/// Whether `/proc/self/exe` is one of the two sealed images: a sealed
/// memfd, or (unless `copy_only`) a file on a read-only overlay mount. The
/// latter is ours, or berth installed on a read-only overlay (an image's
/// root): writing there first takes a remount by someone with
/// CAP_SYS_ADMIN over that mount, which a container does not have.
pub fn running_sealed(copy_only: bool) -> Result<bool, Failure> {
    let (f_type, f_flags) = statfs(c"/proc/self/exe")?;
    match f_type {
        OVERLAYFS_SUPER_MAGIC if !copy_only => Ok(f_flags as u64 & libc::ST_RDONLY != 0),
        TMPFS_MAGIC => {
            let exe = open(c"/proc/self/exe").map_err(|e| fail("open /proc/self/exe", e))?;
            // A file that is not a memfd answers EINVAL.
            let seals = sys(
                libc::SYS_fcntl,
                [exe.0, libc::F_GET_SEALS as usize, 0, 0, 0],
            );
            Ok(matches!(seals, Ok(s) if s as i32 & SEALS == SEALS))
        }
        _ => Ok(false),
    }
}

/// fsopen/fsconfig/fsmount a read-only overlay of the binary's directory
/// over SECOND_LAYER (the top layer, the binary's, wins for its name),
/// check that the file there is the one running (same size and mtime),
/// and execveat it with `argv` and `envp`. Returns only on failure.
///
/// # Safety
/// `argv` and `envp` are NULL-terminated arrays of NUL-terminated strings.
pub unsafe fn exec_sealed_overlay(
    argv: *const *const libc::c_char,
    envp: *const *const libc::c_char,
) -> Failure {
    let mut exe = MaybeUninit::<[u8; PATH_MAX]>::uninit();
    let exe = exe.as_mut_ptr().cast::<u8>();
    let mut lower = MaybeUninit::<[u8; LOWER_MAX]>::uninit();
    let lower = lower.as_mut_ptr().cast::<u8>();
    let n = match sys(
        libc::SYS_readlink,
        [
            c"/proc/self/exe".as_ptr() as usize,
            exe as usize,
            PATH_MAX,
            0,
            0,
        ],
    ) {
        Ok(n) if n < PATH_MAX => n,
        Ok(_) => return fail("readlink /proc/self/exe: too long", 0),
        Err(e) => return fail("readlink /proc/self/exe", e),
    };
    // SAFETY: readlink wrote n < PATH_MAX bytes; the NUL goes after them.
    unsafe { write_volatile(exe.add(n), 0) };
    // SAFETY: exe holds n bytes and a NUL.
    let path = unsafe { core::slice::from_raw_parts(exe, n) };
    let slash = match rfind(path, b'/') {
        Some(at) if starts_with(path, b"/") && at + 1 < n => at,
        _ => return fail("/proc/self/exe is no path to a file", 0),
    };
    // The binary's directory ("/" for "/berth", which overlaps /dev and is
    // refused by overlayfs).
    let dir = if slash == 0 {
        b"/" as &[u8]
    } else {
        head(path, slash)
    };
    // SAFETY: lower has room for LOWER_MAX bytes; SECOND_LAYER's are kept.
    let len = unsafe { escape_lowerdir(dir, lower, LOWER_MAX - SECOND_LAYER.len()) };
    let Some(len) = len else {
        return fail("lowerdir too long", 0);
    };
    for (at, &b) in (len..).zip(SECOND_LAYER) {
        // SAFETY: escape_lowerdir left SECOND_LAYER.len() bytes free.
        unsafe { write_volatile(lower.add(at), b) };
    }
    // SAFETY: exe + slash + 1 is the name, NUL-terminated at n.
    let name = unsafe { exe.add(slash + 1) };

    let ctx = match sys(
        libc::SYS_fsopen,
        [c"overlay".as_ptr() as usize, FSOPEN_CLOEXEC, 0, 0, 0],
    ) {
        Ok(fd) => Fd(fd),
        Err(e) => return fail("fsopen overlay", e),
    };
    let set = |key: &CStr, value: usize| {
        sys(
            libc::SYS_fsconfig,
            [ctx.0, FSCONFIG_SET_STRING, key.as_ptr() as usize, value, 0],
        )
    };
    if let Err(e) = set(c"lowerdir", lower as usize) {
        return fail("overlay lowerdir", e);
    }
    // Layers on different filesystems would turn xino on, and log about it.
    let _ = set(c"xino", c"off".as_ptr() as usize);
    if let Err(e) = sys(libc::SYS_fsconfig, [ctx.0, FSCONFIG_CMD_CREATE, 0, 0, 0]) {
        return fail("create the sealed overlay", e);
    }
    use crate::rootfs::{MOUNT_ATTR_NODEV, MOUNT_ATTR_NOSUID, MOUNT_ATTR_RDONLY};
    let attrs = (MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV) as usize;
    let mnt = match sys(libc::SYS_fsmount, [ctx.0, FSMOUNT_CLOEXEC, attrs, 0, 0]) {
        Ok(fd) => Fd(fd),
        Err(e) => return fail("fsmount the sealed overlay", e),
    };
    drop(ctx);
    let seen = match size_and_mtime(mnt.0, name, libc::AT_SYMLINK_NOFOLLOW) {
        Ok(s) => s,
        Err(e) => return fail("statx the binary in the sealed overlay", e),
    };
    match size_and_mtime(
        libc::AT_FDCWD as usize,
        c"/proc/self/exe".as_ptr().cast(),
        0,
    ) {
        Ok(running) if running == seen => {}
        Ok(_) => return fail("the binary changed since berth started", 0),
        Err(e) => return fail("statx /proc/self/exe", e),
    }
    let args = [mnt.0, name as usize, argv as usize, envp as usize, 0];
    match sys(libc::SYS_execveat, args) {
        Ok(_) => fail("execveat returned", 0),
        Err(e) => fail("execute berth from its sealed overlay", e),
    }
}

/// Overlayfs splits lowerdir at ':' and takes '\' as escape. Writes the
/// escaped `path` to `out` (room for `cap` bytes); its length, or None
/// when it does not fit.
///
/// # Safety
/// `out` is valid for `cap` bytes of writes.
pub unsafe fn escape_lowerdir(path: &[u8], out: *mut u8, cap: usize) -> Option<usize> {
    let mut at = 0;
    let mut i = 0;
    while i < path.len() {
        // SAFETY: i < path.len().
        let b = unsafe { read_volatile(path.as_ptr().add(i)) };
        i += 1;
        let escaped = b == b':' || b == b'\\';
        if at + 1 + usize::from(escaped) > cap {
            return None;
        }
        if escaped {
            // SAFETY: at < cap, checked above.
            unsafe { write_volatile(out.add(at), b'\\') };
            at += 1;
        }
        // SAFETY: at < cap, checked above.
        unsafe { write_volatile(out.add(at), b) };
        at += 1;
    }
    Some(at)
}

/// A file descriptor, closed when dropped.
struct Fd(usize);

impl Drop for Fd {
    fn drop(&mut self) {
        let _ = sys(libc::SYS_close, [self.0, 0, 0, 0, 0]);
    }
}

fn open(path: &CStr) -> Result<Fd, i32> {
    let flags = (libc::O_RDONLY | libc::O_CLOEXEC) as usize;
    let at = libc::AT_FDCWD as usize;
    sys(libc::SYS_openat, [at, path.as_ptr() as usize, flags, 0, 0]).map(Fd)
}

/// statfs(path): the filesystem's magic and mount flags (the kernel's
/// struct statfs: libc's hides f_flags).
fn statfs(path: &CStr) -> Result<(i64, i64), Failure> {
    #[repr(C)]
    struct KernelStatfs {
        f_type: i64,
        f_bsize: i64,
        f_blocks: i64,
        f_bfree: i64,
        f_bavail: i64,
        f_files: i64,
        f_ffree: i64,
        f_fsid: [i32; 2],
        f_namelen: i64,
        f_frsize: i64,
        f_flags: i64,
        f_spare: [i64; 4],
    }
    let mut sfs = MaybeUninit::<KernelStatfs>::uninit();
    match sys(
        libc::SYS_statfs,
        [path.as_ptr() as usize, sfs.as_mut_ptr() as usize, 0, 0, 0],
    ) {
        Ok(_) => {
            // SAFETY: statfs filled the struct.
            let sfs = unsafe { sfs.assume_init_ref() };
            Ok((sfs.f_type, sfs.f_flags))
        }
        Err(e) => Err(fail("statfs /proc/self/exe", e)),
    }
}

/// statx(dir, path, flags): the file's size and modification time.
fn size_and_mtime(dir: usize, path: *const u8, flags: i32) -> Result<(u64, i64, u32), i32> {
    let mut st = MaybeUninit::<libc::statx>::uninit();
    let mask = (libc::STATX_SIZE | libc::STATX_MTIME) as usize;
    let args = [
        dir,
        path as usize,
        flags as usize,
        mask,
        st.as_mut_ptr() as usize,
    ];
    sys(libc::SYS_statx, args)?;
    // SAFETY: statx filled the struct.
    let st = unsafe { st.assume_init_ref() };
    Ok((st.stx_size, st.stx_mtime.tv_sec, st.stx_mtime.tv_nsec))
}

/// A system call of code that runs before glibc (this module's and
/// `cpuid`'s): its result, or the errno.
#[inline(always)]
pub(crate) fn sys(nr: libc::c_long, a: [usize; 5]) -> Result<usize, i32> {
    // SAFETY: every caller (here and in `cpuid`) passes pointers to memory
    // it owns, sized as the call expects.
    unsafe { raw_syscall(nr, a) }
}

/// The bytes of a C string, without its NUL.
///
/// # Safety
/// `p` is a NUL-terminated string that outlives the slice.
unsafe fn c_bytes<'a>(p: *const u8) -> &'a [u8] {
    let mut n = 0;
    // SAFETY: reads up to and including the NUL.
    while unsafe { read_volatile(p.add(n)) } != 0 {
        n += 1;
    }
    // SAFETY: the n bytes before the NUL.
    unsafe { core::slice::from_raw_parts(p, n) }
}

fn bytes_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && starts_with(a, b)
}

fn starts_with(a: &[u8], prefix: &[u8]) -> bool {
    if a.len() < prefix.len() {
        return false;
    }
    let mut i = 0;
    while i < prefix.len() {
        // SAFETY: i < prefix.len() <= a.len().
        let (x, y) = unsafe {
            (
                read_volatile(a.as_ptr().add(i)),
                read_volatile(prefix.as_ptr().add(i)),
            )
        };
        if x != y {
            return false;
        }
        i += 1;
    }
    true
}

fn find(a: &[u8], byte: u8) -> Option<usize> {
    let mut i = 0;
    while i < a.len() {
        // SAFETY: i < a.len().
        if unsafe { read_volatile(a.as_ptr().add(i)) } == byte {
            return Some(i);
        }
        i += 1;
    }
    None
}

fn rfind(a: &[u8], byte: u8) -> Option<usize> {
    let mut i = a.len();
    while i > 0 {
        i -= 1;
        // SAFETY: i < a.len().
        if unsafe { read_volatile(a.as_ptr().add(i)) } == byte {
            return Some(i);
        }
    }
    None
}

/// `a[..n]` and `a[n..]` without a bounds check that could panic (callers
/// pass n <= a.len()).
fn head(a: &[u8], n: usize) -> &[u8] {
    // SAFETY: n is clamped to a.len().
    unsafe { core::slice::from_raw_parts(a.as_ptr(), n.min(a.len())) }
}

fn tail(a: &[u8], n: usize) -> &[u8] {
    let n = n.min(a.len());
    // SAFETY: n <= a.len().
    unsafe { core::slice::from_raw_parts(a.as_ptr().add(n), a.len() - n) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn escaped(path: &[u8]) -> Vec<u8> {
        let mut out = vec![0u8; 2 * path.len()];
        // SAFETY: out has room for twice the path.
        let n = unsafe { escape_lowerdir(path, out.as_mut_ptr(), out.len()) }.expect("fits");
        out.truncate(n);
        out
    }

    #[test]
    fn lowerdir_escapes_colons_and_backslashes() {
        assert_eq!(escaped(b"/usr/bin"), b"/usr/bin");
        assert_eq!(escaped(b"/a:b\\c"), b"/a\\:b\\\\c");
        let mut small = [0u8; 4];
        // SAFETY: small has room for 4 bytes.
        let n = unsafe { escape_lowerdir(b"/a:b", small.as_mut_ptr(), small.len()) };
        assert_eq!(n, None, "a lowerdir that does not fit is refused");
    }

    fn wants(words: &[&str]) -> bool {
        let c: Vec<std::ffi::CString> = std::iter::once("berth")
            .chain(words.iter().copied())
            .map(|w| std::ffi::CString::new(w).expect("no NUL"))
            .collect();
        let mut ptrs: Vec<*const u8> = c.iter().map(|s| s.as_ptr().cast()).collect();
        ptrs.push(std::ptr::null());
        // SAFETY: a NULL-terminated array of C strings that outlive the call.
        unsafe { command_wants_seal(ptrs.as_ptr()) }
    }

    #[test]
    fn early_scan_finds_the_subcommand_past_global_options() {
        assert!(wants(&["run", "x"]));
        assert!(wants(&["create", "--bundle", "b", "x"]));
        assert!(wants(&[
            "--root",
            "/r",
            "--log=/l",
            "--log-format",
            "json",
            "exec",
            "x"
        ]));
        assert!(wants(&[
            "--debug",
            "--systemd-cgroup=true",
            "--rootless",
            "run",
            "x"
        ]));
        // The value of --root is not the subcommand.
        assert!(!wants(&["--root", "run", "state", "x"]));
        assert!(!wants(&["state", "run"]));
        assert!(!wants(&["--version"]));
        assert!(!wants(&["-h", "run"]));
        assert!(!wants(&["--bogus", "run"]));
        assert!(!wants(&["--root"]));
        assert!(!wants(&[]));
    }
}
