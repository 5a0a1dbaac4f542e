//! Issue 3's acceptance on this host, from the outside: every limit asked for
//! in `linux.resources` is read back from the container's cgroup files (found
//! from /proc/<pid>/cgroup and the cgroup mounts, so the same tests work on a
//! hybrid v1+v2 host and on a pure v2 one) and observed in behaviour; pause,
//! resume, update, ps, events, kill --all and delete act on the cgroup; and
//! nothing is left in any hierarchy afterwards.
//!
//! Every test has its own Env (own --root, unique ids). Containers are force-
//! deleted by Env's Drop; paused ones are resumed first by a `Thaw` guard, and
//! background `berth events` by a `ChildGuard`. Every wait is bounded.

mod common;

use std::collections::BTreeSet;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{alive, stderr, stdout, Env};
use serde_json::{json, Value};

// ------------------------------------------------------------ cgroup lookup

/// v1 controllers berth places a container in (as its prober does).
const V1_CONTROLLERS: &[&str] = &[
    "cpu",
    "cpuacct",
    "cpuset",
    "memory",
    "devices",
    "freezer",
    "blkio",
    "pids",
    "net_cls",
    "net_prio",
    "hugetlb",
    "perf_event",
    "rdma",
    "misc",
];

/// A mounted cgroup hierarchy.
#[derive(Debug, Clone)]
struct Hier {
    point: PathBuf,
    root: PathBuf,
    v2: bool,
    /// Superblock options: the v1 controllers (`cpu`, `name=systemd`, …).
    opts: Vec<String>,
}

impl Hier {
    /// A hierarchy berth should make a cgroup in: cgroup2, or v1 with a controller.
    fn has_controller(&self) -> bool {
        self.v2
            || self
                .opts
                .iter()
                .any(|o| V1_CONTROLLERS.contains(&o.as_str()))
    }
}

fn hierarchies() -> Vec<Hier> {
    let text = fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
    let mut out: Vec<Hier> = Vec::new();
    for line in text.lines() {
        let Some((pre, post)) = line.split_once(" - ") else {
            continue;
        };
        let pre: Vec<&str> = pre.split(' ').collect();
        let post: Vec<&str> = post.split(' ').collect();
        if pre.len() < 5 || post.len() < 3 {
            continue;
        }
        let v2 = match post[0] {
            "cgroup2" => true,
            "cgroup" => false,
            _ => continue,
        };
        let h = Hier {
            point: pre[4].into(),
            root: pre[3].into(),
            v2,
            opts: post[2].split(',').map(str::to_string).collect(),
        };
        // The same hierarchy mounted twice: keep the first.
        if !out
            .iter()
            .any(|o| o.v2 == h.v2 && (h.v2 || o.opts == h.opts))
        {
            out.push(h);
        }
    }
    out
}

/// A cgroup directory and whether it is a cgroup2 one.
#[derive(Debug, Clone, PartialEq)]
struct CgDir {
    dir: PathBuf,
    v2: bool,
}

impl CgDir {
    /// A file of this cgroup, trimmed; panics naming it when it is missing.
    fn read(&self, file: &str) -> String {
        let p = self.dir.join(file);
        match fs::read_to_string(&p) {
            Ok(t) => t.trim().to_string(),
            Err(e) => panic!(
                "cannot read {}: {e} (dir exists: {})",
                p.display(),
                self.dir.exists()
            ),
        }
    }

    /// The v1 or the v2 spelling of a file, whichever this cgroup is.
    fn read2(&self, v1: &str, v2: &str) -> String {
        self.read(if self.v2 { v2 } else { v1 })
    }

    /// A flat-keyed file's value (`cpu.stat`'s `nr_throttled 3`).
    fn key(&self, file: &str, key: &str) -> Option<u64> {
        self.read(file).lines().find_map(|l| {
            let (k, v) = l.split_once(' ')?;
            (k == key).then(|| v.trim().parse().ok())?
        })
    }

    fn procs(&self) -> BTreeSet<i32> {
        self.read("cgroup.procs")
            .split_whitespace()
            .filter_map(|p| p.parse().ok())
            .collect()
    }
}

/// Every hierarchy's cgroup directory of `pid`: (the controllers as
/// /proc/<pid>/cgroup names them, "" for cgroup2; the directory).
fn cg_dirs(pid: i32) -> Vec<(String, CgDir)> {
    let text = fs::read_to_string(format!("/proc/{pid}/cgroup"))
        .unwrap_or_else(|e| panic!("read /proc/{pid}/cgroup: {e}"));
    let hiers = hierarchies();
    let mut out = Vec::new();
    for line in text.lines() {
        let mut f = line.splitn(3, ':');
        let (Some(_), Some(ctls), Some(path)) = (f.next(), f.next(), f.next()) else {
            continue;
        };
        let hier = if ctls.is_empty() {
            hiers.iter().find(|h| h.v2)
        } else {
            hiers
                .iter()
                .find(|h| !h.v2 && ctls.split(',').all(|c| h.opts.iter().any(|o| o == c)))
        };
        let Some(h) = hier else { continue };
        let rel = Path::new(path)
            .strip_prefix(&h.root)
            .unwrap_or_else(|_| Path::new(path).strip_prefix("/").unwrap_or(Path::new(path)));
        out.push((
            ctls.to_string(),
            CgDir {
                dir: h.point.join(rel),
                v2: h.v2,
            },
        ));
    }
    out
}

/// The cgroup of `pid` that `ctl` acts in: the v1 hierarchy with that
/// controller, else cgroup2 (pure v2, or a v2-only controller on hybrid).
fn cg(pid: i32, ctl: &str) -> CgDir {
    let dirs = cg_dirs(pid);
    dirs.iter()
        .find(|(k, _)| k.split(',').any(|c| c == ctl))
        .or_else(|| dirs.iter().find(|(k, _)| k.is_empty()))
        .map(|(_, d)| d.clone())
        .unwrap_or_else(|| panic!("no cgroup for {ctl} in /proc/{pid}/cgroup: {dirs:?}"))
}

