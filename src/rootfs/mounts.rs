//! The spec's `mounts[]`: planned into a list of [`MountOp`]s (pure, checked
//! before anything is touched) and applied in order inside the new root.
//! Destinations are always resolved through [`Root`], never as host paths;
//! procfs goes only on `/proc`, and `/proc`, `/sys` must be real directories.
//! This module must never mount anything outside the container's root.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use crate::spec::types::Spec;
use anyhow::{bail, Context, Result};
use nix::fcntl::OFlag;
use nix::mount::MsFlags;
use nix::sys::statvfs::FsFlags;

use super::cgroup;
use super::copyup;
use super::options::{parse_options, MountOptions};
use super::paths::{clean, Kind, Lookup, Root};
use super::syscalls::{self, fd_path};
use crate::security::selinux;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Bind (or rbind) a host path, absolute after joining onto the bundle.
    Bind { source: PathBuf },
    /// A filesystem of a type: proc, sysfs, tmpfs, devpts, mqueue, cgroup2...
    Fs { fstype: String, source: String },
    /// `type: cgroup`: the host's v1 hierarchies, or cgroup2 on a v2 host.
    Cgroup,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountOp {
    /// Clean absolute path inside the container.
    pub dest: PathBuf,
    pub action: Action,
    pub opts: MountOptions,
    /// `linux.mountLabel`, for what takes it other than as `context=` in
    /// `opts.data` (already there where it belongs): the root of an mqueue
    /// mount, the tmpfs under a v1 cgroup mount.
    pub label: Option<String>,
}

impl MountOp {
    /// A cgroup filesystem, whose root depends on the mounting process's
    /// cgroups and cgroup namespace.
    pub fn shows_cgroups(&self) -> bool {
        match &self.action {
            Action::Cgroup => true,
            Action::Fs { fstype, .. } => fstype == "cgroup" || fstype == "cgroup2",
            Action::Bind { .. } => false,
        }
    }

    /// `/proc` and `/sys` may be neither symlinks nor pre-existing mounts.
    pub fn lookup(&self) -> Lookup {
        if self.dest == Path::new("/proc") || self.dest == Path::new("/sys") {
            Lookup::Strict
        } else {
            Lookup::InRoot
        }
    }

    /// runc-style: `mount proc on /proc (flags nosuid|nodev|noexec)`.
    pub fn describe(&self) -> String {
        let mut s = match &self.action {
            Action::Bind { source } => {
                format!("bind mount {} on {}", source.display(), self.dest.display())
            }
            Action::Fs { fstype, source } if fstype == source => {
                format!("mount {fstype} on {}", self.dest.display())
            }
            Action::Fs { fstype, source } => {
                format!("mount {fstype} {source} on {}", self.dest.display())
            }
            Action::Cgroup => format!("mount cgroup on {}", self.dest.display()),
        };
        s.push_str(" (flags ");
        s.push_str(&syscalls::flags_str(self.opts.flags));
        if let Some(d) = self.opts.data() {
            s.push_str(", data ");
            s.push_str(d);
        }
        s.push(')');
        s
    }
}

