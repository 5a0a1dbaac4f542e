//! systemd integration: `NOTIFY_SOCKET` and socket activation.
//!
//! When berth runs with `NOTIFY_SOCKET` set (a `Type=notify` unit), the
//! container gets a socket of its own: `<state dir>/notify/` is bind-mounted
//! read-only at `/run/notify` and `NOTIFY_SOCKET=/run/notify/notify.sock` is
//! put in `process.env`. berth listens there and relays what the service
//! sends (`READY=1`, `STATUS=…`, …) to the host socket, as runc does:
//! - `run` in the foreground relays for the container's whole life from its
//!   wait loop, and adds `MAINPID=<berth>` to `READY=1` (berth is the unit's
//!   main process: it forwards signals and exits with the container's code);
//! - `start` and `run -d` block until `READY=1` (or the process exits) and
//!   add `MAINPID=<container pid>`, since berth itself is about to exit.
//!
//! `MAINPID=` sent from inside is dropped: a pid of the container's pid
//! namespace means nothing to systemd.
//!
//! Socket activation: with `LISTEN_FDS=N` and `LISTEN_PID=<berth's pid>` in
//! berth's environment, fds 3..3+N are passed to the container process (as
//! `--preserve-fds N` would) and its env gets `LISTEN_FDS=N`, `LISTEN_PID=1`
//! (and `LISTEN_FDNAMES` when set), as runc does; `LISTEN_PID=1` is right
//! when the container has its own pid namespace, where it is pid 1.
//!
//! Must never: block `run`'s wait loop on the host socket (it is written
//! with MSG_DONTWAIT; a full host socket loses a message, not the container).

use std::fs;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::spec::types::{Mount, Spec};
use anyhow::{Context, Result};
use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::socket::{
    bind, recv, sendto, socket, AddressFamily, MsgFlags, SockFlag, SockType, UnixAddr,
};

/// `<state dir>/notify`: the directory bind-mounted into the container.
pub const NOTIFY_DIR: &str = "notify";
const SOCKET_NAME: &str = "notify.sock";
const CONTAINER_DIR: &str = "/run/notify";

/// The host's `NOTIFY_SOCKET`, if berth was given one.
pub fn host_socket() -> Option<String> {
    std::env::var("NOTIFY_SOCKET")
        .ok()
        .filter(|s| !s.is_empty())
}

/// Point the container at its own notify socket: `NOTIFY_SOCKET` in
/// `process.env` (before validation; the mount follows with [`add_mount`]).
pub fn setup_env(spec: &mut Spec) {
    let mut process = spec.process().clone().unwrap_or_default();
    set_env(
        &mut process,
        "NOTIFY_SOCKET",
        &format!("{CONTAINER_DIR}/{SOCKET_NAME}"),
    );
    spec.process = Some(process);
}

/// The bind mount of `<state_dir>/notify` at /run/notify, added once that
/// dir exists (after validation, which checks bind sources).
pub fn add_mount(spec: &mut Spec, state_dir: &Path) -> Result<()> {
    let mount: Mount = crate::spec::convert(&serde_json::json!({
        "destination": CONTAINER_DIR,
        "type": "bind",
        "source": state_dir.join(NOTIFY_DIR),
        "options": ["bind", "nosuid", "noexec", "nodev", "ro"],
    }))
    .context("notify socket mount")?;
    let mut mounts = spec.mounts().clone().unwrap_or_default();
    mounts.push(mount);
    spec.mounts = Some(mounts);
    Ok(())
}

/// Make `<state_dir>/notify` (parent side, before the child mounts it).
pub fn make_dir(state_dir: &Path) -> Result<()> {
    let dir = state_dir.join(NOTIFY_DIR);
    fs::DirBuilder::new()
        .mode(0o755)
        .create(&dir)
        .with_context(|| format!("create {}", dir.display()))
}

/// Replace or add `KEY=value` in a process's env.
pub fn set_env(process: &mut crate::spec::types::Process, key: &str, value: &str) {
    let mut env = process.env().clone().unwrap_or_default();
    let prefix = format!("{key}=");
    env.retain(|e| !e.starts_with(&prefix));
    env.push(format!("{key}={value}"));
    process.env = Some(env);
}

/// Socket activation: the number of fds systemd passed to *this* process.
pub fn listen_fds() -> Option<u32> {
    let pid: u32 = std::env::var("LISTEN_PID").ok()?.parse().ok()?;
    if pid != std::process::id() {
        return None;
    }
    std::env::var("LISTEN_FDS")
        .ok()?
        .parse()
        .ok()
        .filter(|&n| n > 0)
}

/// Pass the activation fds on: env for the container process.
pub fn setup_listen_fds(spec: &mut Spec, n: u32) {
    let mut process = spec.process().clone().unwrap_or_default();
    set_env(&mut process, "LISTEN_FDS", &n.to_string());
    set_env(&mut process, "LISTEN_PID", "1");
    if let Ok(names) = std::env::var("LISTEN_FDNAMES") {
        set_env(&mut process, "LISTEN_FDNAMES", &names);
    }
    spec.process = Some(process);
}

/// berth's end of the container's notify socket, and the host socket it
/// relays to.
pub struct Relay {
    listener: OwnedFd,
    sender: OwnedFd,
    host: UnixAddr,
}

