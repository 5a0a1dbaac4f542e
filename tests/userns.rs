//! User namespaces and rootless mode, end to end: a root-made container
//! whose root is host uid 100000, and a fresh non-root user who runs
//! `berth spec --rootless` and `berth run` with nothing but their own ids
//! (issue 4, acceptance item 11; CVE-2023-25809: `/sys/fs/cgroup` is
//! read-only inside). Each test cleans up in `Drop`, also when it fails.

mod common;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{stderr, stdout, Env, BERTH};

const HOST_ROOT: u32 = 100_000;

/// The `Uid:` (or `Gid:`) line of /proc/<pid>/status: real, effective,
/// saved, fs.
fn status_ids(pid: i32, key: &str) -> Vec<u32> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .expect("id line")
        .split_whitespace()
        .map(|x| x.parse().expect("id"))
        .collect()
}

/// A new user namespace whose root is host uid/gid HOST_ROOT (65536 ids).
fn add_user_namespace(cfg: &mut serde_json::Value) {
    let linux = &mut cfg["linux"];
    linux["namespaces"]
        .as_array_mut()
        .expect("namespaces")
        .push(serde_json::json!({"type": "user"}));
    let map = serde_json::json!([{"containerID": 0, "hostID": HOST_ROOT, "size": 65536}]);
    linux["uidMappings"] = map.clone();
    linux["gidMappings"] = map;
}

fn map_fields(text: &str) -> Vec<Vec<String>> {
    text.lines()
        .map(|l| l.split_whitespace().map(str::to_string).collect())
        .collect()
}

#[test]
fn root_made_user_namespace_maps_container_root_to_100000() {
    let env = Env::with_config(add_user_namespace);
    // The container's root (host uid 100000) has no rights on the host: the
    // way to its layer dir must be searchable (a temp dir is 0700).
    std::fs::set_permissions(env.tmp.path(), std::fs::Permissions::from_mode(0o755))
        .expect("chmod tmp");

    // Foreground: root inside.
    let id = env.id("userns-run");
    let out = env.run(&id, &["sh", "-c", "id -u; id -g; cat /proc/self/uid_map"]);
    assert!(out.status.success(), "run: {}", stderr(&out));
    let text = stdout(&out);
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("0"), "{text}");
    assert_eq!(lines.next(), Some("0"), "{text}");
    assert_eq!(
        map_fields(lines.next().unwrap_or("")),
        [["0", "100000", "65536"]]
    );
    env.assert_gone(&id);

    // Detached: the host's view of the same container.
    let id = env.id("userns-detached");
    let bundle = env.bundle.to_string_lossy().into_owned();
    env.ok(&["run", "-d", "-b", &bundle, &id, "sleep", "100"]);
    let pid = env.pid(&id);
    assert_eq!(status_ids(pid, "Uid:"), [HOST_ROOT; 4]);
    assert_eq!(status_ids(pid, "Gid:"), [HOST_ROOT; 4]);
    let uid_map = std::fs::read_to_string(format!("/proc/{pid}/uid_map")).expect("uid_map");
    assert_eq!(map_fields(&uid_map), [["0", "100000", "65536"]]);
    let gid_map = std::fs::read_to_string(format!("/proc/{pid}/gid_map")).expect("gid_map");
    assert_eq!(map_fields(&gid_map), [["0", "100000", "65536"]]);

    // exec joins the user namespace too; what root writes inside belongs
    // to 100000 in the overlay's upper dir on the host.
    let out = env.ok(&[
        "exec",
        &id,
        "sh",
        "-c",
        "id -u; touch /made-inside; mkdir /d",
    ]);
    assert_eq!(out.trim(), "0");
    let upper = env.layer_root.join(&id).join("upper");
    for name in ["made-inside", "d"] {
        let meta = std::fs::metadata(upper.join(name)).expect("file in upper dir");
        assert_eq!((meta.uid(), meta.gid()), (HOST_ROOT, HOST_ROOT), "{name}");
    }
    // Devices are the host's nodes, bound (no mknod in a user namespace).
    let out = env.ok(&[
        "exec",
        &id,
        "sh",
        "-c",
        "echo x > /dev/null && ls -ln /dev/null",
    ]);
    assert!(out.starts_with('c'), "{out}");

    env.ok(&["delete", "--force", &id]);
    env.assert_gone(&id);
}