/// Turn `mounts[]` into operations, refusing what can never work. Cheap and
/// side-effect free, so the parent can call it to validate config.json.
pub fn plan_mounts(spec: &Spec, bundle: &Path) -> Result<Vec<MountOp>> {
    let Some(mounts) = spec.mounts() else {
        return Ok(Vec::new());
    };
    let label = mount_label(spec);
    let mut ops = Vec::with_capacity(mounts.len());
    for (i, m) in mounts.iter().enumerate() {
        let dest = clean(m.destination());
        let mut opts = parse_options(m.options().as_deref().unwrap_or_default());
        let typ = m.typ().as_deref().unwrap_or("");
        let here = || format!("mounts[{i}] on {}", m.destination().display());
        if dest == Path::new("/") {
            bail!(
                "{}: mounting over the container's root is not allowed",
                here()
            );
        }
        check_proc_destination(&dest, typ, opts.is_bind())
            .map_err(|e| anyhow::anyhow!("{}: {e}", here()))?;
        let action = if opts.is_bind() || typ == "bind" {
            opts.flags |= MsFlags::MS_BIND;
            let Some(source) = m.source() else {
                bail!("{}: a bind mount needs a source", here());
            };
            // Relative sources are relative to the bundle, as runc does.
            Action::Bind {
                source: bundle.join(source),
            }
        } else {
            match typ {
                "" => bail!("{}: no type and no bind option", here()),
                "proc" if dest != Path::new("/proc") => {
                    bail!("{}: procfs may only be mounted on /proc", here())
                }
                "cgroup" => Action::Cgroup,
                _ => Action::Fs {
                    fstype: typ.to_string(),
                    source: m
                        .source()
                        .as_ref()
                        .map(|s| s.to_string_lossy().into_owned())
                        .unwrap_or_else(|| typ.to_string()),
                },
            }
        };
        // An rbind of /sys asked read-only is read-only all the way down:
        // otherwise the host's cgroup mounts below it stay writable
        // (CVE-2023-25809).
        if dest == Path::new("/sys") {
            sys_rbind_readonly(&mut opts);
        }
        if let Action::Fs { fstype, .. } = &action {
            if selinux::takes_context(fstype) {
                opts.data = selinux::mount_data(&opts.data, label);
            }
        }
        ops.push(MountOp {
            dest,
            action,
            opts,
            label: label.map(str::to_string),
        });
    }
    Ok(ops)
}

/// `linux.mountLabel`, if set and not empty.
pub fn mount_label(spec: &Spec) -> Option<&str> {
    spec.linux()
        .as_ref()
        .and_then(|l| l.mount_label().as_deref())
        .filter(|l| !l.is_empty())
}

fn sys_rbind_readonly(opts: &mut MountOptions) {
    let rbind = MsFlags::MS_BIND | MsFlags::MS_REC;
    if opts.flags.contains(rbind) && opts.flags.contains(MsFlags::MS_RDONLY) {
        opts.rec_set |= syscalls::MOUNT_ATTR_RDONLY;
    }
}

/// Files inside `/proc` that lxcfs-style tools may bind over (runc's list);
/// no other mount may target a path inside `/proc`.
const PROC_FILES_ALLOWED: &[&str] = &[
    "/proc/cpuinfo",
    "/proc/diskstats",
    "/proc/meminfo",
    "/proc/stat",
    "/proc/swaps",
    "/proc/uptime",
    "/proc/loadavg",
    "/proc/slabinfo",
    "/proc/net/dev",
    "/proc/sys/kernel/ns_last_pid",
];

/// Only procfs goes on `/proc`, and nothing goes inside it but the
/// lxcfs-style files: a tmpfs or bind on /proc, or on /proc/self/attr or
/// /proc/sys/kernel/core_pattern, would let the container fake or reach
/// kernel interfaces (CVE-2019-16884, CVE-2019-19921).
fn check_proc_destination(dest: &Path, typ: &str, bind: bool) -> Result<()> {
    if dest == Path::new("/proc") {
        if typ != "proc" || bind {
            bail!("only procfs may be mounted on /proc");
        }
        return Ok(());
    }
    if dest.starts_with("/proc") && !PROC_FILES_ALLOWED.iter().any(|p| dest == Path::new(p)) {
        bail!("no mount may target a path inside /proc");
    }
    Ok(())
}

/// Apply the planned mounts in order: a later mount may sit on an earlier one.
pub fn apply_mounts(root: &Root, ops: &[MountOp]) -> Result<()> {
    apply_mounts_in(root, ops, None)
}

/// [`apply_mounts`], planning a v1 cgroup mount from `view` when given.
pub fn apply_mounts_in(
    root: &Root,
    ops: &[MountOp],
    view: Option<&cgroup::HostView>,
) -> Result<()> {
    for op in ops {
        apply_mount(root, op, view).with_context(|| op.describe())?;
    }
    Ok(())
}

