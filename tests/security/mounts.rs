//! Items 4-6: hostile rootfs layouts aimed at mounts and masks: symlinked
//! mount destinations and a racer (CVE-2015-1335, CVE-2019-18837,
//! CVE-2021-30465, CVE-2024-45310), fake /proc (CVE-2019-16884,
//! CVE-2019-19921, CVE-2023-27561), fake /dev/null and /dev/console
//! (CVE-2025-31133, CVE-2025-52565, CVE-2015-3627).

use std::collections::BTreeSet;
use std::ffi::CString;
use std::os::unix::fs::symlink;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use serde_json::json;

use crate::common::{stderr, stdout, Env};
use crate::{config_with_rootfs, host_mount_points, private_rootfs, results_mount};

fn mounts_of(c: &mut serde_json::Value) -> &mut Vec<serde_json::Value> {
    c["mounts"].as_array_mut().expect("mounts")
}

fn host_mounts_set() -> BTreeSet<String> {
    host_mount_points().into_iter().collect()
}

/// New host mount points that could be ours: under one of `dirs`, or ending
/// in one of the spec's destinations. (Other tests on the machine may mount
/// things meanwhile; those are none of these.)
fn ours<'a>(new: impl Iterator<Item = &'a String>, dirs: &[&Path], dests: &[&str]) -> Vec<String> {
    new.filter(|m| {
        dirs.iter().any(|d| Path::new(m.as_str()).starts_with(d))
            || dests.iter().any(|d| m.ends_with(d))
    })
    .cloned()
    .collect()
}

#[test]
fn cve_2015_1335_cve_2019_18837_symlinked_mount_destination() {
    let env = Env::new();
    let rootfs = private_rootfs(&env);
    std::fs::remove_dir_all(rootfs.join("etc")).expect("rm etc");
    symlink("/", rootfs.join("etc")).expect("etc -> /");
    let src = env.bundle.join("hostfile");
    std::fs::write(&src, "from the bundle").expect("bind source");
    let probe_dirs = ["/etc/berth-x", "/etc/berth-y", "/etc/berth-z"];
    for d in probe_dirs {
        assert!(
            !Path::new(d).exists(),
            "{d} exists on the host before the test"
        );
    }
    config_with_rootfs(&env, &rootfs, |c| {
        c["annotations"] = json!({"run.berth.rootfs": "bind"});
        let m = mounts_of(c);
        m.push(json!({"destination": "/etc/berth-x", "type": "tmpfs", "source": "tmpfs"}));
        m.push(json!({"destination": "/etc/berth-y", "type": "bind", "source": "hostfile", "options": ["bind"]}));
        m.push(json!({"destination": "/etc/berth-z/deep", "type": "tmpfs", "source": "tmpfs"}));
    });
    let before = host_mounts_set();
    let id = env.id("etclink");
    let bundle = env.bundle.to_string_lossy().into_owned();
    let out = env.berth(&["run", "-d", "-b", &bundle, &id, "sleep", "1000"]);
    let during = host_mounts_set();
    if out.status.success() {
        // The mounts went inside: /etc is "/" of the container.
        let inside = env.berth(&[
            "exec",
            &id,
            "sh",
            "-c",
            "grep -c berth- /proc/self/mountinfo; cat /berth-y",
        ]);
        assert!(
            stdout(&inside).contains("from the bundle"),
            "{}{}",
            stdout(&inside),
            stderr(&inside)
        );
        env.ok(&["delete", "--force", &id]);
    }
    let new = ours(
        during.difference(&before),
        &[Path::new("/etc"), env.tmp.path()],
        &["/berth-x", "/berth-y", "/berth-z/deep"],
    );
    assert!(new.is_empty(), "mounts appeared on the host: {new:?}");
    for d in probe_dirs {
        assert!(!Path::new(d).exists(), "{d} was created on the host");
    }
}

/// Swap `a` and `b` atomically.
fn exchange(a: &Path, b: &Path) {
    let (a, b) = (
        CString::new(a.as_os_str().as_encoded_bytes()).expect("path"),
        CString::new(b.as_os_str().as_encoded_bytes()).expect("path"),
    );
    // SAFETY: renameat2 reads two NUL-terminated paths we own.
    unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            a.as_ptr(),
            libc::AT_FDCWD,
            b.as_ptr(),
            libc::RENAME_EXCHANGE,
        )
    };
}

