//! Tests against the real cgroupfs of this machine (they need root and skip
//! without it). Each cgroup goes under our own cgroup with a unique name, and
//! a `Drop` guard kills, thaws and removes it even when an assertion fails.

use std::io::{BufRead, BufReader, Write as _};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::thread::sleep;
use std::time::Duration;

use crate::spec::types::LinuxResources;

use super::resources::device_rules;
use super::*;

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

fn unique(name: &str) -> String {
    format!("berth-test-{}-{name}", std::process::id())
}

struct CgroupGuard(Cgroup);

impl Drop for CgroupGuard {
    fn drop(&mut self) {
        let _ = self.0.kill_all(libc::SIGKILL);
        let _ = self.0.thaw();
        for _ in 0..200 {
            if self.0.procs().map(|p| p.is_empty()).unwrap_or(true) {
                break;
            }
            sleep(Duration::from_millis(5));
        }
        let _ = self.0.destroy();
    }
}

/// A shell that waits for a line on stdin, then reports which devices it
/// can open and sleeps. Killed and reaped on drop.
struct Probe {
    child: Child,
    out: BufReader<ChildStdout>,
}

impl Probe {
    fn spawn() -> Probe {
        let script = "read x; for d in null kmsg; do if (: < /dev/$d) 2>/dev/null; then echo $d-ok; else echo $d-denied; fi; done; exec sleep 100";
        let mut child = Command::new("/bin/sh")
            .args(["-c", script])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn sh");
        let out = BufReader::new(child.stdout.take().expect("stdout"));
        Probe { child, out }
    }
    fn pid(&self) -> i32 {
        self.child.id() as i32
    }
    /// Let the shell go on and collect its two device lines.
    fn report(&mut self) -> String {
        self.child
            .stdin
            .as_mut()
            .expect("stdin")
            .write_all(b"go\n")
            .expect("write stdin");
        let mut lines = String::new();
        for _ in 0..2 {
            self.out.read_line(&mut lines).expect("read probe");
        }
        lines.replace('\n', " ").trim().to_string()
    }
}

