//! The plan compiled to BPF with libseccomp (in the parent, once), and the
//! program handed to the kernel with seccomp(2) (in the child, last).
//! Compiling to a plain program keeps libseccomp's allocations and its
//! own syscalls out of the child: there, loading is one system call.

use std::io::{Read, Seek, SeekFrom};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use crate::spec::types::{Arch, LinuxSeccomp};
use anyhow::{bail, Context, Result};
use libseccomp::{
    ScmpAction, ScmpArch, ScmpArgCompare, ScmpCompareOp, ScmpFilterContext, ScmpSyscall,
};

use super::listener::{self, Listener};
use super::{plan, Action, Cond, Op, Plan};

/// The kernel's limit on a filter's length (BPF_MAXINSNS).
const MAX_INSNS: usize = 4096;

/// A compiled filter, ready for seccomp(2), and the connection to the notify
/// listener when the profile uses `SCMP_ACT_NOTIFY`. Made in the parent
/// before the clone: the child inherits it, and the parent drops its copy
/// (closing its end of the listener connection) right after the clone.
pub struct Filter {
    program: Vec<libc::sock_filter>,
    flags: u32,
    listener: Option<Listener>,
}

impl Filter {
    /// Whether [`load`] needs the container state (it sends it to a listener).
    pub fn needs_state(&self) -> bool {
        self.listener.is_some()
    }
}

/// Parent side, before the clone: compile `linux.seccomp` (if any) and, when
/// it uses `SCMP_ACT_NOTIFY`, connect to its listener socket. `exec` passes
/// the container's `linux.seccomp` again: every process in it is filtered.
/// `cache`: a directory of berth's own (under `--root`) where compiled
/// programs are kept, keyed by what was compiled: libseccomp takes ~12 ms
/// for a Docker-sized profile, more than the rest of a `run`.
pub fn prepare(seccomp: Option<&LinuxSeccomp>, cache: Option<&Path>) -> Result<Option<Filter>> {
    let Some(s) = seccomp else {
        return Ok(None);
    };
    let started = std::time::Instant::now();
    let plan = plan(s)?;
    let key = cache_key(&plan);
    let cached = cache.and_then(|dir| cache_read(dir, &key));
    let hit = cached.is_some();
    let program = match cached {
        Some(p) => p,
        None => {
            let p = compile(&plan)?;
            if let Some(dir) = cache {
                cache_write(dir, &key, &p);
            }
            p
        }
    };
    crate::logging::debug(&format!(
        "seccomp: {} rules, {} BPF instructions, {} in {:?}",
        plan.rules.len(),
        program.len(),
        if hit { "from the cache" } else { "compiled" },
        started.elapsed()
    ));
    let mut flags = plan.flags;
    let listener = match &plan.listener {
        Some(l) if plan.uses_notify() => {
            flags |= libc::SECCOMP_FILTER_FLAG_NEW_LISTENER as u32;
            if flags & libc::SECCOMP_FILTER_FLAG_TSYNC as u32 != 0 {
                // TSYNC reports a failed thread by its id, which collides
                // with the listener fd as return value; ESRCH instead.
                flags |= libc::SECCOMP_FILTER_FLAG_TSYNC_ESRCH as u32;
            }
            Some(listener::connect(l)?)
        }
        _ => {
            // The kernel refuses WAIT_KILLABLE_RECV without a listener;
            // with no notify rule there is nothing to wait on (libseccomp
            // drops it the same way).
            flags &= !(libc::SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV as u32);
            None
        }
    };
    Ok(Some(Filter {
        program,
        flags,
        listener,
    }))
}

