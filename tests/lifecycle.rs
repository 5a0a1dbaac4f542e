//! The OCI lifecycle, exit codes and signals, checked against the real
//! kernel: create → created → start → running → kill → stopped → delete.

mod common;

use std::time::Duration;

use common::{ns_of, stderr, stdout, Env};

#[test]
fn create_start_kill_delete() {
    let env = Env::new();
    let id = env.id("life");
    env.create(&id, &["sleep", "1000"]);
    assert_eq!(env.status(&id), "created");
    let pid = env.pid(&id);
    assert!(pid > 0);
    // Created: the process exists but has not exec'd the user command yet.
    let exe = std::fs::read_link(format!("/proc/{pid}/exe")).expect("exe");
    assert!(
        !exe.to_string_lossy().contains("busybox"),
        "user command ran before start: {exe:?}"
    );
    let st = env.state(&id);
    assert_eq!(st["id"], id.as_str());
    assert_eq!(
        st["ociVersion"].as_str().map(|v| v.starts_with("1.")),
        Some(true)
    );
    assert_eq!(st["bundle"], env.bundle.to_string_lossy().as_ref());
    assert!(st["annotations"].is_object());

    env.ok(&["start", &id]);
    env.wait_status(&id, "running");
    let exe = std::fs::read_link(format!("/proc/{pid}/exe")).expect("exe");
    assert!(exe.to_string_lossy().ends_with("busybox"), "{exe:?}");

    env.ok(&["kill", &id, "KILL"]);
    env.wait_status(&id, "stopped");
    env.ok(&["delete", &id]);
    env.assert_gone(&id);
    let out = env.berth(&["state", &id]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("does not exist"), "{}", stderr(&out));
}

