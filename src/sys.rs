//! The syscall seam: thin wrappers over the few syscalls that `nix` does not
//! cover (clone3 without a new stack, pidfd, close_range, prctl bits).
//! Every `unsafe` block in process code that is not a mount lives here.

use std::arch::asm;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use anyhow::{Context, Result};
use nix::unistd::Pid;

/// Read a small file whole: one open, usually two reads, no `statx`.
/// `fs::read_to_string` sizes its buffer by `statx` and, for procfs and
/// cgroupfs files (which report size 0), grows it from 32 bytes, so a
/// mountinfo took eight reads; on the start-up path that adds up.
pub fn read_to_string(path: impl AsRef<std::path::Path>) -> io::Result<String> {
    use std::io::Read;
    let file = std::fs::File::open(path)?;
    let mut buf = Vec::with_capacity(8192);
    // Through `Take`, std's generic read_to_end: it reads straight into the
    // spare capacity (no zeroing it first, as `vec![0; n]` did) and asks
    // for no size hint (`File`'s own would `statx` and `lseek`).
    file.take(u64::MAX).read_to_end(&mut buf)?;
    String::from_utf8(buf).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

/// Field `field` (0 = name, 5 = home) of the entry for `uid` in the text of
/// an /etc/passwd file, parsed here as runc does: no NSS, no nscd.
pub fn passwd_field(passwd: &str, uid: u32, field: usize) -> Option<&str> {
    passwd
        .lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .find(|f| f.len() > 5 && f[2].parse() == Ok(uid))
        .map(|f| f[field])
}

/// Set the effective, permitted and inheritable capability sets (bit masks
/// of capability numbers) in one `capset(2)`; the `caps` crate spends a
/// capget and a capset on each set.
pub fn capset(effective: u64, permitted: u64, inheritable: u64) -> io::Result<()> {
    #[repr(C)]
    struct Header {
        version: u32,
        pid: i32,
    }
    #[repr(C)]
    struct Data {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;
    let mut header = Header {
        version: LINUX_CAPABILITY_VERSION_3,
        pid: 0,
    };
    // Version 3 takes two 32-bit words per set: low bits first.
    let data = [
        Data {
            effective: effective as u32,
            permitted: permitted as u32,
            inheritable: inheritable as u32,
        },
        Data {
            effective: (effective >> 32) as u32,
            permitted: (permitted >> 32) as u32,
            inheritable: (inheritable >> 32) as u32,
        },
    ];
    // SAFETY: header and the two data words are live, correctly laid out
    // (`struct __user_cap_header_struct`, `__user_cap_data_struct[2]`) and
    // only read by the kernel (the header's version may be written back).
    let rc = unsafe { libc::syscall(libc::SYS_capset, &mut header as *mut Header, data.as_ptr()) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Drop capability number `cap` from the bounding set. `Ok(false)` when the
/// running kernel does not know that capability (EINVAL): nothing to drop.
pub fn capbset_drop(cap: u8) -> io::Result<bool> {
    // SAFETY: PR_CAPBSET_DROP takes one integer argument and touches no memory.
    let rc = unsafe { libc::prctl(libc::PR_CAPBSET_DROP, libc::c_ulong::from(cap), 0, 0, 0) };
    match rc {
        0 => Ok(true),
        _ => match io::Error::last_os_error() {
            e if e.raw_os_error() == Some(libc::EINVAL) => Ok(false),
            e => Err(e),
        },
    }
}

/// Remove `dir`, which usually holds just `entries` (relative paths, in
/// removal order; `true` for a directory, which must be empty): a few
/// unlink/rmdir calls instead of `remove_dir_all`'s open, stat, fcntl and
/// readdir per directory. Anything unexpected there (a non-empty dir, an
/// extra file) takes the full walk. An absent `dir` is fine.
pub fn remove_dir_known(dir: &std::path::Path, entries: &[(&str, bool)]) -> io::Result<()> {
    let quick = entries
        .iter()
        .try_for_each(|(name, is_dir)| {
            let p = dir.join(name);
            let r = if *is_dir {
                std::fs::remove_dir(&p)
            } else {
                std::fs::remove_file(&p)
            };
            match r {
                Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
                _ => Ok(()),
            }
        })
        .and_then(|()| std::fs::remove_dir(dir));
    match quick {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(_) => match std::fs::remove_dir_all(dir) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            other => other,
        },
    }
}

/// `struct clone_args` from `<linux/sched.h>`.
#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

/// Fork-like clone with namespace `flags`: returns `Some(child pid)` in the
/// parent and `None` in the child. With `cgroup`, the child is born inside that
/// cgroup (v2 `CLONE_INTO_CGROUP`), so it never runs a cycle outside it.
pub fn clone_child(flags: u64, cgroup: Option<BorrowedFd>) -> Result<Option<Pid>> {
    let mut args = CloneArgs {
        flags,
        // clone3 refuses an exit signal with CLONE_PARENT: the child then
        // takes its parent's (SIGCHLD for our forks).
        exit_signal: if flags & libc::CLONE_PARENT as u64 != 0 {
            0
        } else {
            libc::SIGCHLD as u64
        },
        ..Default::default()
    };
    if let Some(fd) = cgroup {
        args.flags |= CLONE_INTO_CGROUP;
        args.cgroup = fd.as_raw_fd() as u64;
    }
    // SAFETY: clone3 with a null stack behaves like fork: the child continues on
    // a copy of our stack. berth is single-threaded here, so no lock held by
    // another thread can be copied into the child.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            &mut args as *mut CloneArgs,
            std::mem::size_of::<CloneArgs>(),
        )
    };
    let rc = if rc < 0 && io::Error::last_os_error().raw_os_error() == Some(libc::ENOSYS) {
        if cgroup.is_some() {
            return Err(io::Error::last_os_error()).context("clone3 into cgroup");
        }
        // SAFETY: as above, the legacy clone with a null stack is a fork.
        unsafe {
            libc::syscall(
                libc::SYS_clone,
                flags | libc::SIGCHLD as u64,
                0usize,
                0usize,
                0usize,
                0usize,
            )
        }
    } else {
        rc
    };
    match rc {
        r if r < 0 => Err(io::Error::last_os_error()).context("clone container process"),
        0 => Ok(None),
        pid => Ok(Some(Pid::from_raw(pid as i32))),
    }
}

/// A pidfd for `pid`, or None if the kernel lacks pidfd_open.
pub fn pidfd_open(pid: i32) -> io::Result<OwnedFd> {
    // SAFETY: pidfd_open takes a pid and flags, returns a new fd we then own.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel just returned this fd to us; nobody else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// Send `sig` to the process behind `pidfd` (immune to pid reuse).
pub fn pidfd_send_signal(pidfd: BorrowedFd, sig: i32) -> io::Result<()> {
    // SAFETY: plain syscall on a valid fd; siginfo is NULL as the man page allows.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            sig,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Make sure fds 0, 1 and 2 are open (on /dev/null where the caller closed
/// them), as std's runtime does: otherwise the first file berth opens would
/// become its stdout and an error line would land in it.
pub fn open_stdio_on_dev_null() {
    let mut fds = [0, 1, 2].map(|fd| libc::pollfd {
        fd,
        events: 0,
        revents: 0,
    });
    // SAFETY: poll on a local array of three pollfds, no timeout.
    if unsafe { libc::poll(fds.as_mut_ptr(), 3, 0) } < 0 {
        return;
    }
    for p in fds.iter().filter(|p| p.revents & libc::POLLNVAL != 0) {
        // SAFETY: opens a fixed NUL-terminated path; the lowest free fd is
        // the closed one, `p.fd`, since the lower ones are checked first.
        let fd = unsafe { libc::open(c"/dev/null".as_ptr(), libc::O_RDWR) };
        if fd != p.fd {
            // Not even /dev/null: better to stop than to write into a file.
            std::process::abort();
        }
    }
}

/// Ignore SIGPIPE, as std's runtime does: a write to a closed pipe is then
/// an EPIPE error with a message, not a silent death.
pub fn ignore_sigpipe() {
    // SAFETY: SIG_IGN installs no handler code.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
}

/// Close every fd from `first` upwards (best effort: close_range(2) exists
/// since Linux 5.9; without it the fds stay, as before).
pub fn close_fds_from(first: u32) {
    // SAFETY: closes only fds nothing in this process has opened yet.
    unsafe { libc::syscall(libc::SYS_close_range, first, u32::MAX, 0) };
}

/// Mark every fd from `first` upwards close-on-exec.
pub fn cloexec_fds_from(first: u32) -> Result<()> {
    const CLOSE_RANGE_CLOEXEC: u32 = 1 << 2;
    // SAFETY: only sets a flag on our own fds.
    let rc = unsafe { libc::syscall(libc::SYS_close_range, first, u32::MAX, CLOSE_RANGE_CLOEXEC) };
    if rc != 0 {
        return Err(io::Error::last_os_error()).context("close_range CLOEXEC");
    }
    Ok(())
}

/// Ask for `sig` when our parent dies (0 clears it).
pub fn set_parent_death_signal(sig: i32) -> Result<()> {
    // SAFETY: prctl with integer arguments only.
    let rc = unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, sig as libc::c_ulong, 0, 0, 0) };
    if rc != 0 {
        return Err(io::Error::last_os_error()).context("prctl PR_SET_PDEATHSIG");
    }
    Ok(())
}

pub fn set_no_new_privs() -> Result<()> {
    // SAFETY: prctl with integer arguments only.
    let rc = unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) };
    if rc != 0 {
        return Err(io::Error::last_os_error()).context("prctl PR_SET_NO_NEW_PRIVS");
    }
    Ok(())
}