impl Drop for Probe {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn read(dir: &Path, file: &str) -> String {
    std::fs::read_to_string(dir.join(file))
        .unwrap_or_else(|e| panic!("read {}/{file}: {e}", dir.display()))
        .trim()
        .to_string()
}

fn res(json: &str) -> LinuxResources {
    serde_json::from_str(json).expect("resources json")
}

#[test]
fn lifecycle_on_this_host() {
    if !is_root() {
        return;
    }
    let cg = CgroupGuard(Cgroup::plan(&unique("life"), None, false).unwrap());
    let avail = cg.0.host().unwrap().v2.unwrap_or_default();
    if cg.0.mode() == Mode::V2
        && !["memory", "pids", "cpu", "cpuset"]
            .iter()
            .all(|c| avail.contains(*c))
    {
        return; // a v2 hierarchy without the usual controllers: see v2_core_lifecycle
    }
    let r = res(
        r#"{"memory":{"limit":67108864},"pids":{"limit":20},"cpu":{"shares":512,"quota":10000,"period":100000,"cpus":"0"}}"#,
    );
    cg.0.check(Some(&r)).unwrap();
    cg.0.create(Some(&r)).unwrap();

    // Nested under our own cgroup in every hierarchy.
    let own = probe::read_own_cgroups().unwrap();
    for dir in cg.0.dirs() {
        assert!(
            dir.ends_with(format!("berth/{}", unique("life"))),
            "{}",
            dir.display()
        );
    }
    if let (Some(n), Some(own_mem)) = (cg.0.v1.get("memory"), own.v1.get("memory")) {
        assert!(
            n.path
                .to_string_lossy()
                .contains(own_mem.to_string_lossy().as_ref()),
            "{}",
            n.path.display()
        );
    }
    match cg.0.mode() {
        Mode::V2 => {
            let d = &cg.0.v2.as_ref().unwrap().path;
            assert_eq!(read(d, "memory.max"), "67108864");
            assert_eq!(read(d, "pids.max"), "20");
            assert_eq!(read(d, "cpu.max"), "10000 100000");
        }
        _ => {
            assert_eq!(
                read(&cg.0.v1["memory"].path, "memory.limit_in_bytes"),
                "67108864"
            );
            assert_eq!(read(&cg.0.v1["pids"].path, "pids.max"), "20");
            assert_eq!(read(&cg.0.v1["cpu"].path, "cpu.cfs_quota_us"), "10000");
            assert_eq!(read(&cg.0.v1["cpu"].path, "cpu.shares"), "512");
            assert_eq!(read(&cg.0.v1["cpuset"].path, "cpuset.cpus"), "0");
        }
    }

    let mut probe = Probe::spawn();
    cg.0.add_process(probe.pid()).unwrap();
    assert_eq!(probe.report(), "null-ok kmsg-denied");
    assert_eq!(cg.0.procs().unwrap(), [probe.pid()]);
    assert_eq!(cg.0.stats().unwrap()["pids"]["current"], 1);
    assert_eq!(cg.0.stats().unwrap()["pids"]["limit"], 20);
    assert_eq!(cg.0.oom_count().unwrap(), 0);

    cg.0.freeze().unwrap();
    assert!(cg.0.is_frozen());
    cg.0.thaw().unwrap();
    assert!(!cg.0.is_frozen());

    cg.0.update(&res(
        r#"{"memory":{"limit":134217728},"pids":{"limit":30}}"#,
    ))
    .unwrap();
    if cg.0.mode() != Mode::V2 {
        assert_eq!(
            read(&cg.0.v1["memory"].path, "memory.limit_in_bytes"),
            "134217728"
        );
        assert_eq!(read(&cg.0.v1["pids"].path, "pids.max"), "30");
    }

    // Killing a frozen container must still kill it.
    cg.0.freeze().unwrap();
    cg.0.kill_all(libc::SIGKILL).unwrap();
    let status = probe.child.wait().unwrap();
    assert_eq!(status.signal(), Some(9));
    assert!(!cg.0.is_frozen());

    let dirs = cg.0.dirs();
    cg.0.destroy().unwrap();
    for d in dirs {
        assert!(!d.exists(), "{} left behind", d.display());
    }
}

#[test]
fn failed_limit_names_file_and_removes_dirs() {
    if !is_root() {
        return;
    }
    let cg = CgroupGuard(
        Cgroup::plan(
            &unique("bad"),
            Some(Path::new(&format!("berth/{}", unique("bad")))),
            false,
        )
        .unwrap(),
    );
    let r = res(r#"{"cpu":{"quota":500,"period":100000}}"#);
    if cg.0.check(Some(&r)).is_err() {
        return; // no cpu controller here (a v2 hierarchy without it)
    }
    let err = format!("{:#}", cg.0.create(Some(&r)).unwrap_err());
    let file = if cg.0.mode() == Mode::V2 {
        "cpu.max"
    } else {
        "cpu.cfs_quota_us"
    };
    assert!(
        err.starts_with("write 500") && err.ends_with(&format!("{file}: Invalid argument")),
        "{err}"
    );
    for d in cg.0.dirs() {
        assert!(!d.exists(), "{} left behind", d.display());
    }
}

#[test]
fn missing_controllers_are_named() {
    if !is_root() {
        return;
    }
    let cg = Cgroup::plan(&unique("missing"), None, false).unwrap();
    let has = |c: &str| {
        cg.v1.contains_key(c)
            || cg
                .host()
                .map(|h| h.v2.unwrap_or_default().contains(c))
                .unwrap_or(false)
    };
    if !has("rdma") {
        let err = cg
            .check(Some(&res(r#"{"rdma":{"mlx4_0":{"hcaHandles":2}}}"#)))
            .unwrap_err()
            .to_string();
        assert!(err.contains("controller rdma"), "{err}");
    }
    if !has("net_cls") {
        let err = cg
            .check(Some(&res(r#"{"network":{"classID":7}}"#)))
            .unwrap_err()
            .to_string();
        assert!(err.contains("controller net_cls"), "{err}");
    }
}

#[test]
fn hugetlb_through_v2_on_hybrid() {
    if !is_root() {
        return;
    }
    let cg = CgroupGuard(Cgroup::plan(&unique("huge"), None, false).unwrap());
    let host = cg.0.host().unwrap();
    if cg.0.mode() != Mode::Hybrid
        || cg.0.v1.contains_key("hugetlb")
        || !host.v2.unwrap_or_default().contains("hugetlb")
    {
        return;
    }
    cg.0.create(Some(&res(
        r#"{"hugepageLimits":[{"pageSize":"2MB","limit":4194304}]}"#,
    )))
    .unwrap();
    let v2 = cg.0.v2.as_ref().unwrap();
    assert_eq!(read(&v2.path, "hugetlb.2MB.max"), "4194304");
    assert!(cg.0.stats().unwrap()["hugetlb"]["2MB"].is_object());
}

/// A v2 cgroup dir of our own, removed (after its processes) on drop.
struct V2Dir(PathBuf);

impl Drop for V2Dir {
    fn drop(&mut self) {
        let _ = files::write_file(&self.0, "cgroup.kill", "1");
        for _ in 0..200 {
            if std::fs::remove_dir(&self.0).is_ok() || !self.0.exists() {
                break;
            }
            sleep(Duration::from_millis(5));
        }
    }
}

#[test]
fn bpf_device_program_enforces_and_replaces() {
    if !is_root() {
        return;
    }
    let layout = probe::probe_layout().unwrap();
    let Some(m) = layout.v2 else { return };
    let own = probe::read_own_cgroups().unwrap();
    let top = probe::dir_in_mount(&m, own.v2.as_deref().unwrap_or(Path::new("/")));
    let dir = V2Dir(top.join(unique("bpf")));
    std::fs::create_dir(&dir.0).unwrap();

    devices_bpf::install(&dir.0, &device_rules(&[]).unwrap()).unwrap();
    assert_eq!(devices_bpf::count_attached(&dir.0).unwrap(), 1);
    let mut probe = Probe::spawn();
    files::write_file(&dir.0, "cgroup.procs", &probe.pid().to_string()).unwrap();
    assert_eq!(probe.report(), "null-ok kmsg-denied");

    let allow_kmsg: Vec<crate::spec::types::LinuxDeviceCgroup> =
        serde_json::from_str(r#"[{"allow":true,"type":"c","major":1,"minor":11,"access":"rwm"}]"#)
            .unwrap();
    devices_bpf::install(&dir.0, &device_rules(&allow_kmsg).unwrap()).unwrap();
    assert_eq!(
        devices_bpf::count_attached(&dir.0).unwrap(),
        1,
        "update must replace, not add"
    );
    let mut probe2 = Probe::spawn();
    files::write_file(&dir.0, "cgroup.procs", &probe2.pid().to_string()).unwrap();
    assert_eq!(probe2.report(), "null-ok kmsg-ok");
}

/// On a pure v2 host, whatever controllers it has: the core files and the
/// BPF device filter, placed with the fd `open_v2_dir` gives.
#[test]
fn v2_core_lifecycle() {
    if !is_root() {
        return;
    }
    let cg = CgroupGuard(Cgroup::plan(&unique("v2core"), None, false).unwrap());
    if cg.0.mode() != Mode::V2 {
        return;
    }
    cg.0.check(None).unwrap();
    cg.0.create(None).unwrap();
    assert!(cg.0.open_v2_dir().unwrap().is_some());
    let dir = cg.0.v2.as_ref().unwrap().path.clone();
    assert_eq!(devices_bpf::count_attached(&dir).unwrap(), 1);
    let mut probe = Probe::spawn();
    cg.0.add_process(probe.pid()).unwrap();
    assert_eq!(probe.report(), "null-ok kmsg-denied");
    assert_eq!(cg.0.procs().unwrap(), [probe.pid()]);
    cg.0.freeze().unwrap();
    assert!(cg.0.is_frozen());
    cg.0.kill_all(libc::SIGKILL).unwrap();
    assert_eq!(probe.child.wait().unwrap().signal(), Some(9));
    cg.0.thaw().unwrap();
    cg.0.destroy().unwrap();
    assert!(!dir.exists());
}

/// Removes the given cgroup trees on drop (`files::remove_tree`), after
/// the containers' own (declare it before their guards).
struct DirsGuard(Vec<PathBuf>);

impl Drop for DirsGuard {
    fn drop(&mut self) {
        for d in &self.0 {
            let _ = files::remove_tree(d);
        }
    }
}

/// A cpuset level that berth makes above the container's gets
/// `cgroup.clone_children`, so the kernel fills the next container's cgroup
/// at mkdir and `init_cpuset` writes nothing; a parent berth did not make
/// keeps the flag it had.
#[test]
fn a_cpuset_parent_berth_made_fills_the_next_cgroups_at_mkdir() {
    if !is_root() {
        return;
    }
    let top = unique("csclone");
    let plan = |id: &str, path: String| Cgroup::plan(id, Some(Path::new(&path)), false).unwrap();
    let one = plan("one", format!("/{top}/mid/one"));
    let Some(leaf) = one.v1.get("cpuset").map(|n| n.path.clone()) else {
        return; // no v1 cpuset hierarchy here (the v2 VM)
    };
    let mid = leaf.parent().unwrap().to_path_buf();
    let foreign = mid
        .parent()
        .unwrap()
        .with_file_name(format!("{top}-foreign"));
    let three = plan("three", format!("/{top}-foreign/three"));
    // The tops berth makes above the containers, in every hierarchy.
    let top_of = |cg: &Cgroup, up: usize| -> Vec<PathBuf> {
        cg.dirs()
            .iter()
            .filter_map(|d| d.ancestors().nth(up).map(Path::to_path_buf))
            .collect()
    };
    let _dirs = DirsGuard([top_of(&one, 2), top_of(&three, 1)].concat());
    let one = CgroupGuard(one);
    one.0.create(None).unwrap();
    for dir in [&mid, &mid.parent().unwrap().to_path_buf()] {
        assert_eq!(read(dir, "cgroup.clone_children"), "1", "{}", dir.display());
    }
    let cpus = read(&mid, "cpuset.cpus");
    assert!(!cpus.is_empty());
    assert_eq!(read(&leaf, "cpuset.cpus"), cpus);

    // The next one is filled by the kernel, before init_cpuset looks.
    let probe = mid.join("probe");
    std::fs::create_dir(&probe).unwrap();
    let filled = (read(&probe, "cpuset.cpus"), read(&probe, "cpuset.mems"));
    std::fs::remove_dir(&probe).unwrap();
    assert_eq!(filled, (cpus, read(&mid, "cpuset.mems")));
    let two = CgroupGuard(plan("two", format!("/{top}/mid/two")));
    two.0.create(None).unwrap();
    assert_eq!(
        read(&two.0.v1["cpuset"].path, "cpuset.cpus"),
        read(&mid, "cpuset.cpus")
    );

    // A parent made and filled by someone else is left as it was.
    std::fs::create_dir(&foreign).unwrap();
    for f in ["cpuset.cpus", "cpuset.mems"] {
        std::fs::write(foreign.join(f), read(foreign.parent().unwrap(), f)).unwrap();
    }
    let three = CgroupGuard(three);
    three.0.create(None).unwrap();
    assert_eq!(read(&foreign, "cgroup.clone_children"), "0");
    assert_eq!(
        read(&three.0.v1["cpuset"].path, "cpuset.cpus"),
        read(&foreign, "cpuset.cpus")
    );
}