#[test]
fn cve_2021_30465_cve_2024_45310_mount_destination_race() {
    let env = Env::new();
    let rootfs = private_rootfs(&env);
    let outside = env.tmp.path().join("outside");
    std::fs::create_dir_all(&outside).expect("outside");
    // `racer` flips between a directory and a symlink to the host dir.
    std::fs::create_dir_all(rootfs.join("racer")).expect("racer dir");
    symlink(&outside, rootfs.join("racer-alt")).expect("racer symlink");
    std::fs::write(env.bundle.join("hostfile"), "x").expect("bind source");
    config_with_rootfs(&env, &rootfs, |c| {
        c["annotations"] = json!({"run.berth.rootfs": "bind"});
        let m = mounts_of(c);
        m.push(json!({"destination": "/racer/dir", "type": "tmpfs", "source": "tmpfs"}));
        m.push(json!({"destination": "/racer/file", "type": "bind", "source": "hostfile", "options": ["bind"]}));
        m.push(json!({"destination": "/racer/sub/deep", "type": "tmpfs", "source": "tmpfs"}));
    });
    let stop = Arc::new(AtomicBool::new(false));
    let racer = {
        let stop = stop.clone();
        let (a, b) = (rootfs.join("racer"), rootfs.join("racer-alt"));
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                exchange(&a, &b);
            }
        })
    };
    let before = host_mounts_set();
    let bundle = env.bundle.to_string_lossy().into_owned();
    let outside_s = outside.to_string_lossy().into_owned();
    let mut created = 0;
    for i in 0..100 {
        let id = env.id(&format!("race{i}"));
        let out = env.berth(&["create", "-b", &bundle, &id, "true"]);
        if out.status.success() {
            created += 1;
            let leaked: Vec<_> = host_mount_points()
                .into_iter()
                .filter(|m| m.starts_with(&outside_s))
                .collect();
            assert!(
                leaked.is_empty(),
                "create {i}: mounts outside the root: {leaked:?}"
            );
        }
        let _ = env.berth(&["delete", "--force", &id]);
        let entries: Vec<_> = std::fs::read_dir(&outside)
            .expect("read outside")
            .map(|e| e.map(|e| e.file_name()))
            .collect();
        assert!(
            entries.is_empty(),
            "create {i}: files made outside the root: {entries:?}"
        );
    }
    stop.store(true, Ordering::Relaxed);
    racer.join().expect("racer");
    let after = host_mounts_set();
    let new = ours(
        after.difference(&before),
        &[&outside, env.tmp.path()],
        &["/racer/dir", "/racer/file", "/racer/sub/deep"],
    );
    assert!(new.is_empty(), "mounts left on the host: {new:?}");
    eprintln!("race: {created} of 100 creates succeeded");
}

#[test]
fn cve_2019_16884_cve_2019_19921_fake_proc_is_refused() {
    let core_pattern =
        std::fs::read_to_string("/proc/sys/kernel/core_pattern").expect("core_pattern");
    // rootfs/proc as a symlink: to the host's root and to a host dir.
    for target in ["/", "/tmp"] {
        let env = Env::new();
        let rootfs = private_rootfs(&env);
        std::fs::remove_dir(rootfs.join("proc")).expect("rm proc");
        symlink(target, rootfs.join("proc")).expect("proc symlink");
        config_with_rootfs(&env, &rootfs, |c| {
            c["annotations"] = json!({"run.berth.rootfs": "bind"});
        });
        let id = env.id("proclink");
        let out = env.run(&id, &["true"]);
        assert!(!out.status.success(), "proc -> {target} was accepted");
        assert!(stderr(&out).contains("proc"), "{}", stderr(&out));
    }
    // A tmpfs on /proc, a mount inside /proc (before and after procfs).
    let cases = [
        json!([{"destination": "/proc", "type": "tmpfs", "source": "tmpfs"}]),
        json!([{"destination": "/proc/sys/kernel/core_pattern", "type": "bind", "source": "pattern", "options": ["bind"]}]),
        json!([{"destination": "/proc/self/attr", "type": "tmpfs", "source": "tmpfs"}]),
    ];
    for extra in cases {
        let env = Env::new();
        std::fs::write(env.bundle.join("pattern"), "|/tmp/evil").expect("pattern");
        env.write_config(|c| {
            for m in extra.as_array().expect("array") {
                mounts_of(c).push(m.clone());
            }
        });
        let id = env.id("procmount");
        let out = env.run(&id, &["true"]);
        assert!(!out.status.success(), "accepted: {extra}");
        assert!(stderr(&out).contains("/proc"), "{extra}: {}", stderr(&out));
    }
    let now = std::fs::read_to_string("/proc/sys/kernel/core_pattern").expect("core_pattern");
    assert_eq!(now, core_pattern, "the host's core_pattern changed");
}

#[test]
fn cve_2023_27561_fake_sys_is_refused() {
    let env = Env::new();
    let rootfs = private_rootfs(&env);
    std::fs::remove_dir(rootfs.join("sys")).expect("rm sys");
    symlink("/", rootfs.join("sys")).expect("sys symlink");
    config_with_rootfs(&env, &rootfs, |c| {
        c["annotations"] = json!({"run.berth.rootfs": "bind"})
    });
    let id = env.id("syslink");
    let out = env.run(&id, &["true"]);
    assert!(!out.status.success(), "sys -> / was accepted");
}

