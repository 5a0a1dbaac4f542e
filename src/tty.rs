//! Terminals: the container side (a pty from the container's own devpts made
//! the process's stdio and controlling terminal, its slave bound on
//! /dev/console), the hand-over of the master (to a `--console-socket` with
//! `SCM_RIGHTS` exactly as runc does, or to the berth parent), and the
//! parent's proxy between the user's terminal and that master.
//!
//! Must never: leave the user's terminal in raw mode (the `Proxy` restores it
//! when dropped, on every return path); let the master reach the container
//! process (it is CLOEXEC and closed once sent).

use std::fs;
use std::io::{self, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use nix::errno::Errno;
use nix::mount::{mount, MsFlags};

use nix::sys::termios::{self, SetArg, Termios};

/// What runc sends as the message body with the fd (the master's file name).
const MASTER_NAME: &str = "/dev/ptmx";

/// Where the master of a terminal container goes.
pub enum ConsoleTarget {
    /// `--console-socket`: the connected socket, opened in the runtime's
    /// mount namespace before the child enters the container's root.
    Socket(OwnedFd),
    /// Foreground `run -t`/`exec -t`: over the sync channel to berth itself.
    Parent,
}

/// Connect to a `--console-socket` (a SOCK_STREAM listener, as for runc).
pub fn connect_console_socket(path: &Path) -> Result<OwnedFd> {
    let s = UnixStream::connect(path)
        .with_context(|| format!("connect to --console-socket {}", path.display()))?;
    Ok(s.into())
}

/// A new pty of the devpts mounted at /dev/pts (through /dev/ptmx), unlocked,
/// sized `size` (rows, cols) if given. Returns (master, slave, slave path).
pub fn open_pty(size: Option<(u16, u16)>) -> Result<(OwnedFd, OwnedFd, PathBuf)> {
    let master: OwnedFd = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags_noctty()
        .open("/dev/ptmx")
        .context("open /dev/ptmx of the container")?
        .into();
    let mut unlock: libc::c_int = 0;
    // SAFETY: TIOCSPTLCK reads an int we own.
    if unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSPTLCK, &mut unlock) } < 0 {
        return Err(io::Error::last_os_error()).context("unlock pty (TIOCSPTLCK)");
    }
    let mut n: libc::c_uint = 0;
    // SAFETY: TIOCGPTN writes the pty number into an int we own.
    if unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCGPTN, &mut n) } < 0 {
        return Err(io::Error::last_os_error()).context("get pty number (TIOCGPTN)");
    }
    let path = PathBuf::from(format!("/dev/pts/{n}"));
    // TIOCGPTPEER opens the slave through the master, immune to whatever
    // sits at /dev/pts/N in the container's tree.
    // SAFETY: TIOCGPTPEER takes open flags and returns a new fd we then own.
    let raw = unsafe {
        libc::ioctl(
            master.as_raw_fd(),
            libc::TIOCGPTPEER,
            libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC,
        )
    };
    let slave: OwnedFd = if raw >= 0 {
        // SAFETY: the kernel returned a fresh fd.
        unsafe { OwnedFd::from_raw_fd(raw) }
    } else {
        fs::OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags_noctty()
            .open(&path)
            .with_context(|| format!("open pty slave {}", path.display()))?
            .into()
    };
    if let Some((rows, cols)) = size {
        set_window_size(master.as_fd(), rows, cols).context("process.consoleSize")?;
    }
    Ok((master, slave, path))
}

trait NoCtty {
    fn custom_flags_noctty(&mut self) -> &mut Self;
}

impl NoCtty for fs::OpenOptions {
    fn custom_flags_noctty(&mut self) -> &mut Self {
        use std::os::unix::fs::OpenOptionsExt;
        self.custom_flags(libc::O_NOCTTY | libc::O_CLOEXEC)
    }
}

/// Bind the slave on /dev/console (made as an empty 0666 file if missing),
/// as runc does, so programs writing to the console reach the terminal.
pub fn mount_console(slave_path: &Path) -> Result<()> {
    let console = Path::new("/dev/console");
    match fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(console)
    {
        Ok(f) => f
            .set_permissions(fs::Permissions::from_mode(0o666))
            .context("chmod /dev/console")?,
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e).context("create /dev/console"),
    }
    mount(
        Some(slave_path),
        console,
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    )
    .with_context(|| {
        format!(
            "bind mount {} on /dev/console (flags bind)",
            slave_path.display()
        )
    })
}

