//! Privileges of the container process: rlimits, user and groups, the five
//! capability sets, no_new_privs. Called by the child in a fixed order
//! (see `process::child`); nothing here may run before the root is entered.
//! Seccomp, compiled in the parent and loaded last, lives in [`seccomp`];
//! the LSM exec labels in [`apparmor`] and [`selinux`].

pub mod apparmor;
pub mod exeseal;
mod procattr;
pub mod seccomp;
pub mod selinux;

use std::collections::HashSet;

use crate::spec::types::{LinuxCapabilities, PosixRlimit, PosixRlimitType, User};
use anyhow::{bail, Context, Result};
use caps::{CapSet, CapsHashSet};
use nix::unistd::{setgroups, setresgid, setresuid, Gid, Uid};

use crate::sys;

/// libc resource number and runc's name for a spec rlimit type.
pub fn rlimit_resource(typ: PosixRlimitType) -> (libc::__rlimit_resource_t, &'static str) {
    use PosixRlimitType::*;
    match typ {
        RlimitCpu => (libc::RLIMIT_CPU, "RLIMIT_CPU"),
        RlimitFsize => (libc::RLIMIT_FSIZE, "RLIMIT_FSIZE"),
        RlimitData => (libc::RLIMIT_DATA, "RLIMIT_DATA"),
        RlimitStack => (libc::RLIMIT_STACK, "RLIMIT_STACK"),
        RlimitCore => (libc::RLIMIT_CORE, "RLIMIT_CORE"),
        RlimitRss => (libc::RLIMIT_RSS, "RLIMIT_RSS"),
        RlimitNproc => (libc::RLIMIT_NPROC, "RLIMIT_NPROC"),
        RlimitNofile => (libc::RLIMIT_NOFILE, "RLIMIT_NOFILE"),
        RlimitMemlock => (libc::RLIMIT_MEMLOCK, "RLIMIT_MEMLOCK"),
        RlimitAs => (libc::RLIMIT_AS, "RLIMIT_AS"),
        RlimitLocks => (libc::RLIMIT_LOCKS, "RLIMIT_LOCKS"),
        RlimitSigpending => (libc::RLIMIT_SIGPENDING, "RLIMIT_SIGPENDING"),
        RlimitMsgqueue => (libc::RLIMIT_MSGQUEUE, "RLIMIT_MSGQUEUE"),
        RlimitNice => (libc::RLIMIT_NICE, "RLIMIT_NICE"),
        RlimitRtprio => (libc::RLIMIT_RTPRIO, "RLIMIT_RTPRIO"),
        RlimitRttime => (libc::RLIMIT_RTTIME, "RLIMIT_RTTIME"),
    }
}

/// The caller's current (soft, hard) limit.
pub fn current_rlimit(resource: libc::__rlimit_resource_t) -> Result<(u64, u64)> {
    let mut cur = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we own.
    if unsafe { libc::getrlimit(resource, &mut cur) } != 0 {
        return Err(std::io::Error::last_os_error()).context("getrlimit");
    }
    Ok((cur.rlim_cur, cur.rlim_max))
}

/// Apply `process.rlimits`. Raising a hard limit is refused on these hosts even
/// for root, so that case gets a message naming the limit and the ceiling.
pub fn set_rlimits(rlimits: &[PosixRlimit]) -> Result<()> {
    for rl in rlimits {
        let (resource, name) = rlimit_resource(rl.typ());
        let want = libc::rlimit {
            rlim_cur: rl.soft(),
            rlim_max: rl.hard(),
        };
        // SAFETY: setrlimit reads the struct we own.
        if unsafe { libc::setrlimit(resource, &want) } != 0 {
            let err = std::io::Error::last_os_error();
            let (_, hard) = current_rlimit(resource)?;
            if err.raw_os_error() == Some(libc::EPERM) && rl.hard() > hard {
                bail!(
                    "rlimit {name} {} exceeds the hard limit {hard} of the caller",
                    rl.hard()
                );
            }
            return Err(err)
                .with_context(|| format!("set rlimit {name} to {}/{}", rl.soft(), rl.hard()));
        }
    }
    Ok(())
}

