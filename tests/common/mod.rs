//! Shared harness for the integration tests: each `Env` has its own `--root`,
//! `--layer-root` and bundle dir under a temp dir, hands out unique ids, and
//! on drop force-deletes every container it made, so a failed assertion
//! leaves nothing behind. The tests run the real binary as root.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};

pub const BERTH: &str = env!("CARGO_BIN_EXE_berth");

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// Absolute path of the busybox bundle's rootfs built by `make bundles`.
pub fn busybox_rootfs() -> PathBuf {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("bundles/busybox/rootfs");
    assert!(
        p.join("bin/busybox").exists(),
        "{} is missing: run `make bundles` first",
        p.display()
    );
    p
}

/// The committed busybox config.json, parsed.
pub fn busybox_config() -> serde_json::Value {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("bundles/busybox/config.json");
    serde_json::from_slice(&std::fs::read(p).expect("read config.json")).expect("parse")
}

pub struct Env {
    pub tmp: tempfile::TempDir,
    pub root: PathBuf,
    pub layer_root: PathBuf,
    /// A bundle whose config is the busybox one with root.path absolute.
    pub bundle: PathBuf,
    ids: std::sync::Mutex<Vec<String>>,
}

impl Env {
    pub fn new() -> Env {
        Self::with_config(|_| {})
    }

    /// A fresh env whose bundle config is the busybox one, edited by `edit`.
    pub fn with_config(edit: impl FnOnce(&mut serde_json::Value)) -> Env {
        let tmp = tempfile::Builder::new()
            .prefix("berth-test-")
            .tempdir()
            .expect("tempdir");
        let root = tmp.path().join("root");
        let layer_root = tmp.path().join("layers");
        let bundle = tmp.path().join("bundle");
        std::fs::create_dir_all(&bundle).expect("bundle dir");
        let env = Env {
            root,
            layer_root,
            bundle,
            tmp,
            ids: Default::default(),
        };
        env.write_config(edit);
        env
    }

    /// Rewrite this env's config.json from the busybox one.
    pub fn write_config(&self, edit: impl FnOnce(&mut serde_json::Value)) {
        let mut cfg = busybox_config();
        cfg["root"]["path"] = busybox_rootfs().to_string_lossy().into_owned().into();
        edit(&mut cfg);
        std::fs::write(
            self.bundle.join("config.json"),
            serde_json::to_vec_pretty(&cfg).expect("json"),
        )
        .expect("write config.json");
    }

    /// A unique container id, remembered for cleanup.
    pub fn id(&self, name: &str) -> String {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let id = format!("{name}-{}-{n}", std::process::id());
        self.track(&id);
        id
    }

    pub fn track(&self, id: &str) {
        if let Ok(mut ids) = self.ids.lock() {
            ids.push(id.to_string());
        }
    }

    /// A berth command with this env's --root and --layer-root.
    pub fn cmd(&self) -> Command {
        let mut c = Command::new(BERTH);
        c.arg("--root").arg(&self.root);
        c.arg("--layer-root").arg(&self.layer_root);
        c.stdin(Stdio::null());
        c
    }

    /// Run berth with `args`, capturing output. Output goes through files,
    /// not pipes: a created or detached container inherits berth's stdio and
    /// would keep a pipe open long after berth itself has exited.
    pub fn berth(&self, args: &[&str]) -> Output {
        self.output_of(self.cmd().args(args))
    }

    /// Run a prepared berth command (extra env, …) with stdout and stderr
    /// in files, like [`Env::berth`]: a created container keeps its stdio,
    /// so pipes would never reach EOF.
    pub fn output_of(&self, cmd: &mut Command) -> Output {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let out_path = self.tmp.path().join(format!("out-{n}"));
        let err_path = self.tmp.path().join(format!("err-{n}"));
        let status = cmd
            .stdout(std::fs::File::create(&out_path).expect("stdout file"))
            .stderr(std::fs::File::create(&err_path).expect("stderr file"))
            .status()
            .expect("spawn berth");
        let read = |p: &Path| std::fs::read(p).unwrap_or_default();
        let out = Output {
            status,
            stdout: read(&out_path),
            stderr: read(&err_path),
        };
        let _ = std::fs::remove_file(&out_path);
        let _ = std::fs::remove_file(&err_path);
        out
    }

    /// Run berth with `args` under `wrapper` (`strace …`, `chrt …`): the
    /// wrapper's argv, then berth with this env's roots, then `args`.
    pub fn wrapped(&self, wrapper: &[&str], args: &[&str]) -> Output {
        let plain = self.cmd();
        let mut c = Command::new(wrapper[0]);
        c.args(&wrapper[1..])
            .arg(plain.get_program())
            .args(plain.get_args())
            .args(args)
            .stdin(Stdio::null());
        self.output_of(&mut c)
    }

    /// `berth run -b <bundle> <id> true` under `strace -f -e trace=<calls>`,
    /// which must succeed; the strace log.
    pub fn strace_run(&self, id: &str, calls: &str) -> String {
        let log = self.tmp.path().join(format!("strace-{id}"));
        let log_arg = log.to_string_lossy().into_owned();
        let trace = format!("trace={calls}");
        let bundle = self.bundle.to_string_lossy().into_owned();
        let out = self.wrapped(
            &["strace", "-f", "-qq", "-e", &trace, "-o", &log_arg],
            &["run", "-b", &bundle, id, "true"],
        );
        assert!(out.status.success(), "strace berth run: {}", stderr(&out));
        std::fs::read_to_string(&log).expect("read the strace log")
    }