/// Make the slave our stdin, stdout, stderr and controlling terminal, in a
/// session of our own.
pub fn make_controlling(slave: &OwnedFd) -> Result<()> {
    // A new session has no controlling terminal, so TIOCSCTTY may take one.
    nix::unistd::setsid().context("setsid")?;
    for target in 0..3 {
        // SAFETY: dup2 onto stdio replaces fds this process owns.
        if unsafe { libc::dup2(slave.as_raw_fd(), target) } < 0 {
            return Err(io::Error::last_os_error())
                .with_context(|| format!("dup pty slave onto fd {target}"));
        }
    }
    // SAFETY: TIOCSCTTY with argument 0 on our own terminal fd.
    if unsafe { libc::ioctl(0, libc::TIOCSCTTY, 0) } < 0 {
        return Err(io::Error::last_os_error()).context("make the pty the controlling terminal");
    }
    Ok(())
}

/// Send the master to a console socket: one message whose body is the name
/// and whose `SCM_RIGHTS` carries the fd (runc's `utils.SendFile`).
pub fn send_master(socket: &OwnedFd, master: &OwnedFd) -> Result<()> {
    crate::sys::send_with_fds(socket.as_fd(), MASTER_NAME.as_bytes(), &[master.as_fd()])
        .map(drop)
        .context("send the pty master to --console-socket")
}

/// (rows, cols) of a terminal.
pub fn window_size(fd: BorrowedFd) -> Option<(u16, u16)> {
    // SAFETY: winsize is plain data; TIOCGWINSZ fills it.
    let mut ws: libc::winsize = unsafe { std::mem::zeroed() };
    // SAFETY: TIOCGWINSZ writes into the winsize we own.
    let rc = unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCGWINSZ, &mut ws) };
    (rc == 0 && ws.ws_row > 0 && ws.ws_col > 0).then_some((ws.ws_row, ws.ws_col))
}

pub fn set_window_size(fd: BorrowedFd, rows: u16, cols: u16) -> Result<()> {
    let ws = libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads the winsize we own.
    if unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCSWINSZ, &ws) } < 0 {
        return Err(io::Error::last_os_error()).context("set window size (TIOCSWINSZ)");
    }
    Ok(())
}

/// `process.consoleSize` as (rows, cols), if set and non-zero.
pub fn console_size(process: &crate::spec::types::Process) -> Option<(u16, u16)> {
    let b = process.console_size()?;
    let (h, w) = (b.height(), b.width());
    (h > 0 && w > 0).then(|| (h.min(u16::MAX as u64) as u16, w.min(u16::MAX as u64) as u16))
}

fn is_tty(fd: RawFd) -> bool {
    // SAFETY: isatty only inspects the fd.
    unsafe { libc::isatty(fd) == 1 }
}

/// The parent's side of a foreground terminal: the user's terminal in raw
/// mode (restored on drop) and the copy loops' state. `wait` drives it.
pub struct Proxy {
    master: OwnedFd,
    /// The user's terminal settings to restore, when stdin is a terminal.
    saved: Option<Termios>,
    /// Input read from stdin that the master has not taken yet.
    pending: Vec<u8>,
    stdin_open: bool,
    master_open: bool,
}

impl Proxy {
    /// Take over the user's terminal: raw mode if stdin is a terminal, and
    /// the container's window size from the user's (unless the config set
    /// one, which the child already applied).
    pub fn start(master: OwnedFd, size_from_config: bool) -> Result<Proxy> {
        set_nonblocking(master.as_fd())?;
        if !size_from_config {
            if let Some((rows, cols)) = user_window_size() {
                set_window_size(master.as_fd(), rows, cols)?;
            }
        }
        let saved = if is_tty(0) {
            // SAFETY: fd 0 stays open for the life of berth.
            let stdin = unsafe { BorrowedFd::borrow_raw(0) };
            let orig = termios::tcgetattr(stdin).context("read the terminal's settings")?;
            let mut raw = orig.clone();
            termios::cfmakeraw(&mut raw);
            termios::tcsetattr(stdin, SetArg::TCSANOW, &raw).context("set the terminal raw")?;
            Some(orig)
        } else {
            None
        };
        Ok(Proxy {
            master,
            saved,
            pending: Vec::new(),
            stdin_open: true,
            master_open: true,
        })
    }