pub fn set_keep_caps(keep: bool) -> Result<()> {
    // SAFETY: prctl with integer arguments only.
    let rc = unsafe { libc::prctl(libc::PR_SET_KEEPCAPS, keep as libc::c_ulong, 0, 0, 0) };
    if rc != 0 {
        return Err(io::Error::last_os_error()).context("prctl PR_SET_KEEPCAPS");
    }
    Ok(())
}

/// Non-dumpable: the container can neither ptrace us nor open our /proc files.
pub fn set_dumpable(dumpable: bool) -> Result<()> {
    // SAFETY: prctl with integer arguments only.
    let rc = unsafe { libc::prctl(libc::PR_SET_DUMPABLE, dumpable as libc::c_ulong, 0, 0, 0) };
    if rc != 0 {
        return Err(io::Error::last_os_error()).context("prctl PR_SET_DUMPABLE");
    }
    Ok(())
}

/// Bring the loopback interface of the current network namespace up.
pub fn loopback_up() -> Result<()> {
    // SAFETY: socket() returns a new fd that we own right away.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error()).context("socket for loopback setup");
    }
    // SAFETY: fd was just returned by socket().
    let sock = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: ifreq is plain old data; zeroed is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(b"lo\0") {
        *dst = *src as libc::c_char;
    }
    // SAFETY: SIOCGIFFLAGS fills ifr_flags of a properly sized ifreq.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut req) } < 0 {
        return Err(io::Error::last_os_error()).context("get flags of lo");
    }
    // SAFETY: the union member ifru_flags was just set by the kernel.
    unsafe { req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short };
    // SAFETY: SIOCSIFFLAGS reads the ifreq we own.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &req) } < 0 {
        return Err(io::Error::last_os_error()).context("bring lo up");
    }
    Ok(())
}

