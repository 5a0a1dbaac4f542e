//! `linux.seccomp`: the syscall filter, as runtime-spec 1.2 names it.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::spec_struct;

spec_struct! {
    /// `linux.seccomp`.
    #[serde(rename_all = "camelCase")]
    pub struct LinuxSeccomp {
        copy default_action: LinuxSeccompAction,
        opt copy default_errno_ret: u32,
        opt get architectures: Vec<Arch>,
        opt get flags: Vec<LinuxSeccompFilterFlag>,
        opt get listener_path: PathBuf,
        opt get listener_metadata: String,
        opt get syscalls: Vec<LinuxSyscall>,
    }
}

spec_struct! {
    /// One rule of `linux.seccomp.syscalls`.
    #[serde(rename_all = "camelCase")]
    pub struct LinuxSyscall {
        get names: Vec<String>,
        copy action: LinuxSeccompAction,
        opt copy errno_ret: u32,
        opt get args: Vec<LinuxSeccompArg>,
    }
}

spec_struct! {
    /// An argument condition of a rule.
    #[derive(Copy)]
    #[serde(rename_all = "camelCase")]
    pub struct LinuxSeccompArg {
        copy index: usize,
        copy value: u64,
        opt copy value_two: u64,
        copy op: LinuxSeccompOperator,
    }
}

/// A filter action.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
// Variants spell the JSON names (serde renames them mechanically).
#[allow(clippy::enum_variant_names)]
pub enum LinuxSeccompAction {
    ScmpActKill,
    ScmpActKillThread,
    ScmpActKillProcess,
    ScmpActTrap,
    ScmpActErrno,
    ScmpActNotify,
    ScmpActTrace,
    ScmpActLog,
    #[default]
    ScmpActAllow,
}

/// An argument comparison.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
// Variants spell the JSON names (serde renames them mechanically).
#[allow(clippy::enum_variant_names)]
pub enum LinuxSeccompOperator {
    ScmpCmpNe,
    ScmpCmpLt,
    ScmpCmpLe,
    #[default]
    ScmpCmpEq,
    ScmpCmpGe,
    ScmpCmpGt,
    ScmpCmpMaskedEq,
}

/// A `SECCOMP_FILTER_FLAG_*` for seccomp(2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
// Variants spell the JSON names (serde renames them mechanically).
#[allow(clippy::enum_variant_names)]
pub enum LinuxSeccompFilterFlag {
    SeccompFilterFlagLog,
    SeccompFilterFlagTsync,
    SeccompFilterFlagSpecAllow,
    SeccompFilterFlagWaitKillableRecv,
}

/// A filter architecture (libseccomp's names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Arch {
    #[serde(rename = "SCMP_ARCH_NATIVE")]
    ScmpArchNative,
    #[serde(rename = "SCMP_ARCH_X86")]
    ScmpArchX86,
    #[serde(rename = "SCMP_ARCH_X86_64")]
    ScmpArchX86_64,
    #[serde(rename = "SCMP_ARCH_X32")]
    ScmpArchX32,
    #[serde(rename = "SCMP_ARCH_ARM")]
    ScmpArchArm,
    #[serde(rename = "SCMP_ARCH_AARCH64")]
    ScmpArchAarch64,
    #[serde(rename = "SCMP_ARCH_MIPS")]
    ScmpArchMips,
    #[serde(rename = "SCMP_ARCH_MIPS64")]
    ScmpArchMips64,
    #[serde(rename = "SCMP_ARCH_MIPS64N32")]
    ScmpArchMips64n32,
    #[serde(rename = "SCMP_ARCH_MIPSEL")]
    ScmpArchMipsel,
    #[serde(rename = "SCMP_ARCH_MIPSEL64")]
    ScmpArchMipsel64,
    #[serde(rename = "SCMP_ARCH_MIPSEL64N32")]
    ScmpArchMipsel64n32,
    #[serde(rename = "SCMP_ARCH_PPC")]
    ScmpArchPpc,
    #[serde(rename = "SCMP_ARCH_PPC64")]
    ScmpArchPpc64,
    #[serde(rename = "SCMP_ARCH_PPC64LE")]
    ScmpArchPpc64le,
    #[serde(rename = "SCMP_ARCH_S390")]
    ScmpArchS390,
    #[serde(rename = "SCMP_ARCH_S390X")]
    ScmpArchS390x,
    #[serde(rename = "SCMP_ARCH_RISCV64")]
    ScmpArchRiscv64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seccomp_json_names() {
        let s: LinuxSeccomp = serde_json::from_str(
            r#"{"defaultAction": "SCMP_ACT_KILL_PROCESS", "defaultErrnoRet": 1,
                "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_PPC64LE", "SCMP_ARCH_MIPSEL64N32"],
                "flags": ["SECCOMP_FILTER_FLAG_SPEC_ALLOW", "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"],
                "listenerPath": "/run/l.sock",
                "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1,
                  "args": [{"index": 1, "value": 2, "valueTwo": 3, "op": "SCMP_CMP_MASKED_EQ"}]}]}"#,
        )
        .expect("parse");
        assert_eq!(s.default_action(), LinuxSeccompAction::ScmpActKillProcess);
        assert_eq!(
            s.architectures().as_deref(),
            Some(
                &[
                    Arch::ScmpArchX86_64,
                    Arch::ScmpArchPpc64le,
                    Arch::ScmpArchMipsel64n32
                ][..]
            )
        );
        assert_eq!(
            s.flags().as_ref().map(|f| f[1]),
            Some(LinuxSeccompFilterFlag::SeccompFilterFlagWaitKillableRecv)
        );
        let arg = s.syscalls().as_ref().expect("rules")[0]
            .args()
            .as_ref()
            .expect("args")[0];
        assert_eq!(
            (arg.index(), arg.value_two(), arg.op()),
            (1, Some(3), LinuxSeccompOperator::ScmpCmpMaskedEq)
        );
    }
}
