//! Items 1-3: the berth binary and berth's own fds stay out of the
//! container's reach (CVE-2019-5736, CVE-2016-9962, CVE-2024-21626).

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::json;

use crate::common::{stderr, stdout, Env, BERTH};
use crate::{config_with_rootfs, install_probe, private_rootfs, results_mount, wait_for_text};

/// A berth command for this env run from `binary` instead of the build's,
/// with `BERTH_EXE_SEAL=seal` when given.
fn berth_from(env: &Env, binary: &Path, seal: Option<&str>, args: &[&str]) -> Output {
    let mut c = Command::new(binary);
    if let Some(seal) = seal {
        c.env("BERTH_EXE_SEAL", seal);
    }
    c.arg("--root")
        .arg(&env.root)
        .arg("--layer-root")
        .arg(&env.layer_root);
    c.args(args).stdin(Stdio::null());
    env.output_of(&mut c)
}

/// A private copy of the berth binary: the one the attacks aim at, so a
/// successful attack damages only the copy.
fn berth_copy(env: &Env) -> PathBuf {
    let p = env.tmp.path().join("berth-copy");
    std::fs::copy(BERTH, &p).expect("copy berth");
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    p
}

#[test]
fn cve_2019_5736_proc_self_exe_overwrite() {
    // The default: berth runs from a sealed read-only overlay of itself.
    proc_self_exe_overwrite(None);
}

#[test]
fn cve_2019_5736_proc_self_exe_overwrite_with_the_memfd_copy() {
    proc_self_exe_overwrite(Some("copy"));
}