/// A system call with up to five arguments: its result, or the errno. It
/// touches no libc state (errno lives in thread-local storage), so it also
/// serves code that runs before libc is set up (`exeseal::early`) and on a
/// stack shared with no thread of libc's (`namespaces::NetPrefetch`).
///
/// # Safety
/// Every argument the call reads or writes through is a pointer to memory
/// the caller owns, sized as the call expects.
#[inline(always)]
pub unsafe fn raw_syscall(nr: libc::c_long, a: [usize; 5]) -> Result<usize, i32> {
    let ret: isize;
    // SAFETY: the `syscall` instruction with the kernel's x86_64 calling
    // convention (it clobbers rcx and r11); the pointers are the caller's.
    unsafe {
        asm!(
            "syscall",
            inlateout("rax") nr as isize => ret,
            in("rdi") a[0],
            in("rsi") a[1],
            in("rdx") a[2],
            in("r10") a[3],
            in("r8") a[4],
            lateout("rcx") _,
            lateout("r11") _,
            options(nostack),
        );
    }
    if (-4095..0).contains(&ret) {
        Err(-ret as i32)
    } else {
        Ok(ret as usize)
    }
}

/// setns through a pidfd: join several namespaces of that process at once.
pub fn setns_pidfd(pidfd: BorrowedFd, flags: i32) -> io::Result<()> {
    if flags == 0 {
        return Ok(());
    }
    // SAFETY: setns on a valid pidfd with namespace flags; no memory involved.
    if unsafe { libc::setns(pidfd.as_raw_fd(), flags) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// One `sendmsg` of `bytes`, with `fds` attached as `SCM_RIGHTS` when there
/// are any, retried on EINTR and never raising SIGPIPE. The sync channel,
/// the console socket and the seccomp listener all pass fds this way.
pub fn send_with_fds(sock: BorrowedFd, bytes: &[u8], fds: &[BorrowedFd]) -> nix::Result<usize> {
    use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags};
    let fds: Vec<i32> = fds.iter().map(|f| f.as_raw_fd()).collect();
    let cmsg: Vec<ControlMessage> = if fds.is_empty() {
        Vec::new()
    } else {
        vec![ControlMessage::ScmRights(&fds)]
    };
    loop {
        match sendmsg::<()>(
            sock.as_raw_fd(),
            &[io::IoSlice::new(bytes)],
            &cmsg,
            MsgFlags::MSG_NOSIGNAL,
            None,
        ) {
            Err(nix::errno::Errno::EINTR) => continue,
            r => return r,
        }
    }
}

/// Start `path` with `argv` and `envp` ("KEY=VALUE"): fork and execve, the
/// fds in `stdio` (when given) becoming 0, 1 and 2 of the new program. Its
/// signal mask is empty and SIGPIPE back at its default (berth ignores it),
/// as a program expects to start. Everything is prepared before the fork,
/// so the child calls only dup2, sigprocmask, signal, execve and _exit; an
/// execve failure comes back as the error, through a close-on-exec pipe
/// that the successful execve closes. (std's `Command` does the same and
/// was a fortieth of the binary, for two callers.)
pub fn spawn(
    path: &std::path::Path,
    argv: &[&std::ffi::OsStr],
    envp: &[std::ffi::OsString],
    stdio: [Option<BorrowedFd>; 3],
) -> io::Result<Pid> {
    use std::os::unix::ffi::OsStrExt;
    let cstr = |s: &[u8]| {
        std::ffi::CString::new(s).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))
    };
    let path_c = cstr(path.as_os_str().as_bytes())?;
    let argv_c = argv
        .iter()
        .map(|a| cstr(a.as_bytes()))
        .collect::<io::Result<Vec<_>>>()?;
    let envp_c = envp
        .iter()
        .map(|e| cstr(e.as_bytes()))
        .collect::<io::Result<Vec<_>>>()?;
    let mut argv_p: Vec<*const libc::c_char> = argv_c.iter().map(|a| a.as_ptr()).collect();
    argv_p.push(std::ptr::null());
    let mut envp_p: Vec<*const libc::c_char> = envp_c.iter().map(|e| e.as_ptr()).collect();
    envp_p.push(std::ptr::null());
    let stdio_raw = stdio.map(|fd| fd.map(|f| f.as_raw_fd()));
    let (err_r, err_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
    // SAFETY: fork in a single-threaded berth; the child below only makes
    // async-signal-safe calls on memory prepared before the fork.
    match unsafe { libc::fork() } {
        -1 => Err(io::Error::last_os_error()),
        0 => {
            // SAFETY: the child: dup2/sigprocmask/signal/execve/write/_exit
            // on fds and NUL-terminated arrays that outlive these calls.
            unsafe {
                for (target, fd) in stdio_raw.iter().enumerate() {
                    if let Some(fd) = *fd {
                        if libc::dup2(fd, target as libc::c_int) < 0 {
                            spawn_failed(err_w.as_raw_fd());
                        }
                    }
                }
                let mut none: libc::sigset_t = std::mem::zeroed();
                libc::sigemptyset(&mut none);
                libc::sigprocmask(libc::SIG_SETMASK, &none, std::ptr::null_mut());
                libc::signal(libc::SIGPIPE, libc::SIG_DFL);
                libc::execve(path_c.as_ptr(), argv_p.as_ptr(), envp_p.as_ptr());
                spawn_failed(err_w.as_raw_fd())
            }
        }
        pid => {
            drop(err_w);
            let pid = Pid::from_raw(pid);
            let mut errno = [0u8; 4];
            let n = loop {
                match nix::unistd::read(err_r.as_raw_fd(), &mut errno) {
                    Err(nix::errno::Errno::EINTR) => continue,
                    other => break other,
                }
            };
            match n {
                Ok(4) => {
                    let _ = nix::sys::wait::waitpid(pid, None);
                    Err(io::Error::from_raw_os_error(i32::from_ne_bytes(errno)))
                }
                _ => Ok(pid),
            }
        }
    }
}