impl Relay {
    /// Bind `<state_dir>/notify/notify.sock` (mode 0777, so any container
    /// user may send) and prepare the host socket.
    pub fn bind(state_dir: &Path, host: &str) -> Result<Relay> {
        let host_addr = if let Some(name) = host.strip_prefix('@') {
            UnixAddr::new_abstract(name.as_bytes())
        } else {
            UnixAddr::new(host)
        }
        .with_context(|| format!("NOTIFY_SOCKET {host:?}"))?;
        let dir = state_dir.join(NOTIFY_DIR);
        let path = dir.join(SOCKET_NAME);
        let listener = dgram_socket()?;
        // A long --root would overflow sun_path: bind through the dir's fd.
        let dir_fd: OwnedFd = fs::File::open(&dir)
            .with_context(|| format!("open {}", dir.display()))?
            .into();
        let short = PathBuf::from(format!(
            "/proc/self/fd/{}/{SOCKET_NAME}",
            dir_fd.as_raw_fd()
        ));
        let _ = fs::remove_file(&path);
        let addr = UnixAddr::new(&short).context("notify socket address")?;
        bind(listener.as_raw_fd(), &addr).with_context(|| format!("bind {}", path.display()))?;
        fs::set_permissions(&path, fs::Permissions::from_mode(0o777))
            .with_context(|| format!("chmod {}", path.display()))?;
        Ok(Relay {
            listener,
            sender: dgram_socket()?,
            host: host_addr,
        })
    }

    pub fn fd(&self) -> BorrowedFd<'_> {
        self.listener.as_fd()
    }

    /// Relay every datagram waiting; `MAINPID=main_pid` is added to the
    /// one holding `READY=1`. Returns true once `READY=1` was relayed.
    pub fn relay_pending(&self, main_pid: i32) -> Result<bool> {
        let mut ready = false;
        let mut buf = vec![0u8; 4096];
        loop {
            let n = match recv(self.listener.as_raw_fd(), &mut buf, MsgFlags::MSG_DONTWAIT) {
                Ok(n) => n,
                Err(Errno::EINTR) => continue,
                Err(Errno::EAGAIN) => return Ok(ready),
                Err(e) => return Err(e).context("receive on the notify socket"),
            };
            let (msg, is_ready) = rewrite(&buf[..n], main_pid);
            ready |= is_ready;
            if msg.is_empty() {
                continue;
            }
            match sendto(
                self.sender.as_raw_fd(),
                &msg,
                &self.host,
                MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_NOSIGNAL,
            ) {
                Ok(_) | Err(Errno::EAGAIN) => {}
                Err(e) => {
                    return Err(e).with_context(|| format!("relay to NOTIFY_SOCKET {}", self.host))
                }
            }
        }
    }

    /// Block until the service reports `READY=1` (relayed with
    /// `MAINPID=pid`) or the process behind `pidfd` exits. No timeout, as
    /// with runc: systemd's `TimeoutStartSec` bounds the wait.
    pub fn wait_ready(&self, pidfd: &OwnedFd, pid: i32) -> Result<()> {
        loop {
            let mut fds = [
                PollFd::new(self.listener.as_fd(), PollFlags::POLLIN),
                PollFd::new(pidfd.as_fd(), PollFlags::POLLIN),
            ];
            match poll(&mut fds, PollTimeout::NONE) {
                Err(Errno::EINTR) => continue,
                Err(e) => return Err(e).context("poll the notify socket"),
                Ok(_) => {}
            }
            let exited = fds[1].any().unwrap_or(false);
            if self.relay_pending(pid)? || exited {
                return Ok(());
            }
        }
    }
}

fn dgram_socket() -> Result<OwnedFd> {
    socket(
        AddressFamily::Unix,
        SockType::Datagram,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .context("unix datagram socket for NOTIFY_SOCKET")
}

/// A datagram from the container, as relayed: its `MAINPID=` lines dropped
/// and `MAINPID=main_pid` added after `READY=1`. Also says whether it held
/// `READY=1`.
fn rewrite(msg: &[u8], main_pid: i32) -> (Vec<u8>, bool) {
    let text = String::from_utf8_lossy(msg);
    let mut out = String::new();
    let mut ready = false;
    for line in text.split('\n').filter(|l| !l.is_empty()) {
        if line.starts_with("MAINPID=") {
            continue;
        }
        ready |= line == "READY=1";
        out.push_str(line);
        out.push('\n');
    }
    if ready {
        out.push_str(&format!("MAINPID={main_pid}\n"));
    }
    (out.into_bytes(), ready)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rewrite_drops_inner_mainpid_and_adds_ours() {
        let (m, r) = rewrite(b"STATUS=up\nMAINPID=1\nREADY=1", 42);
        assert!(r);
        assert_eq!(
            String::from_utf8(m).unwrap(),
            "STATUS=up\nREADY=1\nMAINPID=42\n"
        );
        let (m, r) = rewrite(b"STATUS=starting", 42);
        assert!(!r);
        assert_eq!(String::from_utf8(m).unwrap(), "STATUS=starting\n");
        let (m, _) = rewrite(b"MAINPID=7\n", 42);
        assert!(m.is_empty());
    }

    #[test]
    fn relays_to_the_host_socket() {
        let dir = tempfile::tempdir().expect("tmp");
        let host_path = dir.path().join("host.sock");
        let host = std::os::unix::net::UnixDatagram::bind(&host_path).expect("host");
        make_dir(dir.path()).expect("dir");
        let relay = Relay::bind(dir.path(), host_path.to_str().unwrap()).expect("bind");
        let inner = std::os::unix::net::UnixDatagram::unbound().expect("inner");
        inner
            .send_to(b"READY=1", dir.path().join("notify/notify.sock"))
            .expect("send");
        assert!(relay.relay_pending(99).expect("relay"));
        let mut buf = [0u8; 128];
        let n = host.recv(&mut buf).expect("recv");
        assert_eq!(&buf[..n], b"READY=1\nMAINPID=99\n");
    }
}
