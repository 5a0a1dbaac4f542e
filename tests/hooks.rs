//! OCI hooks: every kind runs once, in order, in the namespace the
//! runtime-spec names, with the state it should see on stdin; a failing or
//! overrunning create-time hook aborts create and leaves nothing behind.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{ns_of, Env};
use serde_json::{json, Value};

const KINDS: [&str; 6] = [
    "prestart",
    "createRuntime",
    "createContainer",
    "startContainer",
    "poststart",
    "poststop",
];

/// `<tmp>/hooks`, bind-mounted into the container at the same path so a
/// hook path and its output file mean the same inside and outside.
fn hooks_dir(env: &Env) -> PathBuf {
    let dir = env.tmp.path().join("hooks");
    std::fs::create_dir_all(&dir).expect("hooks dir");
    let script = dir.join("record.sh");
    std::fs::write(
        &script,
        "#!/bin/sh\n\
         state=$(cat)\n\
         pid=$(echo \"$state\" | sed -n 's/.*\"pid\":\\([0-9]*\\).*/\\1/p')\n\
         net=$(readlink /proc/$pid/ns/net 2>/dev/null)\n\
         echo \"$1|$(readlink /proc/self/ns/mnt)|$(readlink /proc/self/ns/pid)|$FROM_HOOK|$net|$state\" >> \"$2\"\n",
    )
    .expect("write hook");
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .expect("chmod hook");
    dir
}

fn record_hook(dir: &Path, kind: &str) -> Value {
    json!({
        "path": dir.join("record.sh"),
        "args": ["record.sh", kind, dir.join("out")],
        "env": ["PATH=/usr/bin:/bin", format!("FROM_HOOK={kind}")],
        "timeout": 10,
    })
}

fn env_with_hooks(edit: impl Fn(&Path, &mut Value)) -> (Env, PathBuf) {
    let env = Env::new();
    let dir = hooks_dir(&env);
    env.write_config(|c| {
        c["mounts"]
            .as_array_mut()
            .expect("mounts")
            .push(json!({"destination": dir, "type": "bind", "source": dir, "options": ["bind"]}));
        edit(&dir, c);
    });
    (env, dir)
}

struct Record {
    kind: String,
    mnt: String,
    pid_ns: String,
    env: String,
    /// The network namespace of the state's pid, as the hook saw it.
    pid_net: String,
    state: Value,
}

fn records(dir: &Path) -> Vec<Record> {
    let text = std::fs::read_to_string(dir.join("out")).unwrap_or_default();
    text.lines()
        .map(|l| {
            let f: Vec<&str> = l.splitn(6, '|').collect();
            assert_eq!(f.len(), 6, "record line {l:?}");
            Record {
                kind: f[0].into(),
                mnt: f[1].into(),
                pid_ns: f[2].into(),
                env: f[3].into(),
                pid_net: f[4].into(),
                state: serde_json::from_str(f[5])
                    .unwrap_or_else(|e| panic!("state JSON in {l:?}: {e}")),
            }
        })
        .collect()
}

