//! The one channel between the parent (`berth create`/`run`) and the child
//! that becomes the container process: a SOCK_SEQPACKET socketpair carrying
//! small typed messages. An error in the child travels here as text, so the
//! user sees the same one-line error the parent would have printed.

use std::os::fd::{AsFd, OwnedFd};

use anyhow::{bail, Context, Result};
use nix::sys::socket::{recv, send, socketpair, AddressFamily, MsgFlags, SockFlag, SockType};

/// Messages, in protocol order.
#[derive(Debug, PartialEq, Eq)]
pub enum Msg {
    /// parent → child: you are in your cgroup(s); go on.
    Go,
    /// child → parent: root built, everything checked, waiting for start.
    Ready,
    /// parent → child: state.json is written; stop depending on me.
    Commit,
    /// child → parent: parent-death signal cleared, you may exit.
    Ack,
    /// child → parent: setup failed. `code` is the exit status `berth` should
    /// use (127: executable not found, 126: not executable, 1: other).
    Error { code: u8, msg: String },
}

pub struct Channel {
    fd: OwnedFd,
}

/// A connected pair: (parent end, child end). Both are CLOEXEC.
pub fn pair() -> Result<(Channel, Channel)> {
    let (a, b) = socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
    .context("socketpair for the sync channel")?;
    Ok((Channel { fd: a }, Channel { fd: b }))
}

impl Channel {
    pub fn send(&self, msg: &Msg) -> Result<()> {
        let mut buf = Vec::with_capacity(16);
        match msg {
            Msg::Go => buf.push(b'G'),
            Msg::Ready => buf.push(b'R'),
            Msg::Commit => buf.push(b'C'),
            Msg::Ack => buf.push(b'A'),
            Msg::Error { code, msg } => {
                buf.push(b'E');
                buf.push(*code);
                buf.extend_from_slice(msg.as_bytes());
            }
        }
        send(
            self.fd.as_fd().as_raw_fd_compat(),
            &buf,
            MsgFlags::MSG_NOSIGNAL,
        )
        .context("send on the sync channel")?;
        Ok(())
    }

    /// Receive one message; end of stream (peer died) is an error.
    pub fn recv(&self) -> Result<Msg> {
        let mut buf = vec![0u8; 8192];
        let n = loop {
            match recv(
                self.fd.as_fd().as_raw_fd_compat(),
                &mut buf,
                MsgFlags::empty(),
            ) {
                Err(nix::errno::Errno::EINTR) => continue,
                r => break r.context("receive on the sync channel")?,
            }
        };
        if n == 0 {
            bail!("the container process exited during setup");
        }
        Ok(match buf[0] {
            b'G' => Msg::Go,
            b'R' => Msg::Ready,
            b'C' => Msg::Commit,
            b'A' => Msg::Ack,
            b'E' if n >= 2 => Msg::Error {
                code: buf[1],
                msg: String::from_utf8_lossy(&buf[2..n]).into_owned(),
            },
            other => bail!("unexpected message {other:#x} on the sync channel"),
        })
    }

    /// Wait for `want`; an `Error` from the peer becomes our error.
    pub fn expect(&self, want: Msg) -> Result<()> {
        match self.recv()? {
            m if m == want => Ok(()),
            Msg::Error { code, msg } => Err(super::ExecError::from_child(code, msg)),
            m => bail!("sync channel: expected {want:?}, got {m:?}"),
        }
    }
}

trait RawCompat {
    fn as_raw_fd_compat(&self) -> i32;
}

impl RawCompat for std::os::fd::BorrowedFd<'_> {
    fn as_raw_fd_compat(&self) -> i32 {
        use std::os::fd::AsRawFd;
        self.as_raw_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip() {
        let (a, b) = pair().expect("pair");
        for m in [
            Msg::Go,
            Msg::Ready,
            Msg::Commit,
            Msg::Ack,
            Msg::Error {
                code: 127,
                msg: "exec \"nope\": not found".into(),
            },
        ] {
            a.send(&m).expect("send");
            assert_eq!(b.recv().expect("recv"), m);
        }
        drop(a);
        assert!(b.recv().is_err());
    }
}