#[test]
fn run_foreground_prints_and_cleans_up() {
    let env = Env::new();
    let id = env.id("fg");
    let out = env.run(&id, &["sh", "-c", "echo hello from $(hostname)"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "hello from berth\n");
    env.assert_gone(&id);
}

#[test]
fn run_detached_then_kill_and_delete() {
    let env = Env::new();
    let id = env.id("detach");
    let bundle = env.bundle.to_string_lossy().into_owned();
    env.ok(&["run", "-d", "-b", &bundle, &id, "sleep", "1000"]);
    assert_eq!(env.status(&id), "running");
    let out = env.berth(&["delete", &id]);
    assert!(
        !out.status.success(),
        "delete of a running container must fail"
    );
    assert!(stderr(&out).contains("not stopped"), "{}", stderr(&out));
    assert_eq!(stderr(&out).lines().count(), 1);
    env.ok(&["kill", &id, "SIGTERM"]);
    // sleep as pid 1 ignores TERM (no handler): still running, then KILL.
    env.ok(&["kill", &id, "9"]);
    env.wait_status(&id, "stopped");
    env.ok(&["delete", &id]);
    env.assert_gone(&id);
}

#[test]
fn delete_force_kills_running_container() {
    let env = Env::new();
    let id = env.id("force");
    let bundle = env.bundle.to_string_lossy().into_owned();
    env.ok(&["run", "-d", "-b", &bundle, &id, "sleep", "1000"]);
    let pid = env.pid(&id);
    env.ok(&["delete", "--force", &id]);
    env.assert_gone(&id);
    assert!(!common::alive(pid), "container process {pid} survived");
}

#[test]
fn exit_codes() {
    let env = Env::new();
    let id = env.id("exit42");
    let out = env.run(&id, &["sh", "-c", "exit 42"]);
    assert_eq!(out.status.code(), Some(42), "{}", stderr(&out));
    env.assert_gone(&id);

    // SIGKILL from outside (pid 1 of a namespace ignores it from inside).
    let id = env.id("killed");
    let bundle = env.bundle.to_string_lossy().into_owned();
    let mut child = env
        .cmd()
        .args(["run", "-b", &bundle, &id, "sleep", "1000"])
        .spawn()
        .expect("spawn");
    env.wait_status(&id, "running");
    env.ok(&["kill", &id, "KILL"]);
    assert_eq!(child.wait().expect("wait").code(), Some(137));
    env.assert_gone(&id);
}

#[test]
fn sigterm_to_run_reaches_the_container() {
    let env = Env::new();
    let id = env.id("term");
    let bundle = env.bundle.to_string_lossy().into_owned();
    let child = env
        .cmd()
        .args([
            "run",
            "-b",
            &bundle,
            &id,
            "sh",
            "-c",
            "trap 'echo got-term; exit 7' TERM; echo ready; while true; do sleep 0.05; done",
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    env.wait_status(&id, "running");
    std::thread::sleep(Duration::from_millis(200));
    // SAFETY: plain kill(2) on the pid of our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let out = child.wait_with_output().expect("wait");
    assert_eq!(out.status.code(), Some(7));
    assert!(stdout(&out).contains("got-term"), "{}", stdout(&out));
    env.assert_gone(&id);
}

#[test]
fn run_keep_leaves_a_stopped_container() {
    let env = Env::new();
    let id = env.id("keep");
    let bundle = env.bundle.to_string_lossy().into_owned();
    let out = env.berth(&["run", "--keep", "-b", &bundle, &id, "true"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(env.status(&id), "stopped");
    assert_eq!(env.pid(&id), 0);
    env.ok(&["delete", &id]);
    env.assert_gone(&id);
}

#[test]
fn namespaces_are_new_and_hostname_is_the_configs() {
    let env = Env::new();
    let id = env.id("ns");
    let bundle = env.bundle.to_string_lossy().into_owned();
    env.ok(&["run", "-d", "-b", &bundle, &id, "sleep", "1000"]);
    let pid = env.pid(&id);
    let me = std::process::id() as i32;
    for ns in ["pid", "mnt", "uts", "ipc", "net", "cgroup"] {
        let (theirs, ours) = (ns_of(pid, ns), ns_of(me, ns));
        assert!(!theirs.is_empty());
        assert_ne!(theirs, ours, "{ns} namespace is shared with the host");
    }
    // Its loopback is up (IFF_UP | IFF_LOOPBACK), as runc leaves it: read
    // through the container's own sysfs, which shows its network namespace.
    let flags = std::fs::read_to_string(format!("/proc/{pid}/root/sys/class/net/lo/flags"))
        .expect("the container's lo flags");
    assert_eq!(flags.trim(), "0x9", "lo in the container is not up");
    env.ok(&["delete", "--force", &id]);

    let id = env.id("ps");
    let out = env.run(&id, &["sh", "-c", "hostname; ps -o pid,comm"]);
    let text = stdout(&out);
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("berth"));
    let pids: Vec<&str> = lines
        .skip(1)
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    // Only the shell (pid 1, or ps itself if sh exec'd it) and ps.
    assert!(pids.len() <= 2, "ps inside sees more than its own: {text}");
    assert_eq!(pids[0], "1", "{text}");
}

/// The new network namespace, the costliest part of the clone, is made by a
/// helper while the parent prepares the rest: the clone itself carries no
/// CLONE_NEWNET, and the container process joins the helper's namespace
/// before anything else. On a loaded machine (strace slows the helper's
/// start too) the helper may not have run when the clone is due: it is
/// cancelled and the clone makes the namespace, which is right but not
/// this path, so a run that went that way is tried again.
#[test]
fn the_network_namespace_is_made_beside_the_clone() {
    let env = Env::new();
    for attempt in 0..10 {
        let id = env.id(&format!("netpf{attempt}"));
        let text = env.strace_run(&id, "clone,clone3,unshare,setns");
        if made_beside_the_clone(&text) {
            return;
        }
    }
    panic!("the helper was cancelled in every one of ten runs");
}

/// Whether the traced `run` in `text` had its network namespace made by
/// the helper; either way exactly one namespace was made.
fn made_beside_the_clone(text: &str) -> bool {
    let lines: Vec<&str> = text.lines().collect();
    let pid_of = |l: &str| l.split_whitespace().next().unwrap_or("").to_string();
    let made: Vec<&&str> = lines
        .iter()
        .filter(|l| l.contains("unshare(CLONE_NEWNET") && !l.contains("= -1"))
        .collect();
    let clone = lines
        .iter()
        .find(|l| l.contains("clone3(") && l.contains("CLONE_NEWPID"))
        .unwrap_or_else(|| panic!("no container clone3:\n{text}"));
    if clone.contains("CLONE_NEWNET") {
        assert!(made.is_empty(), "a cancelled helper made one too:\n{text}");
        return false;
    }
    assert_eq!(made.len(), 1, "one helper makes the namespace:\n{text}");
    let child = clone.rsplit("= ").next().unwrap_or("").trim().to_string();
    assert_ne!(pid_of(made[0]), child, "the helper is not the container");
    let first = lines
        .iter()
        .find(|l| pid_of(l) == child)
        .unwrap_or_else(|| panic!("nothing traced of the container {child}:\n{text}"));
    assert!(
        first.contains("setns(") && first.contains("CLONE_NEWNET)") && first.ends_with("= 0"),
        "the container's first traced call joins the namespace: {first}"
    );
    true
}

/// A short command may be done before the runtime, slowed down (a loaded
/// machine), reads its process's start time: a zombie child is still the
/// container process, and `run` reports its exit code. strace (the parent
/// only, no -f) holds the parent back 0.3 s after each message it sends,
/// while the container process sets up, runs and exits.
#[test]
fn run_of_a_command_done_before_the_runtime_looks_reports_its_code() {
    let env = Env::new();
    let id = env.id("quick");
    let bundle = env.bundle.to_string_lossy().into_owned();
    let out = env.wrapped(
        &[
            "strace",
            "-qq",
            "-o",
            "/dev/null",
            "-e",
            "trace=sendmsg",
            "-e",
            "inject=sendmsg:delay_exit=300000",
        ],
        &["run", "-b", &bundle, &id, "sh", "-c", "exit 7"],
    );
    assert_eq!(out.status.code(), Some(7), "berth run: {}", stderr(&out));
    assert_eq!(stderr(&out), "", "berth run says nothing of its own");
}

#[test]
fn mountinfo_inside_shows_a_volatile_overlay_root_and_host_gains_nothing() {
    let env = Env::new();
    let before = std::fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
    let id = env.id("mnt");
    let bundle = env.bundle.to_string_lossy().into_owned();
    env.ok(&["run", "-d", "-b", &bundle, &id, "sleep", "1000"]);
    let pid = env.pid(&id);
    let inside = std::fs::read_to_string(format!("/proc/{pid}/mountinfo")).expect("theirs");
    let root_line = inside
        .lines()
        .find(|l| l.split_whitespace().nth(4) == Some("/"))
        .expect("a root mount");
    assert!(root_line.contains(" - overlay "), "{root_line}");
    // Volatile (the container's upper layer is never synced to disk): the
    // super options say `volatile`, or `fsync=volatile` on newer kernels.
    let super_opts = root_line.rsplit(' ').next().unwrap_or_default();
    assert!(
        super_opts
            .split(',')
            .any(|o| o == "volatile" || o == "fsync=volatile"),
        "root overlay is not volatile: {root_line}"
    );
    for dst in [
        "/proc",
        "/dev",
        "/dev/pts",
        "/dev/shm",
        "/dev/mqueue",
        "/sys",
    ] {
        assert!(
            inside
                .lines()
                .any(|l| l.split_whitespace().nth(4) == Some(dst)),
            "{dst} not mounted inside:\n{inside}"
        );
    }
    let during = std::fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
    assert_eq!(
        before.lines().count(),
        during.lines().count(),
        "host mountinfo changed"
    );
    env.ok(&["delete", "--force", &id]);
}

#[test]
fn list_table_json_and_quiet() {
    let env = Env::new();
    let a = env.id("lista");
    let b = env.id("listb");
    env.create(&a, &["true"]);
    env.create(&b, &["true"]);
    let table = env.ok(&["list"]);
    let header: Vec<&str> = table
        .lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    assert_eq!(
        header,
        ["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"]
    );
    assert!(table.contains(&a) && table.contains(&b));
    let json: serde_json::Value =
        serde_json::from_str(&env.ok(&["list", "--format", "json"])).expect("list json");
    let arr = json.as_array().expect("array");
    assert_eq!(arr.len(), 2);
    assert!(arr.iter().all(|c| c["status"] == "created"));
    let quiet = env.ok(&["list", "-q"]);
    assert_eq!(quiet.lines().collect::<Vec<_>>(), [a.as_str(), b.as_str()]);
}

#[test]
fn signals_to_foreground_run_reach_the_container_and_no_zombies_remain() {
    let env = Env::new();
    let id = env.id("sigs");
    let bundle = env.bundle.to_string_lossy().into_owned();
    // The shell is pid 1: a signal reaches it only through a trap, which is
    // what we want to see. An orphan (the double-forked sleep) is left for
    // pid 1 to inherit.
    let script = "for s in WINCH HUP USR1 TERM; do trap \"echo got-$s\" $s; done; \
                  (sleep 1000 &); echo ready; \
                  while [ ! -e /tmp/stop ]; do sleep 0.05; done";
    let child = env
        .cmd()
        .args(["run", "-b", &bundle, &id, "sh", "-c", script])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    env.wait_status(&id, "running");
    let pid = env.pid(&id);
    std::thread::sleep(Duration::from_millis(300));
    for sig in [libc::SIGWINCH, libc::SIGHUP, libc::SIGUSR1, libc::SIGTERM] {
        // SAFETY: plain kill(2) of our own child, the `berth run` process.
        unsafe { libc::kill(child.id() as i32, sig) };
        std::thread::sleep(Duration::from_millis(150));
    }
    std::fs::write(format!("/proc/{pid}/root/tmp/stop"), "").expect("stop file");
    let berth_pid = child.id() as i32;
    let out = child.wait_with_output().expect("wait");
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    let text = stdout(&out);
    for s in ["WINCH", "HUP", "USR1", "TERM"] {
        assert!(
            text.contains(&format!("got-{s}")),
            "SIG{s} did not arrive: {text}"
        );
    }
    // No process of the container is left, zombie or not, and berth left no
    // zombie child behind.
    for p in std::fs::read_dir("/proc").expect("/proc").flatten() {
        let Ok(stat) = std::fs::read_to_string(p.path().join("stat")) else {
            continue;
        };
        let fields: Vec<&str> = stat
            .rsplit(')')
            .next()
            .unwrap_or("")
            .split_whitespace()
            .collect();
        let ppid: i32 = fields.get(1).and_then(|f| f.parse().ok()).unwrap_or(0);
        assert!(ppid != berth_pid && ppid != pid, "left behind: {stat}");
    }
    env.assert_gone(&id);
}