#[test]
fn every_kind_runs_in_order_in_its_namespace_with_the_state() {
    let (env, dir) = env_with_hooks(|dir, c| {
        let mut hooks = serde_json::Map::new();
        for kind in KINDS {
            hooks.insert(kind.into(), json!([record_hook(dir, kind)]));
        }
        c["hooks"] = Value::Object(hooks);
    });
    let id = env.id("hooks");
    env.create(&id, &["sleep", "60"]);
    let pid = env.pid(&id);
    let container_net = ns_of(pid, "net");
    let after_create: Vec<String> = records(&dir).into_iter().map(|r| r.kind).collect();
    assert_eq!(
        after_create,
        ["prestart", "createRuntime", "createContainer"]
    );
    env.ok(&["start", &id]);
    env.ok(&["kill", &id, "KILL"]);
    env.wait_status(&id, "stopped");
    env.ok(&["delete", &id]);

    let host_mnt = ns_of(std::process::id() as i32, "mnt");
    let host_pid_ns = ns_of(std::process::id() as i32, "pid");
    let recs = records(&dir);
    let kinds: Vec<&str> = recs.iter().map(|r| r.kind.as_str()).collect();
    assert_eq!(kinds, KINDS, "each kind once, in lifecycle order");
    for r in &recs {
        assert_eq!(r.env, r.kind, "the hook's env is its own");
        assert_eq!(r.state["id"], id.as_str(), "{}: {}", r.kind, r.state);
        assert_eq!(
            r.state["ociVersion"].as_str().map(|v| !v.is_empty()),
            Some(true)
        );
        assert_eq!(
            r.state["bundle"].as_str().map(PathBuf::from),
            Some(std::fs::canonicalize(&env.bundle).expect("bundle")),
            "{}",
            r.kind
        );
        let (status, want_pid) = match r.kind.as_str() {
            "prestart" | "createRuntime" | "createContainer" => ("creating", pid),
            "startContainer" => ("created", pid),
            "poststart" => ("running", pid),
            _ => ("stopped", 0),
        };
        assert_eq!(r.state["status"], status, "{}: {}", r.kind, r.state);
        assert_eq!(r.state["pid"], want_pid, "{}: {}", r.kind, r.state);
        // From the first hook on, the process is in its own new network
        // namespace (made beside the clone and joined first thing): a
        // runtime-namespace hook that sets up its network must never find
        // the host's there.
        if want_pid != 0 && !matches!(r.kind.as_str(), "createContainer" | "startContainer") {
            assert_eq!(
                r.pid_net, container_net,
                "{}: the network namespace of pid {pid}",
                r.kind
            );
        }
        let in_container = matches!(r.kind.as_str(), "createContainer" | "startContainer");
        if in_container {
            // The container's namespaces (recorded while it lived).
            assert_ne!(
                r.mnt, host_mnt,
                "{} runs in the container's mount ns",
                r.kind
            );
            assert_ne!(
                r.pid_ns, host_pid_ns,
                "{} runs in the container's pid ns",
                r.kind
            );
        } else {
            assert_eq!(r.mnt, host_mnt, "{} runs in the runtime's mount ns", r.kind);
            assert_eq!(
                r.pid_ns, host_pid_ns,
                "{} runs in the runtime's pid ns",
                r.kind
            );
        }
    }
    let (cc, sc) = (&recs[2], &recs[3]);
    assert_eq!(
        cc.mnt, sc.mnt,
        "createContainer and startContainer share the container's mnt ns"
    );
    env.assert_gone(&id);
}

#[test]
fn failing_create_runtime_hook_aborts_create_and_runs_poststop() {
    let (env, dir) = env_with_hooks(|dir, c| {
        c["hooks"] = json!({
            "createRuntime": [{"path": "/bin/sh", "args": ["sh", "-c", "echo hook-says-no >&2; exit 4"]}],
            "poststop": [record_hook(dir, "poststop")],
        });
    });
    let id = env.id("hookfail");
    let bundle = env.bundle.to_string_lossy().into_owned();
    let out = env.berth(&["create", "-b", &bundle, &id, "true"]);
    assert!(!out.status.success());
    let err = common::stderr(&out);
    assert!(
        err.contains("hook-says-no"),
        "the hook's stderr is berth's: {err}"
    );
    assert!(
        err.contains("hooks.createRuntime[0] /bin/sh: hook exited with exit status: 4"),
        "{err}"
    );
    env.assert_gone(&id);
    let kinds: Vec<String> = records(&dir).into_iter().map(|r| r.kind).collect();
    assert_eq!(kinds, ["poststop"], "the spec continues at poststop");
}