    /// Run berth and assert success; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.berth(args);
        assert!(
            out.status.success(),
            "berth {args:?} failed ({:?}): {}{}",
            out.status.code(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `berth run -b <bundle> <id> <cmd…>` in the foreground.
    pub fn run(&self, id: &str, cmd: &[&str]) -> Output {
        let bundle = self.bundle.to_string_lossy().into_owned();
        let mut args = vec!["run", "-b", &bundle, id];
        args.extend_from_slice(cmd);
        self.berth(&args)
    }

    /// `berth create -b <bundle> <id> <cmd…>`, asserting success.
    pub fn create(&self, id: &str, cmd: &[&str]) {
        let bundle = self.bundle.to_string_lossy().into_owned();
        let mut args = vec!["create", "-b", &bundle, id];
        args.extend_from_slice(cmd);
        self.ok(&args);
    }

    /// The parsed `berth state <id>`.
    pub fn state(&self, id: &str) -> serde_json::Value {
        serde_json::from_str(&self.ok(&["state", id])).expect("state json")
    }

    pub fn status(&self, id: &str) -> String {
        self.state(id)["status"].as_str().unwrap_or("").to_string()
    }

    pub fn pid(&self, id: &str) -> i32 {
        self.state(id)["pid"].as_i64().unwrap_or(0) as i32
    }

    /// Wait (bounded) until the container exists and reaches `status`.
    pub fn wait_status(&self, id: &str, status: &str) {
        let mut last = String::new();
        for _ in 0..400 {
            let out = self.berth(&["state", id]);
            if out.status.success() {
                let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("state json");
                last = v["status"].as_str().unwrap_or("").to_string();
                if last == status {
                    return;
                }
            }
            std::thread::sleep(std::time::Duration::from_millis(25));
        }
        panic!("container {id} never reached {status}: last {last:?}");
    }

    /// Nothing of `id` is left: no state dir, no layer dir, no mount.
    pub fn assert_gone(&self, id: &str) {
        assert!(
            !self.root.join(id).exists(),
            "state dir of {id} left behind"
        );
        assert!(
            !self.layer_root.join(id).exists(),
            "layer dir of {id} left behind"
        );
        let mounts = std::fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
        let tmp = self.tmp.path().to_string_lossy().into_owned();
        assert!(
            !mounts.contains(&tmp),
            "mounts under {tmp} left behind:\n{mounts}"
        );
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        let ids = self.ids.lock().map(|v| v.clone()).unwrap_or_default();
        for id in ids {
            let _ = self.berth(&["delete", "--force", &id]);
        }
    }
}

/// Assert that no process's command line mentions `text` (a container
/// id). One already dying (killed while a system call finishes in the
/// kernel, e.g. a mount's RCU wait on a loaded host) gets up to two
/// seconds to be gone; one still there then was left behind, and is
/// reported with its state and where it waits.
pub fn assert_no_process_mentions(text: &str) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
    loop {
        let left = processes_mentioning(text);
        if left.is_empty() {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "process left behind: {}",
            left.join("; ")
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

fn processes_mentioning(text: &str) -> Vec<String> {
    let procs = std::fs::read_dir("/proc").expect("/proc");
    let mut found = Vec::new();
    for p in procs.flatten() {
        let Ok(cmd) = std::fs::read(p.path().join("cmdline")) else {
            continue;
        };
        let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
        if !cmd.contains(text) {
            continue;
        }
        let status = std::fs::read_to_string(p.path().join("status")).unwrap_or_default();
        let state = status
            .lines()
            .find(|l| l.starts_with("State:"))
            .unwrap_or("State: ?");
        let wchan = std::fs::read_to_string(p.path().join("wchan")).unwrap_or_default();
        found.push(format!(
            "{cmd}({}, {state}, wchan {wchan})",
            p.path().display()
        ));
    }
    found
}

/// Text of an output's stdout / stderr.
pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The namespace link of a process, e.g. `pid:[4026531836]`.
pub fn ns_of(pid: i32, ns: &str) -> String {
    std::fs::read_link(format!("/proc/{pid}/ns/{ns}"))
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// True while `pid` exists and is not a zombie.
pub fn alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit(')')
            .next()
            .and_then(|r| r.split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X"),
        Err(_) => false,
    }
}

/// Receive one message and exactly one fd (SCM_RIGHTS) on `conn`: the
/// protocol of runc's console socket and of the seccomp notify listener.
pub fn receive_fd(conn: &std::os::unix::net::UnixStream) -> (std::os::fd::OwnedFd, Vec<u8>) {
    use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
    use std::os::fd::{AsRawFd, FromRawFd, RawFd};
    let mut buf = vec![0u8; 16384];
    let mut space = nix::cmsg_space!([RawFd; 4]);
    let mut iov = [std::io::IoSliceMut::new(&mut buf)];
    let msg = recvmsg::<()>(
        conn.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        MsgFlags::empty(),
    )
    .expect("recvmsg");
    let mut fds = Vec::new();
    for c in msg.cmsgs().expect("cmsgs") {
        if let ControlMessageOwned::ScmRights(f) = c {
            fds.extend(f);
        }
    }
    let n = msg.bytes;
    assert_eq!(fds.len(), 1, "exactly one fd with SCM_RIGHTS");
    // SAFETY: the fd was just received and nothing else owns it.
    let fd = unsafe { std::os::fd::OwnedFd::from_raw_fd(fds[0]) };
    buf.truncate(n);
    (fd, buf)
}
