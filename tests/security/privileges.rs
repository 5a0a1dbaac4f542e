//! Items 7-9 and 12: capabilities through `exec --cap` and file
//! capabilities (CVE-2022-29162, CVE-2016-8867), numeric users
//! (CVE-2016-3697), default-deny devices, and path-like ids (CVE-2015-1331).

use std::ffi::CString;

use serde_json::json;

use crate::common::{stderr, stdout, Env};
use crate::{add_capability, config_with_rootfs, private_rootfs};

/// The hex value of a `/proc/self/status` capability line.
fn cap_line(status: &str, name: &str) -> String {
    status
        .lines()
        .find(|l| l.starts_with(name))
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap_or("missing")
        .to_string()
}

const NO_CAPS: &str = "0000000000000000";
const CAP_NET_ADMIN: u32 = 12;

/// `security.capability` (revision 2) with `cap` in the file's inheritable
/// set and the effective bit: setcap cap_net_admin+ei.
fn set_file_caps_ei(path: &std::path::Path, cap: u32) {
    let mut data = Vec::new();
    data.extend_from_slice(&(0x0200_0000u32 | 1).to_le_bytes()); // VFS_CAP_REVISION_2 | EFFECTIVE
    data.extend_from_slice(&0u32.to_le_bytes()); // permitted[0]
    data.extend_from_slice(&(1u32 << cap).to_le_bytes()); // inheritable[0]
    data.extend_from_slice(&[0u8; 8]); // permitted[1], inheritable[1]
    let p = CString::new(path.as_os_str().as_encoded_bytes()).expect("path");
    let name = CString::new("security.capability").expect("name");
    // SAFETY: setxattr reads the path, name and `data.len()` bytes we own.
    let rc = unsafe {
        libc::setxattr(
            p.as_ptr(),
            name.as_ptr(),
            data.as_ptr().cast(),
            data.len(),
            0,
        )
    };
    assert_eq!(
        rc,
        0,
        "setxattr security.capability: {}",
        std::io::Error::last_os_error()
    );
}

