//! `process`: what the container runs, as whom, with which limits.

use std::collections::HashSet;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::spec_struct;

/// Capability names are the kernel's (`CAP_KILL`); the caps crate's enum
/// spells its variants the same way.
pub type Capability = caps::Capability;
pub type Capabilities = HashSet<Capability>;

spec_struct! {
    /// `process`.
    #[serde(rename_all = "camelCase")]
    pub struct Process {
        opt copy terminal: bool,
        opt copy console_size: ConsoleSize,
        get user: User,
        opt get args: Vec<String>,
        opt get command_line: String,
        opt get env: Vec<String>,
        get cwd: PathBuf,
        opt get capabilities: LinuxCapabilities,
        opt get rlimits: Vec<PosixRlimit>,
        opt copy no_new_privileges: bool,
        opt get apparmor_profile: String,
        opt copy oom_score_adj: i32,
        opt get selinux_label: String,
        /// Refused (spec::unsupported): kept as given.
        opt get io_priority: Value,
        opt get scheduler: Value,
        #[serde(rename = "execCPUAffinity")]
        opt get exec_cpu_affinity: Value,
    }
}

spec_struct! {
    /// `process.consoleSize`.
    #[derive(Copy)]
    pub struct ConsoleSize {
        #[serde(default)]
        copy height: u64,
        #[serde(default)]
        copy width: u64,
    }
}

spec_struct! {
    /// `process.user`.
    #[serde(rename_all = "camelCase")]
    pub struct User {
        #[serde(default)]
        copy uid: u32,
        #[serde(default)]
        copy gid: u32,
        opt copy umask: u32,
        opt get additional_gids: Vec<u32>,
        opt get username: String,
    }
}

spec_struct! {
    /// `process.capabilities`: the five sets.
    pub struct LinuxCapabilities {
        opt get bounding: Capabilities,
        opt get effective: Capabilities,
        opt get inheritable: Capabilities,
        opt get permitted: Capabilities,
        opt get ambient: Capabilities,
    }
}

spec_struct! {
    /// One of `process.rlimits`.
    #[derive(Copy)]
    pub struct PosixRlimit {
        #[serde(rename = "type")]
        copy typ: PosixRlimitType,
        #[serde(default)]
        copy hard: u64,
        #[serde(default)]
        copy soft: u64,
    }
}

/// `process.rlimits[].type`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
// Variants spell the JSON names (serde renames them mechanically).
#[allow(clippy::enum_variant_names)]
pub enum PosixRlimitType {
    RlimitCpu,
    RlimitFsize,
    RlimitData,
    RlimitStack,
    RlimitCore,
    RlimitRss,
    RlimitNproc,
    #[default]
    RlimitNofile,
    RlimitMemlock,
    RlimitAs,
    RlimitLocks,
    RlimitSigpending,
    RlimitMsgqueue,
    RlimitNice,
    RlimitRtprio,
    RlimitRttime,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn process_reads_every_linux_field() {
        let p: Process = serde_json::from_str(
            r#"{"terminal": true, "consoleSize": {"height": 24, "width": 80},
                "user": {"uid": 1, "gid": 2, "umask": 18, "additionalGids": [5]},
                "args": ["sh"], "env": ["A=b"], "cwd": "/",
                "capabilities": {"bounding": ["CAP_KILL"], "ambient": []},
                "rlimits": [{"type": "RLIMIT_RTTIME", "hard": 2, "soft": 1}],
                "noNewPrivileges": true, "apparmorProfile": "p", "oomScoreAdj": -5,
                "selinuxLabel": "l", "execCPUAffinity": {"initial": "0"}}"#,
        )
        .expect("parse");
        assert_eq!(p.terminal(), Some(true));
        assert_eq!(
            p.console_size().map(|c| (c.height(), c.width())),
            Some((24, 80))
        );
        assert_eq!(
            (p.user().uid(), p.user().gid(), p.user().umask()),
            (1, 2, Some(18))
        );
        let caps = p.capabilities().as_ref().expect("caps");
        assert!(caps
            .bounding()
            .as_ref()
            .expect("bounding")
            .contains(&Capability::CAP_KILL));
        let rl = p.rlimits().as_ref().expect("rlimits")[0];
        assert_eq!(
            (rl.typ(), rl.hard(), rl.soft()),
            (PosixRlimitType::RlimitRttime, 2, 1)
        );
        assert_eq!(p.oom_score_adj(), Some(-5));
        assert!(p.exec_cpu_affinity().is_some());
    }

    #[test]
    fn unknown_names_are_errors() {
        assert!(serde_json::from_str::<PosixRlimitType>(r#""RLIMIT_FOO""#).is_err());
        assert!(serde_json::from_str::<Capability>(r#""CAP_FOO""#).is_err());
    }
}
