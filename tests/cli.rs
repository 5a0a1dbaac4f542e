//! The command line as orchestrators and people see it: version, help,
//! runc-style JSON log lines, `spec` and `features`.

mod common;

use common::{stderr, stdout, Env};

#[test]
fn version_names_the_runtime_spec() {
    let env = Env::new();
    let out = env.ok(&["--version"]);
    assert!(out.starts_with("berth "), "{out}");
    assert!(out.contains("spec: 1."), "{out}");
}

#[test]
fn every_subcommand_help_has_an_example() {
    let env = Env::new();
    let top = env.ok(&["--help"]);
    assert!(top.contains("Example: berth "), "{top}");
    for cmd in [
        "create", "start", "run", "state", "list", "kill", "delete", "diff", "spec", "features",
    ] {
        let help = env.ok(&[cmd, "--help"]);
        assert!(help.contains("Example: berth "), "{cmd}: {help}");
    }
}

#[test]
fn runc_flags_are_accepted() {
    let env = Env::new();
    let id = env.id("flags");
    let bundle = env.bundle.to_string_lossy().into_owned();
    let pidfile = env.tmp.path().join("pid");
    let pidfile_s = pidfile.to_string_lossy().into_owned();
    env.ok(&[
        "--debug",
        "--systemd-cgroup=false",
        "create",
        "--bundle",
        &bundle,
        "--pid-file",
        &pidfile_s,
        "--no-pivot",
        "--no-new-keyring",
        "--preserve-fds",
        "0",
        &id,
    ]);
    let pid: i32 = std::fs::read_to_string(&pidfile)
        .expect("pid file")
        .trim()
        .parse()
        .expect("pid");
    assert_eq!(pid, env.pid(&id));
    env.ok(&["delete", &id]);
}

#[test]
fn json_log_lines_for_errors() {
    let env = Env::new();
    let log = env.tmp.path().join("log.json");
    let log_s = log.to_string_lossy().into_owned();
    let out = env.berth(&["--log", &log_s, "--log-format", "json", "state", "nope"]);
    assert_eq!(out.status.code(), Some(1));
    let text = std::fs::read_to_string(&log).expect("log written");
    let line: serde_json::Value =
        serde_json::from_str(text.lines().last().expect("a line")).expect("json line");
    assert_eq!(line["level"], "error");
    assert!(
        line["msg"].as_str().is_some_and(|m| m.contains("nope")),
        "{line}"
    );
    let time = line["time"].as_str().expect("time");
    assert!(
        time.len() >= 20 && time.contains('T') && time.ends_with('Z'),
        "{time}"
    );
    // The person at the terminal still sees the one line.
    assert!(stderr(&out).starts_with("berth: "), "{}", stderr(&out));
}

#[test]
fn spec_writes_a_config_that_runs() {
    let env = Env::new();
    let dir = env.tmp.path().join("fresh");
    std::fs::create_dir_all(&dir).expect("mkdir");
    let dir_s = dir.to_string_lossy().into_owned();
    env.ok(&["spec", "-b", &dir_s]);
    let cfg: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("config.json")).expect("written"))
            .expect("json");
    assert_eq!(cfg["root"]["path"], "rootfs");
    assert!(cfg["ociVersion"]
        .as_str()
        .is_some_and(|v| v.starts_with("1.")));
    // A second spec refuses to overwrite.
    let out = env.berth(&["spec", "-b", &dir_s]);
    assert!(!out.status.success());
    // The default spec runs, given a rootfs (terminal off: no tty here).
    std::os::unix::fs::symlink(common::busybox_rootfs(), dir.join("rootfs")).expect("link");
    let mut cfg = cfg;
    cfg["process"]["terminal"] = false.into();
    std::fs::write(
        dir.join("config.json"),
        serde_json::to_vec(&cfg).expect("j"),
    )
    .expect("w");
    let id = env.id("fromspec");
    let out = env.berth(&["run", "-b", &dir_s, &id, "echo", "ok"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "ok\n");

    let rl = env.tmp.path().join("rootless");
    std::fs::create_dir_all(&rl).expect("mkdir");
    env.ok(&["spec", "--rootless", "-b", &rl.to_string_lossy()]);
    let cfg: serde_json::Value =
        serde_json::from_slice(&std::fs::read(rl.join("config.json")).expect("written"))
            .expect("json");
    let ns = cfg["linux"]["namespaces"].as_array().expect("namespaces");
    assert!(ns.iter().any(|n| n["type"] == "user"), "{cfg}");
}

#[test]
fn features_json() {
    let env = Env::new();
    let v: serde_json::Value = serde_json::from_str(&env.ok(&["features"])).expect("json");
    assert!(v["ociVersionMin"].is_string() && v["ociVersionMax"].is_string());
    let ns: Vec<&str> = v["linux"]["namespaces"]
        .as_array()
        .expect("namespaces")
        .iter()
        .filter_map(|n| n.as_str())
        .collect();
    for want in ["pid", "network", "uts", "ipc", "mount", "cgroup"] {
        assert!(ns.contains(&want), "{want} missing from {ns:?}");
    }
    assert!(v["mountOptions"].as_array().is_some_and(|m| !m.is_empty()));
}

