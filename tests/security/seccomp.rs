//! Item 10: seccomp profiles do what they say, for `run` and `exec`, with
//! and without no_new_privs; kill_process ends the process with SIGSYS; a
//! notify listener receives the fd and the state, and the fd works.

use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::UnixListener;
use std::path::Path;

use libseccomp::{ScmpNotifReq, ScmpNotifResp, ScmpNotifRespFlags};
use serde_json::{json, Value};

use crate::common::{stderr, stdout, Env};

fn errno_for(names: &[&str]) -> Value {
    json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "syscalls": [{"names": names, "action": "SCMP_ACT_ERRNO"}]
    })
}

#[test]
fn seccomp_errno_for_mkdir_and_everything_else_works() {
    for nnp in [true, false] {
        let env = Env::with_config(|c| {
            c["linux"]["seccomp"] = errno_for(&["mkdir", "mkdirat"]);
            c["process"]["noNewPrivileges"] = nnp.into();
        });
        let id = env.id("scmp");
        let out = env.run(
            &id,
            &[
                "sh",
                "-c",
                "mkdir /x; echo mkdir=$?; touch /y && ls /y && grep Seccomp: /proc/self/status",
            ],
        );
        assert!(out.status.success(), "nnp={nnp}: {}", stderr(&out));
        let text = stdout(&out);
        assert!(text.contains("mkdir=1"), "nnp={nnp}: {text}");
        assert!(
            stderr(&out).contains("Operation not permitted"),
            "{}",
            stderr(&out)
        );
        assert!(
            text.contains("/y") && text.contains("Seccomp:\t2"),
            "nnp={nnp}: {text}"
        );
    }
}

#[test]
fn seccomp_errno_ret_is_the_configured_errno() {
    let env = Env::with_config(|c| {
        let mut p = errno_for(&["mkdir", "mkdirat"]);
        p["syscalls"][0]["errnoRet"] = libc::EROFS.into();
        c["linux"]["seccomp"] = p;
    });
    let id = env.id("scmpret");
    let out = env.run(&id, &["mkdir", "/x"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("Read-only file system"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn seccomp_kill_process_ends_with_sigsys() {
    let env = Env::with_config(|c| {
        c["linux"]["seccomp"] = json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_KILL_PROCESS"}]
        });
    });
    let id = env.id("scmpkill");
    let out = env.run(&id, &["mkdir", "/x"]);
    // `run` exits 128 + the signal that ended the process.
    assert_eq!(
        out.status.code(),
        Some(128 + libc::SIGSYS),
        "{}",
        stderr(&out)
    );
}

#[test]
fn seccomp_applies_to_exec_too() {
    let env = Env::with_config(|c| c["linux"]["seccomp"] = errno_for(&["mkdir", "mkdirat"]));
    let id = env.id("scmpexec");
    let bundle = env.bundle.to_string_lossy().into_owned();
    env.ok(&["run", "-d", "-b", &bundle, &id, "sleep", "1000"]);
    let out = env.berth(&["exec", &id, "sh", "-c", "mkdir /z; echo mkdir=$?"]);
    assert!(
        stdout(&out).contains("mkdir=1"),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
}

#[test]
fn seccomp_docker_sized_profile_allows_a_shell_and_denies_unshare() {
    let profile: Value = serde_json::from_slice(
        &std::fs::read(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/security/fixtures/default-seccomp.json"),
        )
        .expect("fixture"),
    )
    .expect("profile json");
    let env = Env::with_config(|c| c["linux"]["seccomp"] = profile);
    let id = env.id("scmpdocker");
    let log = env.tmp.path().join("berth.log");
    let log_s = log.to_string_lossy().into_owned();
    let bundle = env.bundle.to_string_lossy().into_owned();
    let out = env.berth(&[
        "--debug",
        "--log",
        &log_s,
        "run",
        "-b",
        &bundle,
        &id,
        "sh",
        "-c",
        "mkdir /a && echo made; unshare -m true; echo unshare=$?",
    ]);
    let text = stdout(&out);
    assert!(
        text.contains("made") && text.contains("unshare=1"),
        "{text}{}",
        stderr(&out)
    );
    // The compile time, for the record (`cargo test -- --nocapture`).
    let logged = std::fs::read_to_string(&log).unwrap_or_default();
    if let Some(line) = logged.lines().find(|l| l.contains("BPF instructions")) {
        eprintln!("{line}");
    }
}

#[test]
fn seccomp_unknown_action_and_bad_profiles_are_refused_at_create() {
    let cases = [
        (
            json!({"defaultAction": "SCMP_ACT_FOO"}),
            "linux.seccomp.defaultAction: unknown seccomp action \"SCMP_ACT_FOO\"",
        ),
        (
            json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["a"], "action": "SCMP_ACT_ERRNO",
                   "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_SOMETIMES"}]}]}),
            "linux.seccomp.syscalls[0].args[0].op: unknown seccomp operator \"SCMP_CMP_SOMETIMES\"",
        ),
        (
            json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}]}),
            "SCMP_ACT_NOTIFY needs linux.seccomp.listenerPath",
        ),
    ];
    for (profile, want) in cases {
        let env = Env::with_config(|c| c["linux"]["seccomp"] = profile.clone());
        let id = env.id("scmpbad");
        let out = env.run(&id, &["true"]);
        assert!(!out.status.success());
        assert!(stderr(&out).contains(want), "{profile}: {}", stderr(&out));
        assert!(
            !env.root.join(&id).exists(),
            "state left behind for a refused config"
        );
    }
}

