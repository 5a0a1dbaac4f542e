//! Bad input: each case is a one-line error, a non-zero exit, and nothing
//! left behind (no state dir, no layer dir, no mount, no process).

mod common;

use common::{assert_no_process_mentions, stderr, Env};

/// Run `berth <args>` and check it failed with one `berth: …` line
/// containing `needle`; returns the exit code.
fn fails(env: &Env, args: &[&str], needle: &str) -> i32 {
    let out = env.berth(args);
    let err = stderr(&out);
    assert!(!out.status.success(), "berth {args:?} succeeded");
    assert_eq!(err.lines().count(), 1, "not one line: {err}");
    assert!(err.starts_with("berth: "), "{err}");
    assert!(err.contains(needle), "{err:?} does not mention {needle:?}");
    out.status.code().unwrap_or(-1)
}

fn run_fails(env: &Env, id: &str, cmd: &[&str], needle: &str) -> i32 {
    let bundle = env.bundle.to_string_lossy().into_owned();
    let mut args = vec!["run", "-b", &bundle, id];
    args.extend_from_slice(cmd);
    let code = fails(env, &args, needle);
    env.assert_gone(id);
    assert_no_process_mentions(id);
    code
}

#[test]
fn missing_config_json() {
    let env = Env::new();
    std::fs::remove_file(env.bundle.join("config.json")).expect("rm");
    let id = env.id("noconf");
    assert_eq!(run_fails(&env, &id, &[], "config.json"), 1);
}

#[test]
fn malformed_json() {
    let env = Env::new();
    std::fs::write(
        env.bundle.join("config.json"),
        "{\"ociVersion\": \"1.0.2\",,}",
    )
    .expect("w");
    let id = env.id("badjson");
    run_fails(&env, &id, &[], "config.json");
}

#[test]
fn missing_rootfs() {
    let env = Env::with_config(|c| c["root"]["path"] = "/nonexistent/rootfs".into());
    let id = env.id("norootfs");
    run_fails(&env, &id, &[], "/nonexistent/rootfs");
}

#[test]
fn relative_cwd() {
    let env = Env::with_config(|c| c["process"]["cwd"] = "tmp".into());
    let id = env.id("relcwd");
    run_fails(&env, &id, &[], "process.cwd");
}

#[test]
fn empty_args() {
    let env = Env::with_config(|c| c["process"]["args"] = serde_json::json!([]));
    let id = env.id("noargs");
    run_fails(&env, &id, &[], "process.args");
}

#[test]
fn nonexistent_executable_exits_127() {
    let env = Env::new();
    let id = env.id("noexe");
    assert_eq!(
        run_fails(&env, &id, &["/no/such/prog"], "/no/such/prog"),
        127
    );
    let id = env.id("noexe2");
    assert_eq!(run_fails(&env, &id, &["nosuchprog"], "nosuchprog"), 127);
}

#[test]
fn rlimit_above_the_hard_limit() {
    let env = Env::with_config(|c| {
        c["process"]["rlimits"] =
            serde_json::json!([{"type": "RLIMIT_NOFILE", "hard": 1u64 << 40, "soft": 1024}])
    });
    let id = env.id("rlim");
    run_fails(&env, &id, &["true"], "RLIMIT_NOFILE");
}

#[test]
fn duplicate_id() {
    let env = Env::new();
    let id = env.id("dup");
    env.create(&id, &["true"]);
    let bundle = env.bundle.to_string_lossy().into_owned();
    fails(&env, &["create", "-b", &bundle, &id], "already exists");
    // The first container is untouched.
    assert_eq!(env.status(&id), "created");
}

#[test]
fn invalid_ids() {
    let env = Env::new();
    let bundle = env.bundle.to_string_lossy().into_owned();
    for bad in ["../x", "a/b", "", ".hidden"] {
        fails(
            &env,
            &["create", "-b", &bundle, bad],
            "invalid container id",
        );
        fails(&env, &["state", bad], "invalid container id");
    }
    assert!(
        !env.root.exists() || std::fs::read_dir(&env.root).expect("root").next().is_none(),
        "invalid ids made files"
    );
    assert!(!env.tmp.path().join("x").exists());
}

#[test]
fn unknown_container() {
    let env = Env::new();
    for cmd in ["state", "start", "delete", "kill", "diff"] {
        fails(
            &env,
            &[cmd, "nosuchcontainer"],
            "container nosuchcontainer does not exist",
        );
    }
}

#[test]
fn start_twice() {
    let env = Env::new();
    let id = env.id("twice");
    env.create(&id, &["sleep", "100"]);
    env.ok(&["start", &id]);
    fails(&env, &["start", &id], &id);
    env.ok(&["delete", "--force", &id]);
    env.assert_gone(&id);
}

#[test]
fn start_after_the_process_died() {
    let env = Env::new();
    let id = env.id("dead");
    env.create(&id, &["true"]);
    let pid = env.pid(&id);
    // SAFETY: plain kill(2) of the container's waiting process.
    unsafe { libc::kill(pid, libc::SIGKILL) };
    env.wait_status(&id, "stopped");
    fails(&env, &["start", &id], "exited");
    env.ok(&["delete", &id]);
    env.assert_gone(&id);
}

#[test]
fn bad_flag_and_bad_signal() {
    let env = Env::new();
    let out = env.berth(&["create", "--no-such-flag", "x"]);
    assert_eq!(out.status.code(), Some(2), "clap usage error");
    let id = env.id("sig");
    env.create(&id, &["true"]);
    fails(&env, &["kill", &id, "NOSUCHSIG"], "invalid signal");
}

/// A foreground run whose pid file cannot be written fails before the
/// container's process runs at all (its first command would leave a mark
/// on the host through a bind mount), and leaves nothing behind.
#[test]
fn unwritable_pid_file_fails_before_the_process_runs() {
    let marks = tempfile::tempdir().expect("tempdir");
    let source = marks.path().to_string_lossy().into_owned();
    let env = Env::with_config(|c| {
        c["mounts"]
            .as_array_mut()
            .expect("mounts")
            .push(serde_json::json!({
                "destination": "/marks", "type": "bind",
                "source": source, "options": ["rbind", "rw"]
            }));
    });
    let id = env.id("pidfile");
    let bad = env.tmp.path().join("no-such-dir").join("pid");
    let bad = bad.to_string_lossy().into_owned();
    let bundle = env.bundle.to_string_lossy().into_owned();
    let args = [
        "run",
        "--pid-file",
        &bad,
        "-b",
        &bundle,
        &id,
        "touch",
        "/marks/ran",
    ];
    fails(&env, &args, "pid file");
    env.assert_gone(&id);
    assert_no_process_mentions(&id);
    assert!(
        !marks.path().join("ran").exists(),
        "the container ran although create failed"
    );
}