#[test]
fn env_and_command_overrides() {
    let env = Env::new();
    let id = env.id("envs");
    let bundle = env.bundle.to_string_lossy().into_owned();
    let out = env.berth(&[
        "run",
        "-e",
        "FOO=bar",
        "-e",
        "TERM=dumb",
        "-b",
        &bundle,
        &id,
        "env",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().filter(|l| !l.is_empty()).collect();
    assert!(lines.contains(&"FOO=bar"), "{text}");
    assert!(lines.contains(&"TERM=dumb"), "{text}");
    assert!(!lines.contains(&"TERM=xterm"), "{text}");
    // Exactly process.env: nothing of berth's own environment leaks in.
    assert!(!lines.iter().any(|l| l.starts_with("CARGO")), "{text}");
}

#[test]
fn closed_stdio_becomes_dev_null_for_berth_and_its_container() {
    // berth skips std's runtime start-up, so it must reopen closed 0-2
    // itself: otherwise its own first files take those numbers and the
    // container starts with them closed (or holding berth's files).
    let env = Env::new();
    let id = env.id("nostdio");
    // A character device each (berth's /dev/null): not closed, no file of berth's.
    let script = "for fd in 0 1 2; do [ -c /proc/self/fd/$fd ] || exit 9; done";
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg("exec \"$@\" <&- >&- 2>&-")
        .arg("sh")
        .arg(common::BERTH)
        .arg("--root")
        .arg(&env.root)
        .arg("--layer-root")
        .arg(&env.layer_root)
        .args(["run", "-b"])
        .arg(&env.bundle)
        .args([id.as_str(), "sh", "-c", script])
        .output()
        .expect("spawn sh");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    env.assert_gone(&id);
}

#[test]
fn global_flags_go_before_the_subcommand_as_in_runc() {
    let env = Env::new();
    let out = std::process::Command::new(common::BERTH)
        .args(["state", "--root"])
        .arg(&env.root)
        .arg("nope")
        .output()
        .expect("spawn berth");
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("unexpected argument '--root'"),
        "{}",
        stderr(&out)
    );
    // Before it, the same flag is taken.
    let out = env.berth(&["state", "nope"]);
    assert!(
        stderr(&out).contains("nope does not exist"),
        "{}",
        stderr(&out)
    );
}

/// glibc's start-up CPU probe (~90 CPUIDs on Intel, each a VM exit) is
/// answered by berth's own handler where CPUID can be made to fault: a
/// few faults, then CPUID works again and SIGSEGV is back at its default
/// before `main` opens anything. Where it cannot, nothing faults.
#[test]
fn glibc_start_up_asks_the_cpu_only_a_few_times() {
    let env = Env::new();
    let log = env.tmp.path().join("strace-cpuid");
    let log_arg = log.to_string_lossy().into_owned();
    let out = env.wrapped(&["strace", "-qq", "-o", &log_arg], &["list"]);
    assert!(out.status.success(), "strace berth list: {}", stderr(&out));
    let text = std::fs::read_to_string(&log).expect("read the strace log");
    let lines: Vec<&str> = text.lines().collect();
    let faults = |from: usize, to: usize| {
        lines[from..to]
            .iter()
            .filter(|l| l.starts_with("--- SIGSEGV"))
            .count()
    };
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").expect("cpuinfo");
    if !cpuinfo.split_whitespace().any(|w| w == "cpuid_fault") {
        assert_eq!(faults(0, lines.len()), 0, "{text}");
        return;
    }
    let at = |what: &str| {
        lines
            .iter()
            .position(|l| l.starts_with(what) && l.ends_with("= 0"))
            .unwrap_or_else(|| panic!("no {what} in:\n{text}"))
    };
    let on = at("arch_prctl(ARCH_SET_CPUID, 0)");
    let off = at("arch_prctl(ARCH_SET_CPUID, 0x1)");
    let default = at("rt_sigaction(SIGSEGV, {sa_handler=SIG_DFL");
    let first_open = lines
        .iter()
        .position(|l| l.starts_with("openat("))
        .unwrap_or(lines.len());
    assert!(on < off && off < default && default < first_open, "{text}");
    let n = faults(on, off);
    assert!((1..=8).contains(&n), "{n} CPUIDs faulted:\n{text}");
    assert_eq!(faults(off, lines.len()), 0, "{text}");
}

/// Started with SIGSEGV blocked, a fault would kill berth instead of
/// reaching its handler: CPUID is then left alone, and berth works.
#[test]
fn a_berth_started_with_sigsegv_blocked_leaves_cpuid_alone() {
    use nix::sys::signal::{sigprocmask, SigSet, SigmaskHow, Signal};
    use std::os::unix::process::CommandExt;
    let env = Env::new();
    let mut c = env.cmd();
    c.arg("list");
    // SAFETY: only changes the signal mask of the child before its exec.
    unsafe {
        c.pre_exec(|| {
            let mut set = SigSet::empty();
            set.add(Signal::SIGSEGV);
            sigprocmask(SigmaskHow::SIG_BLOCK, Some(&set), None).map_err(std::io::Error::from)
        });
    }
    let out = env.output_of(&mut c);
    assert_listed(&out);
}

/// Where CPUID cannot be made to fault (`arch_prctl(ARCH_SET_CPUID)`
/// refused, as under qemu's TCG), berth undoes its handler before glibc has
/// even started, and runs as usual. strace makes the first arch_prctl, the
/// one that asks for the faulting, fail with ENODEV.
#[test]
fn without_cpuid_faulting_berth_starts_as_usual() {
    let env = Env::new();
    let out = env.wrapped(
        &[
            "timeout",
            "20",
            "strace",
            "-qq",
            "-o",
            "/dev/null",
            "-e",
            "trace=arch_prctl",
            "-e",
            "inject=arch_prctl:error=ENODEV:when=1",
        ],
        &["list"],
    );
    assert_listed(&out);
}

/// `berth list` ran and printed its table.
fn assert_listed(out: &std::process::Output) {
    assert!(
        out.status.success(),
        "berth list: {:?} {}",
        out.status,
        stderr(out)
    );
    assert!(stdout(out).starts_with("ID "), "{}", stdout(out));
}
