//! OCI lifecycle hooks: running one list of `hooks.<kind>` with the
//! container's state JSON on stdin, the hook's own `args` and `env`, and its
//! `timeout` enforced (the hook is killed when it runs over). Where each kind
//! runs is the callers' business (see the table below); this module only
//! runs them and says which failures are errors and which are warnings.
//!
//! | kind            | run by                         | namespace | on failure |
//! |-----------------|--------------------------------|-----------|------------|
//! | prestart        | create, before pivot_root      | runtime   | abort      |
//! | createRuntime   | create, before pivot_root      | runtime   | abort      |
//! | createContainer | the child, before pivot_root   | container | abort      |
//! | startContainer  | the child, after start, before execve | container | abort |
//! | poststart       | start, after the process runs  | runtime   | warning    |
//! | poststop        | delete, after everything's gone | runtime  | warning    |
//!
//! Must never: give a hook berth's environment (a hook's env is exactly its
//! `env`), or let a hook's stdout/stderr be anything but berth's own.

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::io::Write;
use std::os::fd::{AsFd, AsRawFd};
use std::time::Duration;

use nix::fcntl::OFlag;
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::Pid;

use crate::spec::types::{Hook, Hooks};
use anyhow::{bail, Context, Result};

use crate::state::{State, Status};
use crate::{logging, sys};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Prestart,
    CreateRuntime,
    CreateContainer,
    StartContainer,
    Poststart,
    Poststop,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Prestart => "prestart",
            Kind::CreateRuntime => "createRuntime",
            Kind::CreateContainer => "createContainer",
            Kind::StartContainer => "startContainer",
            Kind::Poststart => "poststart",
            Kind::Poststop => "poststop",
        }
    }
}

/// The hooks of one kind (empty when none).
pub fn list(hooks: Option<&Hooks>, kind: Kind) -> &[Hook] {
    let Some(h) = hooks else { return &[] };
    #[allow(deprecated)] // prestart is deprecated, but a config may still set it
    let l = match kind {
        Kind::Prestart => h.prestart(),
        Kind::CreateRuntime => h.create_runtime(),
        Kind::CreateContainer => h.create_container(),
        Kind::StartContainer => h.start_container(),
        Kind::Poststart => h.poststart(),
        Kind::Poststop => h.poststop(),
    };
    l.as_deref().unwrap_or_default()
}

/// Run every hook of `kind` in order; the first failure is the error.
pub fn run(hooks: Option<&Hooks>, kind: Kind, state_json: &str) -> Result<()> {
    for (i, hook) in list(hooks, kind).iter().enumerate() {
        run_one(hook, state_json)
            .with_context(|| format!("hooks.{}[{i}] {}", kind.name(), hook.path().display()))?;
    }
    Ok(())
}

/// Run every hook of `kind`, logging failures as warnings (poststart,
/// poststop: the spec says the lifecycle goes on).
pub fn run_warn(hooks: Option<&Hooks>, kind: Kind, state_json: &str) {
    for (i, hook) in list(hooks, kind).iter().enumerate() {
        if let Err(e) = run_one(hook, state_json) {
            logging::warn(&format!(
                "hooks.{}[{i}] {}: {e:#}",
                kind.name(),
                hook.path().display()
            ));
        }
    }
}

/// The container's OCI state as a hook reads it.
pub fn state_json(st: &State, status: Status) -> String {
    serde_json::to_string(&st.to_oci(status)).unwrap_or_default()
}

/// Whether the container has poststart hooks (`start` then waits for its
/// execve before running them).
pub fn has_poststart(hooks: Option<&Hooks>) -> bool {
    !list(hooks, Kind::Poststart).is_empty()
}

/// `start`: the poststart hooks, after the process runs.
pub fn run_poststart(st: &State) {
    if has_poststart(st.hooks.as_ref()) {
        run_warn(
            st.hooks.as_ref(),
            Kind::Poststart,
            &state_json(st, Status::Running),
        );
    }
}

/// `delete`: the poststop hooks, after the container is gone.
pub fn run_poststop(st: &State) {
    if !list(st.hooks.as_ref(), Kind::Poststop).is_empty() {
        run_warn(
            st.hooks.as_ref(),
            Kind::Poststop,
            &state_json(st, Status::Stopped),
        );
    }
}

