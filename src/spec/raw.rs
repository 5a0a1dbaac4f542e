//! Checks on the raw JSON, before it becomes typed.
//!
//! `spec::types` models capabilities, rlimit types and namespace types as enums,
//! so an unknown name would fail deserialization with a message that does not
//! say where it is. Checking those fields on the `serde_json::Value` first
//! names the field instead. It also sees fields the types do not model at all
//! and would silently drop (idmapped mounts), which must be refused.

use crate::spec::types::{Capability, LinuxNamespaceType, PosixRlimitType};
use anyhow::{bail, Result};
use serde::de::DeserializeOwned;
use serde_json::Value;

const CAPABILITY_SETS: &[&str] = &[
    "bounding",
    "effective",
    "inheritable",
    "permitted",
    "ambient",
];

/// Name the field of the first unknown enum value or unmodelled field.
pub fn check(config: &Value) -> Result<()> {
    if let Some(caps) = config.pointer("/process/capabilities") {
        for set in CAPABILITY_SETS {
            for name in strings(caps.get(*set)) {
                if !parses_as::<Capability>(name) {
                    bail!("process.capabilities.{set}: unknown capability \"{name}\"");
                }
            }
        }
    }
    for (i, rlimit) in array(config.pointer("/process/rlimits")).iter().enumerate() {
        if let Some(Value::String(typ)) = rlimit.get("type") {
            if !parses_as::<PosixRlimitType>(typ) {
                bail!("process.rlimits[{i}].type: unknown rlimit \"{typ}\"");
            }
        }
    }
    for (i, ns) in array(config.pointer("/linux/namespaces"))
        .iter()
        .enumerate()
    {
        if let Some(Value::String(typ)) = ns.get("type") {
            if !parses_as::<LinuxNamespaceType>(typ) {
                bail!("linux.namespaces[{i}].type: unknown namespace type \"{typ}\"");
            }
        }
    }
    super::seccomp::check_raw(config)?;
    // Not yet supported (listed here because the types drop these fields, so
    // the typed table in `unsupported` cannot see them).
    for (i, mount) in array(config.get("mounts")).iter().enumerate() {
        for field in ["uidMappings", "gidMappings"] {
            if mount.get(field).is_some() {
                bail!("mounts[{i}].{field}: idmapped mounts are not supported yet");
            }
        }
    }
    Ok(())
}

fn parses_as<T: DeserializeOwned>(name: &str) -> bool {
    super::convert::<T, _>(name).is_ok()
}

pub(super) fn array(value: Option<&Value>) -> &[Value] {
    match value {
        Some(Value::Array(items)) => items,
        _ => &[],
    }
}

/// The string items of an array; other items are left for serde to reject.
pub(super) fn strings(value: Option<&Value>) -> impl Iterator<Item = &str> {
    array(value).iter().filter_map(Value::as_str)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(json: &str) -> String {
        let value: Value = serde_json::from_str(json).expect("test json");
        format!("{:#}", check(&value).expect_err("should be refused"))
    }

    #[test]
    fn known_names_pass() {
        let value: Value = serde_json::from_str(
            r#"{"process": {"capabilities": {"bounding": ["CAP_CHOWN"], "ambient": []},
                "rlimits": [{"type": "RLIMIT_NOFILE"}]},
                "linux": {"namespaces": [{"type": "network"}, {"type": "mount"}, {"type": "time"}]}}"#,
        )
        .expect("test json");
        check(&value).expect("known names");
    }

    #[test]
    fn unknown_names_are_named() {
        assert_eq!(
            err(r#"{"process": {"capabilities": {"ambient": ["CAP_NOPE"]}}}"#),
            "process.capabilities.ambient: unknown capability \"CAP_NOPE\""
        );
        assert_eq!(
            err(r#"{"process": {"rlimits": [{"type": "RLIMIT_CPU"}, {"type": "NOFILE"}]}}"#),
            "process.rlimits[1].type: unknown rlimit \"NOFILE\""
        );
        assert_eq!(
            err(r#"{"linux": {"namespaces": [{"type": "net"}]}}"#),
            "linux.namespaces[0].type: unknown namespace type \"net\""
        );
    }

    #[test]
    fn idmapped_mounts_are_refused() {
        assert_eq!(
            err(r#"{"mounts": [{"destination": "/a"}, {"destination": "/b", "uidMappings": []}]}"#),
            "mounts[1].uidMappings: idmapped mounts are not supported yet"
        );
    }
}
