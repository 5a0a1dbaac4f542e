//! systemd: NOTIFY_SOCKET relayed from inside the container to the host's
//! socket (foreground `run`, and `start` blocking until READY=1), and
//! LISTEN_FDS socket activation. A static `sdnotify` helper, compiled here
//! with `cc -static`, is bind-mounted into the container (busybox cannot send
//! a unix datagram).

mod common;

use std::os::fd::AsRawFd;
use std::os::unix::net::{UnixDatagram, UnixListener};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::Env;
use serde_json::json;

const SDNOTIFY_C: &str = r#"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
/* Send each argument as one datagram to $NOTIFY_SOCKET, as sd_notify does. */
int main(int argc, char **argv) {
    const char *path = getenv("NOTIFY_SOCKET");
    if (!path) { fprintf(stderr, "sdnotify: NOTIFY_SOCKET is not set\n"); return 2; }
    struct sockaddr_un a;
    memset(&a, 0, sizeof a);
    a.sun_family = AF_UNIX;
    strncpy(a.sun_path, path, sizeof a.sun_path - 1);
    if (a.sun_path[0] == '@') a.sun_path[0] = 0;
    int s = socket(AF_UNIX, SOCK_DGRAM, 0);
    for (int i = 1; i < argc; i++) {
        if (sendto(s, argv[i], strlen(argv[i]), 0, (struct sockaddr *)&a, sizeof a) < 0) {
            perror("sdnotify: sendto");
            return 1;
        }
    }
    return 0;
}
"#;

