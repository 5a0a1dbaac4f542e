//! The hostile-bundle suite: one test per class of runtime escape that has
//! hit runc, crun, youki or LXC, each named after the CVE(s) it covers and
//! each failing if berth were vulnerable, with the kernel as the oracle.
//! Hostile rootfs changes go into a private copy of the busybox rootfs;
//! hostile processes are the shell or `probe.c` (built static on first use).

#[path = "../common/mod.rs"]
mod common;

mod apparmor;
mod escapes;
mod mounts;
mod privileges;
mod seccomp;
mod selinux;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use common::Env;

/// A private copy of the busybox rootfs under the env's temp dir, made the
/// bundle's `root.path`; the caller may then plant whatever it likes in it.
pub fn private_rootfs(env: &Env) -> PathBuf {
    let dst = env.tmp.path().join("rootfs");
    let st = Command::new("cp")
        .arg("-a")
        .arg(common::busybox_rootfs())
        .arg(&dst)
        .status()
        .expect("spawn cp");
    assert!(st.success(), "cp -a rootfs");
    dst
}

/// Rewrite the env's config from the busybox one with `rootfs` as its root.
pub fn config_with_rootfs(env: &Env, rootfs: &Path, edit: impl FnOnce(&mut serde_json::Value)) {
    let root = rootfs.to_string_lossy().into_owned();
    env.write_config(|c| {
        c["root"]["path"] = root.into();
        edit(c);
    });
}

/// The static probe binary, built once per test run.
pub fn probe() -> &'static Path {
    static PROBE: OnceLock<PathBuf> = OnceLock::new();
    PROBE.get_or_init(|| {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/security/probe.c");
        let out =
            Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("probe-{}", std::process::id()));
        let st = Command::new("cc")
            .args(["-static", "-O2", "-Wall", "-o"])
            .arg(&out)
            .arg(&src)
            .status()
            .expect("spawn cc (the security suite needs a C compiler and libc.a)");
        assert!(st.success(), "build {}", src.display());
        out
    })
}

/// Copy the probe into `rootfs` as `/probe`.
pub fn install_probe(rootfs: &Path) {
    std::fs::copy(probe(), rootfs.join("probe")).expect("copy probe into rootfs");
}

/// A bind mount of a fresh host dir at `/results`, where probes write.
pub fn results_mount(env: &Env) -> (PathBuf, serde_json::Value) {
    let dir = env.tmp.path().join("results");
    std::fs::create_dir_all(&dir).expect("results dir");
    let m = serde_json::json!({
        "destination": "/results", "type": "bind",
        "source": dir.to_string_lossy(), "options": ["rbind", "rw"]
    });
    (dir, m)
}

/// Mount points of the host (the test's mount namespace).
pub fn host_mount_points() -> Vec<String> {
    std::fs::read_to_string("/proc/self/mountinfo")
        .expect("mountinfo")
        .lines()
        .filter_map(|l| l.split(' ').nth(4).map(str::to_string))
        .collect()
}

/// Wait (bounded) for `path` to contain `want`; returns its text.
pub fn wait_for_text(path: &Path, want: &str, secs: u64) -> String {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        if text.contains(want) || std::time::Instant::now() > deadline {
            return text;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// The busybox config's `process.capabilities` with `cap` in the bounding,
/// effective and permitted sets.
pub fn add_capability(c: &mut serde_json::Value, cap: &str) {
    for set in ["bounding", "effective", "permitted"] {
        if let Some(a) = c["process"]["capabilities"][set].as_array_mut() {
            a.push(cap.into());
        }
    }
}

/// `berth exec FLAG VALUE <id> true` into a created `sleep 60` container
/// (`name` makes the id): the exit status must be 1; returns the id and
/// the exec's stderr. The caller checks the message and deletes it.
pub fn exec_with_label_flag(env: &Env, name: &str, flag: &str, value: &str) -> (String, String) {
    let id = env.id(name);
    env.create(&id, &["sleep", "60"]);
    let out = env.berth(&["exec", flag, value, &id, "true"]);
    let err = common::stderr(&out);
    assert_eq!(out.status.code(), Some(1), "stderr: {err}");
    (id, err)
}
