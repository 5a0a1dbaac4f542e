//! Seccomp: `linux.seccomp` turned into a BPF program, loaded into the
//! container process as the last privileged step before `execve`.
//!
//! Three stages, so that the costly and fallible part happens before the
//! container exists: [`plan`] checks the spec and resolves every action,
//! operator, architecture and flag (pure; the validator calls it);
//! [`prepare`] compiles the plan with libseccomp into a BPF program and, for
//! `SCMP_ACT_NOTIFY`, connects to the listener socket (in the parent, before
//! the clone, so the child inherits both); [`load`] hands the program to the
//! kernel with one `seccomp(2)` call and, with a listener, sends it the
//! notify fd and the container process state.
//!
//! Unknown syscall names are skipped with a debug line (the profile may be
//! newer or older than this kernel and libseccomp), as runc does; unknown
//! actions, operators, architectures and flags are errors naming the field.
//! This module must never load a filter that differs from the spec, and
//! never let a failure to load go unreported: a container that asked for
//! seccomp and runs without it is worse than one that does not start.

// FIXME(hook-up): remove these allows once process::parent, child and exec
// call `prepare` and `load`; until then only the validator uses this module.
#[allow(dead_code)]
mod compile;
#[allow(dead_code)]
mod listener;

use std::path::PathBuf;

use crate::spec::types::{
    Arch, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompFilterFlag, LinuxSeccompOperator,
};
use anyhow::{bail, Result};

#[allow(unused_imports)]
pub use compile::{load, prepare, Filter};

/// Compiled programs, under the state root (`list` skips dot names).
pub const CACHE_DIR: &str = ".seccomp-cache";

/// Syscalls berth itself makes between loading the filter and `execve`
/// when it talks to a notify listener; a notify rule on one of them would
/// block the process before the agent can ever answer.
const SEND_SYSCALLS: &[&str] = &["sendmsg"];

/// The kernel's highest argument index (six arguments).
const MAX_ARG_INDEX: usize = 5;

/// What a matched (or unmatched) syscall does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    KillThread,
    KillProcess,
    Trap,
    Errno(u16),
    Trace(u16),
    Log,
    Allow,
    Notify,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Ne,
    Lt,
    Le,
    Eq,
    Ge,
    Gt,
    /// `(arg & mask) == value`: the spec's `value` is the mask, `valueTwo` the datum.
    MaskedEq {
        mask: u64,
    },
}

/// One argument condition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cond {
    pub index: u32,
    pub op: Op,
    pub value: u64,
}

/// One `seccomp_rule_add`: a syscall name, an action and conditions that
/// must all hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub name: String,
    pub action: Action,
    pub conds: Vec<Cond>,
}

/// `linux.seccomp`, resolved and checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub default: Action,
    pub arches: Vec<Arch>,
    /// `SECCOMP_FILTER_FLAG_*` bits for seccomp(2).
    pub flags: u32,
    pub rules: Vec<Rule>,
    pub listener: Option<ListenerSpec>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerSpec {
    pub path: PathBuf,
    pub metadata: Option<String>,
}

impl Plan {
    pub fn uses_notify(&self) -> bool {
        self.default == Action::Notify || self.rules.iter().any(|r| r.action == Action::Notify)
    }
}