/// Puts something hostile at a path.
type Plant<'a> = &'a dyn Fn(&Path);

#[test]
fn cve_2025_31133_fake_dev_null_never_masks_with_something_else() {
    let host_file = std::env::temp_dir().join(format!("berth-devnull-{}", std::process::id()));
    std::fs::write(&host_file, "host data").expect("host file");
    let variants: [(&str, Plant); 3] = [
        ("symlink", &|p: &Path| {
            symlink(&host_file, p).expect("symlink")
        }),
        ("regular file", &|p: &Path| {
            std::fs::write(p, "").expect("file")
        }),
        ("1:5 node", &|p: &Path| {
            let c = CString::new(p.as_os_str().as_encoded_bytes()).expect("path");
            // SAFETY: mknod reads a NUL-terminated path we own.
            let rc = unsafe { libc::mknod(c.as_ptr(), libc::S_IFCHR | 0o666, libc::makedev(1, 5)) };
            assert_eq!(rc, 0, "mknod");
        }),
    ];
    for (what, plant) in variants {
        for mode in ["bind", "overlay"] {
            let env = Env::new();
            let rootfs = private_rootfs(&env);
            std::fs::create_dir_all(rootfs.join("dev")).expect("dev");
            let _ = std::fs::remove_file(rootfs.join("dev/null"));
            plant(&rootfs.join("dev/null"));
            let (results, m) = results_mount(&env);
            config_with_rootfs(&env, &rootfs, |c| {
                c["annotations"] = json!({"run.berth.rootfs": mode});
                mounts_of(c).push(m);
                let masked = c["linux"]["maskedPaths"].as_array_mut().expect("masked");
                masked.push("/proc/sysrq-trigger".into());
                masked.push("/proc/sys/kernel/core_pattern".into());
            });
            let id = env.id("devnull");
            let out = env.run(
                &id,
                &["sh", "-c", "stat -c '%F %t:%T' /proc/sysrq-trigger /proc/sys/kernel/core_pattern > /results/st"],
            );
            if out.status.success() {
                let st = std::fs::read_to_string(results.join("st")).unwrap_or_default();
                for line in st.lines() {
                    assert_eq!(line, "character special file 1:3", "{what} ({mode}): {st}");
                }
                assert_eq!(st.lines().count(), 2, "{what} ({mode}): {st}");
            }
        }
    }
    // A spec device that claims /dev/null but is 1:5: refused or never used.
    let env = Env::with_config(|c| {
        c["linux"]["devices"] =
            json!([{"path": "/dev/null", "type": "c", "major": 1, "minor": 5, "fileMode": 438}]);
        c["linux"]["maskedPaths"]
            .as_array_mut()
            .expect("masked")
            .push("/proc/sysrq-trigger".into());
    });
    let id = env.id("devnull15");
    let out = env.run(&id, &["stat", "-c", "%t:%T", "/proc/sysrq-trigger"]);
    assert!(
        !out.status.success() || stdout(&out).trim() == "1:3",
        "{}",
        stdout(&out)
    );
    assert_eq!(
        std::fs::read_to_string(&host_file).expect("host file"),
        "host data"
    );
    let _ = std::fs::remove_file(&host_file);
}

#[test]
fn cve_2015_3627_cve_2025_52565_dev_console_symlink() {
    let env = Env::new();
    let rootfs = private_rootfs(&env);
    let host_file = env.tmp.path().join("host-console-target");
    std::fs::write(&host_file, "host data").expect("host file");
    std::fs::create_dir_all(rootfs.join("dev")).expect("dev");
    symlink(&host_file, rootfs.join("dev/console")).expect("console symlink");
    let (results, m) = results_mount(&env);
    config_with_rootfs(&env, &rootfs, |c| {
        c["process"]["terminal"] = true.into();
        mounts_of(c).push(m);
    });
    let sock = env.tmp.path().join("console.sock");
    let listener = std::os::unix::net::UnixListener::bind(&sock).expect("bind console socket");
    let id = env.id("console");
    let bundle = env.bundle.to_string_lossy().into_owned();
    let sock_s = sock.to_string_lossy().into_owned();
    let acceptor = std::thread::spawn(move || listener.accept().map(|(c, _)| c));
    let out = env.berth(&[
        "create",
        "--console-socket",
        &sock_s,
        "-b",
        &bundle,
        &id,
        "sh",
        "-c",
        "stat -L -c '%F %t' /dev/console > /results/console; echo pwned > /dev/console",
    ]);
    if out.status.success() {
        let _conn = acceptor.join().expect("acceptor");
        env.ok(&["start", &id]);
        let text = crate::wait_for_text(&results.join("console"), "\n", 10);
        assert_eq!(
            text.trim(),
            "character special file 88",
            "/dev/console is not a pty: {text}"
        );
    } else {
        drop(acceptor);
    }
    assert_eq!(
        std::fs::read_to_string(&host_file).expect("host file"),
        "host data"
    );
}
