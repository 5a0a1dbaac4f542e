//! `berth features`: print the runtime-spec "features" document (what this
//! build of berth really implements), as `runc features` does.
//!
//! Everything it claims is in the tables below; when a module gains a
//! feature, its issue updates the table here in the same change. It must
//! never claim something a config would then be refused or ignored for.

use std::collections::BTreeMap;
use std::io::Write;

use anyhow::{Context, Result};
use serde::Serialize;

use crate::spec::{ANNOTATION_ROOTFS, MOUNT_OPTIONS};

const OCI_VERSION_MIN: &str = "1.0.0";

/// Hooks berth runs: none yet (configs with hooks are refused).
const HOOKS: &[&str] = &[];

/// Namespaces berth creates or joins.
const NAMESPACES: &[&str] = &[
    "cgroup", "ipc", "mount", "network", "pid", "time", "user", "uts",
];

/// Every capability name berth accepts in `process.capabilities`, in kernel
/// order.
pub const CAPABILITIES: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

/// cgroup drivers: the v2 and v1 path drivers; systemd comes later.
const CGROUP: Cgroup = Cgroup {
    v1: true,
    v2: true,
    systemd: false,
    systemd_user: false,
    rdma: false,
};

/// Annotations berth reads, with the values each accepts.
const ANNOTATIONS: &[(&str, &str)] = &[(ANNOTATION_ROOTFS, "overlay|bind")];

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Features {
    oci_version_min: &'static str,
    oci_version_max: &'static str,
    hooks: &'static [&'static str],
    mount_options: &'static [&'static str],
    linux: Linux,
    annotations: BTreeMap<&'static str, String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Linux {
    namespaces: &'static [&'static str],
    capabilities: &'static [&'static str],
    cgroup: Cgroup,
    seccomp: Seccomp,
    apparmor: Enabled,
    selinux: Enabled,
    intel_rdt: Enabled,
    mount_extensions: MountExtensions,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Cgroup {
    v1: bool,
    v2: bool,
    systemd: bool,
    systemd_user: bool,
    rdma: bool,
}

#[derive(Serialize)]
struct Enabled {
    enabled: bool,
}

/// What the seccomp module compiles (src/security/seccomp).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Seccomp {
    enabled: bool,
    actions: &'static [&'static str],
    operators: &'static [&'static str],
    archs: &'static [&'static str],
    known_flags: &'static [&'static str],
    supported_flags: &'static [&'static str],
}

const SECCOMP_FLAGS: &[&str] = &[
    "SECCOMP_FILTER_FLAG_TSYNC",
    "SECCOMP_FILTER_FLAG_LOG",
    "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
    "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV",
];

#[derive(Serialize)]
struct MountExtensions {
    idmap: Enabled,
}

fn features() -> Features {
    let mut annotations: BTreeMap<&'static str, String> = ANNOTATIONS
        .iter()
        .map(|(k, v)| (*k, v.to_string()))
        .collect();
    annotations.insert("run.berth.version", env!("CARGO_PKG_VERSION").to_string());
    Features {
        oci_version_min: OCI_VERSION_MIN,
        oci_version_max: crate::state::OCI_VERSION,
        hooks: HOOKS,
        mount_options: MOUNT_OPTIONS,
        linux: Linux {
            namespaces: NAMESPACES,
            capabilities: CAPABILITIES,
            cgroup: CGROUP,
            seccomp: Seccomp {
                enabled: true,
                actions: &[
                    "SCMP_ACT_ALLOW",
                    "SCMP_ACT_ERRNO",
                    "SCMP_ACT_KILL",
                    "SCMP_ACT_KILL_PROCESS",
                    "SCMP_ACT_KILL_THREAD",
                    "SCMP_ACT_LOG",
                    "SCMP_ACT_NOTIFY",
                    "SCMP_ACT_TRACE",
                    "SCMP_ACT_TRAP",
                ],
                operators: &[
                    "SCMP_CMP_EQ",
                    "SCMP_CMP_GE",
                    "SCMP_CMP_GT",
                    "SCMP_CMP_LE",
                    "SCMP_CMP_LT",
                    "SCMP_CMP_MASKED_EQ",
                    "SCMP_CMP_NE",
                ],
                archs: &[
                    "SCMP_ARCH_X86",
                    "SCMP_ARCH_X86_64",
                    "SCMP_ARCH_X32",
                    "SCMP_ARCH_AARCH64",
                    "SCMP_ARCH_ARM",
                ],
                known_flags: SECCOMP_FLAGS,
                supported_flags: SECCOMP_FLAGS,
            },
            apparmor: Enabled {
                enabled: crate::security::apparmor::enabled(),
            },
            selinux: Enabled {
                enabled: crate::security::selinux::enabled(),
            },
            intel_rdt: Enabled { enabled: false },
            mount_extensions: MountExtensions {
                idmap: Enabled { enabled: false },
            },
        },
        annotations,
    }
}