/// Child side, as the last privileged step: install the filter. With
/// `noNewPrivileges` it goes right before execve; without it, before the
/// capabilities are dropped, since loading then needs CAP_SYS_ADMIN.
/// `state` is the container's OCI state JSON (status, pid...), sent to a
/// notify listener with the notify fd; it is unused otherwise.
pub fn load(filter: &Filter, state: &str) -> Result<()> {
    let len = u16::try_from(filter.program.len()).context("seccomp filter length")?;
    let prog = libc::sock_fprog {
        len,
        filter: filter.program.as_ptr() as *mut libc::sock_filter,
    };
    // SAFETY: `prog` points at `len` instructions owned by `filter`, alive
    // for the call; the kernel copies them and returns a new fd (or 0).
    let rc = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            filter.flags as libc::c_ulong,
            &prog as *const libc::sock_fprog,
        )
    };
    if rc < 0 {
        let err = std::io::Error::last_os_error();
        let hint = if err.raw_os_error() == Some(libc::EACCES) {
            " (without process.noNewPrivileges, loading needs CAP_SYS_ADMIN)"
        } else {
            ""
        };
        return Err(err).with_context(|| {
            format!(
                "load seccomp filter ({} instructions, flags {:#x}){hint}",
                filter.program.len(),
                filter.flags
            )
        });
    }
    let Some(l) = &filter.listener else {
        return Ok(());
    };
    // SAFETY: with NEW_LISTENER, seccomp(2) returned a new fd that we own.
    let notify_fd = unsafe { OwnedFd::from_raw_fd(rc as i32) };
    listener::send(l, &notify_fd, state)
}

/// What determines the program: the plan without its listener (which only
/// says where the notify fd goes), the libseccomp and berth that compile it,
/// and the kernel (libseccomp adapts to the API level it finds).
fn cache_key(plan: &Plan) -> String {
    let mut p = plan.clone();
    p.listener = None;
    let v = libseccomp::ScmpVersion::current().map_or((0, 0, 0), |v| (v.major, v.minor, v.micro));
    let kernel = nix::sys::utsname::uname()
        .map(|u| u.release().to_string_lossy().into_owned())
        .unwrap_or_default();
    format!(
        "berth {} libseccomp {}.{}.{} kernel {kernel}\n{p:?}\n",
        env!("CARGO_PKG_VERSION"),
        v.0,
        v.1,
        v.2
    )
}

fn cache_file(dir: &Path, key: &str) -> PathBuf {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    key.hash(&mut h);
    dir.join(format!("{:016x}.bpf", h.finish()))
}

/// A cached program: the file holds the whole key, then the program; a
/// different key (a hash collision) or a short or odd-sized program is a
/// miss. The directory is berth's state root, writable by its owner only.
fn cache_read(dir: &Path, key: &str) -> Option<Vec<libc::sock_filter>> {
    let bytes = std::fs::read(cache_file(dir, key)).ok()?;
    let rest = bytes.strip_prefix(key.as_bytes())?;
    let program = decode(rest).ok()?;
    (program.len() <= MAX_INSNS).then_some(program)
}

/// Best effort: written to a temporary file and renamed, so a reader sees a
/// whole entry or none; a failure only costs the next run a compile.
fn cache_write(dir: &Path, key: &str, program: &[libc::sock_filter]) {
    let mut bytes = key.as_bytes().to_vec();
    for i in program {
        bytes.extend_from_slice(&i.code.to_ne_bytes());
        bytes.extend_from_slice(&[i.jt, i.jf]);
        bytes.extend_from_slice(&i.k.to_ne_bytes());
    }
    let file = cache_file(dir, key);
    let tmp = file.with_extension(format!("tmp.{}", std::process::id()));
    use std::os::unix::fs::DirBuilderExt;
    let written = std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .and_then(|()| std::fs::write(&tmp, &bytes))
        .and_then(|()| std::fs::rename(&tmp, &file));
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        crate::logging::debug(&format!("seccomp: cache {}: {e}", file.display()));
    }
}

