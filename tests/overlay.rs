//! The overlay root: a container may wreck its root, the bundle stays
//! byte-for-byte the same, `diff` reports exactly what changed, and the next
//! container from the same bundle starts clean.

mod common;

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use common::{stderr, stdout, Env};

/// Every entry of a tree: path → (mode, size, symlink target or content hash).
fn snapshot(root: &Path) -> BTreeMap<String, (u32, u64, String)> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, (u32, u64, String)>) {
        let mut entries: Vec<_> = std::fs::read_dir(dir)
            .expect("read_dir")
            .flatten()
            .collect();
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let p = e.path();
            let meta = std::fs::symlink_metadata(&p).expect("lstat");
            let rel = p
                .strip_prefix(root)
                .expect("rel")
                .to_string_lossy()
                .into_owned();
            let extra = if meta.file_type().is_symlink() {
                std::fs::read_link(&p)
                    .expect("readlink")
                    .to_string_lossy()
                    .into_owned()
            } else if meta.is_file() {
                let data = std::fs::read(&p).expect("read");
                format!(
                    "{:x}",
                    data.iter()
                        .fold(0u64, |h, b| h.wrapping_mul(31) ^ *b as u64)
                )
            } else {
                String::new()
            };
            out.insert(rel, (meta.mode(), meta.size(), extra));
            if meta.is_dir() {
                walk(root, &p, out);
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

#[test]
fn rm_rf_bin_leaves_the_bundle_untouched() {
    let env = Env::new();
    let rootfs = common::busybox_rootfs();
    let before = snapshot(&rootfs);
    let id = env.id("rmbin");
    let bundle = env.bundle.to_string_lossy().into_owned();
    let out = env.berth(&[
        "run",
        "--keep",
        "-b",
        &bundle,
        &id,
        "sh",
        "-c",
        "rm -rf /bin; echo gone",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "gone\n");
    assert_eq!(snapshot(&rootfs), before, "the bundle rootfs changed");
    let diff = env.ok(&["diff", &id]);
    assert!(diff.lines().any(|l| l == "D /bin"), "{diff}");
    env.ok(&["delete", &id]);
    env.assert_gone(&id);

    // The next container from the same bundle has /bin again.
    let id = env.id("rmbin2");
    let out = env.run(&id, &["ls", "/bin/busybox"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "/bin/busybox\n");
}

#[test]
fn diff_reports_added_changed_deleted_and_opaque() {
    let env = Env::new();
    let id = env.id("diff");
    let bundle = env.bundle.to_string_lossy().into_owned();
    let script = "echo new > /root/added.txt; \
                  echo more >> /etc/passwd; \
                  rm /etc/hostname; \
                  rm -rf /usr/sbin; \
                  rm -rf /sbin && mkdir /sbin && echo x > /sbin/only; \
                  mkdir -p /newdir/sub && echo y > /newdir/sub/f";
    let out = env.berth(&["run", "--keep", "-b", &bundle, &id, "sh", "-c", script]);
    assert!(out.status.success(), "{}", stderr(&out));
    let diff = env.ok(&["diff", &id]);
    let lines: Vec<&str> = diff.lines().collect();
    for want in [
        "C /root",
        "A /root/added.txt",
        "C /etc",
        "C /etc/passwd",
        "D /etc/hostname",
        "C /usr",
        "D /usr/sbin",
        "C /sbin",
        "A /sbin/only",
        "A /newdir",
        "A /newdir/sub",
        "A /newdir/sub/f",
    ] {
        assert!(lines.contains(&want), "missing {want:?} in:\n{diff}");
    }
    // Everything of lower's /sbin was replaced away by the opaque /sbin.
    let lower_sbin = std::fs::read_dir(common::busybox_rootfs().join("sbin")).expect("sbin");
    for e in lower_sbin.flatten() {
        let want = format!("D /sbin/{}", e.file_name().to_string_lossy());
        assert!(
            lines.contains(&want.as_str()),
            "opaque dir: {want} missing:\n{diff}"
        );
    }
    assert!(!lines.iter().any(|l| l.ends_with("/bin/busybox")), "{diff}");
    let mut sorted = lines.clone();
    sorted.sort_by_key(|l| l[2..].to_string());
    assert_eq!(lines, sorted, "diff output is not sorted by path");
}

#[test]
fn readonly_root_uses_bind_mode() {
    let env = Env::with_config(|c| c["root"]["readonly"] = true.into());
    let id = env.id("ro");
    let out = env.run(&id, &["sh", "-c", "touch /x 2>&1; echo rc=$?"]);
    assert!(
        stdout(&out).contains("Read-only file system"),
        "{}",
        stdout(&out)
    );
    assert!(!env.layer_root.join(&id).exists());
}

#[test]
fn bind_annotation_writes_to_the_bundle() {
    // A private copy of a tiny rootfs, because bind mode writes into it.
    let env = Env::new();
    let rootfs = env.tmp.path().join("rootfs");
    let src = common::busybox_rootfs();
    let status = std::process::Command::new("cp")
        .arg("-a")
        .arg(&src)
        .arg(&rootfs)
        .status()
        .expect("cp");
    assert!(status.success());
    env.write_config(|c| {
        c["root"]["path"] = rootfs.to_string_lossy().into_owned().into();
        c["annotations"] = serde_json::json!({"run.berth.rootfs": "bind"});
    });
    let id = env.id("bind");
    let out = env.run(&id, &["sh", "-c", "echo hi > /root/written"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        std::fs::read_to_string(rootfs.join("root/written")).expect("written"),
        "hi\n"
    );
    env.write_config(|c| {
        c["root"]["path"] = rootfs.to_string_lossy().into_owned().into();
        c["annotations"] = serde_json::json!({"run.berth.rootfs": "sideways"});
    });
    let id = env.id("badmode");
    let out = env.run(&id, &["true"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("run.berth.rootfs"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn tmpfs_with_tmpcopyup_starts_with_the_hidden_files() {
    let env = Env::with_config(|c| {
        let mounts = c["mounts"].as_array_mut().expect("mounts");
        mounts.push(serde_json::json!({
            "destination": "/etc", "type": "tmpfs", "source": "tmpfs",
            "options": ["tmpcopyup", "mode=755"]
        }));
    });
    let id = env.id("copyup");
    let out = env.run(
        &id,
        &[
            "sh",
            "-c",
            "grep -c ' /etc .* - tmpfs ' /proc/self/mountinfo; cat /etc/hostname",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "1\nberth\n");
}