fn run_one(hook: &Hook, state_json: &str) -> Result<()> {
    let timeout = match hook.timeout() {
        Some(t) if t > 0 => Some(Duration::from_secs(t as u64)),
        Some(t) => bail!("timeout {t} must be greater than zero"),
        None => None,
    };
    let path = hook.path();
    let args = hook.args().as_deref().unwrap_or_default();
    // args[0] is argv[0], as for execv; without args, argv[0] is the path.
    let argv: Vec<&OsStr> = if args.is_empty() {
        vec![path.as_os_str()]
    } else {
        args.iter().map(OsStr::new).collect()
    };
    // The hook's env and nothing else; a key given twice keeps its last
    // value (as std's Command and Go's os/exec do).
    let env: BTreeMap<&str, &str> = crate::sorted::inserted(
        hook.env()
            .as_deref()
            .unwrap_or_default()
            .iter()
            .map(|kv| kv.split_once('=').unwrap_or((kv, ""))),
    );
    let envp: Vec<OsString> = env.iter().map(|(k, v)| format!("{k}={v}").into()).collect();
    let (stdin_r, stdin_w) =
        nix::unistd::pipe2(OFlag::O_CLOEXEC).context("pipe for the hook's stdin")?;
    // The state must fit the pipe, so a hook that never reads its stdin
    // cannot block us; a hook that exits early closes it (EPIPE is fine).
    // SAFETY: F_SETPIPE_SZ on a pipe fd we own; failure leaves the default size.
    unsafe {
        libc::fcntl(
            stdin_w.as_raw_fd(),
            libc::F_SETPIPE_SZ,
            state_json.len() as i32,
        )
    };
    let program = sys::find_program(path).context("start hook")?;
    let pid = sys::spawn(&program, &argv, &envp, [Some(stdin_r.as_fd()), None, None])
        .context("start hook")?;
    drop(stdin_r);
    // The hook is waited for even when its stdin could not be written, so
    // that no hook outlives a failed hook step.
    let written = match std::fs::File::from(stdin_w).write_all(state_json.as_bytes()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        r => r.context("write the state to the hook's stdin"),
    };
    let status = match timeout {
        Some(t) => wait_timeout(pid, t)?,
        None => waitpid(pid, None).context("wait for hook")?,
    };
    written?;
    match sys::describe_wait(status) {
        (true, _) => Ok(()),
        (false, how) => bail!("hook exited with {how}"),
    }
}

/// Wait at most `timeout`; kill the hook when it runs over.
fn wait_timeout(pid: Pid, timeout: Duration) -> Result<WaitStatus> {
    let pidfd = sys::pidfd_open(pid.as_raw()).context("pidfd_open hook")?;
    if crate::process::parent::wait_exit(&pidfd, timeout).is_err() {
        let _ = sys::pidfd_send_signal(pidfd.as_fd(), libc::SIGKILL);
        let _ = waitpid(pid, None);
        bail!("killed after its timeout of {} s", timeout.as_secs());
    }
    waitpid(pid, None).context("wait for hook")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hook(json: &str) -> Hook {
        serde_json::from_str(json).expect("hook json")
    }

    fn hooks(kind: &str, list: &str) -> Hooks {
        serde_json::from_str(&format!("{{\"{kind}\": [{list}]}}")).expect("hooks json")
    }

    #[test]
    fn state_on_stdin_args_and_exact_env() {
        let dir = tempfile::tempdir().expect("tmp");
        let out = dir.path().join("out");
        let h = hooks(
            "createRuntime",
            &format!(
                r#"{{"path": "/bin/sh", "args": ["sh", "-c", "echo \"$0 $FOO $HOME\" > {0}; cat >> {0}"], "env": ["FOO=bar"]}}"#,
                out.display()
            ),
        );
        run(Some(&h), Kind::CreateRuntime, r#"{"id":"x"}"#).expect("run");
        let got = std::fs::read_to_string(&out).expect("out");
        assert_eq!(got, "sh bar \n{\"id\":\"x\"}");
    }

    #[test]
    fn failure_names_the_hook() {
        let h = hooks("poststop", r#"{"path": "/bin/false"}"#);
        let e = run(Some(&h), Kind::Poststop, "{}").unwrap_err();
        let msg = format!("{e:#}");
        assert!(
            msg.starts_with("hooks.poststop[0] /bin/false: hook exited with"),
            "{msg}"
        );
        // As a warning, the lifecycle goes on.
        run_warn(Some(&h), Kind::Poststop, "{}");
    }

    #[test]
    fn timeout_kills() {
        let h = hook(r#"{"path": "/bin/sleep", "args": ["sleep", "30"], "timeout": 1}"#);
        let t = std::time::Instant::now();
        let e = run_one(&h, "{}").unwrap_err();
        assert!(format!("{e:#}").contains("timeout of 1 s"), "{e:#}");
        assert!(t.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn hook_that_ignores_a_big_state() {
        let h = hook(r#"{"path": "/bin/true"}"#);
        run_one(&h, &"x".repeat(200_000)).expect("true ignores stdin");
    }
}