    pub fn master(&self) -> BorrowedFd<'_> {
        self.master.as_fd()
    }

    /// Whether the loop should poll stdin / the master, and for what.
    pub fn wants_stdin(&self) -> bool {
        self.stdin_open && self.master_open && self.pending.is_empty()
    }

    pub fn wants_master(&self) -> bool {
        self.master_open
    }

    pub fn wants_master_write(&self) -> bool {
        self.master_open && !self.pending.is_empty()
    }

    /// SIGWINCH on our side: pass the user's new size on to the container.
    pub fn resize(&self) {
        if let Some((rows, cols)) = user_window_size() {
            let _ = set_window_size(self.master.as_fd(), rows, cols);
        }
    }

    /// stdin is readable: read a chunk and push what the master takes.
    pub fn on_stdin(&mut self) -> Result<()> {
        let mut buf = [0u8; 4096];
        match nix::unistd::read(0, &mut buf) {
            Ok(0) => self.stdin_open = false,
            Ok(n) => {
                self.pending.extend_from_slice(&buf[..n]);
                self.flush_input()?;
            }
            Err(Errno::EINTR | Errno::EAGAIN) => {}
            // A stdin that cannot be read (closed, EIO from a hung-up
            // terminal) ends input, not the container.
            Err(_) => self.stdin_open = false,
        }
        Ok(())
    }

    /// Write pending input into the master without blocking.
    pub fn flush_input(&mut self) -> Result<()> {
        while !self.pending.is_empty() {
            match nix::unistd::write(&self.master, &self.pending) {
                Ok(n) => {
                    self.pending.drain(..n);
                }
                Err(Errno::EINTR) => {}
                Err(Errno::EAGAIN) => break,
                Err(_) => {
                    self.pending.clear();
                    self.master_open = false;
                }
            }
        }
        Ok(())
    }

    /// The master is readable (or hung up): copy what is there to stdout.
    pub fn on_master(&mut self) -> Result<()> {
        let mut buf = [0u8; 16384];
        loop {
            match nix::unistd::read(self.master.as_raw_fd(), &mut buf) {
                Ok(0) | Err(Errno::EIO) => {
                    // EIO: every slave fd is closed; nothing more will come.
                    self.master_open = false;
                    return Ok(());
                }
                Ok(n) => write_stdout(&buf[..n])?,
                Err(Errno::EINTR) => {}
                Err(Errno::EAGAIN) => return Ok(()),
                Err(e) => return Err(e).context("read the pty master"),
            }
        }
    }

    /// The container is gone: copy whatever output is left.
    pub fn drain(&mut self) -> Result<()> {
        if self.master_open {
            self.on_master()?;
        }
        Ok(())
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        if let Some(orig) = &self.saved {
            // SAFETY: fd 0 stays open for the life of berth.
            let stdin = unsafe { BorrowedFd::borrow_raw(0) };
            // TCSADRAIN: let the last output reach the terminal in raw mode first.
            let _ = termios::tcsetattr(stdin, SetArg::TCSADRAIN, orig);
        }
    }
}

/// The user's window size: from stdin, else stdout.
fn user_window_size() -> Option<(u16, u16)> {
    [0, 1].into_iter().find_map(|fd| {
        // SAFETY: stdio fds stay open for the life of berth.
        window_size(unsafe { BorrowedFd::borrow_raw(fd) })
    })
}

fn write_stdout(data: &[u8]) -> Result<()> {
    let mut out = io::stdout().lock();
    match out.write_all(data).and_then(|_| out.flush()) {
        // Nobody reads our stdout any more: drop the output, keep waiting.
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
        r => r.context("write container output to stdout"),
    }
}

fn set_nonblocking(fd: BorrowedFd) -> Result<()> {
    use nix::fcntl::{fcntl, FcntlArg, OFlag};
    let flags = fcntl(fd.as_raw_fd(), FcntlArg::F_GETFL).context("F_GETFL on the pty master")?;
    let flags = OFlag::from_bits_truncate(flags) | OFlag::O_NONBLOCK;
    fcntl(fd.as_raw_fd(), FcntlArg::F_SETFL(flags)).context("F_SETFL on the pty master")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_pty_round_trip() {
        // The host's /dev/ptmx stands in for the container's.
        let (master, slave, path) = open_pty(Some((33, 101))).expect("pty");
        assert!(path.starts_with("/dev/pts"));
        assert_eq!(window_size(slave.as_fd()), Some((33, 101)));
        nix::unistd::write(&slave, b"x").expect("write slave");
        let mut b = [0u8; 1];
        nix::unistd::read(master.as_raw_fd(), &mut b).expect("read master");
        assert_eq!(&b, b"x");
    }

    #[test]
    fn console_socket_gets_fd_and_name() {
        use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
        let (a, b) = UnixStream::pair().expect("pair");
        let (master, _slave, _) = open_pty(None).expect("pty");
        send_master(&OwnedFd::from(a), &master).expect("send");
        let mut buf = [0u8; 64];
        let mut space = nix::cmsg_space!([RawFd; 1]);
        let mut iov = [io::IoSliceMut::new(&mut buf)];
        let r = recvmsg::<()>(b.as_raw_fd(), &mut iov, Some(&mut space), MsgFlags::empty())
            .expect("recvmsg");
        let fds: Vec<RawFd> = r
            .cmsgs()
            .expect("cmsgs")
            .filter_map(|c| match c {
                ControlMessageOwned::ScmRights(f) => Some(f),
                _ => None,
            })
            .flatten()
            .collect();
        let n = r.bytes;
        assert_eq!(fds.len(), 1);
        assert_eq!(&buf[..n], MASTER_NAME.as_bytes());
        // SAFETY: the fd was just received and is ours to close.
        drop(unsafe { OwnedFd::from_raw_fd(fds[0]) });
    }
}
