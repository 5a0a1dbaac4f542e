//! Terminals: the console-socket protocol (as conmon and containerd speak
//! it) and the interactive `run -t` proxy, driven through a real pty.

mod common;

use std::io::Write;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::net::UnixListener;
use std::os::unix::process::CommandExt;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::Env;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::pty::{openpty, Winsize};
use nix::sys::termios::{tcgetattr, Termios};

fn terminal_env() -> Env {
    Env::with_config(|c| {
        c["process"]["terminal"] = true.into();
    })
}

/// Accept one connection on `listener` and receive the fd runc's protocol sends.
fn receive_master(listener: UnixListener) -> (OwnedFd, String) {
    let (conn, _) = listener.accept().expect("accept console connection");
    let (fd, body) = common::receive_fd(&conn);
    (fd, String::from_utf8_lossy(&body).into_owned())
}

/// Read from a pty master until `want` appears (or EIO/timeout); returns all.
fn read_until(master: &OwnedFd, want: &str, timeout: Duration) -> String {
    let mut out = Vec::new();
    let deadline = Instant::now() + timeout;
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&out).contains(want) {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        let mut fds = [PollFd::new(master.as_fd(), PollFlags::POLLIN)];
        let ms = PollTimeout::try_from(left.as_millis() as i32).unwrap_or(PollTimeout::MAX);
        if poll(&mut fds, ms).unwrap_or(0) == 0 {
            continue;
        }
        match nix::unistd::read(master.as_raw_fd(), &mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn wait_child(child: &mut Child, timeout: Duration) -> Option<i32> {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if let Some(st) = child.try_wait().expect("try_wait") {
            return st.code();
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
    None
}

#[test]
fn console_socket_gets_the_master_of_a_pty_in_the_container() {
    let env = terminal_env();
    let id = env.id("console");
    let sock = env.tmp.path().join("console.sock");
    let listener = UnixListener::bind(&sock).expect("bind console socket");
    let receiver = std::thread::spawn(move || receive_master(listener));
    let bundle = env.bundle.to_string_lossy().into_owned();
    let mut berth = env
        .cmd()
        .args(["run", "--console-socket"])
        .arg(&sock)
        .args(["-b", &bundle, &id, "sh"])
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn berth run");
    let (master, name) = receiver.join().expect("receiver");
    assert_eq!(
        name, "/dev/ptmx",
        "runc sends the master's name as the body"
    );
    let mut m = std::fs::File::from(master.try_clone().expect("dup"));
    m.write_all(
        b"echo TTY=$(tty); echo CON=$(stat -c %t:%T /dev/console) PTS=$(stat -c %t:%T $(tty)); \
          echo N=$(ls /dev/pts | tr '\\n' ,); echo h''i; exit 3\n",
    )
    .expect("write to master");
    let out = read_until(&master, "\nhi", Duration::from_secs(10));
    let code = wait_child(&mut berth, Duration::from_secs(10));
    assert_eq!(
        code,
        Some(3),
        "berth run exits with the container's code; output:\n{out}"
    );
    assert!(
        out.contains("TTY=/dev/pts/0"),
        "tty is a pts of the container's own devpts:\n{out}"
    );
    let con = out
        .lines()
        .find_map(|l| l.trim().strip_prefix("CON="))
        .expect("CON line");
    let (console, pts) = con.split_once(" PTS=").expect("PTS");
    assert_eq!(console, pts.trim(), "/dev/console is the pty slave:\n{out}");
    assert!(out.contains("N=0,ptmx,"), "a fresh devpts instance:\n{out}");
    env.assert_gone(&id);
}

#[test]
fn detached_terminal_without_console_socket_is_refused() {
    let env = terminal_env();
    let id = env.id("detach");
    let bundle = env.bundle.to_string_lossy().into_owned();
    for args in [
        vec!["create", "-b", &bundle, &id],
        vec!["run", "-d", "-b", &bundle, &id],
    ] {
        let out = env.berth(&args);
        assert!(!out.status.success());
        assert_eq!(
            common::stderr(&out).trim(),
            "berth: cannot allocate tty if berth will detach without setting console socket"
        );
        env.assert_gone(&id);
    }
}

/// A pty whose slave is berth's stdio and controlling terminal, as a shell
/// user's terminal is.
struct Harness {
    master: OwnedFd,
    slave: OwnedFd,
    child: Child,
}

impl Harness {
    fn spawn(env: &Env, args: &[&str], rows: u16, cols: u16) -> Harness {
        let ws = Winsize {
            ws_row: rows,
            ws_col: cols,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        let pty = openpty(Some(&ws), None).expect("openpty");
        let slave = pty.slave;
        let io = |fd: &OwnedFd| Stdio::from(fd.try_clone().expect("dup slave"));
        let mut cmd = env.cmd();
        cmd.args(args)
            .stdin(io(&slave))
            .stdout(io(&slave))
            .stderr(io(&slave));
        // SAFETY: only async-signal-safe calls between fork and exec.
        unsafe {
            cmd.pre_exec(|| {
                if libc::setsid() < 0 || libc::ioctl(0, libc::TIOCSCTTY, 0) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd.spawn().expect("spawn berth in the harness");
        Harness {
            master: pty.master,
            slave,
            child,
        }
    }

    fn type_line(&self, line: &str) {
        let mut m = std::fs::File::from(self.master.try_clone().expect("dup"));
        m.write_all(line.as_bytes()).expect("type");
    }

    fn expect(&self, want: &str) -> String {
        let out = read_until(&self.master, want, Duration::from_secs(10));
        assert!(out.contains(want), "never saw {want:?}; got:\n{out}");
        out
    }

    fn resize(&self, rows: u16, cols: u16) {
        let ws = libc::winsize {
            ws_row: rows,
            ws_col: cols,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        // SAFETY: TIOCSWINSZ reads the winsize we own; the kernel then sends
        // SIGWINCH to the terminal's foreground process group (berth).
        let rc = unsafe { libc::ioctl(self.master.as_raw_fd(), libc::TIOCSWINSZ, &ws) };
        assert_eq!(rc, 0, "resize the harness terminal");
    }

    fn termios(&self) -> Termios {
        tcgetattr(self.slave.as_fd()).expect("tcgetattr")
    }
}

fn same_termios(a: &Termios, b: &Termios) -> bool {
    a.input_flags == b.input_flags
        && a.output_flags == b.output_flags
        && a.control_flags == b.control_flags
        && a.local_flags == b.local_flags
        && a.control_chars == b.control_chars
}

#[test]
fn interactive_run_proxies_the_terminal_and_restores_it() {
    let env = Env::new();
    let id = env.id("tty");
    let bundle = env.bundle.to_string_lossy().into_owned();
    let h = Harness::spawn(&env, &["run", "-t", "-b", &bundle, &id, "sh"], 33, 101);
    let before = h.termios();
    // Cooked mode on the harness side until berth takes over.
    h.expect("# ");
    assert!(
        !same_termios(&before, &h.termios()),
        "berth puts the user's terminal in raw mode"
    );
    h.type_line("echo $((6*7))x\n");
    h.expect("42x");
    h.type_line("stty size\n");
    h.expect("33 101");
    h.resize(40, 120);
    std::thread::sleep(Duration::from_millis(300));
    h.type_line("stty size\n");
    h.expect("40 120");
    h.type_line("exit 5\n");
    let mut child = h.child;
    let code = wait_child(&mut child, Duration::from_secs(10));
    assert_eq!(code, Some(5));
    let after = tcgetattr(h.slave.as_fd()).expect("tcgetattr");
    assert!(
        same_termios(&before, &after),
        "the user's terminal settings are restored"
    );
    env.assert_gone(&id);
}

#[test]
fn interactive_exec_gets_its_own_pty_in_the_container() {
    let env = Env::new();
    let id = env.id("exect");
    let bundle = env.bundle.to_string_lossy().into_owned();
    env.ok(&["run", "-d", "-b", &bundle, &id, "sleep", "60"]);
    let h = Harness::spawn(&env, &["exec", "-t", &id, "sh"], 25, 77);
    h.expect("# ");
    h.type_line("echo T=$(tty) S=$(stty size)\n");
    let out = h.expect("S=25 77");
    h.type_line("exit 9\n");
    let mut child = h.child;
    assert_eq!(wait_child(&mut child, Duration::from_secs(10)), Some(9));
    assert!(out.contains("T=/dev/pts/"), "{out}");
    assert!(out.contains("S=25 77"), "{out}");
    env.ok(&["delete", "--force", &id]);
}