/// libseccomp builds the program; it is read back from a memfd, since this
/// libseccomp (2.5) has no export to memory.
fn compile(plan: &Plan) -> Result<Vec<libc::sock_filter>> {
    let mut ctx = ScmpFilterContext::new(scmp_action(plan.default))
        .context("seccomp: create filter context")?;
    for arch in &plan.arches {
        ctx.add_arch(scmp_arch(*arch))
            .with_context(|| format!("linux.seccomp.architectures: add {arch}"))?;
    }
    for rule in &plan.rules {
        // libseccomp refuses a rule that repeats the default action.
        if rule.action == plan.default {
            continue;
        }
        let Ok(nr) = ScmpSyscall::from_name(&rule.name) else {
            crate::logging::debug(&format!("seccomp: skip unknown syscall {:?}", rule.name));
            continue;
        };
        let conds: Vec<ScmpArgCompare> = rule.conds.iter().map(scmp_cond).collect();
        ctx.add_rule_conditional(scmp_action(rule.action), nr, &conds)
            .with_context(|| {
                format!(
                    "linux.seccomp: add rule {:?} for syscall {:?} with {} conditions",
                    rule.action,
                    rule.name,
                    conds.len()
                )
            })?;
    }
    let mut file = memfd("berth-seccomp")?;
    ctx.export_bpf(&file)
        .context("seccomp: export the BPF program")?;
    let mut bytes = Vec::new();
    file.seek(SeekFrom::Start(0))
        .and_then(|_| file.read_to_end(&mut bytes))
        .context("seccomp: read the BPF program back")?;
    let program = decode(&bytes)?;
    if program.len() > MAX_INSNS {
        bail!(
            "linux.seccomp: the filter has {} BPF instructions, more than the kernel's {MAX_INSNS}",
            program.len()
        );
    }
    Ok(program)
}

/// `struct sock_filter` is 8 bytes: code u16, jt u8, jf u8, k u32 (native order).
fn decode(bytes: &[u8]) -> Result<Vec<libc::sock_filter>> {
    if bytes.len() % 8 != 0 || bytes.is_empty() {
        bail!(
            "seccomp: exported BPF program has {} bytes, not a whole number of instructions",
            bytes.len()
        );
    }
    Ok(bytes
        .chunks_exact(8)
        .map(|c| libc::sock_filter {
            code: u16::from_ne_bytes([c[0], c[1]]),
            jt: c[2],
            jf: c[3],
            k: u32::from_ne_bytes([c[4], c[5], c[6], c[7]]),
        })
        .collect())
}

fn memfd(name: &str) -> Result<std::fs::File> {
    let cname = std::ffi::CString::new(name).context("memfd name")?;
    // SAFETY: memfd_create reads a NUL-terminated name and returns a new fd.
    let fd = unsafe { libc::memfd_create(cname.as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error())
            .context("memfd_create for the seccomp program");
    }
    // SAFETY: the fd was just returned to us and nobody else owns it.
    let file = unsafe { std::fs::File::from_raw_fd(fd) };
    debug_assert!(file.as_raw_fd() >= 0);
    Ok(file)
}

fn scmp_action(a: Action) -> ScmpAction {
    match a {
        Action::KillThread => ScmpAction::KillThread,
        Action::KillProcess => ScmpAction::KillProcess,
        Action::Trap => ScmpAction::Trap,
        Action::Errno(e) => ScmpAction::Errno(e as i32),
        Action::Trace(t) => ScmpAction::Trace(t),
        Action::Log => ScmpAction::Log,
        Action::Allow => ScmpAction::Allow,
        Action::Notify => ScmpAction::Notify,
    }
}

fn scmp_cond(c: &Cond) -> ScmpArgCompare {
    let op = match c.op {
        Op::Ne => ScmpCompareOp::NotEqual,
        Op::Lt => ScmpCompareOp::Less,
        Op::Le => ScmpCompareOp::LessOrEqual,
        Op::Eq => ScmpCompareOp::Equal,
        Op::Ge => ScmpCompareOp::GreaterEqual,
        Op::Gt => ScmpCompareOp::Greater,
        Op::MaskedEq { mask } => ScmpCompareOp::MaskedEqual(mask),
    };
    ScmpArgCompare::new(c.index, op, c.value)
}

fn scmp_arch(a: Arch) -> ScmpArch {
    match a {
        Arch::ScmpArchNative => ScmpArch::Native,
        Arch::ScmpArchX86 => ScmpArch::X86,
        Arch::ScmpArchX86_64 => ScmpArch::X8664,
        Arch::ScmpArchX32 => ScmpArch::X32,
        Arch::ScmpArchArm => ScmpArch::Arm,
        Arch::ScmpArchAarch64 => ScmpArch::Aarch64,
        Arch::ScmpArchMips => ScmpArch::Mips,
        Arch::ScmpArchMips64 => ScmpArch::Mips64,
        Arch::ScmpArchMips64n32 => ScmpArch::Mips64N32,
        Arch::ScmpArchMipsel => ScmpArch::Mipsel,
        Arch::ScmpArchMipsel64 => ScmpArch::Mipsel64,
        Arch::ScmpArchMipsel64n32 => ScmpArch::Mipsel64N32,
        Arch::ScmpArchPpc => ScmpArch::Ppc,
        Arch::ScmpArchPpc64 => ScmpArch::Ppc64,
        Arch::ScmpArchPpc64le => ScmpArch::Ppc64Le,
        Arch::ScmpArchS390 => ScmpArch::S390,
        Arch::ScmpArchS390x => ScmpArch::S390X,
        Arch::ScmpArchRiscv64 => ScmpArch::Riscv64,
    }
}