/// The cgroup dirs `pid` has that this test process does not share: the
/// container's own ones (a hierarchy berth does not use, like name=systemd,
/// leaves the container where its creator is).
fn container_dirs(pid: i32) -> Vec<PathBuf> {
    let mine = cg_dirs(std::process::id() as i32);
    cg_dirs(pid)
        .into_iter()
        .filter(|(k, d)| !mine.iter().any(|(mk, md)| mk == k && md == d))
        .map(|(_, d)| d.dir)
        .collect()
}

/// Directories named `id` anywhere (a few levels deep) in any hierarchy.
fn dirs_named(id: &str) -> Vec<PathBuf> {
    fn walk(dir: &Path, id: &str, depth: usize, out: &mut Vec<PathBuf>) {
        let Ok(entries) = fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            if !e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                continue;
            }
            let p = e.path();
            if e.file_name().to_str() == Some(id) {
                out.push(p.clone());
            }
            if depth > 0 {
                walk(&p, id, depth - 1, out);
            }
        }
    }
    let mut out = Vec::new();
    for h in hierarchies() {
        walk(&h.point, id, 6, &mut out);
    }
    out
}

fn assert_no_cgroup_left(id: &str, known: &[PathBuf]) {
    let left: Vec<&PathBuf> = known.iter().filter(|d| d.exists()).collect();
    assert!(left.is_empty(), "cgroup dirs of {id} left behind: {left:?}");
    let named = dirs_named(id);
    assert!(
        named.is_empty(),
        "cgroup dirs named {id} left behind: {named:?}"
    );
}

// ------------------------------------------------------------ running berth

/// Run `cmd` with stdout and stderr to files, killing it after `timeout`.
fn bounded(mut cmd: Command, dir: &Path, input: Option<&str>, timeout: Duration) -> Output {
    let tag = format!("b-{}", next_n());
    let (op, ep) = (
        dir.join(format!("{tag}.out")),
        dir.join(format!("{tag}.err")),
    );
    cmd.stdout(fs::File::create(&op).expect("out file"));
    cmd.stderr(fs::File::create(&ep).expect("err file"));
    cmd.stdin(if input.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    });
    let desc = format!("{cmd:?}");
    let mut child = cmd.spawn().expect("spawn");
    if let Some(text) = input {
        let mut stdin = child.stdin.take().expect("stdin");
        stdin.write_all(text.as_bytes()).expect("write stdin");
    }
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        if start.elapsed() > timeout {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "{desc} did not finish within {timeout:?}; stderr so far: {}",
                fs::read_to_string(&ep).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let out = Output {
        status,
        stdout: fs::read(&op).unwrap_or_default(),
        stderr: fs::read(&ep).unwrap_or_default(),
    };
    let _ = fs::remove_file(&op);
    let _ = fs::remove_file(&ep);
    out
}

fn next_n() -> usize {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static N: AtomicUsize = AtomicUsize::new(0);
    N.fetch_add(1, Ordering::SeqCst)
}

const T: Duration = Duration::from_secs(20);

/// `berth args…`, bounded.
fn berth(env: &Env, args: &[&str]) -> Output {
    let mut c = env.cmd();
    c.args(args);
    bounded(c, env.tmp.path(), None, T)
}

/// `berth args…` with `input` on stdin, bounded.
fn berth_in(env: &Env, args: &[&str], input: &str) -> Output {
    let mut c = env.cmd();
    c.args(args);
    bounded(c, env.tmp.path(), Some(input), T)
}

fn ok(env: &Env, args: &[&str]) -> String {
    let out = berth(env, args);
    assert!(
        out.status.success(),
        "berth {args:?} failed ({:?}): {}{}",
        out.status.code(),
        stdout(&out),
        stderr(&out)
    );
    stdout(&out)
}

/// A container started with `run -d`: its init pid and the file its stdout
/// and stderr go to.
struct Detached {
    pid: i32,
    out: PathBuf,
}

impl Detached {
    fn output(&self) -> String {
        fs::read_to_string(&self.out).unwrap_or_default()
    }

    /// A path inside the container's root, seen from the host.
    fn path(&self, p: &str) -> PathBuf {
        PathBuf::from(format!("/proc/{}/root{p}", self.pid))
    }
}

fn run_d(env: &Env, id: &str, cmd: &[&str]) -> Detached {
    let out = env.tmp.path().join(format!("{id}.out"));
    let f = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&out)
        .expect("out file");
    let bundle = env.bundle.to_string_lossy().into_owned();
    let mut c = env.cmd();
    c.args(["run", "-d", "-b", &bundle, id]).args(cmd);
    c.stdout(f.try_clone().expect("dup"))
        .stderr(f)
        .stdin(Stdio::null());
    let mut child = c.spawn().expect("spawn berth run -d");
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        if start.elapsed() > T {
            let _ = child.kill();
            let _ = child.wait();
            panic!("berth run -d {id} did not return within {T:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    assert!(
        status.success(),
        "berth run -d {id} failed ({status}): {}",
        fs::read_to_string(&out).unwrap_or_default()
    );
    let pid = env.pid(id);
    assert!(pid > 0 && alive(pid), "{id}: no live pid after run -d");
    Detached { pid, out }
}