fn apply_mount(root: &Root, op: &MountOp, view: Option<&cgroup::HostView>) -> Result<()> {
    match &op.action {
        Action::Bind { source } => mount_bind(root, op, source),
        Action::Fs { fstype, source } => {
            let target = root.ensure(&op.dest, Kind::Dir, op.lookup())?;
            let flags = op.opts.mount_flags();
            let mounted = syscalls::mount(
                Some(Path::new(source)),
                &fd_path(target.as_fd()),
                Some(fstype),
                flags,
                op.opts.data(),
            );
            match mounted {
                // sysfs needs a network namespace owned by our user
                // namespace; without one, the host's /sys is bound instead.
                Err(syscalls::SysError(nix::errno::Errno::EPERM))
                    if fstype == "sysfs" && crate::namespaces::in_user_ns() =>
                {
                    crate::logging::debug(&format!(
                        "{}: not permitted in this user namespace, binding the host's /sys",
                        op.describe()
                    ));
                    return bind_host_sys(root, op);
                }
                r => r?,
            }
            if let (Some(label), "mqueue") = (&op.label, fstype.as_str()) {
                label_mount_root(root, op, label)?;
            }
            if op.opts.tmpcopyup && fstype == "tmpfs" {
                // `target` still names the directory under the new mount.
                let fresh = root.ensure(&op.dest, Kind::Dir, op.lookup())?;
                copyup::copy_tree(&fd_path(target.as_fd()), &fd_path(fresh.as_fd()))?;
            }
            finish_mount(root, op)
        }
        Action::Cgroup => cgroup::mount_cgroup(root, op, view),
    }
}

/// runc's way for a filesystem that cannot take `context=`: the label on
/// the root directory of the fresh mount.
fn label_mount_root(root: &Root, op: &MountOp, label: &str) -> Result<()> {
    let dir = root
        .open_in(
            &op.dest,
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            op.lookup(),
        )
        .with_context(|| format!("open {} after mounting", root.display(&op.dest)))?;
    selinux::set_file_label(dir.as_fd(), label, &op.dest.display().to_string())
}

/// The host's /sys, rbound with the sysfs mount's flags, read-only
/// recursively when asked read-only.
fn bind_host_sys(root: &Root, op: &MountOp) -> Result<()> {
    let mut bind = op.clone();
    bind.opts.flags |= MsFlags::MS_BIND | MsFlags::MS_REC;
    bind.opts.data.clear();
    sys_rbind_readonly(&mut bind.opts);
    mount_bind(root, &bind, Path::new("/sys"))
}

/// Bind a host path: source and target both by fd, the target created as a
/// file or a directory to match the source.
fn mount_bind(root: &Root, op: &MountOp, source: &Path) -> Result<()> {
    let src = syscalls::open_host(source, OFlag::O_PATH)
        .with_context(|| format!("open bind source {}", source.display()))?;
    let st = nix::sys::stat::fstat(std::os::fd::AsRawFd::as_raw_fd(&src))
        .map_err(syscalls::SysError)
        .with_context(|| format!("stat bind source {}", source.display()))?;
    let is_dir = st.st_mode & libc::S_IFMT == libc::S_IFDIR;
    let kind = if is_dir { Kind::Dir } else { Kind::File };
    let target = root.ensure(&op.dest, kind, op.lookup())?;
    let flags = op.opts.flags & (MsFlags::MS_BIND | MsFlags::MS_REC);
    syscalls::mount(
        Some(&fd_path(src.as_fd())),
        &fd_path(target.as_fd()),
        None,
        flags,
        None,
    )?;
    finish_mount(root, op)
}

