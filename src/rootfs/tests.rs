//! Tests of the whole `rootfs` module: the plan from a runc-style spec, and,
//! as root, a real `setup` in a forked child with its own mount namespace,
//! checked from inside (what the container sees) and from outside (the
//! host's mountinfo must not change, the bundle must not be written).

use std::path::Path;

use nix::sched::{unshare, CloneFlags};
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::{fork, ForkResult};

use super::*;

/// `runc spec`'s mounts and paths, trimmed.
fn runc_spec(extra_root: &str, extra_linux: &str) -> Spec {
    let json = format!(
        r#"{{"ociVersion":"1.0.2","root":{{"path":"rootfs"{extra_root}}},
        "mounts":[
          {{"destination":"/proc","type":"proc","source":"proc"}},
          {{"destination":"/dev","type":"tmpfs","source":"tmpfs","options":["nosuid","strictatime","mode=755","size=65536k"]}},
          {{"destination":"/dev/pts","type":"devpts","source":"devpts","options":["nosuid","noexec","newinstance","ptmxmode=0666","mode=0620"]}},
          {{"destination":"/dev/shm","type":"tmpfs","source":"shm","options":["nosuid","noexec","nodev","mode=1777","size=65536k"]}},
          {{"destination":"/dev/mqueue","type":"mqueue","source":"mqueue","options":["nosuid","noexec","nodev"]}},
          {{"destination":"/sys","type":"sysfs","source":"sysfs","options":["nosuid","noexec","nodev","ro"]}},
          {{"destination":"/sys/fs/cgroup","type":"cgroup","source":"cgroup","options":["nosuid","noexec","nodev","relatime","ro"]}},
          {{"destination":"/data","source":"data","options":["rbind","ro","rprivate","nosuid"]}}
        ],
        "linux":{{"maskedPaths":["/proc/kcore","/proc/acpi","/proc/timer_list","/secret","/private","/nonexistent"],
                  "readonlyPaths":["/proc/sys","/proc/sysrq-trigger","/nonexistent"]{extra_linux}}}}}"#
    );
    serde_json::from_str(&json).unwrap()
}

#[test]
fn plan_of_runc_spec() {
    let s = runc_spec("", "");
    let p = plan(&s, Path::new("/b")).unwrap();
    assert_eq!(p.mounts.len(), 8);
    assert_eq!(p.dev, dev::DevMount::Tmpfs);
    assert_eq!(p.devices.len(), 6);
    assert_eq!(p.masked.len(), 6);
    assert!(!p.readonly_root);
    assert_eq!(p.root_propagation, None);
}