/// In a spawned child whose setup failed: report errno to the parent, exit.
///
/// # Safety
/// Only between fork and execve, with `err` the write end of the pipe.
unsafe fn spawn_failed(err: libc::c_int) -> ! {
    let errno = io::Error::last_os_error()
        .raw_os_error()
        .unwrap_or(libc::EINVAL);
    let bytes = errno.to_ne_bytes();
    // SAFETY: write(2) of 4 bytes from our stack; _exit(2) never returns.
    unsafe {
        libc::write(err, bytes.as_ptr().cast(), bytes.len());
        libc::_exit(127)
    }
}

/// `name` looked up as execvp would: as given when it holds a `/`, else
/// the first executable regular file of that name in `$PATH`.
pub fn find_program(name: &std::path::Path) -> io::Result<std::path::PathBuf> {
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::fs::PermissionsExt;
    if name.as_os_str().as_bytes().contains(&b'/') {
        return Ok(name.to_path_buf());
    }
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin".into());
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| {
            std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
        .ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))
}

/// A wait status as std's `ExitStatus` prints it: `exit status: 4`,
/// `signal: 9 (SIGKILL)`.
pub fn describe_wait(status: nix::sys::wait::WaitStatus) -> (bool, String) {
    use nix::sys::wait::WaitStatus;
    match status {
        WaitStatus::Exited(_, 0) => (true, "exit status: 0".into()),
        WaitStatus::Exited(_, code) => (false, format!("exit status: {code}")),
        WaitStatus::Signaled(_, sig, core) => (
            false,
            format!(
                "signal: {} ({}){}",
                sig as i32,
                sig.as_str(),
                if core { " (core dumped)" } else { "" }
            ),
        ),
        other => (false, format!("{other:?}")),
    }
}

