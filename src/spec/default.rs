//! The default config.json `berth spec` writes: runc's example spec
//! (libcontainer/specconv `Example` and `ToRootless`), printed the way runc
//! prints it (Go's field order, tab indentation), so a diff against
//! `runc spec` output shows only the deliberate differences:
//! - `process.terminal` is false (runc: true): berth does not do terminals
//!   yet, and a default that `berth run` refuses would be a poor default;
//! - `hostname` is `berth` (runc: `runc`);
//! - `ociVersion` is the runtime-spec version berth implements.

use std::path::Path;

use crate::spec::types::{LinuxIdMapping, LinuxNamespace, LinuxNamespaceType, Mount, Spec};
use anyhow::{Context, Result};
use serde_json::Value;

use crate::state::OCI_VERSION;

/// runc's example spec, as text: `json!` would expand it into ~60 KB of
/// code that builds each value, for a command run once per bundle.
/// `ociVersion` and the namespaces are filled in by [`example`].
const TEMPLATE: &str = r#"{
    "process": {
        "terminal": false,
        "user": {"uid": 0, "gid": 0},
        "args": ["sh"],
        "env": [
            "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "TERM=xterm"
        ],
        "cwd": "/",
        "capabilities": {
            "bounding": ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"],
            "effective": ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"],
            "permitted": ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]
        },
        "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
        "noNewPrivileges": true
    },
    "root": {"path": "rootfs", "readonly": true},
    "hostname": "berth",
    "mounts": [
        {"destination": "/proc", "type": "proc", "source": "proc"},
        {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
         "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
        {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
         "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
        {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
         "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
        {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
         "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/sys", "type": "sysfs", "source": "sysfs",
         "options": ["nosuid", "noexec", "nodev", "ro"]},
        {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
         "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]}
    ],
    "linux": {
        "resources": {"devices": [{"allow": false, "access": "rwm"}]},
        "maskedPaths": [
            "/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
            "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware",
            "/proc/scsi", "/sys/devices/virtual/tpm"
        ],
        "readonlyPaths": ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]
    }
}"#;

/// runc's example spec; the cgroup namespace only on a cgroup v2 host, as
/// runc does.
pub fn example() -> Result<Spec> {
    // from_slice: the instance `spec::load` already has (from_str would add
    // a second copy of the whole Spec deserializer).
    let mut spec: Spec =
        serde_json::from_slice(TEMPLATE.as_bytes()).context("default spec template")?;
    spec.version = OCI_VERSION.into();
    let mut kinds = vec![
        LinuxNamespaceType::Pid,
        LinuxNamespaceType::Network,
        LinuxNamespaceType::Ipc,
        LinuxNamespaceType::Uts,
        LinuxNamespaceType::Mount,
    ];
    if Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
        kinds.push(LinuxNamespaceType::Cgroup);
    }
    let mut linux = spec.linux.take().unwrap_or_default();
    linux.namespaces = Some(
        kinds
            .into_iter()
            .map(|typ| LinuxNamespace { typ, path: None })
            .collect(),
    );
    spec.linux = Some(linux);
    Ok(spec)
}

/// runc's `ToRootless`: a user namespace mapping root to `uid`/`gid`, no
/// network namespace (a rootless caller could not configure one), `/sys`
/// bind-mounted (sysfs cannot be mounted without owning the network
/// namespace), no `uid=`/`gid=` mount options, and no cgroup limits.
pub fn to_rootless(spec: &mut Spec, uid: u32, gid: u32) -> Result<()> {
    let mut mounts: Vec<Mount> = spec.mounts().clone().unwrap_or_default();
    for mount in &mut mounts {
        if mount.destination() == Path::new("/sys") {
            *mount = Mount {
                destination: "/sys".into(),
                typ: Some("none".into()),
                source: Some("/sys".into()),
                options: Some(
                    ["rbind", "nosuid", "noexec", "nodev", "ro"]
                        .map(String::from)
                        .to_vec(),
                ),
            };
            continue;
        }
        if let Some(options) = mount.options().clone() {
            let kept = options
                .into_iter()
                .filter(|o| !o.starts_with("uid=") && !o.starts_with("gid="));
            mount.options = Some(kept.collect());
        }
    }
    spec.mounts = Some(mounts);

    let mut linux = spec.linux().clone().unwrap_or_default();
    let mut namespaces = linux.namespaces().clone().unwrap_or_default();
    namespaces.retain(|ns| {
        !matches!(
            ns.typ(),
            LinuxNamespaceType::Network | LinuxNamespaceType::User
        )
    });
    namespaces.push(LinuxNamespace {
        typ: LinuxNamespaceType::User,
        path: None,
    });
    linux.namespaces = Some(namespaces);
    linux.uid_mappings = Some(vec![id_map(uid)]);
    linux.gid_mappings = Some(vec![id_map(gid)]);
    linux.resources = None;
    spec.linux = Some(linux);
    Ok(())
}

/// Container root is `host_id`, and nothing else is mapped.
fn id_map(host_id: u32) -> LinuxIdMapping {
    LinuxIdMapping {
        container_id: 0,
        host_id,
        size: 1,
    }
}

/// Go's encoding/json field order for the runtime-spec structs, merged into
/// one ranking. Exact for every struct in the default spec (`linux.devices`
/// entries, which order `path` before `type`, come out slightly different).
/// Keys not listed sort after these, alphabetically.
const KEY_ORDER: &[&str] = &[
    "ociVersion",
    "process",
    "root",
    "hostname",
    "domainname",
    "mounts",
    "hooks",
    "annotations",
    "linux",
    "terminal",
    "consoleSize",
    "user",
    "uid",
    "gid",
    "umask",
    "additionalGids",
    "username",
    "args",
    "commandLine",
    "env",
    "cwd",
    "capabilities",
    "bounding",
    "effective",
    "inheritable",
    "permitted",
    "ambient",
    "rlimits",
    "noNewPrivileges",
    "apparmorProfile",
    "oomScoreAdj",
    "selinuxLabel",
    "allow",
    "destination",
    "type",
    "path",
    "readonly",
    "source",
    "options",
    "hard",
    "soft",
    "major",
    "minor",
    "access",
    "fileMode",
    "containerID",
    "hostID",
    "size",
    "uidMappings",
    "gidMappings",
    "sysctl",
    "resources",
    "cgroupsPath",
    "namespaces",
    "devices",
    "seccomp",
    "rootfsPropagation",
    "maskedPaths",
    "readonlyPaths",
    "mountLabel",
    "intelRdt",
    "personality",
];

/// Capability sets are `HashSet`s; sort them so the output is
/// the same on every run.
const SORTED_ARRAYS: &[&str] = &[
    "bounding",
    "effective",
    "inheritable",
    "permitted",
    "ambient",
];

/// `spec` as runc writes config.json: tab-indented, Go's field order.
pub fn to_pretty_json(spec: &Spec) -> Result<String> {
    let value: Value = super::convert(spec).context("serialize spec")?;
    let mut out = String::new();
    write_value(&mut out, &value, 0)?;
    Ok(out)
}

fn write_value(out: &mut String, value: &Value, depth: usize) -> Result<()> {
    match value {
        Value::Object(map) if !map.is_empty() => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            // Unstable: object keys are unique.
            entries.sort_unstable_by_key(|(k, _)| {
                (
                    KEY_ORDER.iter().position(|o| o == k).unwrap_or(usize::MAX),
                    k.as_str(),
                )
            });
            out.push('{');
            for (i, (key, item)) in entries.into_iter().enumerate() {
                out.push_str(if i == 0 { "\n" } else { ",\n" });
                indent(out, depth + 1);
                out.push_str(&serde_json::to_string(key)?);
                out.push_str(": ");
                if let (true, Value::Array(items)) = (SORTED_ARRAYS.contains(&key.as_str()), item) {
                    let mut items = items.clone();
                    // Capability names: equal ones are the same string.
                    items.sort_unstable_by(|a, b| a.as_str().cmp(&b.as_str()));
                    write_value(out, &Value::Array(items), depth + 1)?;
                } else {
                    write_value(out, item, depth + 1)?;
                }
            }
            out.push('\n');
            indent(out, depth);
            out.push('}');
        }
        Value::Array(items) if !items.is_empty() => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                out.push_str(if i == 0 { "\n" } else { ",\n" });
                indent(out, depth + 1);
                write_value(out, item, depth + 1)?;
            }
            out.push('\n');
            indent(out, depth);
            out.push(']');
        }
        scalar => out.push_str(&serde_json::to_string(scalar)?),
    }
    Ok(())
}

