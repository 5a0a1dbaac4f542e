//! The one channel between the parent (`berth create`/`run`) and the child
//! that becomes the container process: a SOCK_SEQPACKET socketpair carrying
//! small typed messages, and (for `Pty`, `Cgroups`) fds over `SCM_RIGHTS`. An error
//! in the child travels here as text, so the user sees the same one-line
//! error the parent would have printed.

use std::io::IoSliceMut;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use anyhow::{bail, Context, Result};
use nix::sys::socket::{
    recvmsg, socketpair, AddressFamily, ControlMessageOwned, MsgFlags, SockFlag, SockType,
};

/// Largest message: the state JSON of `HookState` may carry big annotations.
const MAX_MSG: usize = 256 * 1024;
/// Most fds one message carries: `Cgroups` has one per v1 hierarchy.
const MAX_FDS: usize = 16;

/// The other end closed the channel. Read by the parent, the child died
/// during setup; read by the child, the parent gave up, and reports why
/// itself.
#[derive(Debug)]
pub struct Closed;

impl std::fmt::Display for Closed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the container process exited during setup")
    }
}

impl std::error::Error for Closed {}

/// Messages, in protocol order.
#[derive(Debug, PartialEq, Eq)]
pub enum Msg {
    /// parent → child: you are in your cgroup(s) (or, joining late, the
    /// v2 one; with a user namespace, your id maps are written); go on.
    Go,
    /// parent → child: your v1 cgroups exist and every limit is applied:
    /// join them now (sent after `Go` when the child joins late), through
    /// the `tasks` files attached (see [`Channel::send_cgroups`]).
    Cgroups,
    /// child → parent: root built, everything checked, waiting for start.
    Ready,
    /// parent → child: state.json is written; stop depending on me. Not
    /// sent to a foreground run's child (no exec fifo), which execs at
    /// `Ready`, unless a pid file must be written first.
    Commit,
    /// child → parent: parent-death signal cleared, you may exit. Only
    /// when the parent exits after commit (there is an exec fifo): a
    /// foreground run stays and is not sent one.
    Ack,
    /// parent → child: the OCI state (JSON) that hooks run by the child read
    /// on stdin. Sent right after `Go` when the spec has such hooks.
    HookState(String),
    /// child → parent: mounts are made, root not yet entered: run the
    /// runtime-namespace create hooks (prestart, createRuntime) now.
    Hooks,
    /// parent → child: those hooks succeeded; go on.
    HooksDone,
    /// child → parent: the pty master follows as an `SCM_RIGHTS` fd (see
    /// [`Channel::recv_fd`]); berth proxies the user's terminal to it.
    Pty,
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
        self.send_with(msg, &[])
    }

    /// Send nothing more: the peer reads end-of-stream, and a later
    /// `send` here fails (so the child reports errors on its stderr once
    /// the parent no longer listens, even while the parent's end is open).
    pub fn close_send(&self) -> Result<()> {
        nix::sys::socket::shutdown(self.fd.as_raw_fd(), nix::sys::socket::Shutdown::Write)
            .context("shut down the sync channel")
    }

    /// Send `Msg::Pty` with the pty master attached.
    pub fn send_pty(&self, master: &OwnedFd) -> Result<()> {
        self.send_with(&Msg::Pty, &[master.as_fd()])
    }

    /// Send `Msg::Cgroups` with the open `tasks` files attached.
    pub fn send_cgroups(&self, tasks: &[OwnedFd]) -> Result<()> {
        if tasks.len() > MAX_FDS {
            bail!(
                "{} cgroup hierarchies: the sync channel passes at most {MAX_FDS}",
                tasks.len()
            );
        }
        let fds: Vec<BorrowedFd> = tasks.iter().map(AsFd::as_fd).collect();
        self.send_with(&Msg::Cgroups, &fds)
    }

    fn send_with(&self, msg: &Msg, fds: &[BorrowedFd]) -> Result<()> {
        let mut buf = Vec::with_capacity(16);
        match msg {
            Msg::Go => buf.push(b'G'),
            Msg::Cgroups => buf.push(b'J'),
            Msg::Ready => buf.push(b'R'),
            Msg::Commit => buf.push(b'C'),
            Msg::Ack => buf.push(b'A'),
            Msg::HookState(json) => {
                buf.push(b'S');
                buf.extend_from_slice(json.as_bytes());
            }
            Msg::Hooks => buf.push(b'H'),
            Msg::HooksDone => buf.push(b'D'),
            Msg::Pty => buf.push(b'P'),
            Msg::Error { code, msg } => {
                buf.push(b'E');
                buf.push(*code);
                buf.extend_from_slice(msg.as_bytes());
            }
        }
        crate::sys::send_with_fds(self.fd.as_fd(), &buf, fds)
            .map(drop)
            .context("send on the sync channel")
    }

    /// Receive one message; end of stream (peer died) is an error.
    pub fn recv(&self) -> Result<Msg> {
        self.recv_fd().map(|(m, _)| m)
    }

    /// Receive one message and the first fd sent with it, if any (CLOEXEC).
    pub fn recv_fd(&self) -> Result<(Msg, Option<OwnedFd>)> {
        self.recv_fds().map(|(m, fds)| (m, fds.into_iter().next()))
    }

    /// Receive one message and every fd sent with it (CLOEXEC).
    pub fn recv_fds(&self) -> Result<(Msg, Vec<OwnedFd>)> {
        // The message's length first (a peek with MSG_TRUNC reports all of
        // it), so that the buffer is its size: a zeroed MAX_MSG buffer per
        // message cost 70-90 µs of page faults in the child.
        let len = loop {
            match nix::sys::socket::recv(
                self.fd.as_raw_fd(),
                &mut [0u8; 1],
                MsgFlags::MSG_PEEK | MsgFlags::MSG_TRUNC,
            ) {
                // ECONNRESET: see below.
                Err(nix::errno::Errno::EINTR | nix::errno::Errno::ECONNRESET) => continue,
                Err(e) => return Err(e).context("receive on the sync channel"),
                Ok(n) => break n,
            }
        };
        let mut buf = vec![0u8; len.clamp(1, MAX_MSG)];
        let mut space = nix::cmsg_space!([RawFd; MAX_FDS]);
        let (n, fds) = loop {
            let mut iov = [IoSliceMut::new(&mut buf)];
            match recvmsg::<()>(
                self.fd.as_raw_fd(),
                &mut iov,
                Some(&mut space),
                MsgFlags::MSG_CMSG_CLOEXEC,
            ) {
                // ECONNRESET: the peer exited with messages of ours unread
                // (a child that failed before reading `Cgroups`). The kernel
                // reports that once, ahead of what the peer sent before it
                // exited (its `Error`), which the next call returns.
                Err(nix::errno::Errno::EINTR | nix::errno::Errno::ECONNRESET) => continue,
                Err(e) => return Err(e).context("receive on the sync channel"),
                Ok(r) => {
                    let mut fds = Vec::new();
                    for c in r.cmsgs().context("control messages on the sync channel")? {
                        if let ControlMessageOwned::ScmRights(raws) = c {
                            for raw in raws {
                                // SAFETY: the kernel just installed this fd in
                                // our table for us; nothing else owns it.
                                fds.push(unsafe { OwnedFd::from_raw_fd(raw) });
                            }
                        }
                    }
                    break (r.bytes, fds);
                }
            }
        };
        if n == 0 {
            return Err(Closed.into());
        }
        let msg = match buf[0] {
            b'G' => Msg::Go,
            b'J' => Msg::Cgroups,
            b'R' => Msg::Ready,
            b'C' => Msg::Commit,
            b'A' => Msg::Ack,
            b'S' => Msg::HookState(String::from_utf8_lossy(&buf[1..n]).into_owned()),
            b'H' => Msg::Hooks,
            b'D' => Msg::HooksDone,
            b'P' => Msg::Pty,
            b'E' if n >= 2 => Msg::Error {
                code: buf[1],
                msg: String::from_utf8_lossy(&buf[2..n]).into_owned(),
            },
            other => bail!("unexpected message {other:#x} on the sync channel"),
        };
        Ok((msg, fds))
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn messages_round_trip() {
        let (a, b) = pair().expect("pair");
        for m in [
            Msg::Go,
            Msg::Cgroups,
            Msg::Ready,
            Msg::Commit,
            Msg::Ack,
            Msg::HookState("{\"id\":\"c1\"}".into()),
            // A state with big annotations: the buffer follows the length.
            Msg::HookState(format!("{{\"a\":\"{}\"}}", "x".repeat(200 * 1024))),
            Msg::Hooks,
            Msg::HooksDone,
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

    #[test]
    fn error_of_a_peer_gone_with_unread_messages_is_received() {
        // The child failed before reading `Cgroups`: it sent its error and
        // exited with that message unread.
        let (parent, child) = pair().expect("pair");
        let err = Msg::Error {
            code: 1,
            msg: "mount proc on /proc: symlink".into(),
        };
        child.send(&err).expect("send error");
        parent.send(&Msg::Cgroups).expect("send cgroups");
        drop(child);
        assert_eq!(parent.recv().expect("the error, not ECONNRESET"), err);
        assert!(parent.recv().is_err(), "then end of stream");
    }

    #[test]
    fn cgroups_message_carries_every_tasks_fd() {
        let (a, b) = pair().expect("pair");
        let files: Vec<OwnedFd> = ["/dev/null", "/dev/zero"]
            .iter()
            .map(|p| std::fs::File::open(p).expect("open").into())
            .collect();
        a.send_cgroups(&files).expect("send");
        let (m, fds) = b.recv_fds().expect("recv");
        assert_eq!(m, Msg::Cgroups);
        let links: Vec<_> = fds
            .iter()
            .map(|fd| {
                std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd())).expect("link")
            })
            .collect();
        assert_eq!(links, [Path::new("/dev/null"), Path::new("/dev/zero")]);
        let too_many: Vec<OwnedFd> = (0..=MAX_FDS)
            .map(|_| std::fs::File::open("/dev/null").expect("open").into())
            .collect();
        assert!(a.send_cgroups(&too_many).is_err());
    }

    #[test]
    fn pty_message_carries_an_fd() {
        let (a, b) = pair().expect("pair");
        let f = std::fs::File::open("/dev/null").expect("open");
        a.send_pty(&OwnedFd::from(f)).expect("send");
        let (m, fd) = b.recv_fd().expect("recv");
        assert_eq!(m, Msg::Pty);
        let fd = fd.expect("fd attached");
        let link = std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd())).expect("link");
        assert_eq!(link, std::path::Path::new("/dev/null"));
    }
}