/// A new user namespace together with a network namespace owned by the
/// host's user namespace, joined by path (a pod's netns): joined before the
/// user namespace is made, as runc does; from inside it the kernel refuses.
#[test]
fn new_user_namespace_joins_a_host_owned_network_namespace() {
    /// Kills the namespace's holder when the test ends, also on failure.
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let holder = Kill(
        Command::new("unshare")
            .args(["--net", "sleep", "60"])
            .spawn()
            .expect("spawn unshare --net sleep"),
    );
    let own_net = std::fs::read_link("/proc/self/ns/net").expect("own netns");
    // Wait until unshare has made the namespace (then it execs sleep).
    let ns_path = format!("/proc/{}/ns/net", holder.0.id());
    let mut target = own_net.clone();
    for _ in 0..200 {
        target = std::fs::read_link(&ns_path).expect("holder netns");
        if target != own_net {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert_ne!(target, own_net, "unshare --net made no namespace");
    let env = Env::with_config(|cfg| {
        add_user_namespace(cfg);
        let namespaces = cfg["linux"]["namespaces"]
            .as_array_mut()
            .expect("namespaces");
        namespaces.retain(|n| n["type"] != "network");
        namespaces.push(serde_json::json!({"type": "network", "path": ns_path}));
    });
    std::fs::set_permissions(env.tmp.path(), std::fs::Permissions::from_mode(0o755))
        .expect("chmod tmp");
    let id = env.id("userns-netjoin");
    let out = env.run(&id, &["sh", "-c", "readlink /proc/self/ns/net; id -u"]);
    assert!(out.status.success(), "run: {}", stderr(&out));
    let text = stdout(&out);
    let mut lines = text.lines();
    assert_eq!(lines.next().map(PathBuf::from), Some(target), "{text}");
    assert_eq!(lines.next(), Some("0"), "{text}");
    env.assert_gone(&id);
}

#[test]
fn id_maps_a_caller_may_not_write_are_refused_before_anything_is_made() {
    let env = Env::with_config(|cfg| {
        cfg["linux"]["namespaces"]
            .as_array_mut()
            .expect("namespaces")
            .push(serde_json::json!({"type": "user"}));
        cfg["linux"]["uidMappings"] =
            serde_json::json!([{"containerID": 1, "hostID": HOST_ROOT, "size": 10}]);
        cfg["linux"]["gidMappings"] =
            serde_json::json!([{"containerID": 0, "hostID": HOST_ROOT, "size": 10}]);
    });
    let id = env.id("userns-bad");
    let out = env.run(&id, &["true"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("linux.uidMappings: container id 0 must be mapped"),
        "{}",
        stderr(&out)
    );
    assert!(!env.root.join(&id).exists());
    assert!(!env.layer_root.join(&id).exists());
}

/// The test user (left in place afterwards), made once per test binary.
const USER: &str = "berthtest-userns";
static TEST_USER: std::sync::OnceLock<u32> = std::sync::OnceLock::new();

/// A non-root user, their own dirs, and `berth` run as them; cleans up.
struct Rootless {
    user: String,
    uid: u32,
    dir: tempfile::TempDir,
    ids: Vec<String>,
}

impl Rootless {
    fn new() -> Rootless {
        let user = USER.to_string();
        let uid = *TEST_USER.get_or_init(|| {
            let id = || Command::new("id").args(["-u", USER]).output().expect("id");
            if !id().status.success() {
                let st = Command::new("useradd")
                    .args(["-m", USER])
                    .status()
                    .expect("useradd");
                assert!(st.success(), "useradd {USER}");
            }
            String::from_utf8_lossy(&id().stdout)
                .trim()
                .parse()
                .expect("uid")
        });
        let dir = tempfile::Builder::new()
            .prefix("berth-rootless-")
            .tempdir()
            .expect("tempdir");
        let bundle = dir.path().join("bundle");
        std::fs::create_dir_all(&bundle).expect("bundle");
        for d in ["xdg-run", "xdg-data"] {
            std::fs::create_dir(dir.path().join(d)).expect("xdg dir");
        }
        // The user's own copy of the rootfs and of the binary: nothing of
        // root's needs to be readable to them.
        let st = Command::new("cp")
            .arg("-a")
            .arg(common::busybox_rootfs())
            .arg(bundle.join("rootfs"))
            .status()
            .expect("cp");
        assert!(st.success(), "copy rootfs");
        std::fs::copy(BERTH, dir.path().join("berth")).expect("copy berth");
        let st = Command::new("chown")
            .args(["-R", &format!("{uid}:{uid}")])
            .arg(dir.path())
            .status()
            .expect("chown");
        assert!(st.success(), "chown");
        Rootless {
            user,
            uid,
            dir,
            ids: Vec::new(),
        }
    }

    fn bundle(&self) -> PathBuf {
        self.dir.path().join("bundle")
    }

    fn xdg_run(&self) -> PathBuf {
        self.dir.path().join("xdg-run")
    }

    fn xdg_data(&self) -> PathBuf {
        self.dir.path().join("xdg-data")
    }

    /// `berth args…` as the user, in the bundle dir, with only the XDG
    /// variables to find their dirs (no --root, no --layer-root).
    fn berth(&self, args: &[&str]) -> Output {
        let out_path = self.dir.path().join("out");
        let err_path = self.dir.path().join("err");
        let status = Command::new("runuser")
            .args(["-u", &self.user, "--", "env"])
            .arg(format!("XDG_RUNTIME_DIR={}", self.xdg_run().display()))
            .arg(format!("XDG_DATA_HOME={}", self.xdg_data().display()))
            .arg(format!("HOME={}", self.dir.path().display()))
            .arg(self.dir.path().join("berth"))
            .args(args)
            .current_dir(self.bundle())
            .stdin(std::process::Stdio::null())
            .stdout(std::fs::File::create(&out_path).expect("out"))
            .stderr(std::fs::File::create(&err_path).expect("err"))
            .status()
            .expect("runuser");
        let out = Output {
            status,
            stdout: std::fs::read(&out_path).unwrap_or_default(),
            stderr: std::fs::read(&err_path).unwrap_or_default(),
        };
        let _ = std::fs::remove_file(out_path);
        let _ = std::fs::remove_file(err_path);
        out
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.berth(args);
        assert!(
            out.status.success(),
            "berth {args:?} as {} failed: {}{}",
            self.user,
            stdout(&out),
            stderr(&out)
        );
        stdout(&out)
    }

    fn id(&mut self, name: &str) -> String {
        let id = format!("{name}-{}", std::process::id());
        self.ids.push(id.clone());
        id
    }

    fn edit_config(&self, edit: impl FnOnce(&mut serde_json::Value)) {
        let path = self.bundle().join("config.json");
        let mut cfg: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&path).expect("read config")).expect("json");
        edit(&mut cfg);
        std::fs::write(&path, serde_json::to_vec_pretty(&cfg).expect("json")).expect("write");
    }
}

impl Drop for Rootless {
    fn drop(&mut self) {
        for id in self.ids.clone() {
            let _ = self.berth(&["delete", "--force", &id]);
        }
    }
}

fn exists(p: &Path) -> bool {
    std::fs::symlink_metadata(p).is_ok()
}

#[test]
fn rootless_user_runs_a_container_as_root_inside_only() {
    let mut r = Rootless::new();
    r.ok(&["spec", "--rootless"]);
    let uid = r.uid;

    // Foreground, read-only root (the rootless spec's default, bind mode).
    let id = r.id("rootless-run");
    let out = r.berth(&[
        "run",
        &id,
        "sh",
        "-c",
        "id -u; cat /proc/self/uid_map; touch /sys/fs/cgroup/x",
    ]);
    let text = stdout(&out);
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("0"), "{text}{}", stderr(&out));
    assert_eq!(
        map_fields(lines.next().unwrap_or("")),
        [["0".to_string(), uid.to_string(), "1".to_string()]]
    );
    // CVE-2023-25809: the cgroup tree is read-only inside.
    assert_eq!(
        out.status.code(),
        Some(1),
        "touch /sys/fs/cgroup/x must fail"
    );
    assert!(
        stderr(&out).contains("Read-only file system"),
        "{}",
        stderr(&out)
    );
    assert!(!exists(&r.xdg_run().join("berth").join(&id)));

    // Detached, with an overlay root whose layer lives in XDG_DATA_HOME.
    r.edit_config(|cfg| cfg["root"]["readonly"] = false.into());
    let id = r.id("rootless-detached");
    r.ok(&["run", "-d", &id, "sleep", "100"]);
    let state_dir = r.xdg_run().join("berth").join(&id);
    let layer_dir = r.xdg_data().join("berth/layers").join(&id);
    assert!(
        state_dir.join("state.json").exists(),
        "state under XDG_RUNTIME_DIR"
    );
    assert!(
        layer_dir.join("upper").is_dir(),
        "layer under XDG_DATA_HOME"
    );
    let state: serde_json::Value =
        serde_json::from_str(&r.ok(&["state", &id])).expect("state json");
    let pid = state["pid"].as_i64().expect("pid") as i32;
    assert_eq!(status_ids(pid, "Uid:"), [uid; 4], "the user's uid outside");
    let out = r.ok(&[
        "exec",
        &id,
        "sh",
        "-c",
        "id -u; touch /new && ls -n /new; touch /sys/fs/cgroup/x 2>&1 || echo ro",
    ]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.first(), Some(&"0"), "{out}");
    assert!(
        lines
            .iter()
            .any(|l| l.contains(" 0 ") && l.ends_with("/new")),
        "{out}"
    );
    assert_eq!(lines.last(), Some(&"ro"), "{out}");
    let meta = std::fs::metadata(layer_dir.join("upper/new")).expect("upper/new");
    assert_eq!(meta.uid(), uid);

    r.ok(&["delete", "--force", &id]);
    assert!(!exists(&state_dir), "state dir left behind");
    assert!(!exists(&layer_dir), "layer dir left behind");
    assert!(!common::alive(pid));
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
    let tmp = r.dir.path().to_string_lossy().into_owned();
    assert!(!mounts.contains(&tmp), "mounts left behind:\n{mounts}");
}

#[test]
fn rootless_without_delegation_warns_once_about_limits() {
    let mut r = Rootless::new();
    r.ok(&["spec", "--rootless"]);
    r.edit_config(|cfg| cfg["linux"]["resources"] = serde_json::json!({"pids": {"limit": 50}}));
    let id = r.id("rootless-limits");
    let out = r.berth(&["run", &id, "true"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let err = stderr(&out);
    let warnings: Vec<&str> = err
        .lines()
        .filter(|l| l.contains("limits are not applied"))
        .collect();
    assert_eq!(warnings.len(), 1, "{err}");
    assert!(warnings[0].contains("rootless"), "{err}");
}