/// After the first mount(2): per-mount flags a bind could not take at once,
/// recursive attributes, then propagation. All act on the new mount, found
/// by resolving the destination again (the old fd is the dir beneath it).
pub fn finish_mount(root: &Root, op: &MountOp) -> Result<()> {
    let o = &op.opts;
    let remount = o.is_bind() && o.needs_bind_remount();
    if !remount && o.rec_set == 0 && o.rec_clear == 0 && o.propagation.is_empty() {
        return Ok(());
    }
    let m = root
        .open_in(&op.dest, OFlag::O_PATH, Lookup::InRoot)
        .with_context(|| format!("open {} after mounting", root.display(&op.dest)))?;
    let path = fd_path(m.as_fd());
    if remount {
        let flags = o.bind_remount_flags(mount_flags_of(m.as_fd())?);
        syscalls::mount(None, &path, None, flags, None).with_context(|| {
            format!(
                "remount {} (flags {})",
                op.dest.display(),
                syscalls::flags_str(flags)
            )
        })?;
    }
    if o.rec_set != 0 || o.rec_clear != 0 {
        syscalls::mount_setattr_recursive(m.as_fd(), o.rec_set, o.rec_clear).with_context(
            || {
                format!(
                    "set recursive mount attributes on {} (set {:#x}, clear {:#x})",
                    op.dest.display(),
                    o.rec_set,
                    o.rec_clear
                )
            },
        )?;
    }
    if !o.propagation.is_empty() {
        syscalls::set_propagation(&path, o.propagation).with_context(|| {
            format!(
                "set propagation of {} to {}",
                op.dest.display(),
                syscalls::flags_str(o.propagation)
            )
        })?;
    }
    Ok(())
}

/// The per-mount flags a mount has now, as `MsFlags`. statvfs cannot say
/// "strictatime"; it is what neither noatime nor relatime means.
pub fn mount_flags_of(fd: BorrowedFd<'_>) -> Result<MsFlags> {
    let st = nix::sys::statvfs::fstatvfs(fd)
        .map_err(syscalls::SysError)
        .context("statvfs of mount")?;
    let f = st.flags();
    const MAP: &[(FsFlags, MsFlags)] = &[
        (FsFlags::ST_RDONLY, MsFlags::MS_RDONLY),
        (FsFlags::ST_NOSUID, MsFlags::MS_NOSUID),
        (FsFlags::ST_NODEV, MsFlags::MS_NODEV),
        (FsFlags::ST_NOEXEC, MsFlags::MS_NOEXEC),
        (FsFlags::ST_NOATIME, MsFlags::MS_NOATIME),
        (FsFlags::ST_NODIRATIME, MsFlags::MS_NODIRATIME),
        (FsFlags::ST_RELATIME, MsFlags::MS_RELATIME),
    ];
    let mut out = MsFlags::empty();
    for (s, m) in MAP {
        if f.contains(*s) {
            out |= *m;
        }
    }
    if !out.intersects(MsFlags::MS_NOATIME | MsFlags::MS_RELATIME) {
        out |= MsFlags::MS_STRICTATIME;
    }
    Ok(out)
}

/// Bind `dest` (open as `fd`) onto itself (recursively) and make the whole
/// tree read-only, for `readonlyPaths`. `mount_setattr` reaches
/// every submount; before kernel 5.12 only the top mount can be made
/// read-only.
pub fn bind_readonly(root: &Root, dest: &Path, fd: OwnedFd) -> Result<()> {
    let p = fd_path(fd.as_fd());
    syscalls::mount(Some(&p), &p, None, MsFlags::MS_BIND | MsFlags::MS_REC, None)
        .with_context(|| format!("bind mount {} onto itself (flags bind|rec)", dest.display()))?;
    // The old fd is the directory beneath the new mount: look it up again.
    let fd = root.open_in(dest, OFlag::O_PATH, Lookup::InRoot)?;
    match syscalls::mount_setattr_recursive(fd.as_fd(), syscalls::MOUNT_ATTR_RDONLY, 0) {
        Ok(()) => Ok(()),
        Err(syscalls::SysError(nix::errno::Errno::ENOSYS)) => remount_readonly(root, dest),
        Err(e) => Err(e).with_context(|| format!("make {} read-only recursively", dest.display())),
    }
}