#[cfg(test)]
mod tests {
    use std::ffi::OsStr;
    use std::io::Read;
    use std::os::fd::AsFd;
    use std::path::Path;

    use nix::sys::signal::{SigSet, SigmaskHow};
    use nix::sys::wait::{waitpid, WaitStatus};

    use super::*;

    /// `argv` run through `spawn`, stdout captured, with every signal
    /// blocked in this thread while it starts: a mask `spawn` must not
    /// pass on.
    fn run(argv: &[&str], env: &[&str]) -> (WaitStatus, String) {
        let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).expect("pipe");
        let envp: Vec<std::ffi::OsString> = env.iter().map(|e| e.into()).collect();
        let argv: Vec<&OsStr> = argv.iter().map(OsStr::new).collect();
        let program = find_program(Path::new(argv[0])).expect("program");
        let mut old = SigSet::empty();
        let all = SigSet::all();
        nix::sys::signal::pthread_sigmask(SigmaskHow::SIG_BLOCK, Some(&all), Some(&mut old))
            .expect("block");
        let pid = spawn(&program, &argv, &envp, [None, Some(w.as_fd()), None]);
        nix::sys::signal::pthread_sigmask(SigmaskHow::SIG_SETMASK, Some(&old), None)
            .expect("restore");
        let pid = pid.expect("spawn");
        drop(w);
        let mut out = String::new();
        std::fs::File::from(r)
            .read_to_string(&mut out)
            .expect("read");
        (waitpid(pid, None).expect("wait"), out)
    }

    #[test]
    fn spawn_gives_exactly_the_env_stdio_and_a_clean_signal_state() {
        let (st, out) = run(&["env"], &["ONLY=x"]);
        assert_eq!(describe_wait(st), (true, "exit status: 0".into()));
        assert_eq!(out, "ONLY=x\n");
        // cat itself is the spawned process: its mask is what spawn left.
        // The test harness ignores SIGPIPE (bit 13); the program must not.
        let (_, status) = run(&["cat", "/proc/self/status"], &[]);
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .map(str::trim)
                .and_then(|v| u64::from_str_radix(v, 16).ok())
                .expect("status field")
        };
        assert_eq!(field("SigBlk:"), 0, "{status}");
        assert_eq!(field("SigIgn:") & (1 << (libc::SIGPIPE - 1)), 0, "{status}");
        let (st, _) = run(&["sh", "-c", "exit 3"], &[]);
        assert_eq!(describe_wait(st), (false, "exit status: 3".into()));
    }

    #[test]
    fn spawn_reports_a_failed_exec_and_signals_are_described() {
        let err = spawn(
            Path::new("/nonexistent/prog"),
            &[OsStr::new("prog")],
            &[],
            [None, None, None],
        )
        .expect_err("no such program");
        assert_eq!(err.raw_os_error(), Some(libc::ENOENT));
        let (st, _) = run(&["sh", "-c", "kill -9 $$"], &[]);
        assert_eq!(describe_wait(st), (false, "signal: 9 (SIGKILL)".into()));
        assert!(find_program(Path::new("sh")).is_ok_and(|p| p.is_absolute()));
        assert!(find_program(Path::new("no-such-program-here")).is_err());
    }
}
