//! Checks on `linux.seccomp` in the raw JSON, before it becomes typed:
//! `spec::types` models actions, operators, architectures and flags as enums, so
//! an unknown one would fail deserialization without saying where. The
//! semantic checks (notify needs a listener, argument indexes...) are the
//! seccomp planner's, `security::seccomp::plan`, which `validate` calls.

use crate::spec::types::{Arch, LinuxSeccompAction, LinuxSeccompFilterFlag, LinuxSeccompOperator};
use anyhow::{bail, Result};
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::raw::{array, strings};

pub fn check_raw(config: &Value) -> Result<()> {
    let Some(s) = config.pointer("/linux/seccomp") else {
        return Ok(());
    };
    if let Some(Value::String(a)) = s.get("defaultAction") {
        check_name::<LinuxSeccompAction>("linux.seccomp.defaultAction", "action", a)?;
    }
    for (i, arch) in strings(s.get("architectures")).enumerate() {
        check_name::<Arch>(
            &format!("linux.seccomp.architectures[{i}]"),
            "architecture",
            arch,
        )?;
    }
    for (i, flag) in strings(s.get("flags")).enumerate() {
        let field = format!("linux.seccomp.flags[{i}]");
        check_name::<LinuxSeccompFilterFlag>(&field, "flag", flag)?;
    }
    for (i, sc) in array(s.get("syscalls")).iter().enumerate() {
        if let Some(Value::String(a)) = sc.get("action") {
            check_name::<LinuxSeccompAction>(
                &format!("linux.seccomp.syscalls[{i}].action"),
                "action",
                a,
            )?;
        }
        for (j, arg) in array(sc.get("args")).iter().enumerate() {
            if let Some(Value::String(op)) = arg.get("op") {
                check_name::<LinuxSeccompOperator>(
                    &format!("linux.seccomp.syscalls[{i}].args[{j}].op"),
                    "operator",
                    op,
                )?;
            }
        }
    }
    Ok(())
}

fn check_name<T: DeserializeOwned>(field: &str, what: &str, name: &str) -> Result<()> {
    if super::convert::<T, _>(name).is_err() {
        bail!("{field}: unknown seccomp {what} \"{name}\"");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(seccomp: &str) -> String {
        let value: Value =
            serde_json::from_str(&format!(r#"{{"linux": {{"seccomp": {seccomp}}}}}"#))
                .expect("test json");
        format!("{:#}", check_raw(&value).expect_err("should be refused"))
    }

    #[test]
    fn known_names_pass() {
        let value: Value = serde_json::from_str(
            r#"{"linux": {"seccomp": {"defaultAction": "SCMP_ACT_ERRNO",
                "architectures": ["SCMP_ARCH_X86_64"], "flags": ["SECCOMP_FILTER_FLAG_LOG"],
                "syscalls": [{"names": ["a"], "action": "SCMP_ACT_KILL_PROCESS",
                  "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_MASKED_EQ"}]}]}}}"#,
        )
        .expect("test json");
        check_raw(&value).expect("known names");
    }

    #[test]
    fn unknown_names_are_named() {
        assert_eq!(
            err(r#"{"defaultAction": "SCMP_ACT_NOPE"}"#),
            "linux.seccomp.defaultAction: unknown seccomp action \"SCMP_ACT_NOPE\""
        );
        assert_eq!(
            err(
                r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["a"], "action": "SCMP_ACT_ALLOW"},
                {"names": ["b"], "action": "allow"}]}"#
            ),
            "linux.seccomp.syscalls[1].action: unknown seccomp action \"allow\""
        );
        assert_eq!(
            err(
                r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["a"], "action": "SCMP_ACT_ERRNO",
                "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_EQ"}, {"index": 1, "value": 1, "op": "SCMP_CMP_LIKE"}]}]}"#
            ),
            "linux.seccomp.syscalls[0].args[1].op: unknown seccomp operator \"SCMP_CMP_LIKE\""
        );
        assert_eq!(
            err(r#"{"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_PDP11"]}"#),
            "linux.seccomp.architectures[0]: unknown seccomp architecture \"SCMP_ARCH_PDP11\""
        );
        assert_eq!(
            err(r#"{"defaultAction": "SCMP_ACT_ALLOW", "flags": ["SECCOMP_FILTER_FLAG_FAST"]}"#),
            "linux.seccomp.flags[0]: unknown seccomp flag \"SECCOMP_FILTER_FLAG_FAST\""
        );
    }
}