#[test]
fn failing_create_container_hook_aborts_create() {
    let (env, _dir) = env_with_hooks(|_, c| {
        c["hooks"] = json!({"createContainer": [{"path": "/bin/false"}]});
    });
    let id = env.id("ccfail");
    let bundle = env.bundle.to_string_lossy().into_owned();
    let out = env.berth(&["run", "-b", &bundle, &id, "true"]);
    assert!(!out.status.success());
    assert!(common::stderr(&out).contains("hooks.createContainer[0] /bin/false"));
    env.assert_gone(&id);
}

#[test]
fn hook_over_its_timeout_is_killed() {
    let (env, _dir) = env_with_hooks(|_, c| {
        c["hooks"] = json!({"createRuntime": [{"path": "/bin/sleep", "args": ["sleep", "30"], "timeout": 1}]});
    });
    let id = env.id("hookslow");
    let bundle = env.bundle.to_string_lossy().into_owned();
    let t = Instant::now();
    let out = env.berth(&["create", "-b", &bundle, &id, "true"]);
    assert!(!out.status.success());
    assert!(
        t.elapsed() < Duration::from_secs(10),
        "took {:?}",
        t.elapsed()
    );
    assert!(
        common::stderr(&out).contains("killed after its timeout of 1 s"),
        "{}",
        common::stderr(&out)
    );
    env.assert_gone(&id);
    let sleepers = std::process::Command::new("pgrep")
        .args(["-f", "^sleep 30$"])
        .output()
        .expect("pgrep");
    assert!(sleepers.stdout.is_empty(), "the hook was killed");
}

#[test]
fn poststart_failure_is_only_a_warning() {
    let (env, _dir) = env_with_hooks(|_, c| {
        c["hooks"] = json!({"poststart": [{"path": "/bin/false"}]});
    });
    let id = env.id("psfail");
    let out = env.run(&id, &["sh", "-c", "exit 6"]);
    assert_eq!(out.status.code(), Some(6), "{}", common::stderr(&out));
    assert!(common::stderr(&out).contains("hooks.poststart[0] /bin/false"));
    env.assert_gone(&id);
}

#[test]
fn foreground_run_orders_every_kind_and_poststart_sees_the_process() {
    let (env, dir) = env_with_hooks(|dir, c| {
        let mut hooks = serde_json::Map::new();
        for kind in KINDS {
            hooks.insert(kind.into(), json!([record_hook(dir, kind)]));
        }
        // Which program the container's pid runs when poststart looks.
        hooks["poststart"].as_array_mut().expect("list").push(json!({
            "path": "/bin/sh",
            "args": ["sh", "-c", "pid=$(sed 's/.*\"pid\":\\([0-9]*\\).*/\\1/'); cat /proc/$pid/comm > \"$0\"", dir.join("comm")],
        }));
        c["hooks"] = Value::Object(hooks);
    });
    let id = env.id("fghooks");
    let out = env.run(&id, &["sh", "-c", "exit 4"]);
    assert_eq!(out.status.code(), Some(4), "{}", common::stderr(&out));
    let kinds: Vec<String> = records(&dir).into_iter().map(|r| r.kind).collect();
    assert_eq!(kinds, KINDS, "each kind once, in lifecycle order");
    let comm = std::fs::read_to_string(dir.join("comm")).expect("poststart ran");
    assert_eq!(comm.trim(), "sh", "poststart runs after the execve");
    env.assert_gone(&id);
}

#[test]
fn failing_start_container_hook_fails_a_foreground_run_with_its_name() {
    // The hook runs after the parent stopped reading the channel: the
    // child's error must still reach the user.
    let (env, _dir) = env_with_hooks(|_, c| {
        c["hooks"] = json!({"startContainer": [{"path": "/bin/false"}]});
    });
    for n in 0..5 {
        let id = env.id(&format!("scfail{n}"));
        let out = env.run(&id, &["true"]);
        assert!(!out.status.success());
        assert!(
            common::stderr(&out).contains("hooks.startContainer[0] /bin/false"),
            "{}",
            common::stderr(&out)
        );
        env.assert_gone(&id);
    }
}
