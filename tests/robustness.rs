//! Crash safety, concurrency and fd hygiene.

mod common;

use std::time::Duration;

use common::{assert_no_process_mentions, stderr, stdout, Env};

#[test]
fn kill_9_during_create_then_delete_force_leaves_nothing() {
    let env = Env::new();
    let bundle = env.bundle.to_string_lossy().into_owned();
    // Kill `berth create` at a spread of points in its short life.
    for (i, delay_us) in [0u64, 300, 1000, 2000, 3500, 5000, 8000, 15000]
        .iter()
        .enumerate()
    {
        let id = env.id(&format!("crash{i}"));
        let mut child = env
            .cmd()
            .args(["create", "-b", &bundle, &id, "sleep", "100"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("spawn");
        std::thread::sleep(Duration::from_micros(*delay_us));
        let _ = child.kill();
        let _ = child.wait();
        // Whatever was made, delete --force removes it (or it never existed).
        let out = env.berth(&["delete", "--force", &id]);
        let err = stderr(&out);
        assert!(
            out.status.success() || err.contains("does not exist"),
            "delete --force after a crash failed: {err}"
        );
        env.assert_gone(&id);
        // The container's process died with its creator or with delete.
        assert_no_process_mentions(&id);
    }
    // No hidden temp dirs remain either.
    if env.root.exists() {
        let left: Vec<_> = std::fs::read_dir(&env.root)
            .expect("root")
            .flatten()
            .collect();
        assert!(left.is_empty(), "left under --root: {left:?}");
    }
}

#[test]
fn list_survives_garbage_under_root() {
    let env = Env::new();
    let id = env.id("good");
    env.create(&id, &["true"]);
    std::fs::create_dir_all(env.root.join("empty-dir")).expect("mkdir");
    std::fs::create_dir_all(env.root.join("half")).expect("mkdir");
    std::fs::write(env.root.join("half/state.json"), "{\"ociVersion\":").expect("w");
    std::fs::write(env.root.join("a-file"), "x").expect("w");
    let table = env.ok(&["list"]);
    assert!(table.contains(&id), "{table}");
    let json = env.ok(&["list", "--format", "json"]);
    let v: serde_json::Value = serde_json::from_str(&json).expect("json");
    assert_eq!(v.as_array().map(|a| a.len()), Some(1));
}

#[test]
fn twenty_parallel_runs() {
    let env = Env::new();
    let ids: Vec<String> = (0..20).map(|i| env.id(&format!("par{i}"))).collect();
    let outs: Vec<_> = std::thread::scope(|s| {
        let handles: Vec<_> = ids
            .iter()
            .map(|id| {
                let env = &env;
                s.spawn(move || env.run(id, &["sh", "-c", "echo $(hostname)"]))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("thread"))
            .collect()
    });
    for (id, out) in ids.iter().zip(outs) {
        assert!(out.status.success(), "{id}: {}", stderr(&out));
        assert_eq!(stdout(&out), "berth\n");
        env.assert_gone(id);
    }
}

#[test]
fn twenty_parallel_runs_at_once() {
    let env = Env::new();
    let bundle = env.bundle.to_string_lossy().into_owned();
    let ids: Vec<String> = (0..20).map(|i| env.id(&format!("conc{i}"))).collect();
    let children: Vec<_> = ids
        .iter()
        .map(|id| {
            env.cmd()
                .args(["run", "-b", &bundle, id, "sh", "-c", "exit 3"])
                .spawn()
                .expect("spawn")
        })
        .collect();
    for (id, mut c) in ids.iter().zip(children) {
        assert_eq!(c.wait().expect("wait").code(), Some(3), "{id}");
        env.assert_gone(id);
    }
}

#[test]
fn two_parallel_force_deletes() {
    let env = Env::new();
    let bundle = env.bundle.to_string_lossy().into_owned();
    let id = env.id("race2");
    env.ok(&["run", "-d", "-b", &bundle, &id, "sleep", "1000"]);
    let spawn = || {
        env.cmd()
            .args(["delete", "--force", &id])
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("spawn")
    };
    let (a, b) = (spawn(), spawn());
    let outs = [
        a.wait_with_output().expect("a"),
        b.wait_with_output().expect("b"),
    ];
    // runc's rule: `delete --force` of a missing container exits 0; the one
    // that lost the race says the container is gone.
    assert!(outs.iter().all(|o| o.status.success()));
    let gone = outs
        .iter()
        .filter(|o| stderr(o).contains("does not exist"))
        .count();
    assert_eq!(gone, 1, "exactly one delete reports the container gone");
    env.assert_gone(&id);
}

#[test]
fn container_has_only_stdio_fds() {
    let env = Env::new();
    let id = env.id("fds");
    let bundle = env.bundle.to_string_lossy().into_owned();
    env.ok(&["run", "-d", "-b", &bundle, &id, "sleep", "1000"]);
    let pid = env.pid(&id);
    let mut fds: Vec<i32> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("fd dir")
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .collect();
    fds.sort();
    assert_eq!(fds, [0, 1, 2]);
    env.ok(&["delete", "--force", &id]);
}

#[test]
fn preserve_fds_are_passed_and_nothing_else() {
    use std::os::fd::AsRawFd;
    let env = Env::new();
    let id = env.id("pfds");
    let bundle = env.bundle.to_string_lossy().into_owned();
    let extra = std::fs::File::open("/etc/hostname").expect("open");
    let fd = extra.as_raw_fd();
    let mut cmd = env.cmd();
    cmd.args([
        "run",
        "-d",
        "--preserve-fds",
        "1",
        "-b",
        &bundle,
        &id,
        "sleep",
        "1000",
    ]);
    // Put our file at fd 3 in berth, without CLOEXEC.
    // SAFETY: dup2 in the forked child before exec; only async-signal-safe calls.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut cmd, move || {
            // dup2 onto itself would keep CLOEXEC: clear it instead.
            let rc = if fd == 3 {
                libc::fcntl(3, libc::F_SETFD, 0)
            } else {
                libc::dup2(fd, 3)
            };
            if rc < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let status = cmd
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .expect("run");
    assert!(status.success());
    let pid = env.pid(&id);
    let mut fds: Vec<i32> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("fd dir")
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .collect();
    fds.sort();
    assert_eq!(fds, [0, 1, 2, 3]);
    let target = std::fs::read_link(format!("/proc/{pid}/fd/3")).expect("fd 3");
    assert_eq!(target, std::path::Path::new("/etc/hostname"));
    env.ok(&["delete", "--force", &id]);
}