/// Switch to the spec's user, keeping capabilities so that `set_capabilities`
/// can then decide exactly which ones survive.
pub fn set_user(user: &User) -> Result<()> {
    let uid = Uid::from_raw(user.uid());
    let gid = Gid::from_raw(user.gid());
    let groups: Vec<Gid> = user
        .additional_gids()
        .as_deref()
        .unwrap_or_default()
        .iter()
        .map(|g| Gid::from_raw(*g))
        .collect();
    // A rootless user namespace denies setgroups(2): the kernel keeps the
    // caller's groups, and only an empty list can be honoured as asked.
    if crate::namespaces::setgroups_denied() {
        if !groups.is_empty() {
            bail!("process.user.additionalGids: setgroups is denied in this (rootless) user namespace");
        }
    } else {
        setgroups(&groups).context("setgroups for process.user.additionalGids")?;
    }
    setresgid(gid, gid, gid).with_context(|| format!("setgid {gid}"))?;
    sys::set_keep_caps(true)?;
    setresuid(uid, uid, uid).with_context(|| format!("setuid {uid}"))?;
    sys::set_keep_caps(false)
}

fn to_caps(set: &Option<crate::spec::types::Capabilities>) -> Result<CapsHashSet> {
    Ok(set.clone().unwrap_or_default())
}

/// Shrink the bounding set. This needs CAP_SETPCAP in the effective set, so it
/// runs before `set_user`, which clears the effective set of a non-root user.
pub fn drop_bounding(c: Option<&LinuxCapabilities>) -> Result<()> {
    let bounding = match c {
        Some(c) => to_caps(c.bounding()).context("process.capabilities.bounding")?,
        None => CapsHashSet::new(),
    };
    // Every capability berth knows, minus the kept ones, dropped blind: one
    // prctl each, without first probing which ones this kernel supports.
    for cap in caps::all().difference(&bounding) {
        sys::capbset_drop(cap.index())
            .with_context(|| format!("drop {cap} from the bounding set"))?;
    }
    Ok(())
}

/// Apply the other four sets, after `set_user`: effective, permitted and
/// inheritable in one capset, then ambient, which must be a subset of
/// permitted and inheritable.
pub fn set_capabilities(c: &LinuxCapabilities) -> Result<()> {
    let effective = to_caps(c.effective()).context("process.capabilities.effective")?;
    let permitted = to_caps(c.permitted()).context("process.capabilities.permitted")?;
    let inheritable = to_caps(c.inheritable()).context("process.capabilities.inheritable")?;
    let ambient = to_caps(c.ambient()).context("process.capabilities.ambient")?;
    let mask = |set: &CapsHashSet| set.iter().fold(0u64, |m, c| m | c.bitmask());
    sys::capset(mask(&effective), mask(&permitted), mask(&inheritable))
        .context("set the effective, permitted and inheritable capabilities")?;
    caps::clear(None, CapSet::Ambient).context("clear ambient capabilities")?;
    // The kernel only raises an ambient capability that is both permitted and
    // inheritable. runc's default spec lists ambient ones without an
    // inheritable set, and runc skips those silently; so do we (with a debug
    // line), rather than make the inheritable set bigger than the config says.
    for cap in &ambient {
        if !(permitted.contains(cap) && inheritable.contains(cap)) {
            crate::logging::debug(&format!(
                "skip ambient capability {cap}: not in both the permitted and inheritable sets"
            ));
            continue;
        }
        caps::raise(None, CapSet::Ambient, *cap)
            .with_context(|| format!("raise ambient capability {cap}"))?;
    }
    Ok(())
}

/// Without a capabilities section the process keeps nothing at all.
pub fn drop_all_capabilities() -> Result<()> {
    set_capabilities(&LinuxCapabilities::default().set_all_empty())
}

trait EmptyCaps {
    fn set_all_empty(self) -> Self;
}

impl EmptyCaps for LinuxCapabilities {
    fn set_all_empty(mut self) -> Self {
        let empty = Some(HashSet::new());
        self.bounding = empty.clone();
        self.effective = empty.clone();
        self.permitted = empty.clone();
        self.inheritable = empty.clone();
        self.ambient = empty;
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use caps::Capability as Cap;

    #[test]
    fn spec_capabilities_map_to_kernel_ones() {
        let c: LinuxCapabilities = serde_json::from_str(
            r#"{"bounding":["CAP_KILL","CAP_NET_BIND_SERVICE","CAP_AUDIT_WRITE"]}"#,
        )
        .expect("caps");
        let set = to_caps(c.bounding()).expect("known");
        assert!(set.contains(&Cap::CAP_KILL) && set.contains(&Cap::CAP_AUDIT_WRITE));
        assert_eq!(set.len(), 3);
    }

    #[test]
    fn rlimit_names() {
        assert_eq!(
            rlimit_resource(PosixRlimitType::RlimitNofile),
            (libc::RLIMIT_NOFILE, "RLIMIT_NOFILE")
        );
    }
}
