//! Checks on the `linux` section: namespaces (and what needs which:
//! hostname, sysctls, id mappings), devices, masked and readonly paths,
//! rootfs propagation. `linux.resources` is left to the cgroups module.

use std::collections::HashSet;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use crate::spec::types::{Linux, LinuxNamespace, LinuxNamespaceType, Spec};
use anyhow::{anyhow, bail, Result};

use super::io_reason;

/// Longest hostname sethostname(2) accepts (HOST_NAME_MAX).
const HOST_NAME_MAX: usize = 64;

const PROPAGATIONS: &[&str] = &[
    "private",
    "rprivate",
    "shared",
    "rshared",
    "slave",
    "rslave",
    "unbindable",
    "runbindable",
];

/// The namespaces a spec asks for, by type: `None` for a new one, the path
/// for one to join.
struct Namespaces<'a>(Vec<&'a LinuxNamespace>);

impl Namespaces<'_> {
    fn has(&self, typ: LinuxNamespaceType) -> bool {
        self.0.iter().any(|ns| ns.typ() == typ)
    }
    fn get(&self, typ: LinuxNamespaceType) -> Option<&LinuxNamespace> {
        self.0.iter().copied().find(|ns| ns.typ() == typ)
    }
}

pub fn check(spec: &Spec) -> Result<()> {
    let empty = Linux::default();
    let linux = spec.linux().as_ref().unwrap_or(&empty);
    let namespaces = check_namespaces(linux)?;
    if let Some(label) = linux.mount_label() {
        crate::security::selinux::check("linux.mountLabel", label)?;
    }

    for (field, name) in [
        ("hostname", spec.hostname()),
        ("domainname", spec.domainname()),
    ] {
        let Some(name) = name.as_deref().filter(|n| !n.is_empty()) else {
            continue;
        };
        if !namespaces.has(LinuxNamespaceType::Uts) {
            bail!("{field} requires a uts namespace in linux.namespaces");
        }
        if name.len() > HOST_NAME_MAX {
            bail!("{field} {name:?} is longer than {HOST_NAME_MAX} bytes");
        }
    }
    if !namespaces.has(LinuxNamespaceType::User) {
        if linux.uid_mappings().as_ref().is_some_and(|m| !m.is_empty()) {
            bail!("linux.uidMappings requires a user namespace in linux.namespaces");
        }
        if linux.gid_mappings().as_ref().is_some_and(|m| !m.is_empty()) {
            bail!("linux.gidMappings requires a user namespace in linux.namespaces");
        }
    }
    // A BTreeMap: the same key is reported first on every run.
    for key in linux.sysctl().iter().flatten().map(|(k, _)| k) {
        check_sysctl(key, &namespaces)?;
    }
    for (i, dev) in linux.devices().iter().flatten().enumerate() {
        if !dev.path().starts_with("/dev/") {
            bail!(
                "linux.devices[{i}].path {:?} must be under /dev",
                dev.path()
            );
        }
    }
    for (field, paths) in [
        ("maskedPaths", linux.masked_paths()),
        ("readonlyPaths", linux.readonly_paths()),
    ] {
        for (i, path) in paths.iter().flatten().enumerate() {
            if !path.starts_with('/') {
                bail!("linux.{field}[{i}] {path:?} must be an absolute path");
            }
        }
    }
    if let Some(prop) = linux
        .rootfs_propagation()
        .as_deref()
        .filter(|p| !p.is_empty())
    {
        if !PROPAGATIONS.contains(&prop) {
            bail!(
                "linux.rootfsPropagation \"{prop}\" must be one of: {}",
                PROPAGATIONS.join(" ")
            );
        }
    }
    Ok(())
}