/// Poll `f` every 20 ms until it holds or `timeout` passes.
fn poll(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    loop {
        if f() {
            return true;
        }
        if start.elapsed() > timeout {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn sleep_ms(ms: u64) {
    std::thread::sleep(Duration::from_millis(ms));
}

/// Kills a background process (berth events) when the test ends.
struct ChildGuard(Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Resumes a container that a test paused, so Env's force-delete can work
/// even if berth's own delete of a paused container is broken; if resume
/// fails too, thaws the freezer directly.
struct Thaw<'a> {
    env: &'a Env,
    id: String,
    dirs: Vec<PathBuf>,
}

impl Drop for Thaw<'_> {
    fn drop(&mut self) {
        let _ = self.env.berth(&["resume", &self.id]);
        for d in &self.dirs {
            let _ = fs::write(d.join("freezer.state"), "THAWED");
            let _ = fs::write(d.join("cgroup.freeze"), "0");
        }
        let _ = self.env.berth(&["delete", "--force", &self.id]);
    }
}

// ------------------------------------------------------------ config edits

fn add_caps(cfg: &mut Value, cap: &str) {
    for set in ["bounding", "effective", "permitted"] {
        cfg["process"]["capabilities"][set]
            .as_array_mut()
            .expect("capability set")
            .push(json!(cap));
    }
}

fn paused_state(d: &CgDir) -> bool {
    if d.v2 {
        d.key("cgroup.events", "frozen") == Some(1)
    } else {
        d.read("freezer.state") == "FROZEN"
    }
}

const MIB32: u64 = 33554432;

// ------------------------------------------------------------ 1. memory

/// berth started with a real-time policy (a unit with
/// `CPUSchedulingPolicy=fifo`): where a v1 cpu hierarchy has real-time
/// group scheduling (a `cpu.rt_runtime_us` file), a real-time task may join
/// only a cgroup with an rt budget, and a new one has none; `run` fails in
/// one line that names the tasks file and says so, and leaves nothing.
/// Elsewhere it runs.
#[test]
fn a_real_time_berth_is_told_why_a_v1_cpu_cgroup_refuses_it() {
    let env = Env::new();
    let id = env.id("cg-rt");
    let bundle = env.bundle.to_string_lossy().into_owned();
    let out = env.wrapped(&["chrt", "-f", "1"], &["run", "-b", &bundle, &id, "true"]);
    let rt_groups = hierarchies().iter().any(|h| {
        !h.v2 && h.opts.iter().any(|o| o == "cpu") && h.point.join("cpu.rt_runtime_us").exists()
    });
    if !rt_groups {
        assert!(
            out.status.success(),
            "chrt -f 1 berth run: {}",
            stderr(&out)
        );
        return;
    }
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert_eq!(err.lines().count(), 1, "not one line: {err}");
    assert!(
        err.starts_with("berth: join the container's cgroup: write 0 to /sys/fs/cgroup/cpu")
            && err.contains("/tasks (berth runs real-time")
            && err.contains("cpu.rt_runtime_us budget"),
        "{err}"
    );
    env.assert_gone(&id);
    assert_no_cgroup_left(&id, &[]);
}

#[test]
fn memory_limit_oom_kills_run_with_137() {
    let env = Env::with_config(|c| {
        c["linux"]["resources"]["memory"] = json!({"limit": MIB32, "swap": MIB32});
    });
    let id = env.id("cg-oomrun");
    let bundle = env.bundle.to_string_lossy().into_owned();
    let out = berth(&env, &["run", "-b", &bundle, &id, "tail", "/dev/zero"]);
    assert_eq!(
        out.status.code(),
        Some(137),
        "a 32 MiB container holding ever more memory should be OOM-killed: {}",
        stderr(&out)
    );
    env.assert_gone(&id);
    assert_no_cgroup_left(&id, &[]);
}

#[test]
fn memory_limit_read_back_and_oom_event_and_stats() {
    let env = Env::with_config(|c| {
        c["linux"]["resources"]["memory"] = json!({"limit": MIB32, "swap": MIB32});
    });
    let id = env.id("cg-oomev");
    let d = run_d(
        &env,
        &id,
        &[
            "sh",
            "-c",
            "while [ ! -e /tmp/go ]; do sleep 0.05; done; tail /dev/zero; echo tail-exit $?; exec sleep 300",
        ],
    );
    let mem = cg(d.pid, "memory");
    assert_eq!(
        mem.read2("memory.limit_in_bytes", "memory.max"),
        MIB32.to_string()
    );
    if mem.v2 {
        // OCI swap is memory+swap: equal to the limit means no swap.
        if mem.dir.join("memory.swap.max").exists() {
            assert_eq!(mem.read("memory.swap.max"), "0");
        }
    } else if mem.dir.join("memory.memsw.limit_in_bytes").exists() {
        assert_eq!(mem.read("memory.memsw.limit_in_bytes"), MIB32.to_string());
    }

    // The event stream, in the background.
    let evpath = env.tmp.path().join("events.out");
    let mut c = env.cmd();
    c.args(["events", "--interval", "100ms", &id])
        .stdout(fs::File::create(&evpath).expect("events file"))
        .stderr(Stdio::inherit());
    let _events = ChildGuard(c.spawn().expect("spawn berth events"));
    let events = || -> Vec<Value> {
        fs::read_to_string(&evpath)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    };
    // A first stats event: the stream is up and has read the OOM count.
    assert!(
        poll(Duration::from_secs(10), || events()
            .iter()
            .any(|e| e["type"] == "stats")),
        "events printed no stats event: {:?}",
        fs::read_to_string(&evpath)
    );
    let first = events().into_iter().find(|e| e["type"] == "stats").unwrap();
    assert_eq!(first["id"], id.as_str());
    assert!(
        !events().iter().any(|e| e["type"] == "oom"),
        "oom event before any OOM"
    );

    fs::write(d.path("/tmp/go"), "").expect("touch /tmp/go in the container");
    assert!(
        poll(Duration::from_secs(20), || d.output().contains("tail-exit")),
        "the memory hog was not killed: {}",
        d.output()
    );
    assert!(
        d.output().contains("tail-exit 137"),
        "hog did not die of SIGKILL: {}",
        d.output()
    );
    assert!(
        poll(Duration::from_secs(10), || events()
            .iter()
            .any(|e| e["type"] == "oom")),
        "no {{\"type\":\"oom\"}} event after an OOM kill; events: {}",
        fs::read_to_string(&evpath).unwrap_or_default()
    );
    let oom = events().into_iter().find(|e| e["type"] == "oom").unwrap();
    assert_eq!(oom["id"], id.as_str(), "{oom}");
    assert_eq!(env.status(&id), "running", "only the hog should have died");

    let stats: Value =
        serde_json::from_str(&ok(&env, &["events", "--stats", &id])).expect("stats json");
    assert_eq!(stats["type"], "stats", "{stats}");
    let m = &stats["data"]["memory"];
    assert_eq!(m["usage"]["limit"], MIB32, "memory limit in stats: {m}");
    assert!(
        m["oom_kill"].as_u64().unwrap_or(0) > 0,
        "memory oom_kill 0 after an OOM: {m}"
    );
    // The counters are the kernel's (kernel 6.18's v1 memory.failcnt stays 0
    // even after an OOM kill; oom_kill is what counts).
    let (failcnt, oom_kill) = if mem.v2 {
        (
            mem.key("memory.events", "max"),
            mem.key("memory.events", "oom_kill"),
        )
    } else {
        (
            Some(mem.read("memory.failcnt").parse().expect("failcnt")),
            mem.key("memory.oom_control", "oom_kill"),
        )
    };
    assert_eq!(
        m["usage"]["failcnt"].as_u64(),
        failcnt,
        "failcnt in stats: {m}"
    );
    assert_eq!(m["oom_kill"].as_u64(), oom_kill, "oom_kill in stats: {m}");
}

// ------------------------------------------------------------ 2. pids

#[test]
fn pids_limit_stops_fork_burst() {
    let env = Env::with_config(|c| {
        c["linux"]["resources"]["pids"] = json!({"limit": 20});
    });
    let id = env.id("cg-pids");
    let d = run_d(
        &env,
        &id,
        &[
            "sh",
            "-c",
            "sh -c 'i=0; while [ $i -lt 50 ]; do sleep 300 & i=$((i+1)); done; echo spawned-all $i'; echo spawner-exit $?; exec sleep 300",
        ],
    );
    let pids = cg(d.pid, "pids");
    assert_eq!(pids.read("pids.max"), "20");
    assert!(
        poll(Duration::from_secs(15), || d
            .output()
            .contains("spawner-exit")),
        "spawner did not finish: {}",
        d.output()
    );
    let out = d.output();
    assert!(
        !out.contains("spawned-all"),
        "50 background sleeps all started under pids.limit 20: {out}"
    );
    assert!(
        out.contains("fork") || out.contains("Resource temporarily unavailable"),
        "no fork failure reported: {out}"
    );
    let current: u64 = pids.read("pids.current").parse().expect("pids.current");
    assert!(current <= 20, "pids.current {current} > 20");
    assert!(
        current >= 10,
        "pids.current {current}: the sleeps are not there?"
    );
    assert!(pids.procs().len() <= 20, "{:?}", pids.procs());
    if pids.dir.join("pids.events").exists() {
        assert!(
            pids.key("pids.events", "max").unwrap_or(0) > 0,
            "pids.events: {}",
            pids.read("pids.events")
        );
    }
}

// ------------------------------------------------------------ 3. cpu

#[test]
fn cpu_quota_read_back_and_throttles_busy_loop() {
    let env = Env::with_config(|c| {
        c["linux"]["resources"]["cpu"] = json!({"quota": 10000, "period": 100000});
    });
    let id = env.id("cg-cpu");
    let d = run_d(&env, &id, &["sh", "-c", "while :; do :; done"]);
    let cpu = cg(d.pid, "cpu");
    if cpu.v2 {
        assert_eq!(cpu.read("cpu.max"), "10000 100000");
    } else {
        assert_eq!(cpu.read("cpu.cfs_quota_us"), "10000");
        assert_eq!(cpu.read("cpu.cfs_period_us"), "100000");
    }
    // Usage from the cgroup's own counter, in ns.
    let acct = cg(d.pid, "cpuacct");
    let usage = || -> u64 {
        if acct.v2 {
            acct.key("cpu.stat", "usage_usec").expect("usage_usec") * 1000
        } else {
            acct.read("cpuacct.usage").parse().expect("cpuacct.usage")
        }
    };
    sleep_ms(300);
    let (u0, t0) = (usage(), Instant::now());
    sleep_ms(2000);
    let (u1, t1) = (usage(), Instant::now());
    let share = (u1 - u0) as f64 / (t1 - t0).as_nanos() as f64;
    assert!(
        share <= 0.12,
        "busy loop used {:.1}% of a CPU under a 10% quota",
        share * 100.0
    );
    assert!(
        share >= 0.02,
        "busy loop used only {:.1}% of a CPU: is it running?",
        share * 100.0
    );
    assert!(
        cpu.key("cpu.stat", "nr_throttled").unwrap_or(0) > 0,
        "never throttled: {}",
        cpu.read("cpu.stat")
    );
}

#[test]
fn cpuset_pins_cpus_allowed_list() {
    let env = Env::with_config(|c| {
        c["linux"]["resources"]["cpu"] = json!({"cpus": "0"});
    });
    let id = env.id("cg-cpuset");
    let d = run_d(&env, &id, &["sleep", "300"]);
    let allowed = |pid: &str| -> String {
        fs::read_to_string(format!("/proc/{pid}/status"))
            .expect("status")
            .lines()
            .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
            .map(|v| v.trim().to_string())
            .unwrap_or_default()
    };
    assert_ne!(
        allowed("self"),
        "0",
        "test needs a host with more than CPU 0 to prove anything"
    );
    assert_eq!(allowed(&d.pid.to_string()), "0");
    let cs = cg(d.pid, "cpuset");
    assert_eq!(cs.read2("cpuset.cpus", "cpuset.cpus"), "0");
    // Inside, too (what the user process sees).
    let bundle = env.bundle.to_string_lossy().into_owned();
    let id2 = env.id("cg-cpuset-fg");
    let out = berth(
        &env,
        &[
            "run",
            "-b",
            &bundle,
            &id2,
            "grep",
            "Cpus_allowed_list",
            "/proc/self/status",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stdout(&out).split_whitespace().last(),
        Some("0"),
        "{}",
        stdout(&out)
    );
}

// ------------------------------------------------------------ 4. devices

/// CAP_MKNOD (bit 27) is in the container process's effective set, so only
/// the device cgroup can refuse.
const MKNOD_CHECK: &str = "eff=$(sed -n 's/^CapEff:[[:space:]]*//p' /proc/self/status); \
     [ $(( 0x$eff >> 27 & 1 )) = 1 ] || { echo no-cap-mknod $eff; exit 30; }; ";

#[test]
fn devices_default_rules_refuse_block_device() {
    let env = Env::with_config(|c| add_caps(c, "CAP_MKNOD"));
    let id = env.id("cg-devdeny");
    let bundle = env.bundle.to_string_lossy().into_owned();
    let script = format!(
        "{MKNOD_CHECK} echo x > /dev/null || exit 10; \
         [ \"$(head -c 3 /dev/zero | wc -c)\" = 3 ] || exit 11; \
         mknod /tmp/loopx b 7 0 && head -c1 /tmp/loopx >/dev/null"
    );
    let out = berth(&env, &["run", "-b", &bundle, &id, "sh", "-c", &script]);
    let text = format!("{}{}", stdout(&out), stderr(&out));
    match out.status.code() {
        Some(30) => panic!("CAP_MKNOD not effective in the container: {text}"),
        Some(10) | Some(11) => panic!("default devices /dev/null or /dev/zero unusable: {text}"),
        Some(0) => panic!("mknod + open of b 7:0 succeeded under the default device rules"),
        _ => {}
    }
    assert!(
        text.contains("Operation not permitted"),
        "failed, but not with EPERM: {text}"
    );
}

#[test]
fn devices_rule_allows_block_device() {
    let env = Env::with_config(|c| {
        add_caps(c, "CAP_MKNOD");
        c["linux"]["resources"]["devices"]
            .as_array_mut()
            .expect("devices")
            .push(json!({"allow": true, "type": "b", "major": 7, "minor": 0, "access": "rwm"}));
    });
    let id = env.id("cg-devallow");
    let bundle = env.bundle.to_string_lossy().into_owned();
    let script = format!(
        "{MKNOD_CHECK} mknod /tmp/loopx b 7 0 || exit 20; echo made; \
         head -c1 /tmp/loopx >/dev/null; echo open-rc $?"
    );
    let out = berth(&env, &["run", "-b", &bundle, &id, "sh", "-c", &script]);
    let text = format!("{}{}", stdout(&out), stderr(&out));
    assert_ne!(
        out.status.code(),
        Some(30),
        "CAP_MKNOD not effective: {text}"
    );
    assert!(
        !text.contains("Operation not permitted"),
        "allowed device refused with EPERM: {text}"
    );
    assert!(
        text.contains("made"),
        "mknod of an allowed device failed: {text}"
    );
    assert!(text.contains("open-rc"), "{text}");
    assert_eq!(out.status.code(), Some(0), "{text}");
}

// ------------------------------------------------------------ 5. pause/resume

#[test]
fn pause_stops_counter_exec_refused_kill_queued_resume_continues() {
    let env = Env::new();
    let id = env.id("cg-pause");
    let d = run_d(
        &env,
        &id,
        &[
            "sh",
            "-c",
            "trap 'echo got-term; exit 3' TERM; i=0; \
             while :; do i=$((i+1)); echo $i > /tmp/c.tmp; mv /tmp/c.tmp /tmp/count; sleep 0.1; done",
        ],
    );
    let freezer = cg(d.pid, "freezer");
    let _thaw = Thaw {
        env: &env,
        id: id.clone(),
        dirs: vec![freezer.dir.clone()],
    };
    let count = || -> u64 {
        fs::read_to_string(d.path("/tmp/count"))
            .ok()
            .and_then(|t| t.trim().parse().ok())
            .unwrap_or(0)
    };
    assert!(
        poll(Duration::from_secs(10), || count() >= 3),
        "counter not advancing: {}",
        count()
    );

    ok(&env, &["pause", &id]);
    assert_eq!(env.status(&id), "paused");
    assert!(paused_state(&freezer), "freezer not frozen after pause");
    let a = count();
    sleep_ms(500);
    let b = count();
    assert_eq!(a, b, "counter advanced while paused");

    // exec into a paused container: refused at once, clearly.
    let out = berth(&env, &["exec", &id, "true"]);
    assert!(
        !out.status.success(),
        "exec into a paused container succeeded"
    );
    assert!(
        stderr(&out).contains("paused"),
        "exec refusal does not say why: {}",
        stderr(&out)
    );

    ok(&env, &["resume", &id]);
    assert_eq!(env.status(&id), "running");
    assert!(!paused_state(&freezer), "freezer still frozen after resume");
    assert!(
        poll(Duration::from_secs(5), || count() > b),
        "counter did not advance after resume (stuck at {b})"
    );

    // A signal to a paused container is queued (runc): it acts on resume.
    ok(&env, &["pause", &id]);
    ok(&env, &["kill", &id, "TERM"]);
    sleep_ms(300);
    assert_eq!(
        env.status(&id),
        "paused",
        "container not paused after kill TERM"
    );
    assert!(
        !d.output().contains("got-term"),
        "trap ran while the container was paused"
    );
    ok(&env, &["resume", &id]);
    env.wait_status(&id, "stopped");
    assert!(
        d.output().contains("got-term"),
        "queued TERM did not act on resume: {}",
        d.output()
    );
}

#[test]
fn kill_sigkill_of_paused_container_stops_it_like_runc() {
    // runc (libcontainer Signal): SIGKILL to a paused container thaws the
    // cgroup so the kill takes effect (v1 frozen tasks never die otherwise).
    let env = Env::new();
    let id = env.id("cg-pausekill");
    let d = run_d(&env, &id, &["sleep", "300"]);
    let freezer = cg(d.pid, "freezer");
    let _thaw = Thaw {
        env: &env,
        id: id.clone(),
        dirs: vec![freezer.dir.clone()],
    };
    ok(&env, &["pause", &id]);
    ok(&env, &["kill", &id, "KILL"]);
    assert!(
        poll(Duration::from_secs(5), || !alive(d.pid)),
        "SIGKILL of a paused container did not kill it (status {}, freezer frozen: {})",
        env.status(&id),
        paused_state(&freezer)
    );
    env.wait_status(&id, "stopped");
}

// ------------------------------------------------------------ 6. update

#[test]
fn update_raises_and_lowers_memory_and_pids() {
    let env = Env::with_config(|c| {
        c["linux"]["resources"]["memory"] = json!({"limit": MIB32});
        c["linux"]["resources"]["pids"] = json!({"limit": 20});
    });
    let id = env.id("cg-update");
    let d = run_d(
        &env,
        &id,
        &[
            "sh",
            "-c",
            "while [ ! -e /tmp/go1 ]; do sleep 0.05; done; \
             sh -c 'i=0; while [ $i -lt 24 ]; do sleep 1 & i=$((i+1)); done; echo r1-spawned $i; wait'; \
             echo r1-exit $?; \
             while [ ! -e /tmp/go2 ]; do sleep 0.05; done; \
             sh -c 'i=0; while [ $i -lt 10 ]; do sleep 300 & i=$((i+1)); done; echo r2-spawned $i'; \
             echo r2-exit $?; exec sleep 300",
        ],
    );
    let mem = cg(d.pid, "memory");
    let pids = cg(d.pid, "pids");
    let mem_limit = || mem.read2("memory.limit_in_bytes", "memory.max");
    assert_eq!(mem_limit(), MIB32.to_string());
    assert_eq!(pids.read("pids.max"), "20");

    // Raise, with runc's flags.
    ok(
        &env,
        &["update", "--memory", "64m", "--pids-limit", "30", &id],
    );
    assert_eq!(mem_limit(), "67108864");
    assert_eq!(pids.read("pids.max"), "30");
    // 2 shells + 24 sleeps: more than the old 20, within the new 30.
    fs::write(d.path("/tmp/go1"), "").expect("go1");
    assert!(
        poll(Duration::from_secs(15), || d.output().contains("r1-exit")),
        "round 1 did not finish: {}",
        d.output()
    );
    assert!(
        d.output().contains("r1-spawned 24") && d.output().contains("r1-exit 0"),
        "raised pids limit not in effect: {}",
        d.output()
    );

    // Lower, with --resources on stdin.
    let out = berth_in(
        &env,
        &["update", "--resources", "-", &id],
        r#"{"memory": {"limit": 41943040}, "pids": {"limit": 5}}"#,
    );
    assert!(
        out.status.success(),
        "update --resources -: {}",
        stderr(&out)
    );
    assert_eq!(mem_limit(), "41943040");
    assert_eq!(pids.read("pids.max"), "5");
    fs::write(d.path("/tmp/go2"), "").expect("go2");
    assert!(
        poll(Duration::from_secs(15), || d.output().contains("r2-exit")),
        "round 2 did not finish: {}",
        d.output()
    );
    let out = d.output();
    assert!(
        !out.contains("r2-spawned"),
        "10 sleeps started under a lowered pids limit of 5: {out}"
    );
    assert!(out.contains("fork"), "no fork failure reported: {out}");
    let current: u64 = pids.read("pids.current").parse().expect("pids.current");
    assert!(current <= 5, "pids.current {current} > 5");
}

// ------------------------------------------------------------ 7. ps, kill --all, delete

const FOUR_PROCS: &[&str] = &["sh", "-c", "sleep 300 & sleep 300 & sleep 300 & wait"];

fn wait_procs(d: &CgDir, n: usize) -> BTreeSet<i32> {
    assert!(
        poll(Duration::from_secs(10), || d.procs().len() >= n),
        "not {n} processes in {}: {:?}",
        d.dir.display(),
        d.procs()
    );
    d.procs()
}

#[test]
fn ps_lists_exactly_the_container_pids() {
    let env = Env::new();
    let id = env.id("cg-ps");
    let d = run_d(&env, &id, FOUR_PROCS);
    let pids = cg(d.pid, "pids");
    let want = wait_procs(&pids, 4);
    assert_eq!(want.len(), 4, "{want:?}");
    assert!(want.contains(&d.pid));

    let json_out = ok(&env, &["ps", "--format", "json", &id]);
    let got: Vec<i32> = serde_json::from_str(json_out.trim()).expect("ps json is a list of pids");
    let got: BTreeSet<i32> = got.into_iter().collect();
    assert_eq!(got, want, "ps --format json vs cgroup.procs");

    let table = ok(&env, &["ps", &id]);
    let mut lines = table.lines();
    let header = lines.next().expect("ps table header");
    let col = header
        .split_whitespace()
        .position(|h| h == "PID")
        .unwrap_or_else(|| panic!("no PID column: {header}"));
    assert!(
        header.contains("CMD") || header.contains("COMMAND"),
        "{header}"
    );
    let rows: Vec<&str> = lines.filter(|l| !l.trim().is_empty()).collect();
    let row_pids: BTreeSet<i32> = rows
        .iter()
        .filter_map(|l| l.split_whitespace().nth(col)?.parse().ok())
        .collect();
    assert_eq!(row_pids, want, "ps table rows:\n{table}");
    assert_eq!(rows.len(), 4, "{table}");
    assert_eq!(
        rows.iter().filter(|r| r.ends_with(" sleep 300")).count(),
        3,
        "{table}"
    );
}

#[test]
fn kill_all_kills_every_process() {
    let env = Env::new();
    let id = env.id("cg-killall");
    let d = run_d(&env, &id, FOUR_PROCS);
    let pids = cg(d.pid, "pids");
    let all = wait_procs(&pids, 4);
    let dirs = container_dirs(d.pid);
    ok(&env, &["kill", "--all", &id, "KILL"]);
    assert!(
        poll(Duration::from_secs(10), || all.iter().all(|p| !alive(*p))),
        "processes left after kill --all: {:?}",
        all.iter().filter(|p| alive(**p)).collect::<Vec<_>>()
    );
    assert!(
        poll(Duration::from_secs(5), || pids.procs().is_empty()),
        "cgroup.procs not empty: {:?}",
        pids.procs()
    );
    env.wait_status(&id, "stopped");
    ok(&env, &["delete", &id]);
    env.assert_gone(&id);
    assert_no_cgroup_left(&id, &dirs);
}

#[test]
fn delete_force_of_paused_container() {
    let env = Env::new();
    let id = env.id("cg-delpaused");
    let d = run_d(&env, &id, FOUR_PROCS);
    let all = wait_procs(&cg(d.pid, "pids"), 4);
    let dirs = container_dirs(d.pid);
    let freezer = cg(d.pid, "freezer");
    let _thaw = Thaw {
        env: &env,
        id: id.clone(),
        dirs: vec![freezer.dir.clone()],
    };
    ok(&env, &["pause", &id]);
    assert_eq!(env.status(&id), "paused");
    let out = berth(&env, &["delete", "--force", &id]);
    assert!(
        out.status.success(),
        "delete --force of a paused container failed ({:?}): {}",
        out.status.code(),
        stderr(&out)
    );
    assert!(
        all.iter().all(|p| !alive(*p)),
        "processes left after delete --force: {:?}",
        all.iter().filter(|p| alive(**p)).collect::<Vec<_>>()
    );
    env.assert_gone(&id);
    assert_no_cgroup_left(&id, &dirs);
}

// ------------------------------------------------------------ 8. leaks

#[test]
fn create_delete_round_trip_leaves_no_cgroup() {
    let env = Env::new();
    let id = env.id("cg-leak");
    env.create(&id, &["true"]);
    let pid = env.pid(&id);
    let dirs = container_dirs(pid);
    // One cgroup in every hierarchy with a controller (v1 and cgroup2).
    let expected = hierarchies().iter().filter(|h| h.has_controller()).count();
    assert_eq!(
        dirs.len(),
        expected,
        "container not in its own cgroup in every hierarchy: {dirs:?}"
    );
    for d in &dirs {
        assert!(d.is_dir(), "{} missing", d.display());
        assert!(d.ends_with(&id), "{} is not named after {id}", d.display());
    }
    ok(&env, &["delete", &id]);
    env.assert_gone(&id);
    assert_no_cgroup_left(&id, &dirs);

    // A foreground run, too.
    let id2 = env.id("cg-leak-run");
    let bundle = env.bundle.to_string_lossy().into_owned();
    let out = berth(&env, &["run", "-b", &bundle, &id2, "true"]);
    assert!(out.status.success(), "{}", stderr(&out));
    env.assert_gone(&id2);
    assert_no_cgroup_left(&id2, &[]);
}

/// Processes whose command line names `id` (berth's own, and the child
/// cloned from it before it execs).
fn processes_naming(id: &str) -> Vec<i32> {
    let me = std::process::id() as i32;
    fs::read_dir("/proc")
        .expect("read /proc")
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|&pid| pid != me)
        .filter(|pid| {
            fs::read(format!("/proc/{pid}/cmdline"))
                .map(|c| c.split(|b| *b == 0).any(|a| a == id.as_bytes()))
                .unwrap_or(false)
        })
        .collect()
}

#[test]
fn limit_refused_by_the_kernel_fails_create_and_leaves_nothing() {
    // The limits are applied while the child builds its root (after the
    // clone): a refusal there must still name the file, and kill the child
    // and remove everything made. The kernel's minimum quota is 1 ms.
    let env = Env::with_config(|c| {
        c["linux"]["resources"]["cpu"] = json!({"quota": 500, "period": 100000});
    });
    for cmd in ["create", "run"] {
        let id = env.id(&format!("cg-refused-{cmd}"));
        let bundle = env.bundle.to_string_lossy().into_owned();
        let out = berth(&env, &[cmd, "-b", &bundle, &id, "true"]);
        assert_eq!(out.status.code(), Some(1), "{cmd}: {}", stderr(&out));
        let err = stderr(&out);
        assert!(
            err.contains("cpu.cfs_quota_us") || err.contains("cpu.max"),
            "{cmd}: error does not name the quota file: {err}"
        );
        assert_eq!(err.lines().count(), 1, "{cmd}: not one line: {err}");
        env.assert_gone(&id);
        assert_no_cgroup_left(&id, &[]);
        assert_eq!(
            processes_naming(&id),
            Vec::<i32>::new(),
            "{cmd}: processes left"
        );
    }
}

// ------------------------------------------------------------ 9. missing controller

fn host_has(ctl: &str) -> bool {
    hierarchies()
        .iter()
        .any(|h| h.opts.iter().any(|o| o == ctl))
        || hierarchies().iter().filter(|h| h.v2).any(|h| {
            fs::read_to_string(h.point.join("cgroup.controllers"))
                .unwrap_or_default()
                .split_whitespace()
                .any(|c| c == ctl)
        })
}

fn refused_for_missing_controller(ctl: &str, edit: impl FnOnce(&mut Value)) {
    if host_has(ctl) {
        eprintln!("host has {ctl}: nothing to test");
        return;
    }
    let env = Env::with_config(edit);
    let id = env.id(&format!("cg-no{}", ctl.replace('_', "")));
    let bundle = env.bundle.to_string_lossy().into_owned();
    let out = berth(&env, &["create", "-b", &bundle, &id, "true"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "create asking for {ctl} on a host without it: {}{}",
        stdout(&out),
        stderr(&out)
    );
    assert!(
        stderr(&out).contains(ctl),
        "error does not name the controller {ctl}: {}",
        stderr(&out)
    );
    assert!(
        !berth(&env, &["state", &id]).status.success(),
        "state of {id} exists"
    );
    env.assert_gone(&id);
    assert_no_cgroup_left(&id, &[]);
}

#[test]
fn missing_rdma_controller_fails_create() {
    refused_for_missing_controller("rdma", |c| {
        c["linux"]["resources"]["rdma"] = json!({"mlx5_0": {"hcaHandles": 3, "hcaObjects": 100}});
    });
}

#[test]
fn missing_net_cls_controller_fails_create() {
    refused_for_missing_controller("net_cls", |c| {
        c["linux"]["resources"]["network"] = json!({"classID": 1048577});
    });
}

// ------------------------------------------------------------ hugetlb

#[test]
fn hugetlb_limit_applied_and_updated() {
    if !Path::new("/sys/kernel/mm/hugepages/hugepages-2048kB").exists() {
        eprintln!("no 2MB huge pages on this kernel: nothing to test");
        return;
    }
    let env = Env::with_config(|c| {
        c["linux"]["resources"]["hugepageLimits"] = json!([{"pageSize": "2MB", "limit": 4194304}]);
    });
    let id = env.id("cg-huge");
    let d = run_d(&env, &id, &["sleep", "300"]);
    let h = cg(d.pid, "hugetlb");
    // On this hybrid host hugetlb exists only in cgroup v2.
    if !hierarchies()
        .iter()
        .any(|x| !x.v2 && x.opts.iter().any(|o| o == "hugetlb"))
    {
        assert!(h.v2, "hugetlb should be the cgroup2 dir: {h:?}");
    }
    let file = |h: &CgDir| h.read2("hugetlb.2MB.limit_in_bytes", "hugetlb.2MB.max");
    assert_eq!(file(&h), "4194304", "in {}", h.dir.display());
    let out = berth_in(
        &env,
        &["update", "--resources", "-", &id],
        r#"{"hugepageLimits": [{"pageSize": "2MB", "limit": 8388608}]}"#,
    );
    assert!(
        out.status.success(),
        "update hugepageLimits: {}",
        stderr(&out)
    );
    assert_eq!(file(&h), "8388608");
}

/// The `type: cgroup` mount, seen from outside: every mount under
/// `/sys/fs/cgroup` carries the config's `ro,nosuid,nodev,noexec,relatime`
/// (on a hybrid host that is the tmpfs and each hierarchy below it), each
/// hierarchy berth placed the container in shows the container's own cgroup
/// as its root, and nothing there can be written from inside.
#[test]
fn cgroup_mount_shows_own_cgroups_read_only() {
    let env = Env::new();
    let id = env.id("cgmount");
    let d = run_d(&env, &id, &["sleep", "1000"]);
    let mountinfo = fs::read_to_string(format!("/proc/{}/mountinfo", d.pid)).expect("mountinfo");
    let mounts: Vec<(&str, &str)> = mountinfo
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            let point = *f.get(4)?;
            (point == "/sys/fs/cgroup" || point.starts_with("/sys/fs/cgroup/"))
                .then(|| (point, *f.get(5).unwrap_or(&"")))
        })
        .collect();
    assert!(!mounts.is_empty(), "no cgroup mount inside:\n{mountinfo}");
    for (point, opts) in &mounts {
        for want in ["ro", "nosuid", "nodev", "noexec", "relatime"] {
            assert!(
                opts.split(',').any(|o| o == want),
                "{point} is {opts}: no {want}"
            );
        }
    }
    let hiers = hierarchies();
    let own = container_dirs(d.pid);
    assert!(!own.is_empty(), "the container has no cgroup of its own");
    for dir in &own {
        let h = hiers
            .iter()
            .filter(|h| dir.starts_with(&h.point))
            .max_by_key(|h| h.point.as_os_str().len())
            .unwrap_or_else(|| panic!("no hierarchy holds {}", dir.display()));
        let inside = match h.point.file_name() {
            Some(name) if h.point != Path::new("/sys/fs/cgroup") => {
                format!("/sys/fs/cgroup/{}", name.to_string_lossy())
            }
            _ => "/sys/fs/cgroup".to_string(),
        };
        let procs = fs::read_to_string(d.path(&format!("{inside}/cgroup.procs")))
            .unwrap_or_else(|e| panic!("{inside}/cgroup.procs inside: {e}"));
        let procs: BTreeSet<i32> = procs
            .split_whitespace()
            .filter_map(|p| p.parse().ok())
            .collect();
        assert_eq!(
            procs,
            BTreeSet::from([d.pid]),
            "{inside} inside is not the container's own cgroup {}",
            dir.display()
        );
    }
    let out = ok(
        &env,
        &[
            "exec",
            &id,
            "sh",
            "-c",
            "for d in /sys/fs/cgroup /sys/fs/cgroup/*/; do mkdir $d/w 2>/dev/null && echo WROTE $d; done; true",
        ],
    );
    assert!(
        !out.contains("WROTE"),
        "cgroup mount writable inside: {out}"
    );
}

/// `delete` of a container whose process has exited removes its cgroups
/// without a kill (its pid namespace died with its init, nothing can be
/// left), yet a process moved into one of them from outside (here into a
/// single hierarchy, which the v2 `cgroup.kill` of a hybrid host does not
/// reach) is still killed and every cgroup dir removed.
#[test]
fn delete_after_exit_kills_a_process_moved_into_the_cgroup() {
    let env = Env::new();
    let id = env.id("stray");
    let d = run_d(&env, &id, &["sleep", "1000"]);
    let dirs = container_dirs(d.pid);
    assert!(!dirs.is_empty(), "the container has no cgroup of its own");
    let mut stray = Command::new("sleep")
        .arg("1000")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn the stray process");
    let procs = dirs[0].join("cgroup.procs");
    fs::write(&procs, stray.id().to_string())
        .unwrap_or_else(|e| panic!("move the stray into {}: {e}", procs.display()));
    ok(&env, &["kill", &id, "KILL"]);
    env.wait_status(&id, "stopped");
    assert!(
        alive(stray.id() as i32),
        "the stray died with the container"
    );
    ok(&env, &["delete", &id]);
    let killed = poll(T, || matches!(stray.try_wait(), Ok(Some(_))));
    if !killed {
        let _ = stray.kill();
        let _ = stray.wait();
    }
    assert!(killed, "delete left the stray process alive");
    assert_no_cgroup_left(&id, &dirs);
}

/// The v1 `cgroup` mount is planned from the mountinfo the parent read
/// for its cgroup probe, not from a second reading in the child on its
/// way to execve: one create reads /proc/self/mountinfo once, in any
/// process. (What the mount shows is checked above.)
#[test]
fn one_create_reads_mountinfo_once() {
    let env = Env::new();
    let id = env.id("mi");
    let text = env.strace_run(&id, "open,openat,openat2");
    let reads: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("/mountinfo\""))
        .collect();
    assert_eq!(
        reads.len(),
        1,
        "mountinfo read {} times: {reads:#?}",
        reads.len()
    );
}