/// Make the one mount at `dest` read-only, keeping its other flags (which a
/// user namespace may have locked). Submounts keep their own flags.
pub fn remount_readonly(root: &Root, dest: &Path) -> Result<()> {
    let fd = root.open_in(dest, OFlag::O_PATH, Lookup::InRoot)?;
    let flags =
        MsFlags::MS_REMOUNT | MsFlags::MS_BIND | MsFlags::MS_RDONLY | mount_flags_of(fd.as_fd())?;
    syscalls::mount(None, &fd_path(fd.as_fd()), None, flags, None).with_context(|| {
        format!(
            "remount {} (flags {})",
            dest.display(),
            syscalls::flags_str(flags)
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(mounts: &str) -> Spec {
        let json =
            format!(r#"{{"ociVersion":"1.0.2","root":{{"path":"rootfs"}},"mounts":{mounts}}}"#);
        serde_json::from_str(&json).unwrap()
    }

    #[test]
    fn plans_the_default_runc_mounts() {
        let s = spec(
            r#"[{"destination":"/proc","type":"proc","source":"proc"},
                {"destination":"/dev","type":"tmpfs","source":"tmpfs","options":["nosuid","strictatime","mode=755","size=65536k"]},
                {"destination":"/sys","type":"sysfs","source":"sysfs","options":["nosuid","noexec","nodev","ro"]},
                {"destination":"/data","source":"data","options":["rbind","ro","rprivate"]}]"#,
        );
        let ops = plan_mounts(&s, Path::new("/srv/b")).unwrap();
        assert_eq!(ops.len(), 4);
        assert_eq!(ops[0].lookup(), Lookup::Strict);
        assert_eq!(ops[0].describe(), "mount proc on /proc (flags 0)");
        assert_eq!(
            ops[1].describe(),
            "mount tmpfs on /dev (flags nosuid|strictatime, data mode=755,size=65536k)"
        );
        assert_eq!(ops[1].lookup(), Lookup::InRoot);
        assert_eq!(ops[2].lookup(), Lookup::Strict);
        assert_eq!(
            ops[3].action,
            Action::Bind {
                source: PathBuf::from("/srv/b/data")
            }
        );
        assert!(ops[3].opts.needs_bind_remount());
        assert_eq!(
            ops[3].describe(),
            "bind mount /srv/b/data on /data (flags ro|bind|rec)"
        );
    }

    #[test]
    fn bind_type_absolute_source_and_clean_destination() {
        let s =
            spec(r#"[{"destination":"/etc/../etc/hosts/","type":"bind","source":"/etc/hosts"}]"#);
        let ops = plan_mounts(&s, Path::new("/srv/b")).unwrap();
        assert_eq!(ops[0].dest, Path::new("/etc/hosts"));
        assert!(ops[0].opts.is_bind());
        assert_eq!(
            ops[0].action,
            Action::Bind {
                source: PathBuf::from("/etc/hosts")
            }
        );
    }

    #[test]
    fn refuses_proc_elsewhere_and_missing_pieces() {
        let err = |m: &str| format!("{:#}", plan_mounts(&spec(m), Path::new("/b")).unwrap_err());
        assert!(err(r#"[{"destination":"/x/proc","type":"proc"}]"#)
            .contains("procfs may only be mounted on /proc"));
        assert!(err(r#"[{"destination":"/proc/../x","type":"proc"}]"#)
            .contains("only be mounted on /proc"));
        assert!(err(r#"[{"destination":"/d","options":["bind"]}]"#).contains("needs a source"));
        assert!(err(r#"[{"destination":"/d","source":"x"}]"#).contains("no type"));
        assert!(err(r#"[{"destination":"/..","type":"tmpfs"}]"#).contains("container's root"));
    }

    #[test]
    fn proc_takes_only_procfs_and_lxcfs_files() {
        let err = |m: &str| format!("{:#}", plan_mounts(&spec(m), Path::new("/b")).unwrap_err());
        assert_eq!(
            err(r#"[{"destination":"/proc","type":"tmpfs","source":"tmpfs"}]"#),
            "mounts[0] on /proc: only procfs may be mounted on /proc"
        );
        assert_eq!(
            err(r#"[{"destination":"/proc","type":"bind","source":"/x"}]"#),
            "mounts[0] on /proc: only procfs may be mounted on /proc"
        );
        assert_eq!(
            err(r#"[{"destination":"/proc/sys/kernel/core_pattern","type":"bind","source":"/x"}]"#),
            "mounts[0] on /proc/sys/kernel/core_pattern: no mount may target a path inside /proc"
        );
        assert!(
            err(r#"[{"destination":"/proc/./self/../self/attr","type":"tmpfs"}]"#)
                .contains("inside /proc")
        );
        let ok = spec(
            r#"[{"destination":"/proc","type":"proc","source":"proc"},
                {"destination":"/proc/meminfo","type":"bind","source":"/var/lib/lxcfs/proc/meminfo","options":["bind"]},
                {"destination":"/procfoo","type":"tmpfs"}]"#,
        );
        assert_eq!(plan_mounts(&ok, Path::new("/b")).expect("allowed").len(), 3);
    }

    #[test]
    fn readonly_rbind_of_sys_is_readonly_all_the_way_down() {
        let s = spec(
            r#"[{"destination":"/sys","type":"none","source":"/sys","options":["rbind","nosuid","noexec","nodev","ro"]},
                {"destination":"/data","source":"/data","options":["rbind","ro"]}]"#,
        );
        let ops = plan_mounts(&s, Path::new("/b")).unwrap();
        assert_eq!(ops[0].opts.rec_set, syscalls::MOUNT_ATTR_RDONLY);
        assert_eq!(ops[1].opts.rec_set, 0, "only /sys is made recursive");
    }

    #[test]
    fn cgroup_types() {
        let s = spec(
            r#"[{"destination":"/sys/fs/cgroup","type":"cgroup","source":"cgroup","options":["ro"]},
                {"destination":"/sys/fs/cgroup","type":"cgroup2","source":"cgroup2"}]"#,
        );
        let ops = plan_mounts(&s, Path::new("/b")).unwrap();
        assert_eq!(ops[0].action, Action::Cgroup);
        assert_eq!(
            ops[1].action,
            Action::Fs {
                fstype: "cgroup2".into(),
                source: "cgroup2".into()
            }
        );
    }

    #[test]
    fn mount_label_is_the_context_of_the_filesystems_that_take_one() {
        let json = r#"{"ociVersion":"1.0.2","root":{"path":"rootfs"},
            "linux":{"mountLabel":"system_u:object_r:container_file_t:s0:c1,c2"},
            "mounts":[{"destination":"/proc","type":"proc","source":"proc"},
                {"destination":"/dev","type":"tmpfs","source":"tmpfs","options":["nosuid","mode=755"]},
                {"destination":"/dev/pts","type":"devpts","source":"devpts","options":["newinstance","gid=5"]},
                {"destination":"/dev/shm","type":"tmpfs","source":"shm"},
                {"destination":"/dev/mqueue","type":"mqueue","source":"mqueue","options":["nosuid"]},
                {"destination":"/sys","type":"sysfs","source":"sysfs","options":["ro"]},
                {"destination":"/sys/fs/cgroup","type":"cgroup","source":"cgroup"},
                {"destination":"/data","source":"data","options":["rbind"]}]}"#;
        let s: Spec = serde_json::from_str(json).unwrap();
        let ops = plan_mounts(&s, Path::new("/b")).unwrap();
        let ctx = r#"context="system_u:object_r:container_file_t:s0:c1,c2""#;
        let data: Vec<String> = ops.iter().map(|o| o.opts.data.clone()).collect();
        assert_eq!(
            data,
            [
                String::new(),
                format!("mode=755,{ctx}"),
                format!("newinstance,gid=5,{ctx}"),
                ctx.to_string(),
                String::new(),
                String::new(),
                String::new(),
                String::new(),
            ]
        );
        // mqueue's root and a v1 cgroup mount's tmpfs take it otherwise.
        assert!(ops
            .iter()
            .all(|o| o.label.as_deref() == Some("system_u:object_r:container_file_t:s0:c1,c2")));
        assert_eq!(
            ops[1].describe(),
            format!("mount tmpfs on /dev (flags nosuid, data mode=755,{ctx})")
        );
        // No label, or an empty one: nothing added.
        let s: Spec =
            serde_json::from_str(&json.replace("system_u:object_r:container_file_t:s0:c1,c2", ""))
                .unwrap();
        let ops = plan_mounts(&s, Path::new("/b")).unwrap();
        assert_eq!(ops[1].opts.data, "mode=755");
        assert!(ops.iter().all(|o| o.label.is_none()));
    }
}
