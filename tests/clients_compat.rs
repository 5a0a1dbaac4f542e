//! What real orchestrators (podman + conmon, containerd's runc v2 shim) expect
//! of a runc-compatible runtime, pinned down one behaviour at a time. Each
//! test names the client that depends on it; `tests/clients/run.py` drives
//! the clients themselves.

mod common;

use common::{stderr, Env};

/// containerd's shim runs `delete` and then `delete --force` of the same id;
/// conmon runs `delete --force` after a failed create. runc exits 0 for a
/// `delete --force` of a container that does not exist, and so must berth:
/// an error there becomes "failed to remove runc container" in containerd.
#[test]
fn delete_force_of_missing_container_succeeds() {
    let env = Env::new();
    let id = env.id("gone");
    // Never created.
    let out = env.berth(&["delete", "--force", &id]);
    assert!(
        out.status.success(),
        "delete --force of a missing container: {}",
        stderr(&out)
    );
    // (A warning may say so; an error line may not.)
    assert!(!stderr(&out).contains("level=error"), "{}", stderr(&out));
    // Without --force it is still an error, as in runc.
    let out = env.berth(&["delete", &id]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("does not exist"), "{}", stderr(&out));
    // The shim's sequence: run to completion, delete, delete --force.
    let bundle = env.bundle.to_string_lossy().into_owned();
    env.ok(&["run", "-d", "-b", &bundle, &id, "true"]);
    env.wait_status(&id, "stopped");
    env.ok(&["delete", &id]);
    env.ok(&["delete", "--force", &id]);
    env.assert_gone(&id);
}