/// libseccomp's `assert()` failures, reported here instead of by glibc's
/// `__assert_fail`: the static link would otherwise pull in, for that one
/// message, glibc's wide-character printf and what it needs (~30 KB of the
/// 2 MiB binary budget). Same report, same end: one line on stderr, abort.
#[no_mangle]
extern "C" fn __assert_fail(
    assertion: *const libc::c_char,
    file: *const libc::c_char,
    line: libc::c_uint,
    function: *const libc::c_char,
) -> ! {
    let text = |p: *const libc::c_char| -> &[u8] {
        if p.is_null() {
            return b"";
        }
        // SAFETY: libseccomp's assert passes string literals.
        unsafe { std::ffi::CStr::from_ptr(p) }.to_bytes()
    };
    let line = format!(":{line}: ");
    let parts: [&[u8]; 7] = [
        b"berth: libseccomp: ",
        text(file),
        line.as_bytes(),
        text(function),
        b": Assertion `",
        text(assertion),
        b"' failed.\n",
    ];
    // Straight to fd 2, as one write: whatever state stderr's lock is in.
    let iov = parts.map(|p| libc::iovec {
        iov_base: p.as_ptr() as *mut libc::c_void,
        iov_len: p.len(),
    });
    // SAFETY: every iovec points into a slice alive for the call.
    unsafe { libc::writev(2, iov.as_ptr(), iov.len() as libc::c_int) };
    std::process::abort()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(seccomp: &str) -> LinuxSeccomp {
        serde_json::from_str(seccomp).expect("test seccomp")
    }

    fn prepare_uncached(s: Option<&LinuxSeccomp>) -> Result<Option<Filter>> {
        prepare(s, None)
    }

    /// The binary's `__assert_fail` is this one (glibc's is not linked in):
    /// a forked child that calls it prints the one line and dies of SIGABRT.
    #[test]
    fn a_libseccomp_assertion_is_reported_in_one_line_and_aborts() {
        use nix::sys::wait::{waitpid, WaitStatus};
        use nix::unistd::{fork, pipe, ForkResult};
        let (r, w) = pipe().expect("pipe");
        // SAFETY: the child only redirects stderr and calls the handler,
        // which never returns.
        match unsafe { fork() }.expect("fork") {
            ForkResult::Child => {
                // SAFETY: dup2 onto our own stderr.
                unsafe { libc::dup2(w.as_raw_fd(), 2) };
                __assert_fail(
                    c"arch != NULL".as_ptr(),
                    c"db.c".as_ptr(),
                    7,
                    c"db_new".as_ptr(),
                )
            }
            ForkResult::Parent { child } => {
                drop(w);
                let mut out = String::new();
                std::fs::File::from(r)
                    .read_to_string(&mut out)
                    .expect("read");
                let status = waitpid(child, None).expect("wait");
                assert_eq!(
                    out,
                    "berth: libseccomp: db.c:7: db_new: Assertion `arch != NULL' failed.\n"
                );
                assert!(
                    matches!(
                        status,
                        WaitStatus::Signaled(_, nix::sys::signal::SIGABRT, _)
                    ),
                    "{status:?}"
                );
            }
        }
    }

    #[test]
    fn cached_program_is_the_compiled_one_and_keyed_by_the_plan() {
        let dir = tempfile::tempdir().expect("tempdir");
        let profile = |name: &str| {
            spec(&format!(
                r#"{{"defaultAction": "SCMP_ACT_ALLOW",
                    "syscalls": [{{"names": ["{name}"], "action": "SCMP_ACT_ERRNO"}}]}}"#
            ))
        };
        let fields = |f: &Filter| -> Vec<(u16, u8, u8, u32)> {
            f.program
                .iter()
                .map(|i| (i.code, i.jt, i.jf, i.k))
                .collect()
        };
        let compiled = prepare(Some(&profile("mkdir")), Some(dir.path()))
            .expect("compile")
            .expect("a filter");
        assert_eq!(std::fs::read_dir(dir.path()).expect("cache dir").count(), 1);
        let key = cache_key(&plan(&profile("mkdir")).expect("plan"));
        let cached = cache_read(dir.path(), &key).expect("a cache entry");
        assert_eq!(
            cached
                .iter()
                .map(|i| (i.code, i.jt, i.jf, i.k))
                .collect::<Vec<_>>(),
            fields(&compiled)
        );
        let again = prepare(Some(&profile("mkdir")), Some(dir.path()))
            .expect("from the cache")
            .expect("a filter");
        assert_eq!(fields(&again), fields(&compiled));
        // Another profile is another entry, never the first one's program.
        let other = prepare(Some(&profile("rmdir")), Some(dir.path()))
            .expect("compile")
            .expect("a filter");
        assert_ne!(fields(&other), fields(&compiled));
        assert_eq!(std::fs::read_dir(dir.path()).expect("cache dir").count(), 2);
        // An entry whose stored key differs (a collision) is a miss.
        std::fs::write(cache_file(dir.path(), &key), b"another key").expect("overwrite");
        assert!(cache_read(dir.path(), &key).is_none());
    }

    #[test]
    fn compiles_a_small_profile_to_bpf() {
        let f = prepare_uncached(Some(&spec(
            r#"{"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
                "syscalls": [{"names": ["mkdir", "mkdirat", "no_such_syscall"], "action": "SCMP_ACT_ERRNO"},
                             {"names": ["getpid"], "action": "SCMP_ACT_ALLOW"},
                             {"names": ["personality"], "action": "SCMP_ACT_ERRNO",
                              "args": [{"index": 0, "value": 255, "valueTwo": 8, "op": "SCMP_CMP_MASKED_EQ"}]}]}"#,
        )))
        .expect("compile")
        .expect("a filter");
        let n = f.program.len();
        assert!(n > 4 && n < 200, "{n} instructions");
        assert!(!f.needs_state());
        assert_eq!(f.flags, 0);
    }

    #[test]
    fn wait_killable_recv_is_kept_only_with_a_listener() {
        const WKR: u32 = libc::SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV as u32;
        const NL: u32 = libc::SECCOMP_FILTER_FLAG_NEW_LISTENER as u32;
        let flags = r#""flags": ["SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"]"#;
        let plain = prepare_uncached(Some(&spec(&format!(
            r#"{{"defaultAction": "SCMP_ACT_ALLOW", {flags},
                "syscalls": [{{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO"}}]}}"#
        ))))
        .expect("compile")
        .expect("a filter");
        assert_eq!(plain.flags, 0, "dropped without a listener");

        let dir = tempfile::tempdir().expect("tempdir");
        let sock = dir.path().join("agent.sock");
        let _agent = std::os::unix::net::UnixListener::bind(&sock).expect("bind");
        let notify = prepare_uncached(Some(&spec(&format!(
            r#"{{"defaultAction": "SCMP_ACT_ALLOW", {flags}, "listenerPath": "{}",
                "syscalls": [{{"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}}]}}"#,
            sock.display()
        ))))
        .expect("compile")
        .expect("a filter");
        assert_eq!(notify.flags, WKR | NL);
        assert!(notify.needs_state());
    }

    #[test]
    fn no_seccomp_no_filter() {
        assert!(prepare(None, None).expect("prepare").is_none());
    }

    #[test]
    fn decode_checks_length() {
        assert!(decode(&[0; 12]).is_err());
        let p = decode(&[6, 0, 1, 2, 0, 0, 0xff, 0x7f]).expect("one insn");
        assert_eq!((p[0].code, p[0].jt, p[0].jf), (6, 1, 2));
        assert_eq!(p[0].k, 0x7fff_0000);
    }
}