fn check_namespaces(linux: &Linux) -> Result<Namespaces<'_>> {
    let list: Vec<&LinuxNamespace> = linux.namespaces().iter().flatten().collect();
    let mut seen = HashSet::new();
    for (i, ns) in list.iter().enumerate() {
        let typ = ns.typ();
        if !seen.insert(typ) {
            bail!(
                "linux.namespaces: duplicate namespace \"{}\"",
                type_name(typ)
            );
        }
        match ns.path().as_deref().filter(|p| !p.as_os_str().is_empty()) {
            Some(path) => {
                if !path.is_absolute() {
                    bail!("linux.namespaces[{i}].path {path:?} must be an absolute path");
                }
                fs::metadata(path).map_err(|e| {
                    anyhow!(
                        "linux.namespaces[{i}].path {}: {}",
                        path.display(),
                        io_reason(&e)
                    )
                })?;
                if typ == LinuxNamespaceType::Mount {
                    // The root filesystem is assembled in the container's own
                    // mount namespace; building it in a shared one would leak
                    // its mounts to whoever else lives there.
                    bail!("linux.namespaces[{i}]: joining a mount namespace is not supported; the root filesystem is built in a new one");
                }
            }
            None => {
                let proc_entry = format!("/proc/self/ns/{}", proc_name(typ));
                if !Path::new(&proc_entry).exists() {
                    bail!("linux.namespaces: {} namespaces are not supported by this kernel (no {proc_entry})", type_name(typ));
                }
            }
        }
    }
    let namespaces = Namespaces(list);
    if !namespaces.has(LinuxNamespaceType::Mount) {
        bail!(
            "linux.namespaces: a mount namespace is required; the root filesystem is built in it"
        );
    }
    Ok(namespaces)
}

/// The config's name of a namespace type (`network`, `mount`).
fn type_name(typ: LinuxNamespaceType) -> String {
    super::convert::<serde_json::Value, _>(&typ)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_else(|| format!("{typ:?}"))
}

/// The name of a namespace type under /proc/<pid>/ns (`net`, `mnt`).
fn proc_name(typ: LinuxNamespaceType) -> &'static str {
    match typ {
        LinuxNamespaceType::Mount => "mnt",
        LinuxNamespaceType::Cgroup => "cgroup",
        LinuxNamespaceType::Uts => "uts",
        LinuxNamespaceType::Ipc => "ipc",
        LinuxNamespaceType::User => "user",
        LinuxNamespaceType::Pid => "pid",
        LinuxNamespaceType::Network => "net",
        LinuxNamespaceType::Time => "time",
    }
}

