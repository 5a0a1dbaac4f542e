//! `exec`: build the process (from `--process FILE`, or the container's own
//! process with runc's flags applied) and run it inside the container.

use std::collections::HashSet;
use std::path::Path;

use crate::spec::types::{Capability, LinuxCapabilities, Process};
use anyhow::{bail, Context, Result};

use super::load;
use crate::cli::ExecArgs;
use crate::process::exec::{exec, ExecOptions};
use crate::state::Status;
use crate::tty::{self, ConsoleTarget};

pub fn run(root: &Path, args: &ExecArgs) -> Result<u8> {
    let (st, dir) = load(root, &args.id)?;
    match st.status(&dir) {
        Status::Created | Status::Running => {}
        Status::Paused if args.ignore_paused => {}
        Status::Paused => bail!("cannot exec in a paused container {}", args.id),
        other => bail!("cannot exec in a {other} container {}", args.id),
    }
    if args.cgroup.is_some() {
        bail!("--cgroup is not supported yet");
    }
    let mut process = build_process(args, st.process.clone().unwrap_or_default())?;
    // runc: the exec'd process keeps the container's profile unless --apparmor
    // names another one.
    if let Some(profile) = &args.apparmor {
        process.apparmor_profile = Some(profile.clone());
    }
    if let Some(profile) = process.apparmor_profile() {
        crate::security::apparmor::check(profile)?;
    }
    // Likewise the SELinux label and --process-label.
    if let Some(label) = &args.process_label {
        crate::security::selinux::check("--process-label", label)?;
        process.selinux_label = Some(label.clone());
    } else if let Some(label) = process.selinux_label() {
        crate::security::selinux::check("process.selinuxLabel", label)?;
    }
    let console = console_target(
        process.terminal().unwrap_or(false),
        args.console_socket.as_deref(),
        args.detach,
    )?;
    exec(
        &st,
        &process,
        &ExecOptions {
            preserve_fds: args.preserve_fds,
            pid_file: args.pid_file.as_deref(),
            detach: args.detach,
            console,
            seccomp_cache: root.join(crate::security::seccomp::CACHE_DIR),
        },
    )
}

/// Where a terminal's master goes, with runc's rules for `-t`,
/// `--console-socket` and `-d`.
pub fn console_target(
    terminal: bool,
    socket: Option<&Path>,
    detach: bool,
) -> Result<Option<ConsoleTarget>> {
    match (terminal, socket) {
        (false, None) => Ok(None),
        (false, Some(_)) => bail!("--console-socket needs a terminal (--tty or process.terminal)"),
        (true, Some(path)) => Ok(Some(ConsoleTarget::Socket(tty::connect_console_socket(
            path,
        )?))),
        (true, None) if detach => {
            bail!("cannot allocate tty if berth will detach without setting console socket")
        }
        (true, None) => Ok(Some(ConsoleTarget::Parent)),
    }
}

/// runc's rules: `--process` replaces everything; otherwise start from the
/// container's process and apply the flags.
fn build_process(args: &ExecArgs, base: Process) -> Result<Process> {
    if let Some(path) = &args.process {
        let data = std::fs::read(path).with_context(|| format!("read {}", path.display()))?;
        let p: Process = serde_json::from_slice(&data)
            .with_context(|| format!("parse process {}", path.display()))?;
        if p.args().as_ref().is_none_or(|a| a.is_empty()) {
            bail!("{}: args must not be empty", path.display());
        }
        return Ok(p);
    }
    if args.command.is_empty() {
        bail!("exec needs a command or --process FILE");
    }
    let mut p = base;
    p.args = Some(args.command.clone());
    p.terminal = Some(args.tty);
    if let Some(cwd) = &args.cwd {
        if !cwd.is_absolute() {
            bail!("--cwd {} must be an absolute path", cwd.display());
        }
        p.cwd = cwd.clone();
    }
    if !args.env.is_empty() {
        let mut env = p.env().clone().unwrap_or_default();
        for kv in &args.env {
            if !kv.contains('=') {
                bail!("--env {kv:?} must be KEY=VAL");
            }
            let key = kv.split('=').next().unwrap_or(kv);
            env.retain(|e| e.split('=').next() != Some(key));
            env.push(kv.clone());
        }
        p.env = Some(env);
    }
    let mut user = p.user().clone();
    if let Some(spec) = &args.user {
        let (uid, gid) = spec.split_once(':').unwrap_or((spec, ""));
        user.uid = uid
            .parse()
            .with_context(|| format!("--user {spec:?}: bad uid"))?;
        if !gid.is_empty() {
            user.gid = gid
                .parse()
                .with_context(|| format!("--user {spec:?}: bad gid"))?;
        }
    }
    if !args.additional_gids.is_empty() {
        user.additional_gids = Some(args.additional_gids.clone());
    }
    p.user = user;
    if !args.caps.is_empty() {
        let mut caps = p.capabilities().clone().unwrap_or_default();
        for name in &args.caps {
            let cap: Capability = crate::spec::convert(name)
                .map_err(|_| anyhow::anyhow!("--cap: unknown capability {name:?}"))?;
            add_cap(&mut caps, cap);
        }
        p.capabilities = Some(caps);
    }
    if args.no_new_privs {
        p.no_new_privileges = Some(true);
    }
    Ok(p)
}

/// runc adds an `--cap` to the bounding, effective, permitted and ambient sets
/// (ambient needs it inheritable as well).
fn add_cap(caps: &mut LinuxCapabilities, cap: Capability) {
    let add = |set: &Option<HashSet<Capability>>| {
        let mut s = set.clone().unwrap_or_default();
        s.insert(cap);
        Some(s)
    };
    // Never inheritable (nor ambient, which needs it): with an inheritable
    // capability a file with `+ei` capabilities would gain it (CVE-2022-29162).
    caps.bounding = add(caps.bounding());
    caps.effective = add(caps.effective());
    caps.permitted = add(caps.permitted());
}