/// Build the helper into `dir` with the system C compiler, statically.
fn build_sdnotify(dir: &Path) -> PathBuf {
    let src = dir.join("sdnotify.c");
    let bin = dir.join("sdnotify");
    std::fs::write(&src, SDNOTIFY_C).expect("write helper source");
    let out = std::process::Command::new("cc")
        .args(["-static", "-O2", "-o"])
        .arg(&bin)
        .arg(&src)
        .output()
        .expect("run cc (the C compiler cargo links with)");
    assert!(
        out.status.success(),
        "cc -static sdnotify.c: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    bin
}

/// An env whose container has /sdnotify, and a host socket to listen on.
fn notify_env() -> (Env, UnixDatagram, PathBuf) {
    let env = Env::new();
    let helper = build_sdnotify(env.tmp.path());
    env.write_config(|c| {
        c["mounts"].as_array_mut().expect("mounts").push(json!({
            "destination": "/sdnotify", "type": "bind", "source": helper, "options": ["bind", "ro"]
        }));
    });
    let host_path = env.tmp.path().join("host-notify.sock");
    let host = UnixDatagram::bind(&host_path).expect("bind host notify socket");
    host.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    (env, host, host_path)
}

fn recv(host: &UnixDatagram) -> String {
    let mut buf = [0u8; 4096];
    let n = host.recv(&mut buf).expect("a datagram on the host socket");
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

#[test]
fn foreground_run_relays_status_and_ready() {
    let (env, host, host_path) = notify_env();
    let id = env.id("notify");
    let bundle = env.bundle.to_string_lossy().into_owned();
    let berth = env
        .cmd()
        .env("NOTIFY_SOCKET", &host_path)
        .args(["run", "-b", &bundle, &id, "sh", "-c"])
        .arg("echo $NOTIFY_SOCKET; /sdnotify STATUS=starting 'READY=1\nMAINPID=1' && sleep 0.3; exit 2")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn berth run");
    let berth_pid = berth.id();
    assert_eq!(recv(&host), "STATUS=starting\n");
    assert_eq!(
        recv(&host),
        format!("READY=1\nMAINPID={berth_pid}\n"),
        "berth is the main pid; the container's own MAINPID is dropped"
    );
    let out = berth.wait_with_output().expect("wait");
    assert_eq!(out.status.code(), Some(2), "{}", common::stderr(&out));
    assert_eq!(common::stdout(&out).trim(), "/run/notify/notify.sock");
    env.assert_gone(&id);
}

#[test]
fn start_blocks_until_ready() {
    let (env, host, host_path) = notify_env();
    let id = env.id("notifystart");
    let bundle = env.bundle.to_string_lossy().into_owned();
    let create = env.output_of(
        env.cmd()
            .env("NOTIFY_SOCKET", &host_path)
            .args(["create", "-b", &bundle, &id, "sh", "-c"])
            .arg("sleep 1; /sdnotify READY=1; sleep 60"),
    );
    assert!(create.status.success(), "{}", common::stderr(&create));
    let pid = env.pid(&id);
    let t = Instant::now();
    let start = env.output_of(
        env.cmd()
            .env("NOTIFY_SOCKET", &host_path)
            .args(["start", &id]),
    );
    assert!(start.status.success(), "{}", common::stderr(&start));
    assert!(
        t.elapsed() >= Duration::from_millis(900),
        "start returned before READY=1 ({:?})",
        t.elapsed()
    );
    assert_eq!(recv(&host), format!("READY=1\nMAINPID={pid}\n"));
    env.ok(&["delete", "--force", &id]);
    env.assert_gone(&id);
}

#[test]
fn start_returns_when_the_service_dies_before_ready() {
    let (env, _host, host_path) = notify_env();
    let id = env.id("notifydie");
    let bundle = env.bundle.to_string_lossy().into_owned();
    let create = env.output_of(
        env.cmd()
            .env("NOTIFY_SOCKET", &host_path)
            .args(["create", "-b", &bundle, &id, "sh", "-c", "exit 1"]),
    );
    assert!(create.status.success(), "{}", common::stderr(&create));
    let start = env.output_of(
        env.cmd()
            .env("NOTIFY_SOCKET", &host_path)
            .args(["start", &id]),
    );
    assert!(start.status.success(), "{}", common::stderr(&start));
    env.ok(&["delete", &id]);
}

#[test]
fn listen_fds_are_passed_to_the_container() {
    let env = Env::new();
    let id = env.id("activation");
    let bundle = env.bundle.to_string_lossy().into_owned();
    let listener = UnixListener::bind(env.tmp.path().join("activation.sock")).expect("bind");
    let inode = std::fs::read_link(format!("/proc/self/fd/{}", listener.as_raw_fd()))
        .expect("socket link")
        .to_string_lossy()
        .into_owned();
    let raw = listener.as_raw_fd();
    // systemd's contract: the fds at 3.., LISTEN_FDS=N, LISTEN_PID=<our pid>
    // (the sh execs berth, so its $$ is berth's pid).
    let mut cmd = std::process::Command::new("/bin/sh");
    cmd.args([
        "-c",
        "LISTEN_PID=$$ LISTEN_FDS=1 exec \"$@\"",
        "sh",
        common::BERTH,
    ])
    .arg("--root")
    .arg(&env.root)
    .arg("--layer-root")
    .arg(&env.layer_root)
    .args(["run", "-b", &bundle, &id, "sh", "-c"])
    .arg("echo FDS=$LISTEN_FDS PID=$LISTEN_PID; readlink /proc/self/fd/3")
    .stdin(Stdio::null());
    // SAFETY: dup2 is async-signal-safe; it places the socket at fd 3
    // without CLOEXEC, as systemd passes it.
    unsafe {
        cmd.pre_exec(move || {
            // dup2 onto itself would keep CLOEXEC: clear it instead.
            let rc = if raw == 3 {
                libc::fcntl(3, libc::F_SETFD, 0)
            } else {
                libc::dup2(raw, 3)
            };
            if rc < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let out = cmd.output().expect("run berth");
    assert!(out.status.success(), "{}", common::stderr(&out));
    let text = common::stdout(&out);
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("FDS=1 PID=1"));
    assert_eq!(
        lines.next(),
        Some(inode.as_str()),
        "fd 3 is the activation socket"
    );
    env.assert_gone(&id);
}