#[test]
fn rootfs_propagation_is_checked() {
    let s = runc_spec(r#","readonly":true"#, r#","rootfsPropagation":"rshared""#);
    let p = plan(&s, Path::new("/b")).unwrap();
    assert!(p.readonly_root);
    assert_eq!(
        p.root_propagation,
        Some(MsFlags::MS_SHARED | MsFlags::MS_REC)
    );
    let s = runc_spec("", r#","rootfsPropagation":"sideways""#);
    let e = validate(&s, Path::new("/b")).unwrap_err().to_string();
    assert!(
        e.starts_with(r#"linux.rootfsPropagation "sideways" is not"#),
        "{e}"
    );
}

fn host_lines_mentioning(dir: &Path) -> Vec<String> {
    let needle = dir.to_string_lossy().into_owned();
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter(|l| l.contains(&needle))
        .map(str::to_owned)
        .collect()
}

/// What the container must see after `setup`; returns the first failure.
fn check_inside(bundle: &Path) -> std::result::Result<(), String> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let cwd = std::env::current_dir().map_err(|e| e.to_string())?;
    if cwd != Path::new("/") {
        return Err(format!("cwd is {}", cwd.display()));
    }
    let null = std::fs::metadata("/dev/null").map_err(|e| format!("/dev/null: {e}"))?;
    if !null.file_type().is_char_device() || null.rdev() != nix::sys::stat::makedev(1, 3) {
        return Err("/dev/null is not 1:3".into());
    }
    if std::fs::read_link("/dev/ptmx").ok().as_deref() != Some(Path::new("pts/ptmx")) {
        return Err("/dev/ptmx is not a link to pts/ptmx".into());
    }
    if !Path::new("/proc/self/status").exists() || !Path::new("/dev/pts/ptmx").exists() {
        return Err("proc or devpts missing".into());
    }
    if !Path::new("/sys/fs/cgroup")
        .read_dir()
        .map(|mut d| d.next().is_some())
        .unwrap_or(false)
    {
        return Err("/sys/fs/cgroup is empty".into());
    }
    // Masked: a file reads empty, a directory is empty.
    for file in ["/secret", "/proc/timer_list"] {
        if std::fs::read(file).map_err(|e| format!("{file}: {e}"))? != b"" {
            return Err(format!("{file} is not masked"));
        }
    }
    // Masked directories: empty and read-only, all one tmpfs (the first
    // one's, bound over the rest), never the directory below it.
    for dir in ["/proc/acpi", "/private"] {
        if std::fs::read_dir(dir)
            .map(|mut d| d.next().is_some())
            .unwrap_or(true)
        {
            return Err(format!("{dir} is not an empty dir"));
        }
        match std::fs::write(Path::new(dir).join("x"), "x") {
            Err(e) if e.raw_os_error() == Some(libc::EROFS) => {}
            other => return Err(format!("masked {dir} writable: {other:?}")),
        }
    }
    let dev = |p: &str| {
        std::fs::metadata(p)
            .map(|m| m.dev())
            .map_err(|e| format!("{p}: {e}"))
    };
    if dev("/proc/acpi")? != dev("/private")? {
        return Err("the masked directories are not one tmpfs".into());
    }
    if std::fs::read("/data/hello").map_err(|e| format!("/data/hello: {e}"))? != b"hi" {
        return Err("/data not bound".into());
    }
    for (path, what) in [
        ("/data/x", "ro bind"),
        ("/proc/sys/kernel/hostname", "readonly path"),
    ] {
        match std::fs::write(path, "x") {
            Err(e) if e.raw_os_error() == Some(libc::EROFS) => {}
            other => return Err(format!("{what} {path} writable: {other:?}")),
        }
    }
    std::fs::write("/newfile", "new").map_err(|e| format!("write /newfile: {e}"))?;
    std::fs::remove_file("/bin/tool").map_err(|e| format!("rm /bin/tool: {e}"))?;
    // The host's tree is gone: the bundle's own path is not reachable.
    if bundle.exists() {
        return Err(format!("host path {} still reachable", bundle.display()));
    }
    Ok(())
}

/// Run `setup` in a forked child with a new mount namespace; the child
/// exits 0 when [`check_inside`] passes.
fn run_setup_in_child(cfg: &RootfsConfig) -> i32 {
    // SAFETY: the child only runs this test's code and then _exit()s; glibc
    // makes malloc usable after fork, and no other thread's locks are used.
    match unsafe { fork() }.expect("fork") {
        ForkResult::Child => {
            let code = match unshare(CloneFlags::CLONE_NEWNS | CloneFlags::CLONE_NEWIPC) {
                Err(e) => {
                    eprintln!("unshare: {e}");
                    2
                }
                Ok(()) => match setup(cfg) {
                    Err(e) => {
                        eprintln!("setup: {e:#}");
                        3
                    }
                    Ok(()) => match check_inside(cfg.bundle) {
                        Ok(()) => 0,
                        Err(e) => {
                            eprintln!("inside: {e}");
                            4
                        }
                    },
                },
            };
            // SAFETY: _exit skips atexit handlers and the test harness state
            // that belongs to the parent.
            unsafe { libc::_exit(code) }
        }
        ForkResult::Parent { child } => match waitpid(child, None).expect("waitpid") {
            WaitStatus::Exited(_, code) => code,
            other => panic!("child ended with {other:?}"),
        },
    }
}

fn make_bundle(dir: &Path) {
    let rootfs = dir.join("bundle/rootfs");
    for d in ["bin", "etc", "proc", "sys", "dev"] {
        std::fs::create_dir_all(rootfs.join(d)).unwrap();
    }
    std::fs::write(rootfs.join("bin/tool"), "tool").unwrap();
    std::fs::write(rootfs.join("secret"), "password").unwrap();
    std::fs::create_dir_all(rootfs.join("private")).unwrap();
    std::fs::write(rootfs.join("private/key"), "key").unwrap();
    std::fs::create_dir_all(dir.join("bundle/data")).unwrap();
    std::fs::write(dir.join("bundle/data/hello"), "hi").unwrap();
}

#[test]
fn setup_overlay_root_in_a_child_namespace() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    // On the root ext4 (trusted xattrs for overlay's upper dir); a ','
    // in the path exercises the escaping of overlay's options.
    let tmp = tempfile::Builder::new()
        .prefix("rootfs,test")
        .tempdir()
        .unwrap();
    make_bundle(tmp.path());
    let bundle = tmp.path().join("bundle");
    let rootfs = bundle.join("rootfs");
    let layer = tmp.path().join("layers/c1");
    create_layer(&layer).unwrap();
    let spec = runc_spec("", "");
    assert_eq!(choose_mode(&spec, &rootfs).unwrap(), Mode::Overlay);
    let before = host_lines_mentioning(tmp.path());
    let cfg = RootfsConfig {
        spec: &spec,
        bundle: &bundle,
        rootfs: &rootfs,
        mode: Mode::Overlay,
        layer_dir: Some(&layer),
        no_pivot: false,
        enter_cgroups: &|| Ok(None),
        host_mountinfo: None,
        before_pivot: &|| Ok(()),
    };
    assert_eq!(run_setup_in_child(&cfg), 0, "see the child's stderr above");
    assert_eq!(
        host_lines_mentioning(tmp.path()),
        before,
        "host mountinfo changed"
    );
    // The bundle is untouched; the writes are in the upper dir.
    assert!(!rootfs.join("newfile").exists());
    assert!(rootfs.join("bin/tool").exists());
    let changes: Vec<String> = diff(&layer.join("upper"), &rootfs)
        .unwrap()
        .iter()
        .map(|(k, p)| format!("{k} {}", p.display()))
        .collect();
    for want in ["C /bin", "D /bin/tool", "A /newfile"] {
        assert!(
            changes.iter().any(|c| c == want),
            "{want} not in {changes:?}"
        );
    }
    remove_layer(&layer).unwrap();
    assert!(!layer.exists());
}

#[test]
fn setup_readonly_bind_root_without_pivot() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    make_bundle(tmp.path());
    let bundle = tmp.path().join("bundle");
    let rootfs = bundle.join("rootfs");
    let spec = runc_spec(r#","readonly":true"#, r#","rootfsPropagation":"rprivate""#);
    assert_eq!(choose_mode(&spec, &rootfs).unwrap(), Mode::Bind);
    let before = host_lines_mentioning(tmp.path());
    // SAFETY: as in run_setup_in_child.
    let code = match unsafe { fork() }.expect("fork") {
        ForkResult::Child => {
            let cfg = RootfsConfig {
                spec: &spec,
                bundle: &bundle,
                rootfs: &rootfs,
                mode: Mode::Bind,
                layer_dir: None,
                no_pivot: true,
                enter_cgroups: &|| Ok(None),
                host_mountinfo: None,
                before_pivot: &|| Ok(()),
            };
            // A cgroup namespace too: the v1 hierarchies are then mounted fresh.
            let flags =
                CloneFlags::CLONE_NEWNS | CloneFlags::CLONE_NEWIPC | CloneFlags::CLONE_NEWCGROUP;
            let ok = unshare(flags).is_ok()
                && setup(&cfg).map_err(|e| eprintln!("setup: {e:#}")).is_ok()
                && matches!(std::fs::write("/newfile", "x"), Err(e) if e.raw_os_error() == Some(libc::EROFS))
                && std::fs::write("/dev/shm/ok", "x").is_ok()
                && std::fs::read("/bin/tool").is_ok()
                && Path::new("/sys/fs/cgroup/memory/memory.limit_in_bytes").exists()
                && Path::new("/sys/fs/cgroup/unified/cgroup.procs").exists();
            // SAFETY: as in run_setup_in_child.
            unsafe { libc::_exit(if ok { 0 } else { 1 }) }
        }
        ForkResult::Parent { child } => waitpid(child, None).expect("waitpid"),
    };
    assert!(
        matches!(code, WaitStatus::Exited(_, 0)),
        "child ended with {code:?}; see its stderr above"
    );
    assert_eq!(
        host_lines_mentioning(tmp.path()),
        before,
        "host mountinfo changed"
    );
    assert!(!rootfs.join("newfile").exists());
}