/// A sysctl is allowed only if it is namespaced by a namespace the container
/// does not share with the host (as runc decides): writing any other would
/// change the host.
fn check_sysctl(key: &str, namespaces: &Namespaces) -> Result<()> {
    // The key becomes a path under /proc/sys; refuse anything that could
    // climb out of the subtree the prefix checks below allow.
    if key.is_empty() || key.contains('/') || key.split('.').any(|part| part.is_empty()) {
        bail!("linux.sysctl \"{key}\" is not a valid sysctl name");
    }
    let ipc = key.starts_with("fs.mqueue.")
        || ["kernel.shm", "kernel.msg"]
            .iter()
            .any(|p| key.starts_with(p))
        || key == "kernel.sem"
        || key == "kernel.sem_next_id";
    if ipc {
        if !namespaces.has(LinuxNamespaceType::Ipc) {
            bail!("linux.sysctl \"{key}\" requires an ipc namespace in linux.namespaces");
        }
        return Ok(());
    }
    if key.starts_with("net.") {
        match namespaces.get(LinuxNamespaceType::Network) {
            None => {
                bail!("linux.sysctl \"{key}\" requires a network namespace in linux.namespaces")
            }
            Some(ns) => {
                if let Some(path) = ns.path().as_deref().filter(|p| !p.as_os_str().is_empty()) {
                    if same_file(path, Path::new("/proc/self/ns/net")) {
                        bail!("linux.sysctl \"{key}\" would change the host: linux.namespaces network path {} is the host's", path.display());
                    }
                }
                return Ok(());
            }
        }
    }
    if key == "kernel.hostname" || key == "kernel.domainname" {
        if !namespaces.has(LinuxNamespaceType::Uts) {
            bail!("linux.sysctl \"{key}\" requires a uts namespace in linux.namespaces");
        }
        return Ok(());
    }
    bail!("linux.sysctl \"{key}\" is not namespaced: it would change the host")
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (fs::metadata(a), fs::metadata(b)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::super::validate::tests::{err, ok};

    #[test]
    fn namespaces() {
        assert_eq!(
            err(
                r#"{"linux": {"namespaces": [{"type": "mount"}, {"type": "pid"}, {"type": "pid"}]}}"#
            ),
            "config.json: linux.namespaces: duplicate namespace \"pid\""
        );
        assert_eq!(
            err(
                r#"{"linux": {"namespaces": [{"type": "mount"}, {"type": "network", "path": "/nonexistent/ns"}]}}"#
            ),
            "config.json: linux.namespaces[1].path /nonexistent/ns: No such file or directory"
        );
        assert_eq!(
            err(
                r#"{"linux": {"namespaces": [{"type": "mount"}, {"type": "network", "path": "ns/net"}]}}"#
            ),
            "config.json: linux.namespaces[1].path \"ns/net\" must be an absolute path"
        );
        assert_eq!(
            err(r#"{"linux": {"namespaces": [{"type": "pid"}]}}"#),
            "config.json: linux.namespaces: a mount namespace is required; the root filesystem is built in it"
        );
        assert_eq!(
            err(r#"{"linux": {"namespaces": [{"type": "mount", "path": "/proc/self/ns/mnt"}]}}"#),
            "config.json: linux.namespaces[0]: joining a mount namespace is not supported; the root filesystem is built in a new one"
        );
        ok(
            r#"{"linux": {"namespaces": [{"type": "mount"}, {"type": "user"}],
                   "uidMappings": [{"containerID": 0, "hostID": 100000, "size": 65536}],
                   "gidMappings": [{"containerID": 0, "hostID": 100000, "size": 65536}]}}"#,
        );
        ok(
            r#"{"linux": {"namespaces": [{"type": "mount"}, {"type": "pid"}, {"type": "uts"}, {"type": "ipc"},
                                        {"type": "cgroup"}, {"type": "network", "path": "/proc/self/ns/net"}]}}"#,
        );
    }

    #[test]
    fn time_namespace_follows_the_kernel() {
        let spec = r#"{"linux": {"namespaces": [{"type": "mount"}, {"type": "time"}]}}"#;
        if std::path::Path::new("/proc/self/ns/time").exists() {
            ok(spec);
        } else {
            assert_eq!(
                err(spec),
                "config.json: linux.namespaces: time namespaces are not supported by this kernel (no /proc/self/ns/time)"
            );
        }
    }

    #[test]
    fn hostname_needs_uts() {
        assert_eq!(
            err(r#"{"hostname": "box"}"#),
            "config.json: hostname requires a uts namespace in linux.namespaces"
        );
        assert_eq!(
            err(r#"{"domainname": "lan"}"#),
            "config.json: domainname requires a uts namespace in linux.namespaces"
        );
        let long = "h".repeat(65);
        assert_eq!(
            err(&format!(
                r#"{{"hostname": "{long}", "linux": {{"namespaces": [{{"type": "mount"}}, {{"type": "uts"}}]}}}}"#
            )),
            format!("config.json: hostname \"{long}\" is longer than 64 bytes")
        );
        ok(r#"{"hostname": "", "linux": {"namespaces": [{"type": "mount"}]}}"#);
        ok(r#"{"hostname": "box", "linux": {"namespaces": [{"type": "mount"}, {"type": "uts"}]}}"#);
    }

    #[test]
    fn id_mappings_need_a_user_namespace() {
        assert_eq!(
            err(r#"{"linux": {"uidMappings": [{"containerID": 0, "hostID": 1000, "size": 1}]}}"#),
            "config.json: linux.uidMappings requires a user namespace in linux.namespaces"
        );
        assert_eq!(
            err(r#"{"linux": {"gidMappings": [{"containerID": 0, "hostID": 1000, "size": 1}]}}"#),
            "config.json: linux.gidMappings requires a user namespace in linux.namespaces"
        );
    }

    #[test]
    fn sysctls_need_their_namespace() {
        let with = |ns: &str, key: &str| {
            format!(
                r#"{{"linux": {{"namespaces": [{{"type": "mount"}}{ns}], "sysctl": {{"{key}": "1"}}}}}}"#
            )
        };
        assert_eq!(
            err(&with("", "net.ipv4.ip_forward")),
            "config.json: linux.sysctl \"net.ipv4.ip_forward\" requires a network namespace in linux.namespaces"
        );
        ok(&with(r#", {"type": "network"}"#, "net.ipv4.ip_forward"));
        assert_eq!(
            err(&with(r#", {"type": "network", "path": "/proc/self/ns/net"}"#, "net.ipv4.ip_forward")),
            "config.json: linux.sysctl \"net.ipv4.ip_forward\" would change the host: linux.namespaces network path /proc/self/ns/net is the host's"
        );
        for key in [
            "kernel.shmmax",
            "kernel.msgmnb",
            "kernel.sem",
            "kernel.sem_next_id",
            "fs.mqueue.msg_max",
        ] {
            assert_eq!(
                err(&with("", key)),
                format!("config.json: linux.sysctl \"{key}\" requires an ipc namespace in linux.namespaces")
            );
            ok(&with(r#", {"type": "ipc"}"#, key));
        }
        assert_eq!(
            err(&with("", "kernel.domainname")),
            "config.json: linux.sysctl \"kernel.domainname\" requires a uts namespace in linux.namespaces"
        );
        ok(&with(r#", {"type": "uts"}"#, "kernel.hostname"));
        assert_eq!(
            err(&with(r#", {"type": "ipc"}, {"type": "uts"}, {"type": "network"}"#, "vm.swappiness")),
            "config.json: linux.sysctl \"vm.swappiness\" is not namespaced: it would change the host"
        );
        assert_eq!(
            err(&with(
                r#", {"type": "network"}"#,
                "net.ipv4/../../../kernel/x"
            )),
            "config.json: linux.sysctl \"net.ipv4/../../../kernel/x\" is not a valid sysctl name"
        );
        assert_eq!(
            err(&with(r#", {"type": "network"}"#, "net..x")),
            "config.json: linux.sysctl \"net..x\" is not a valid sysctl name"
        );
    }

    #[test]
    fn devices_paths_and_propagation() {
        assert_eq!(
            err(
                r#"{"linux": {"devices": [{"path": "/etc/null", "type": "c", "major": 1, "minor": 3}]}}"#
            ),
            "config.json: linux.devices[0].path \"/etc/null\" must be under /dev"
        );
        assert_eq!(
            err(r#"{"linux": {"maskedPaths": ["/proc/kcore", "proc/keys"]}}"#),
            "config.json: linux.maskedPaths[1] \"proc/keys\" must be an absolute path"
        );
        assert_eq!(
            err(r#"{"linux": {"readonlyPaths": ["sys"]}}"#),
            "config.json: linux.readonlyPaths[0] \"sys\" must be an absolute path"
        );
        assert_eq!(
            err(r#"{"linux": {"rootfsPropagation": "weird"}}"#),
            "config.json: linux.rootfsPropagation \"weird\" must be one of: private rprivate shared rshared slave rslave unbindable runbindable"
        );
        ok(
            r#"{"linux": {"rootfsPropagation": "rslave", "devices": [{"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229}]}}"#,
        );
    }
}