#[test]
fn cve_2022_29162_cve_2016_8867_exec_cap_and_file_caps() {
    let env = Env::new();
    let rootfs = private_rootfs(&env);
    // A copy of busybox named after an applet, with cap_net_admin+ei.
    std::fs::create_dir_all(rootfs.join("opt")).expect("opt");
    std::fs::copy(rootfs.join("bin/busybox"), rootfs.join("opt/cat")).expect("copy busybox");
    set_file_caps_ei(&rootfs.join("opt/cat"), CAP_NET_ADMIN);
    // Without no_new_privs, file capabilities take effect at execve.
    config_with_rootfs(&env, &rootfs, |c| {
        c["process"]["noNewPrivileges"] = false.into();
        c["annotations"] = json!({"run.berth.rootfs": "bind"});
    });
    let id = env.id("caps");
    let bundle = env.bundle.to_string_lossy().into_owned();
    env.ok(&["run", "-d", "-b", &bundle, &id, "sleep", "1000"]);
    let out = env.berth(&[
        "exec",
        "--user",
        "1000:1000",
        "--cap",
        "CAP_NET_ADMIN",
        &id,
        "cat",
        "/proc/self/status",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let status = stdout(&out);
    assert_eq!(
        cap_line(&status, "CapInh:"),
        NO_CAPS,
        "exec --cap filled the inheritable set"
    );
    assert_eq!(
        cap_line(&status, "CapAmb:"),
        NO_CAPS,
        "exec --cap raised an ambient capability"
    );
    // An empty inheritable set means file caps +ei grant nothing.
    for user in ["1000:1000", "0:0"] {
        let out = env.berth(&[
            "exec",
            "--user",
            user,
            "--cap",
            "CAP_NET_ADMIN",
            &id,
            "/opt/cat",
            "/proc/self/status",
        ]);
        assert!(out.status.success(), "{}", stderr(&out));
        let status = stdout(&out);
        let eff = u64::from_str_radix(&cap_line(&status, "CapEff:"), 16).unwrap_or(u64::MAX);
        if user == "1000:1000" {
            assert_eq!(eff, 0, "an +ei file gave uid 1000 capabilities: {status}");
        }
        assert_eq!(cap_line(&status, "CapInh:"), NO_CAPS, "user {user}");
    }
}

#[test]
fn cve_2016_3697_numeric_user_is_a_uid_not_a_name() {
    let env = Env::new();
    let rootfs = private_rootfs(&env);
    let passwd = rootfs.join("etc/passwd");
    let mut text = std::fs::read_to_string(&passwd).expect("passwd");
    text.push_str("1000:x:0:0:evil:/root:/bin/sh\n");
    std::fs::write(&passwd, text).expect("passwd");
    std::fs::write(rootfs.join("etc/group"), "root:x:0:\n1000:x:0:\n").expect("group");
    config_with_rootfs(&env, &rootfs, |c| {
        c["process"]["user"] = json!({"uid": 1000, "gid": 1000});
    });
    let id = env.id("numuser");
    let out = env.run(&id, &["sh", "-c", "id -u; id -g"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "1000\n1000\n");
    // exec --user takes the number as a number too.
    let id = env.id("numuser-exec");
    let bundle = env.bundle.to_string_lossy().into_owned();
    env.ok(&["run", "-d", "-b", &bundle, &id, "sleep", "1000"]);
    let out = env.berth(&["exec", "--user", "1000", &id, "id", "-u"]);
    assert_eq!(stdout(&out), "1000\n", "{}", stderr(&out));
}

/// A block device this host lets root open through a fresh node (some
/// sandboxes deny even root some disks): the target, and the control.
fn openable_block_device(dir: &std::path::Path) -> Option<(u64, u64)> {
    let mut devs: Vec<String> = std::fs::read_dir("/sys/dev/block")
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect();
    devs.sort();
    devs.into_iter().find_map(|d| {
        let (ma, mi) = d.split_once(':')?;
        let (ma, mi): (u32, u32) = (ma.parse().ok()?, mi.parse().ok()?);
        let node = dir.join(format!("blk-{ma}-{mi}"));
        let c = CString::new(node.as_os_str().as_encoded_bytes()).ok()?;
        // SAFETY: mknod reads a NUL-terminated path we own.
        let rc = unsafe { libc::mknod(c.as_ptr(), libc::S_IFBLK | 0o600, libc::makedev(ma, mi)) };
        let ok = rc == 0 && std::fs::File::open(&node).is_ok();
        let _ = std::fs::remove_file(&node);
        ok.then_some((ma as u64, mi as u64))
    })
}

#[test]
fn devices_are_denied_by_default_without_a_deny_all_rule() {
    let probe_dir = tempfile::tempdir_in("/dev/shm").expect("tmpfs dir");
    let (major, minor) = openable_block_device(probe_dir.path())
        .expect("no block device root may open on this host");
    let script = format!(
        "mknod /dev/hostdisk b {major} {minor} && head -c 512 /dev/hostdisk > /dev/null && echo OPENED"
    );
    // No deny-all rule at all, CAP_MKNOD granted: the open must fail.
    for devices in [json!([]), serde_json::Value::Null] {
        let env = Env::with_config(|c| {
            add_capability(c, "CAP_MKNOD");
            match &devices {
                serde_json::Value::Null => {
                    if let Some(r) = c["linux"]["resources"].as_object_mut() {
                        r.remove("devices");
                    }
                }
                d => c["linux"]["resources"]["devices"] = d.clone(),
            }
        });
        let id = env.id("devdeny");
        let out = env.run(&id, &["sh", "-c", &script]);
        assert!(
            !stdout(&out).contains("OPENED"),
            "devices {devices}: opened the host disk {major}:{minor}"
        );
        assert!(
            stderr(&out).contains("Operation not permitted"),
            "devices {devices}: {}",
            stderr(&out)
        );
    }
    // Control: allowed explicitly, the same open works (so the test can fail).
    let env = Env::with_config(|c| {
        add_capability(c, "CAP_MKNOD");
        c["linux"]["resources"]["devices"] = json!([
            {"allow": false, "access": "rwm"},
            {"allow": true, "type": "b", "major": major, "minor": minor, "access": "rwm"}
        ]);
    });
    let id = env.id("devallow");
    let out = env.run(&id, &["sh", "-c", &script]);
    assert!(
        stdout(&out).contains("OPENED"),
        "control failed: {}",
        stderr(&out)
    );
}

#[test]
fn cve_2015_1331_path_like_ids_are_refused_before_any_file_is_made() {
    let env = Env::new();
    let bundle = env.bundle.to_string_lossy().into_owned();
    let before: Vec<_> = std::fs::read_dir(env.tmp.path())
        .expect("tmp")
        .map(|e| e.map(|e| e.file_name()).expect("entry"))
        .collect();
    for id in [
        "../x",
        "a/b",
        ".",
        "..",
        "../../../tmp/evil",
        "/abs",
        "x/..",
        "",
    ] {
        for cmd in [
            vec!["create", "-b", &bundle, id],
            vec!["run", "-b", &bundle, id, "true"],
        ] {
            let out = env.berth(&cmd);
            assert!(!out.status.success(), "{cmd:?} was accepted");
            assert!(stderr(&out).contains("id"), "{cmd:?}: {}", stderr(&out));
        }
        for other in [
            vec!["state", id],
            vec!["delete", "--force", id],
            vec!["kill", id, "KILL"],
        ] {
            assert!(
                !env.berth(&other).status.success(),
                "{other:?} was accepted"
            );
        }
    }
    let after: Vec<_> = std::fs::read_dir(env.tmp.path())
        .expect("tmp")
        .map(|e| e.map(|e| e.file_name()).expect("entry"))
        .collect();
    assert_eq!(before, after, "files appeared next to the state root");
    let made = |d: &std::path::Path| std::fs::read_dir(d).map(|r| r.count()).unwrap_or(0);
    assert_eq!(made(&env.root), 0, "state root has entries");
    assert_eq!(made(&env.layer_root), 0, "layer root has entries");
    assert!(!std::path::Path::new("/tmp/evil").exists());
}

#[test]
fn capability_sets_are_exactly_the_configs_in_run_start_and_exec() {
    // CAP_CHOWN (bit 0) and CAP_KILL (bit 5) in the bounding set. The
    // process is root, so its execve makes permitted and effective the
    // bounding set whatever the config says (as with runc); inheritable
    // and ambient stay empty.
    let env = Env::with_config(|c| {
        c["process"]["capabilities"] = json!({
            "bounding": ["CAP_CHOWN", "CAP_KILL"],
            "permitted": ["CAP_CHOWN", "CAP_KILL"],
            "effective": ["CAP_KILL"],
            "inheritable": [],
            "ambient": [],
        });
    });
    let want = [
        ("CapBnd:", "0000000000000021"),
        ("CapPrm:", "0000000000000021"),
        ("CapEff:", "0000000000000021"),
        ("CapInh:", NO_CAPS),
        ("CapAmb:", NO_CAPS),
    ];
    let check = |how: &str, status: &str| {
        for (line, value) in want {
            assert_eq!(cap_line(status, line), value, "{how}: {line}\n{status}");
        }
    };
    // A foreground run starts the process at commit.
    let out = env.run(&env.id("caps-run"), &["cat", "/proc/self/status"]);
    assert!(out.status.success(), "{}", stderr(&out));
    check("run", &stdout(&out));
    // create + start: the process waits on the exec fifo first.
    let id = env.id("caps-start");
    env.create(&id, &["sleep", "1000"]);
    env.ok(&["start", &id]);
    let pid = env.pid(&id);
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    check("create+start", &status);
    let out = env.berth(&["exec", &id, "cat", "/proc/self/status"]);
    assert!(out.status.success(), "{}", stderr(&out));
    check("exec", &stdout(&out));
}