/// A probe in the container tries to write the berth binary through
/// `/proc/<pid>/exe` of berth processes it can see (`exec` of a
/// `#!/proc/self/exe` script, and a second container whose entrypoint that
/// script is, in the probe's pid namespace).
fn proc_self_exe_overwrite(seal: Option<&str>) {
    let env = Env::new();
    let rootfs = private_rootfs(&env);
    install_probe(&rootfs);
    // An "executable" whose interpreter is whatever binary execs it: berth.
    let evil = rootfs.join("evil");
    std::fs::write(&evil, "#!/proc/self/exe\n").expect("write evil");
    std::fs::set_permissions(&evil, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    // Control: a dumpable container process whose binary the probe can
    // overwrite once it exits, proving the technique works here.
    std::fs::create_dir_all(rootfs.join("opt")).expect("opt");
    std::fs::copy(rootfs.join("bin/busybox"), rootfs.join("opt/sleep")).expect("control binary");
    let (results, mount) = results_mount(&env);
    config_with_rootfs(&env, &rootfs, |c| {
        c["annotations"] = json!({"run.berth.rootfs": "bind"});
        c["mounts"].as_array_mut().expect("mounts").push(mount);
        c["process"]["args"] = json!(["/probe", "exe-overwrite", "8", "/results/exe"]);
    });
    let berth = berth_copy(&env);
    let before = std::fs::read(&berth).expect("read berth");
    let id = env.id("cve5736");
    let bundle = env.bundle.to_string_lossy().into_owned();
    let out = berth_from(&env, &berth, seal, &["run", "-d", "-b", &bundle, &id]);
    assert!(out.status.success(), "{}", stderr(&out));
    let ready = wait_for_text(&results.join("exe"), "READY", 10);
    assert!(ready.contains("READY"), "probe did not start: {ready}");
    let control = berth_from(&env, &berth, seal, &["exec", "-d", &id, "/opt/sleep", "1"]);
    assert!(control.status.success(), "{}", stderr(&control));
    // `exec` of the shebang, and a second container whose own entrypoint
    // it is, joining the attacker's pid namespace.
    let pid = env.pid(&id);
    let env2 = Env::new();
    let pidns = format!("/proc/{pid}/ns/pid");
    config_with_rootfs(&env2, &rootfs, |c| {
        c["process"]["args"] = json!(["/evil"]);
        for ns in c["linux"]["namespaces"].as_array_mut().expect("namespaces") {
            if ns["type"] == "pid" {
                ns["path"] = pidns.clone().into();
            }
        }
    });
    let bundle2 = env2.bundle.to_string_lossy().into_owned();
    for i in 0..20 {
        let _ = berth_from(&env, &berth, seal, &["exec", &id, "/evil"]);
        let id2 = env2.id(&format!("cve5736-{i}"));
        let _ = berth_from(&env2, &berth, seal, &["run", "-b", &bundle2, &id2]);
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let report = wait_for_text(&results.join("exe"), "DONE", 15);
    let after = std::fs::read(&berth).expect("read berth");
    eprintln!("{}", report.lines().last().unwrap_or_default());
    assert!(
        before == after,
        "the berth binary was overwritten from inside the container:\n{report}"
    );
    assert!(report.contains("DONE"), "probe never finished: {report}");
    let ctl = std::fs::read(rootfs.join("opt/sleep")).expect("control binary");
    assert!(ctl.starts_with(b"PWNED"), "control: the probe could not overwrite a dumpable container binary, so it proves nothing: {report}");
}

/// Which image a berth process runs from, seen from outside: the link
/// target and the filesystem of `/proc/<pid>/exe` of a foreground `exec`.
#[test]
fn berth_runs_from_a_read_only_overlay_or_a_sealed_memfd() {
    let env = Env::new();
    let berth = berth_copy(&env);
    let id = env.id("sealed");
    let bundle = env.bundle.to_string_lossy().into_owned();
    env.ok(&["run", "-d", "-b", &bundle, &id, "sleep", "30"]);
    let image_of = |seal: Option<&str>| {
        let mut c = Command::new(&berth);
        if let Some(seal) = seal {
            c.env("BERTH_EXE_SEAL", seal);
        }
        let mut child = c
            .arg("--root")
            .arg(&env.root)
            .args(["exec", &id, "sleep", "2"])
            .stdin(Stdio::null())
            .spawn()
            .expect("spawn berth exec");
        let exe = format!("/proc/{}/exe", child.id());
        // Past the re-exec once the link no longer names the copy on disk.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        let mut link = PathBuf::new();
        while std::time::Instant::now() < deadline {
            link = std::fs::read_link(&exe).unwrap_or_default();
            if !link.as_os_str().is_empty() && link != berth {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        let fs = statfs_type(&exe);
        let write = std::fs::OpenOptions::new()
            .write(true)
            .open(&exe)
            .map(|_| ());
        let status = child.wait().expect("wait berth exec");
        assert!(status.success(), "berth exec with {seal:?} failed");
        (link, fs, write)
    };
    let (link, fs, write) = image_of(None);
    assert_eq!(link, Path::new("/berth-copy"), "default image: {link:?}");
    assert_eq!(
        fs,
        Some(OVERLAYFS_SUPER_MAGIC),
        "default image is not on overlayfs"
    );
    let err = write.expect_err("the overlay image opened for writing");
    assert_eq!(err.raw_os_error(), Some(libc::EROFS), "{err}");
    let (link, fs, write) = image_of(Some("copy"));
    assert!(
        link.to_string_lossy().starts_with("/memfd:berth"),
        "copy image: {link:?}"
    );
    assert_eq!(fs, Some(TMPFS_MAGIC), "copy image is not a memfd");
    assert!(write.is_err(), "the sealed memfd opened for writing");
    env.ok(&["delete", "-f", &id]);
    // A value berth does not know is refused in one line, before any work.
    let out = berth_from(
        &env,
        &berth,
        Some("bogus"),
        &["run", "-d", "-b", &bundle, &env.id("bogus"), "true"],
    );
    assert!(!out.status.success());
    assert_eq!(
        stderr(&out).trim(),
        "berth: BERTH_EXE_SEAL=bogus: expected overlay or copy"
    );
}

/// The system calls, in order, of berth's own process (not its children)
/// for `args`: strace's lines, which start with the call's name.
fn syscalls_of(env: &Env, args: &[&str]) -> Vec<String> {
    let log = env.tmp.path().join(format!("strace-{}", env.id("log")));
    let log_arg = log.to_string_lossy().into_owned();
    let out = env.wrapped(&["strace", "-qq", "-o", &log_arg], args);
    assert!(
        out.status.success(),
        "strace berth {args:?}: {}",
        stderr(&out)
    );
    let text = std::fs::read_to_string(&log).expect("read the strace log");
    text.lines()
        .filter(|l| l.contains('('))
        .map(str::to_string)
        .collect()
}

/// The call's name of a line from [`syscalls_of`].
fn call_name(line: &str) -> &str {
    line.split_once('(').map_or(line, |(name, _)| name)
}

/// The overlay re-exec is done at the ELF entry, before glibc starts: the
/// first image's system calls are only those of making the overlay and
/// executing through it. Done from `main`, glibc's start-up (brk,
/// arch_prctl, set_tid_address, …) and main's would come first, and the
/// whole start would be paid twice. Global options before the subcommand
/// do not hide it; a command that needs no seal never re-executes.
#[test]
fn the_sealed_reexec_happens_before_libc_starts() {
    let env = Env::new();
    let id = env.id("early");
    let bundle = env.bundle.to_string_lossy().into_owned();
    let layers = env.layer_root.to_string_lossy().into_owned();
    let args = [
        "--layer-root",
        &layers,
        "--log-format=text",
        "run",
        "-b",
        &bundle,
        &id,
        "true",
    ];
    let lines = syscalls_of(&env, &args);
    let calls: Vec<&str> = lines.iter().map(|l| call_name(l)).collect();
    assert_eq!(calls.first().copied(), Some("execve"), "{calls:?}");
    let reexec = calls
        .iter()
        .position(|c| *c == "execveat")
        .unwrap_or_else(|| panic!("run never re-executed: {calls:?}"));
    let overlay = [
        "statfs", "readlink", "fsopen", "fsconfig", "fsmount", "close", "statx",
    ];
    for call in &calls[1..reexec] {
        assert!(
            overlay.contains(call),
            "{call} before the sealed re-exec: {:?}",
            &calls[..=reexec]
        );
    }
    assert_eq!(
        calls.iter().filter(|c| **c == "execveat").count(),
        1,
        "{calls:?}"
    );
    // The sealed image asks once whether it runs sealed (berth_entry
    // tells main what it found).
    let looks = lines[reexec..]
        .iter()
        .filter(|l| l.starts_with("statfs(\"/proc/self/exe\""))
        .count();
    assert_eq!(looks, 1, "{:#?}", &lines[reexec..]);
    let list = syscalls_of(&env, &["list"]);
    assert!(
        !list
            .iter()
            .any(|l| matches!(call_name(l), "execveat" | "fsopen")),
        "list re-executed: {list:?}"
    );
}

const OVERLAYFS_SUPER_MAGIC: i64 = 0x794c_7630;
const TMPFS_MAGIC: i64 = 0x0102_1994;

fn statfs_type(path: &str) -> Option<i64> {
    let c = std::ffi::CString::new(path).ok()?;
    // SAFETY: statfs writes into the zeroed struct we own; the path is
    // NUL-terminated.
    let mut sfs: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    (unsafe { libc::statfs(c.as_ptr(), &mut sfs) } == 0).then_some(sfs.f_type as i64)
}

#[test]
fn cve_2016_9962_ptrace_and_fds_of_the_joining_process() {
    let env = Env::new();
    let rootfs = private_rootfs(&env);
    install_probe(&rootfs);
    let (results, mount) = results_mount(&env);
    config_with_rootfs(&env, &rootfs, |c| {
        c["mounts"].as_array_mut().expect("mounts").push(mount);
        c["process"]["args"] = json!(["/probe", "ptrace-watch", "6", "/results/ptrace"]);
    });
    let id = env.id("cve9962");
    let bundle = env.bundle.to_string_lossy().into_owned();
    env.ok(&["run", "-d", "-b", &bundle, &id]);
    let ready = wait_for_text(&results.join("ptrace"), "READY", 10);
    assert!(ready.contains("READY"), "probe did not start: {ready}");
    for _ in 0..40 {
        let _ = env.berth(&["exec", &id, "true"]);
    }
    let report = wait_for_text(&results.join("ptrace"), "DONE", 15);
    assert!(report.contains("DONE"), "probe never finished: {report}");
    eprintln!(
        "{}",
        report
            .lines()
            .filter(|l| !l.starts_with("READY"))
            .take(10)
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert!(
        !report.contains("ATTACHED"),
        "a container process ptraced berth:\n{report}"
    );
    assert!(
        !report.contains("LEAK"),
        "a container process read berth's fds:\n{report}"
    );
    // Otherwise the test proves nothing: the probe must have seen berth.
    assert!(
        !report.contains("berth_seen=0 "),
        "the probe never saw a joining berth process: {report}"
    );
}

/// `berth` with extra fds leaked by the caller, not close-on-exec: fd 5 on
/// the host's `/`, fd 7 on a host dir holding HOST_MARKER.
fn leaky(env: &Env, args: &[&str]) -> Output {
    let host_dir = env.tmp.path().join("hostdir");
    std::fs::create_dir_all(&host_dir).expect("host dir");
    std::fs::write(host_dir.join("HOST_MARKER"), "").expect("marker");
    let root = std::fs::File::open("/").expect("open /");
    let dir = std::fs::File::open(&host_dir).expect("open host dir");
    let mut c = env.cmd();
    c.args(args);
    let (r, d) = (
        std::os::fd::AsRawFd::as_raw_fd(&root),
        std::os::fd::AsRawFd::as_raw_fd(&dir),
    );
    // SAFETY: only async-signal-safe dup2 between fork and exec.
    unsafe {
        c.pre_exec(move || {
            if libc::dup2(r, 5) < 0 || libc::dup2(d, 7) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    env.output_of(&mut c)
}

/// The command prints `pwd` first: outside the root getcwd(2) fails or says
/// "(unreachable)"; a leaked host dir shows its marker, a cgroup dir its files.
fn escaped(out: &Output) -> bool {
    let text = stdout(out);
    let pwd = text.lines().next().unwrap_or("");
    !pwd.starts_with('/')
        || text.contains("HOST_MARKER")
        || text.contains("vmlinuz")
        || text.contains("cgroup.procs")
}

#[test]
fn cve_2024_21626_process_cwd_proc_self_fd() {
    let env = Env::new();
    let bundle = env.bundle.to_string_lossy().into_owned();
    let mut failures = Vec::new();
    for n in 3..64 {
        let cwd = format!("/proc/self/fd/{n}");
        env.write_config(|c| c["process"]["cwd"] = cwd.clone().into());
        let id = env.id(&format!("cwd{n}"));
        let out = leaky(
            &env,
            &[
                "run",
                "-b",
                &bundle,
                &id,
                "sh",
                "-c",
                "pwd || echo no-cwd; ls -a",
            ],
        );
        if out.status.success() && escaped(&out) {
            failures.push(format!("cwd {cwd}: {}", stdout(&out).replace('\n', " ")));
        }
    }
    assert!(
        failures.is_empty(),
        "process.cwd escaped the root:\n{}",
        failures.join("\n")
    );
}

#[test]
fn cve_2024_21626_exec_cwd_proc_self_fd() {
    let env = Env::new();
    let id = env.id("execcwd");
    let bundle = env.bundle.to_string_lossy().into_owned();
    env.ok(&["run", "-d", "-b", &bundle, &id, "sleep", "1000"]);
    let mut failures = Vec::new();
    for n in 3..64 {
        let cwd = format!("/proc/self/fd/{n}");
        let out = leaky(
            &env,
            &[
                "exec",
                "--cwd",
                &cwd,
                &id,
                "sh",
                "-c",
                "pwd || echo no-cwd; ls -a",
            ],
        );
        if out.status.success() && escaped(&out) {
            failures.push(format!("--cwd {cwd}: {}", stdout(&out).replace('\n', " ")));
        }
    }
    assert!(
        failures.is_empty(),
        "exec --cwd escaped the root:\n{}",
        failures.join("\n")
    );
}

/// Targets allowed among the fds of a created (not yet started) container
/// process: its stdio, the exec fifo, the sync socket, and anonymous
/// kernel objects. Nothing that names a host directory.
fn allowed_fd(target: &str, env: &Env) -> bool {
    target == "/dev/null"
        // berth's stdout/stderr: the harness captures them in files.
        || ["out-", "err-"]
            .iter()
            .any(|p| target.starts_with(&*env.tmp.path().join(p).to_string_lossy()))
        || target.ends_with("/exec.fifo")
        || target.starts_with("socket:")
        || target.starts_with("pipe:")
        || target.starts_with("anon_inode:")
}

#[test]
fn cve_2024_21626_leaked_fds_never_reach_the_container() {
    let env = Env::new();
    let rootfs = private_rootfs(&env);
    install_probe(&rootfs);
    config_with_rootfs(&env, &rootfs, |c| {
        c["process"]["args"] = json!(["/probe", "fds"])
    });
    let id = env.id("fds");
    let bundle = env.bundle.to_string_lossy().into_owned();
    let out = leaky(&env, &["create", "-b", &bundle, &id]);
    assert!(out.status.success(), "{}", stderr(&out));
    let pid = env.pid(&id);
    let mut bad = Vec::new();
    for e in std::fs::read_dir(format!("/proc/{pid}/fd")).expect("fds of the created container") {
        let e = e.expect("fd entry");
        let target = std::fs::read_link(e.path()).map(|t| t.to_string_lossy().into_owned());
        let target = target.unwrap_or_default();
        if !allowed_fd(&target, &env) {
            bad.push(format!(
                "fd {} -> {target}",
                e.file_name().to_string_lossy()
            ));
        }
    }
    assert!(
        bad.is_empty(),
        "created container holds host fds:\n{}",
        bad.join("\n")
    );
    // After start, the program itself holds stdio only.
    let started = env.berth(&["start", &id]);
    assert!(started.status.success(), "{}", stderr(&started));
    let env_run = Env::new();
    config_with_rootfs(&env_run, &rootfs, |c| {
        c["process"]["args"] = json!(["/probe", "fds"])
    });
    let id2 = env_run.id("fdsrun");
    let bundle2 = env_run.bundle.to_string_lossy().into_owned();
    let out = leaky(&env_run, &["run", "-b", &bundle2, &id2]);
    assert!(out.status.success(), "{}", stderr(&out));
    let fds: Vec<String> = stdout(&out).lines().map(str::to_string).collect();
    assert_eq!(fds.len(), 3, "only stdio may survive execve: {fds:?}");
    assert!(
        fds.iter()
            .all(|l| l.starts_with("fd 0 ") || l.starts_with("fd 1 ") || l.starts_with("fd 2 ")),
        "{fds:?}"
    );
}