fn indent(out: &mut String, depth: usize) {
    out.extend(std::iter::repeat_n('\t', depth));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::validate;

    #[test]
    fn example_round_trips_and_validates() {
        let spec = example().expect("example");
        let text = to_pretty_json(&spec).expect("print");
        let back: Spec = crate::spec::parse(text.as_bytes()).expect("parse back");
        assert_eq!(back, spec);
        let bundle = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(bundle.path().join("rootfs")).expect("mkdir rootfs");
        validate(&back, bundle.path()).expect("default spec validates");
    }

    #[test]
    fn printed_like_runc() {
        let text = to_pretty_json(&example().expect("example")).expect("print");
        let head = format!(
            "{{\n\t\"ociVersion\": \"{OCI_VERSION}\",\n\t\"process\": {{\n\t\t\"terminal\": false,\n\t\t\"user\": {{\n\t\t\t\"uid\": 0,\n\t\t\t\"gid\": 0\n\t\t}},\n\t\t\"args\": [\n\t\t\t\"sh\"\n\t\t],"
        );
        assert!(text.starts_with(&head), "{text}");
        assert!(text.contains("\"bounding\": [\n\t\t\t\t\"CAP_AUDIT_WRITE\",\n\t\t\t\t\"CAP_KILL\",\n\t\t\t\t\"CAP_NET_BIND_SERVICE\"\n\t\t\t]"), "{text}");
        assert!(text.contains("{\n\t\t\t\"destination\": \"/proc\",\n\t\t\t\"type\": \"proc\",\n\t\t\t\"source\": \"proc\"\n\t\t}"), "{text}");
        assert!(text.contains("\"rlimits\": [\n\t\t\t{\n\t\t\t\t\"type\": \"RLIMIT_NOFILE\",\n\t\t\t\t\"hard\": 1024,\n\t\t\t\t\"soft\": 1024\n\t\t\t}\n\t\t]"), "{text}");
        assert!(
            text.contains("\"root\": {\n\t\t\"path\": \"rootfs\",\n\t\t\"readonly\": true\n\t}"),
            "{text}"
        );
        assert!(
            text.contains(
                "{\n\t\t\t\t\t\"allow\": false,\n\t\t\t\t\t\"access\": \"rwm\"\n\t\t\t\t}"
            ),
            "{text}"
        );
        assert!(text.ends_with("\n}"), "{text}");
        assert_eq!(
            text,
            to_pretty_json(&example().expect("example")).expect("print"),
            "stable output"
        );
    }

    #[test]
    fn rootless_has_a_user_namespace_and_mappings() {
        let mut spec = example().expect("example");
        to_rootless(&mut spec, 1000, 1001).expect("rootless");
        let linux = spec.linux().as_ref().expect("linux");
        let types: Vec<_> = linux
            .namespaces()
            .iter()
            .flatten()
            .map(|ns| ns.typ())
            .collect();
        assert!(types.contains(&LinuxNamespaceType::User));
        assert!(!types.contains(&LinuxNamespaceType::Network));
        let uid = linux.uid_mappings().as_ref().expect("uid map")[0];
        let gid = linux.gid_mappings().as_ref().expect("gid map")[0];
        assert_eq!(
            (uid.container_id(), uid.host_id(), uid.size()),
            (0, 1000, 1)
        );
        assert_eq!(
            (gid.container_id(), gid.host_id(), gid.size()),
            (0, 1001, 1)
        );
        assert!(linux.resources().is_none());
        let mounts = spec.mounts().as_ref().expect("mounts");
        let sys = mounts
            .iter()
            .find(|m| m.destination() == Path::new("/sys"))
            .expect("/sys");
        assert_eq!(sys.typ().as_deref(), Some("none"));
        assert_eq!(sys.options().as_ref().expect("opts")[0], "rbind");
        let pts = mounts
            .iter()
            .find(|m| m.destination() == Path::new("/dev/pts"))
            .expect("/dev/pts");
        assert!(!pts
            .options()
            .iter()
            .flatten()
            .any(|o| o.starts_with("gid=")));
        // Round-trips and validates.
        let text = to_pretty_json(&spec).expect("print");
        let back = crate::spec::parse(text.as_bytes()).expect("parse back");
        assert_eq!(back, spec);
        let bundle = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(bundle.path().join("rootfs")).expect("mkdir rootfs");
        validate(&back, bundle.path()).expect("a rootless spec is valid");
    }
}