/// Accept one listener connection: the container process state and its fd.
fn receive_state(listener: &UnixListener) -> (Value, OwnedFd) {
    let (conn, _) = listener.accept().expect("accept");
    let (fd, buf) = crate::common::receive_fd(&conn);
    let v: Value = serde_json::from_slice(&buf).expect("state json");
    // The runtime closes the connection after the one message.
    let mut rest = [0u8; 16];
    let more = nix::unistd::read(conn.as_raw_fd(), &mut rest).expect("read to EOF");
    assert_eq!(more, 0, "connection not closed after the state");
    (v, fd)
}

/// A notify profile for mkdir with the given filter flags: the listener gets
/// the state and an fd that works (it answers the container's mkdir).
fn notify_listener_receives_the_fd(flags: Value) {
    let env = Env::new();
    let sock = env.tmp.path().join("agent.sock");
    let listener = UnixListener::bind(&sock).expect("bind agent socket");
    let sock_s = sock.to_string_lossy().into_owned();
    env.write_config(|c| {
        c["linux"]["seccomp"] = json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "listenerPath": sock_s,
            "listenerMetadata": "berth-test",
            "flags": flags,
            "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_NOTIFY"}]
        });
    });
    let id = env.id("scmpnotify");
    let agent = std::thread::spawn(move || {
        let (state, fd) = receive_state(&listener);
        let link =
            std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd())).expect("fd link");
        // Answer the container's mkdir with EXDEV: proof that the fd works.
        let req = ScmpNotifReq::receive(fd.as_raw_fd()).expect("notification");
        ScmpNotifResp::new_error(req.id, -libc::EXDEV, ScmpNotifRespFlags::empty())
            .respond(fd.as_raw_fd())
            .expect("respond");
        (state, link.to_string_lossy().into_owned())
    });
    let out = env.run(&id, &["sh", "-c", "mkdir /x; echo mkdir=$?"]);
    let (state, link) = agent.join().expect("agent thread");
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("mkdir=1"), "{}", stdout(&out));
    assert!(
        stderr(&out).contains("Invalid cross-device link"),
        "{}",
        stderr(&out)
    );
    assert_eq!(link, "anon_inode:seccomp notify");
    assert_eq!(state["fds"], json!(["seccompFd"]));
    assert_eq!(state["metadata"], "berth-test");
    assert_eq!(state["state"]["id"], id.as_str());
    assert!(state["pid"].as_i64().unwrap_or(0) > 0, "{state}");
    assert_eq!(
        state["state"]["bundle"].as_str().map(Path::new),
        Some(env.bundle.as_path())
    );
}

#[test]
fn seccomp_notify_listener_receives_the_fd() {
    notify_listener_receives_the_fd(json!([]));
}

/// WAIT_KILLABLE_RECV (kernel 5.19+) is passed through with the listener.
#[test]
fn seccomp_notify_with_wait_killable_recv() {
    notify_listener_receives_the_fd(json!(["SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"]));
}