/// containerd's shim sends `kill --all <id> 9` before deleting a task with
/// `ctr task delete --force`, also when the task has already exited. runc
/// exits 0 for `kill --all` of a stopped container (the cgroup is empty);
/// berth said "container is not running" and the delete failed. A plain
/// `kill` of a stopped container is still an error, as in runc.
#[test]
fn kill_all_of_stopped_container_succeeds() {
    let env = Env::new();
    let id = env.id("killall-stopped");
    let bundle = env.bundle.to_string_lossy().into_owned();
    env.ok(&["run", "-d", "-b", &bundle, &id, "true"]);
    env.wait_status(&id, "stopped");
    env.ok(&["kill", "--all", &id, "9"]);
    env.ok(&["kill", "-a", &id, "KILL"]);
    let out = env.berth(&["kill", &id, "9"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("not running"), "{}", stderr(&out));
    env.ok(&["delete", &id]);
    env.assert_gone(&id);
}

/// runc's spellings of flags that scripts written for runc pass: `update
/// --cpu-share` (singular), `update --l3-cache-schema/--mem-bw-schema`
/// (refused with a reason, not clap's "unexpected argument", exit 1 not 2),
/// `run --no-subreaper` (accepted: berth never makes itself a subreaper).
#[test]
fn runc_flag_spellings() {
    let env = Env::new();
    let bundle = env.bundle.to_string_lossy().into_owned();
    let id = env.id("spell");
    env.ok(&["run", "-d", "-b", &bundle, &id, "sleep", "1000"]);
    env.ok(&["update", "--cpu-share", "512", &id]);
    // Where the cpu controller is v1 (hybrid hosts), the value is visible.
    let pid = env.pid(&id);
    let cg = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).expect("cgroup");
    if let Some(path) = cg.lines().find_map(|l| {
        let mut f = l.splitn(3, ':');
        let (_, ctrls, path) = (f.next()?, f.next()?, f.next()?);
        ctrls
            .split(',')
            .any(|c| c == "cpu")
            .then(|| path.to_string())
    }) {
        for mnt in ["/sys/fs/cgroup/cpu", "/sys/fs/cgroup/cpu,cpuacct"] {
            let file = format!("{mnt}{path}/cpu.shares");
            if let Ok(v) = std::fs::read_to_string(&file) {
                assert_eq!(v.trim(), "512", "{file}");
            }
        }
    }
    for flag in ["--l3-cache-schema", "--mem-bw-schema"] {
        let out = env.berth(&["update", flag, "L3:0=f", &id]);
        assert_eq!(out.status.code(), Some(1), "{flag}: {}", stderr(&out));
        assert!(
            stderr(&out).contains("Intel RDT"),
            "{flag}: {}",
            stderr(&out)
        );
    }
    env.ok(&["delete", "--force", &id]);

    let id = env.id("nosubreaper");
    let out = env.berth(&[
        "run",
        "--no-subreaper",
        "-b",
        &bundle,
        &id,
        "sh",
        "-c",
        "exit 3",
    ]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    env.assert_gone(&id);
}

/// Every `podman run` sends `linux.sysctl` `net.ipv4.ping_group_range` (from
/// containers.conf) together with `readonlyPaths: ["/proc/sys", ...]`. runc
/// writes sysctls before it makes the read-only paths read-only; a runtime
/// that writes them afterwards fails every default podman container with
/// "Read-only file system". The values must land in the container's own
/// namespaces (network, ipc, uts) and the host's must not change.
#[test]
fn sysctls_are_written_before_proc_sys_is_read_only() {
    let env = Env::with_config(|c| {
        c["linux"]["sysctl"] = serde_json::json!({
            "net.ipv4.ping_group_range": "0 0",
            "kernel.shmmni": "1234",
            "kernel.domainname": "berth-test",
        });
    });
    let host_range = std::fs::read_to_string("/proc/sys/net/ipv4/ping_group_range").unwrap();
    let host_shmmni = std::fs::read_to_string("/proc/sys/kernel/shmmni").unwrap();
    let id = env.id("sysctl");
    let out = env.run(
        &id,
        &[
            "sh",
            "-c",
            "cat /proc/sys/net/ipv4/ping_group_range /proc/sys/kernel/shmmni \
             /proc/sys/kernel/domainname; echo x > /proc/sys/kernel/shmmni || echo ro",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let got = String::from_utf8_lossy(&out.stdout).replace('\t', " ");
    assert_eq!(got, "0 0\n1234\nberth-test\nro\n", "{}", stderr(&out));
    assert_eq!(
        std::fs::read_to_string("/proc/sys/net/ipv4/ping_group_range").unwrap(),
        host_range
    );
    assert_eq!(
        std::fs::read_to_string("/proc/sys/kernel/shmmni").unwrap(),
        host_shmmni
    );
}

/// A caller's fds other than stdio (and `--preserve-fds`) never reach the
/// container, not even while it waits for `start`: runc's init never sees
/// them. A caller that hands a runtime a pipe (a bash wrapper's `2> >(tee)`
/// leaves its write end on fd 63; containerd's shim then waits for EOF on
/// the runtime's output) must see EOF once `create` has exited, or it waits
/// for a `start` that never comes.
#[test]
fn created_container_holds_no_inherited_fds() {
    use std::io::Read;
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    use std::os::unix::process::CommandExt;

    let env = Env::new();
    let id = env.id("fds-created");
    let mut fds = [0; 2];
    // SAFETY: pipe2 fills two fds that we then own.
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    let (r, w) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    let w_raw = w.as_raw_fd();
    let bundle = env.bundle.to_string_lossy().into_owned();
    let mut cmd = env.cmd();
    cmd.args(["create", "-b", &bundle, &id, "sleep", "100"]);
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            // fd 7, not close-on-exec: inherited by berth, as a shell does.
            if libc::dup2(w_raw, 7) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let out = env.output_of(&mut cmd);
    assert!(out.status.success(), "create: {}", stderr(&out));
    drop(w);
    // create has exited: nobody may hold the write end any more.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut f = std::fs::File::from(r);
        let mut buf = Vec::new();
        let _ = tx.send(f.read_to_end(&mut buf).map(|_| buf.len()));
    });
    let eof = rx.recv_timeout(std::time::Duration::from_secs(5));
    let pid = env.pid(&id);
    let held: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| {
            d.flatten()
                .map(|e| {
                    let target = std::fs::read_link(e.path()).unwrap_or_default();
                    format!(
                        "{} -> {}",
                        e.file_name().to_string_lossy(),
                        target.display()
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    env.ok(&["delete", "--force", &id]);
    assert!(
        matches!(eof, Ok(Ok(0))),
        "the created container still holds the caller's pipe (fd 7); its fds: {held:?}"
    );
}