/// Resolve `linux.seccomp` into a [`Plan`]; every error names its field.
pub fn plan(s: &LinuxSeccomp) -> Result<Plan> {
    let default = action(s.default_action(), s.default_errno_ret());
    if default == Action::Notify {
        bail!("linux.seccomp.defaultAction: SCMP_ACT_NOTIFY cannot be the default action (berth's own syscalls before execve would wait on the agent)");
    }
    let mut flags = 0u32;
    for f in s.flags().iter().flatten() {
        flags |= match f {
            LinuxSeccompFilterFlag::SeccompFilterFlagTsync => libc::SECCOMP_FILTER_FLAG_TSYNC,
            LinuxSeccompFilterFlag::SeccompFilterFlagLog => libc::SECCOMP_FILTER_FLAG_LOG,
            LinuxSeccompFilterFlag::SeccompFilterFlagSpecAllow => {
                libc::SECCOMP_FILTER_FLAG_SPEC_ALLOW
            }
            // Only meaningful with a listener; `prepare` drops it otherwise.
            LinuxSeccompFilterFlag::SeccompFilterFlagWaitKillableRecv => {
                libc::SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV
            }
        } as u32;
    }
    let mut rules = Vec::new();
    for (i, sc) in s.syscalls().iter().flatten().enumerate() {
        let act = action(sc.action(), sc.errno_ret());
        let mut conds = Vec::new();
        for (j, arg) in sc.args().iter().flatten().enumerate() {
            if arg.index() > MAX_ARG_INDEX {
                bail!(
                    "linux.seccomp.syscalls[{i}].args[{j}].index: {} is out of range (0 to {MAX_ARG_INDEX})",
                    arg.index()
                );
            }
            let (op, value) = match arg.op() {
                LinuxSeccompOperator::ScmpCmpNe => (Op::Ne, arg.value()),
                LinuxSeccompOperator::ScmpCmpLt => (Op::Lt, arg.value()),
                LinuxSeccompOperator::ScmpCmpLe => (Op::Le, arg.value()),
                LinuxSeccompOperator::ScmpCmpEq => (Op::Eq, arg.value()),
                LinuxSeccompOperator::ScmpCmpGe => (Op::Ge, arg.value()),
                LinuxSeccompOperator::ScmpCmpGt => (Op::Gt, arg.value()),
                LinuxSeccompOperator::ScmpCmpMaskedEq => (
                    Op::MaskedEq { mask: arg.value() },
                    arg.value_two().unwrap_or(0),
                ),
            };
            conds.push(Cond {
                index: arg.index() as u32,
                op,
                value,
            });
        }
        for name in sc.names() {
            if act == Action::Notify && SEND_SYSCALLS.contains(&name.as_str()) {
                bail!("linux.seccomp.syscalls[{i}]: SCMP_ACT_NOTIFY cannot be used for {name:?}, which berth needs to send the notify fd to the listener");
            }
            rules.extend(split_conditions(name, act, &conds));
        }
    }
    let listener = match (s.listener_path(), s.listener_metadata()) {
        (Some(p), metadata) if !p.as_os_str().is_empty() => {
            if !p.is_absolute() {
                bail!(
                    "linux.seccomp.listenerPath {} must be an absolute path",
                    p.display()
                );
            }
            Some(ListenerSpec {
                path: p.clone(),
                metadata: metadata.clone(),
            })
        }
        (_, Some(m)) if !m.is_empty() => {
            bail!("linux.seccomp.listenerMetadata is set but listenerPath is not")
        }
        _ => None,
    };
    let plan = Plan {
        default,
        arches: s.architectures().clone().unwrap_or_default(),
        flags,
        rules,
        listener,
    };
    if plan.uses_notify() && plan.listener.is_none() {
        bail!("linux.seccomp: SCMP_ACT_NOTIFY needs linux.seccomp.listenerPath");
    }
    Ok(plan)
}

/// The spec's action with its return value: errno and trace default to
/// EPERM, as in runc.
fn action(a: LinuxSeccompAction, ret: Option<u32>) -> Action {
    let ret = ret.map_or(libc::EPERM as u16, |r| r.min(u16::MAX as u32) as u16);
    match a {
        LinuxSeccompAction::ScmpActKill | LinuxSeccompAction::ScmpActKillThread => {
            Action::KillThread
        }
        LinuxSeccompAction::ScmpActKillProcess => Action::KillProcess,
        LinuxSeccompAction::ScmpActTrap => Action::Trap,
        LinuxSeccompAction::ScmpActErrno => Action::Errno(ret),
        LinuxSeccompAction::ScmpActTrace => Action::Trace(ret),
        LinuxSeccompAction::ScmpActLog => Action::Log,
        LinuxSeccompAction::ScmpActAllow => Action::Allow,
        LinuxSeccompAction::ScmpActNotify => Action::Notify,
    }
}

