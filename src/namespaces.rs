//! Namespaces: which are created by the clone, which are joined by `path`,
//! and the few that need care about *when* (cgroup after the cgroup move, pid
//! and time before the clone because they apply to children only). User
//! namespaces are refused by validation until the security work lands.

use std::fs::File;
use std::os::fd::AsFd;
use std::path::PathBuf;

use anyhow::{Context, Result};
use nix::sched::{setns, unshare, CloneFlags};
use oci_spec::runtime::{LinuxNamespaceType, Spec};

/// What to do with namespaces, decided once from the spec.
#[derive(Debug, Default, Clone)]
pub struct Plan {
    /// New namespaces created by the clone itself.
    pub clone_flags: u64,
    /// Create a cgroup namespace after the process is in its cgroup.
    pub new_cgroup: bool,
    /// Create a time namespace (unshared by the parent before the clone).
    pub new_time: bool,
    /// A new network namespace: its loopback is brought up.
    pub new_net: bool,
    /// A new uts namespace: hostname/domainname may be set.
    pub new_uts: bool,
    /// Namespaces the parent joins before the clone (pid, time: they take
    /// effect for children only).
    pub parent_joins: Vec<(CloneFlags, PathBuf)>,
    /// Namespaces the child joins, in spec order.
    pub child_joins: Vec<(CloneFlags, PathBuf)>,
}

pub fn plan(spec: &Spec) -> Plan {
    let mut p = Plan::default();
    let namespaces = spec
        .linux()
        .as_ref()
        .and_then(|l| l.namespaces().clone())
        .unwrap_or_default();
    for ns in namespaces {
        let typ = ns.typ();
        let flag = CloneFlags::from_bits_retain(typ as i32);
        match ns.path() {
            Some(path) if matches!(typ, LinuxNamespaceType::Pid | LinuxNamespaceType::Time) => {
                p.parent_joins.push((flag, path.clone()))
            }
            Some(path) => p.child_joins.push((flag, path.clone())),
            None => match typ {
                LinuxNamespaceType::Cgroup => p.new_cgroup = true,
                LinuxNamespaceType::Time => p.new_time = true,
                _ => {
                    p.clone_flags |= typ as u64;
                    p.new_net |= typ == LinuxNamespaceType::Network;
                    p.new_uts |= typ == LinuxNamespaceType::Uts;
                }
            },
        }
    }
    p
}

/// Open every namespace file first (a joined mount namespace would hide the
/// later paths), then setns into each.
pub fn join(joins: &[(CloneFlags, PathBuf)]) -> Result<()> {
    let files = joins
        .iter()
        .map(|(flag, path)| {
            File::open(path)
                .with_context(|| format!("open namespace {}", path.display()))
                .map(|f| (f, *flag, path))
        })
        .collect::<Result<Vec<_>>>()?;
    for (file, flag, path) in &files {
        setns(file.as_fd(), *flag).with_context(|| format!("join namespace {}", path.display()))?;
    }
    Ok(())
}

/// Parent side, before the clone: join or create the namespaces that only
/// apply to children (pid, time).
pub fn prepare_parent(plan: &Plan) -> Result<()> {
    join(&plan.parent_joins)?;
    if plan.new_time {
        unshare(CloneFlags::from_bits_retain(libc::CLONE_NEWTIME))
            .context("create time namespace")?;
    }
    Ok(())
}

/// Child side, after the cgroup move: join namespaces by path, then create
/// the cgroup namespace so its root is the container's own cgroup.
pub fn enter_child(plan: &Plan) -> Result<()> {
    join(&plan.child_joins)?;
    if plan.new_cgroup {
        unshare(CloneFlags::CLONE_NEWCGROUP).context("create cgroup namespace")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec_with(ns: &str) -> Spec {
        let json = format!(
            r#"{{"ociVersion":"1.0.2","root":{{"path":"rootfs"}},"linux":{{"namespaces":{ns}}}}}"#
        );
        serde_json::from_str(&json).expect("spec")
    }

    #[test]
    fn plan_splits_new_and_joined() {
        let s = spec_with(
            r#"[{"type":"pid"},{"type":"mount"},{"type":"network","path":"/proc/1/ns/net"},
                {"type":"cgroup"},{"type":"uts"},{"type":"time"}]"#,
        );
        let p = plan(&s);
        assert_eq!(
            p.clone_flags,
            (libc::CLONE_NEWPID | libc::CLONE_NEWNS | libc::CLONE_NEWUTS) as u64
        );
        assert!(p.new_cgroup && p.new_time && p.new_uts && !p.new_net);
        assert_eq!(p.child_joins.len(), 1);
        assert_eq!(p.child_joins[0].0, CloneFlags::CLONE_NEWNET);
        assert!(p.parent_joins.is_empty());
    }

    #[test]
    fn pid_path_is_joined_by_parent() {
        let p = plan(&spec_with(r#"[{"type":"pid","path":"/proc/1/ns/pid"}]"#));
        assert_eq!(p.parent_joins.len(), 1);
        assert_eq!(p.clone_flags, 0);
    }
}