/// The features document, indented with four spaces like runc's.
fn to_json() -> Result<String> {
    let mut out = Vec::new();
    let formatter = serde_json::ser::PrettyFormatter::with_indent(b"    ");
    let mut ser = serde_json::Serializer::with_formatter(&mut out, formatter);
    features()
        .serialize(&mut ser)
        .context("serialize features")?;
    String::from_utf8(out).context("serialize features")
}

pub fn run() -> Result<u8> {
    let text = to_json()?;
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{text}").context("write features to stdout")?;
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::types::{Capability, LinuxNamespaceType};
    use serde_json::Value;

    fn doc() -> Value {
        serde_json::from_str(&to_json().expect("json")).expect("valid json")
    }

    #[test]
    fn states_what_berth_supports() {
        let doc = doc();
        assert_eq!(doc["ociVersionMin"], "1.0.0");
        assert_eq!(doc["ociVersionMax"], crate::state::OCI_VERSION);
        assert_eq!(doc["hooks"], serde_json::json!([]));
        assert_eq!(doc["linux"]["seccomp"]["enabled"], true);
        assert!(doc["linux"]["seccomp"]["actions"]
            .as_array()
            .is_some_and(|a| a.iter().any(|x| x == "SCMP_ACT_NOTIFY")));
        assert_eq!(doc["linux"]["cgroup"]["systemd"], false);
        // The LSMs say whether berth can apply their labels on this host.
        assert_eq!(
            doc["linux"]["apparmor"]["enabled"],
            crate::security::apparmor::enabled()
        );
        assert_eq!(
            doc["linux"]["selinux"]["enabled"],
            crate::security::selinux::enabled()
        );
        assert_eq!(doc["annotations"][ANNOTATION_ROOTFS], "overlay|bind");
        let namespaces: Vec<&str> = doc["linux"]["namespaces"]
            .as_array()
            .expect("array")
            .iter()
            .filter_map(Value::as_str)
            .collect();
        assert!(namespaces.contains(&"user"));
        assert!(namespaces.contains(&"network") && namespaces.contains(&"time"));
        let options = doc["mountOptions"].as_array().expect("array");
        assert!(options.iter().any(|o| o == "rbind") && options.iter().any(|o| o == "runbindable"));
    }

    #[test]
    fn field_order_follows_the_spec() {
        let text = to_json().expect("json");
        let at = |key: &str| text.find(&format!("\"{key}\"")).expect(key);
        assert!(at("ociVersionMin") < at("ociVersionMax"));
        assert!(at("ociVersionMax") < at("hooks"));
        assert!(at("mountOptions") < at("linux"));
        assert!(at("linux") < at("annotations"));
        assert!(text.starts_with("{\n    \"ociVersionMin\""));
    }

    #[test]
    fn names_are_ones_the_spec_types_parse() {
        for name in CAPABILITIES {
            serde_json::from_value::<Capability>(Value::String(name.to_string())).expect(name);
        }
        for name in NAMESPACES {
            serde_json::from_value::<LinuxNamespaceType>(Value::String(name.to_string()))
                .expect(name);
        }
    }
}
