//! `exec`: same namespaces as the container, its files, the requested user,
//! env and cwd, exit codes, `-d` with a pid file, and clear refusals.

mod common;

use common::{ns_of, stderr, stdout, Env};

fn running(env: &Env, name: &str) -> String {
    let id = env.id(name);
    let bundle = env.bundle.to_string_lossy().into_owned();
    env.ok(&[
        "run",
        "-d",
        "-b",
        &bundle,
        &id,
        "sh",
        "-c",
        "echo inside > /tmp/marker; exec sleep 1000",
    ]);
    id
}

#[test]
fn exec_joins_every_namespace_and_sees_the_files() {
    let env = Env::new();
    let id = running(&env, "ex");
    let pid = env.pid(&id);
    let out = env.berth(&[
        "exec",
        &id,
        "sh",
        "-c",
        "cat /tmp/marker; for n in pid mnt net uts ipc cgroup; do readlink /proc/self/ns/$n; done",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("inside"));
    for (ns, line) in ["pid", "mnt", "net", "uts", "ipc", "cgroup"]
        .iter()
        .zip(lines)
    {
        assert_eq!(
            line,
            ns_of(pid, ns),
            "{ns} namespace differs from the container's"
        );
    }
    // Inside the pid namespace: the container's process is pid 1.
    let out = env.ok(&["exec", &id, "cat", "/proc/1/cmdline"]);
    assert!(out.starts_with("sleep"), "{out}");
}

#[test]
fn exec_user_env_cwd_and_exit_code() {
    let env = Env::new();
    let id = running(&env, "exu");
    let out = env.berth(&[
        "exec",
        "-u",
        "65534:65534",
        "-e",
        "FOO=bar",
        "--cwd",
        "/tmp",
        &id,
        "sh",
        "-c",
        "id -u; id -g; echo $FOO; pwd; grep CapEff /proc/self/status; exit 7",
    ]);
    assert_eq!(out.status.code(), Some(7), "{}", stderr(&out));
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(&lines[..4], ["65534", "65534", "bar", "/tmp"], "{text}");
    assert_eq!(lines[4].split_whitespace().nth(1), Some("0000000000000000"));
}

#[test]
fn exec_detached_writes_pid_file() {
    let env = Env::new();
    let id = running(&env, "exd");
    let pidfile = env.tmp.path().join("exec.pid");
    let p = pidfile.to_string_lossy().into_owned();
    env.ok(&["exec", "-d", "--pid-file", &p, &id, "sleep", "1000"]);
    let pid: i32 = std::fs::read_to_string(&pidfile)
        .expect("pid file")
        .trim()
        .parse()
        .expect("pid");
    let cmd = std::fs::read_to_string(format!("/proc/{pid}/cmdline")).expect("alive");
    assert!(cmd.starts_with("sleep"), "{cmd}");
    assert_eq!(ns_of(pid, "pid"), ns_of(env.pid(&id), "pid"));
    // The exec'd process dies with the container's pid namespace.
    env.ok(&["delete", "--force", &id]);
    std::thread::sleep(std::time::Duration::from_millis(100));
    assert!(!common::alive(pid), "exec'd process {pid} survived");
}

#[test]
fn exec_process_file() {
    let env = Env::new();
    let id = running(&env, "exp");
    let file = env.tmp.path().join("process.json");
    std::fs::write(
        &file,
        r#"{"args":["sh","-c","echo $A; exit 3"],"env":["A=from-file","PATH=/bin"],"cwd":"/","user":{"uid":0,"gid":0}}"#,
    )
    .expect("write");
    let f = file.to_string_lossy().into_owned();
    let out = env.berth(&["exec", "--process", &f, &id]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert_eq!(stdout(&out), "from-file\n");
}

#[test]
fn exec_refusals() {
    let env = Env::new();
    let id = running(&env, "exr");
    let out = env.berth(&["exec", &id, "/no/such/binary"]);
    assert_eq!(out.status.code(), Some(127));
    assert!(stderr(&out).contains("/no/such/binary"), "{}", stderr(&out));
    env.ok(&["kill", &id, "KILL"]);
    env.wait_status(&id, "stopped");
    let out = env.berth(&["exec", &id, "true"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("stopped"), "{}", stderr(&out));
    let out = env.berth(&["exec", "no-such-container", "true"]);
    assert!(stderr(&out).contains("does not exist"), "{}", stderr(&out));
}