/// runc's rule: conditions on distinct arguments are ANDed in one rule; if
/// one argument has several conditions, each becomes its own rule (ORed),
/// since libseccomp cannot AND two comparisons of the same argument.
fn split_conditions(name: &str, action: Action, conds: &[Cond]) -> Vec<Rule> {
    let repeated = conds
        .iter()
        .enumerate()
        .any(|(i, c)| conds[..i].iter().any(|d| d.index == c.index));
    if repeated {
        conds
            .iter()
            .map(|c| Rule {
                name: name.to_string(),
                action,
                conds: vec![*c],
            })
            .collect()
    } else {
        vec![Rule {
            name: name.to_string(),
            action,
            conds: conds.to_vec(),
        }]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan_of(json: &str) -> Result<Plan> {
        plan(&serde_json::from_str::<LinuxSeccomp>(json).expect("test seccomp"))
    }

    fn err(json: &str) -> String {
        format!("{:#}", plan_of(json).expect_err("should be refused"))
    }

    #[test]
    fn actions_and_return_values() {
        let p = plan_of(
            r#"{"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 38,
                "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"],
                "flags": ["SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW"],
                "syscalls": [
                  {"names": ["read", "write"], "action": "SCMP_ACT_ALLOW"},
                  {"names": ["mkdir"], "action": "SCMP_ACT_ERRNO"},
                  {"names": ["ptrace"], "action": "SCMP_ACT_TRACE", "errnoRet": 7},
                  {"names": ["reboot"], "action": "SCMP_ACT_KILL"},
                  {"names": ["kexec_load"], "action": "SCMP_ACT_KILL_PROCESS"}]}"#,
        )
        .expect("plan");
        assert_eq!(p.default, Action::Errno(38));
        assert_eq!(p.arches, vec![Arch::ScmpArchX86_64, Arch::ScmpArchX86]);
        assert_eq!(
            p.flags,
            (libc::SECCOMP_FILTER_FLAG_LOG | libc::SECCOMP_FILTER_FLAG_SPEC_ALLOW) as u32
        );
        let got: Vec<_> = p
            .rules
            .iter()
            .map(|r| (r.name.as_str(), r.action))
            .collect();
        assert_eq!(
            got,
            vec![
                ("read", Action::Allow),
                ("write", Action::Allow),
                ("mkdir", Action::Errno(libc::EPERM as u16)),
                ("ptrace", Action::Trace(7)),
                ("reboot", Action::KillThread),
                ("kexec_load", Action::KillProcess),
            ]
        );
        assert!(p.listener.is_none() && !p.uses_notify());
    }

    #[test]
    fn conditions_on_distinct_args_and_repeated_args() {
        let p = plan_of(
            r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
                {"names": ["personality"], "action": "SCMP_ACT_ERRNO", "args": [
                    {"index": 0, "value": 8, "op": "SCMP_CMP_NE"},
                    {"index": 1, "value": 255, "valueTwo": 3, "op": "SCMP_CMP_MASKED_EQ"}]},
                {"names": ["clone"], "action": "SCMP_ACT_ERRNO", "args": [
                    {"index": 0, "value": 1, "op": "SCMP_CMP_EQ"},
                    {"index": 0, "value": 2, "op": "SCMP_CMP_EQ"}]}]}"#,
        )
        .expect("plan");
        assert_eq!(p.rules.len(), 3);
        assert_eq!(
            p.rules[0].conds,
            vec![
                Cond {
                    index: 0,
                    op: Op::Ne,
                    value: 8
                },
                Cond {
                    index: 1,
                    op: Op::MaskedEq { mask: 255 },
                    value: 3
                }
            ]
        );
        assert_eq!(p.rules[1].conds.len(), 1);
        assert_eq!(p.rules[2].conds[0].value, 2);
    }

    #[test]
    fn notify_needs_a_listener_and_spares_berths_syscalls() {
        assert_eq!(
            err(
                r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}]}"#
            ),
            "linux.seccomp: SCMP_ACT_NOTIFY needs linux.seccomp.listenerPath"
        );
        assert!(
            err(r#"{"defaultAction": "SCMP_ACT_NOTIFY", "listenerPath": "/l"}"#)
                .starts_with("linux.seccomp.defaultAction: SCMP_ACT_NOTIFY cannot be the default")
        );
        assert!(
            err(r#"{"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": "/l",
                "syscalls": [{"names": ["mkdir", "sendmsg"], "action": "SCMP_ACT_NOTIFY"}]}"#)
            .starts_with(
                "linux.seccomp.syscalls[0]: SCMP_ACT_NOTIFY cannot be used for \"sendmsg\""
            )
        );
        assert_eq!(
            err(r#"{"defaultAction": "SCMP_ACT_ALLOW", "listenerMetadata": "m"}"#),
            "linux.seccomp.listenerMetadata is set but listenerPath is not"
        );
        assert_eq!(
            err(r#"{"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": "rel/sock"}"#),
            "linux.seccomp.listenerPath rel/sock must be an absolute path"
        );
        let p = plan_of(
            r#"{"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": "/run/agent.sock",
                "listenerMetadata": "meta",
                "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}]}"#,
        )
        .expect("plan");
        assert!(p.uses_notify());
        assert_eq!(
            p.listener,
            Some(ListenerSpec {
                path: "/run/agent.sock".into(),
                metadata: Some("meta".into())
            })
        );
    }

    #[test]
    fn argument_index_is_checked() {
        assert_eq!(
            err(
                r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["a"], "action": "SCMP_ACT_ERRNO",
                "args": [{"index": 6, "value": 1, "op": "SCMP_CMP_EQ"}]}]}"#
            ),
            "linux.seccomp.syscalls[0].args[0].index: 6 is out of range (0 to 5)"
        );
    }
}
