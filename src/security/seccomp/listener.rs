//! The seccomp notify listener (`linux.seccomp.listenerPath`), as the
//! runtime-spec describes it: one connection per container process, one
//! message carrying the container process state as JSON
//! (`{"ociVersion", "fds": ["seccompFd"], "pid", "metadata", "state"}`)
//! and the notify fd as `SCM_RIGHTS`, then the connection is closed.
//!
//! The connection is made by the parent, on the host, before the clone (the
//! child, inside its own root, could not reach the host path); the child
//! sends on it right after loading the filter and closes it at execve.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};

use anyhow::{Context, Result};
use nix::sys::socket::{socket, AddressFamily, MsgFlags, SockFlag, SockType, UnixAddr};
use serde_json::{json, Value};

use super::ListenerSpec;

/// A connected stream socket to the agent.
pub struct Listener {
    sock: OwnedFd,
    metadata: Option<String>,
    path: std::path::PathBuf,
}

pub fn connect(spec: &ListenerSpec) -> Result<Listener> {
    let here = || {
        format!(
            "linux.seccomp.listenerPath: connect to {}",
            spec.path.display()
        )
    };
    let sock = socket(
        AddressFamily::Unix,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .with_context(here)?;
    let addr = UnixAddr::new(&spec.path).with_context(here)?;
    nix::sys::socket::connect(sock.as_raw_fd(), &addr).with_context(here)?;
    Ok(Listener {
        sock,
        metadata: spec.metadata.clone(),
        path: spec.path.clone(),
    })
}

/// The container process state the spec defines: the runtime's state of
/// the container plus the process's own pid and the fd names.
pub fn process_state(state: &str, metadata: Option<&str>) -> Result<Value> {
    let state: Value = serde_json::from_slice(state.as_bytes())
        .context("container state for the seccomp listener")?;
    let mut msg = json!({
        "ociVersion": state.get("ociVersion").cloned().unwrap_or_else(|| "1.0.2".into()),
        "fds": ["seccompFd"],
        "pid": state.get("pid").cloned().unwrap_or(Value::from(0)),
        "state": state,
    });
    if let Some(m) = metadata.filter(|m| !m.is_empty()) {
        msg["metadata"] = m.into();
    }
    Ok(msg)
}

/// Send the state and `notify_fd` in one message, then the rest of the
/// bytes if the socket took only part; the fd travels with the first byte.
pub fn send(l: &Listener, notify_fd: &OwnedFd, state: &str) -> Result<()> {
    let here = || format!("send the seccomp notify fd to {}", l.path.display());
    let msg = process_state(state, l.metadata.as_deref())?.to_string();
    let bytes = msg.as_bytes();
    let mut sent = crate::sys::send_with_fds(l.sock.as_fd(), bytes, &[notify_fd.as_fd()])
        .with_context(here)?;
    while sent < bytes.len() {
        match nix::sys::socket::send(l.sock.as_raw_fd(), &bytes[sent..], MsgFlags::MSG_NOSIGNAL) {
            Ok(n) => sent += n,
            Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(e).with_context(here),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn process_state_wraps_the_container_state() {
        let st = r#"{"ociVersion":"1.2.0","id":"c1","status":"creating","pid":42,"bundle":"/b"}"#;
        let v = process_state(st, Some("MKNOD=/dev/null")).expect("state");
        assert_eq!(v["fds"], json!(["seccompFd"]));
        assert_eq!(v["pid"], 42);
        assert_eq!(v["ociVersion"], "1.2.0");
        assert_eq!(v["metadata"], "MKNOD=/dev/null");
        assert_eq!(v["state"]["id"], "c1");
        let v = process_state(st, None).expect("state");
        assert!(v.get("metadata").is_none());
    }

    #[test]
    fn sends_state_and_fd_over_a_socketpair() {
        use nix::sys::socket::{recvmsg, socketpair, ControlMessageOwned};
        let (a, b) = socketpair(
            AddressFamily::Unix,
            SockType::Stream,
            None,
            SockFlag::SOCK_CLOEXEC,
        )
        .expect("socketpair");
        let l = Listener {
            sock: a,
            metadata: None,
            path: "/test".into(),
        };
        let fd: OwnedFd = std::fs::File::open("/dev/null").expect("null").into();
        send(&l, &fd, r#"{"pid": 7, "id": "x"}"#).expect("send");
        drop(l);
        let mut buf = vec![0u8; 4096];
        let mut cmsg = nix::cmsg_space!([std::os::fd::RawFd; 1]);
        let mut iov = [std::io::IoSliceMut::new(&mut buf)];
        let r = recvmsg::<UnixAddr>(b.as_raw_fd(), &mut iov, Some(&mut cmsg), MsgFlags::empty())
            .expect("recvmsg");
        let mut got = Vec::new();
        for c in r.cmsgs().expect("cmsgs") {
            if let ControlMessageOwned::ScmRights(fds) = c {
                got.extend(fds);
            }
        }
        let n = r.bytes;
        assert_eq!(got.len(), 1);
        // SAFETY: the fd was just received and is ours alone.
        drop(unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(got[0]) });
        let v: Value = serde_json::from_slice(&buf[..n]).expect("json");
        assert_eq!(v["pid"], 7);
        assert_eq!(v["state"]["id"], "x");
    }
}
