//! The `type: cgroup` mount. On a pure cgroup-v2 host it is a cgroup2 mount.
//! On a v1 or hybrid host it is what runc builds: a tmpfs holding, for each
//! hierarchy the container's process belongs to, a bind of *its own* cgroup
//! directory (so the container sees its cgroup as the root and nothing
//! above), plus symlinks for co-mounted controllers (`cpu -> cpu,cpuacct`).
//! Relies on the child already being in its cgroups. Must never expose a
//! host cgroup above the container's own.

use std::os::fd::{AsFd, AsRawFd};
use std::path::{Component, Path, PathBuf};

use anyhow::{Context, Result};
use nix::fcntl::OFlag;
use nix::mount::MsFlags;

use super::mounts::{finish_mount, mount_flags_of, MountOp};
use super::paths::{Kind, Lookup, Root};
use super::syscalls::{self, fd_path, SysError};

/// One hierarchy this process is in, from /proc/self/cgroup.
#[derive(Debug, PartialEq, Eq)]
pub struct Membership<'a> {
    /// "cpu,cpuacct", "name=systemd", or "" for the v2 hierarchy.
    pub controllers: &'a str,
    pub path: &'a str,
}

/// A cgroup filesystem mount, from /proc/self/mountinfo.
#[derive(Debug, PartialEq, Eq)]
pub struct CgroupMount {
    pub root: String,
    pub mountpoint: PathBuf,
    pub v2: bool,
    /// v1 super options, e.g. "rw,cpu,cpuacct".
    pub super_opts: String,
}

pub fn parse_proc_cgroup(text: &str) -> Vec<Membership<'_>> {
    text.lines()
        .filter_map(|l| {
            let mut it = l.splitn(3, ':');
            let _id = it.next()?;
            let controllers = it.next()?;
            let path = it.next()?;
            Some(Membership { controllers, path })
        })
        .collect()
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo`.
fn unescape(field: &str) -> String {
    let b = field.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            out.push((b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0'));
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

pub fn parse_mountinfo_cgroups(text: &str) -> Vec<CgroupMount> {
    let mut out = Vec::new();
    for line in text.lines() {
        let f: Vec<&str> = line.split(' ').collect();
        let Some(sep) = f.iter().position(|x| *x == "-") else {
            continue;
        };
        if f.len() < sep + 4 || sep < 5 {
            continue;
        }
        let v2 = match f[sep + 1] {
            "cgroup" => false,
            "cgroup2" => true,
            _ => continue,
        };
        out.push(CgroupMount {
            root: unescape(f[3]),
            mountpoint: PathBuf::from(unescape(f[4])),
            v2,
            super_opts: f[sep + 3].to_string(),
        });
    }
    out
}

/// The mount serving a membership: cgroup2 for "", else the v1 mount whose
/// super options name every controller of the line.
fn find_mount<'m>(mounts: &'m [CgroupMount], m: &Membership<'_>) -> Option<&'m CgroupMount> {
    mounts.iter().find(|c| {
        if m.controllers.is_empty() {
            return c.v2;
        }
        !c.v2
            && m.controllers
                .split(',')
                .all(|ctl| c.super_opts.split(',').any(|o| o == ctl))
    })
}

/// How one hierarchy appears under the container's cgroup tmpfs.
#[derive(Debug, PartialEq, Eq)]
pub enum V1Source {
    /// Bind the host directory of the container's own cgroup.
    Bind(PathBuf),
    /// In a cgroup namespace whose root lies below the host mount's root
    /// (mountinfo shows the root as "/../.."), the directory has no host
    /// path we can name; a new mount of the hierarchy is rooted at the
    /// namespace's cgroup, which is what the container must see.
    Fresh { fstype: &'static str, data: String },
}

/// For each hierarchy the process is in: its name under the tmpfs
/// (the host mountpoint's last component) and where it comes from.
pub fn plan_v1(proc_cgroup: &str, mountinfo: &str) -> Vec<(String, V1Source)> {
    let mounts = parse_mountinfo_cgroups(mountinfo);
    let mut out: Vec<(String, V1Source)> = Vec::new();
    for m in parse_proc_cgroup(proc_cgroup) {
        let Some(c) = find_mount(&mounts, &m) else {
            continue;
        };
        let Some(name) = c.mountpoint.file_name() else {
            continue;
        };
        let name = name.to_string_lossy().into_owned();
        if out.iter().any(|(n, _)| *n == name) {
            continue;
        }
        let root = Path::new(&c.root);
        let below = !root.components().any(|x| x == Component::ParentDir);
        let source = match Path::new(m.path).strip_prefix(root) {
            Ok(rel) if below => V1Source::Bind(c.mountpoint.join(rel)),
            _ if c.v2 => V1Source::Fresh {
                fstype: "cgroup2",
                data: String::new(),
            },
            // Without "none", a name=-only hierarchy would mean "all controllers".
            _ if m.controllers.starts_with("name=") => V1Source::Fresh {
                fstype: "cgroup",
                data: format!("none,{}", m.controllers),
            },
            _ => V1Source::Fresh {
                fstype: "cgroup",
                data: m.controllers.to_string(),
            },
        };
        out.push((name, source));
    }
    out
}

/// What the v1 hierarchies are planned from when the child has it without
/// reading: its /proc/self/cgroup as read in its cgroups but before its new
/// cgroup namespace, and the mountinfo the parent read before the clone (the
/// child's mount namespace is a copy, so the cgroup mounts are the same).
/// Seen from the host, each hierarchy is the directory the container is in
/// there, and is bound; seen from inside a new cgroup namespace the host's
/// mounts are rooted above it ("/../..") and a fresh mount of each is made
/// instead. Both show the container the same thing: a cgroup v1 mount in a
/// cgroup namespace reuses the host's superblock, rooted at the namespace's
/// cgroup, which is that directory.
pub struct HostView<'a> {
    pub proc_cgroup: &'a str,
    pub mountinfo: &'a str,
}

pub fn mount_cgroup(root: &Root, op: &MountOp, view: Option<&HostView>) -> Result<()> {
    let host_v2 = nix::sys::statfs::statfs("/sys/fs/cgroup")
        .map(|s| s.filesystem_type() == nix::sys::statfs::CGROUP2_SUPER_MAGIC)
        .unwrap_or(false);
    let target = root.ensure(&op.dest, Kind::Dir, Lookup::InRoot)?;
    if host_v2 {
        // A pure v2 host: the cgroup2 filesystem itself, rooted at the
        // container's cgroup when it has a cgroup namespace.
        match syscalls::mount(
            Some(Path::new("cgroup2")),
            &fd_path(target.as_fd()),
            Some("cgroup2"),
            op.opts.flags,
            op.opts.data(),
        ) {
            Ok(()) => return finish_mount(root, op),
            // In a user namespace without a cgroup namespace of its own the
            // kernel refuses a new cgroup2 mount; bind the container's own
            // cgroup instead (runc binds the whole host tree).
            Err(SysError(nix::errno::Errno::EPERM | nix::errno::Errno::EBUSY)) => {
                return bind_own_v2(root, op, target)
            }
            Err(e) => return Err(e).context("mount cgroup2"),
        }
    }
    mount_v1(root, op, target, view)
}

/// The container's own v2 cgroup (from /proc/self/cgroup) bound on the
/// cgroup mount's destination, with the mount's flags.
fn bind_own_v2(root: &Root, op: &MountOp, target: std::os::fd::OwnedFd) -> Result<()> {
    let text = crate::sys::read_to_string("/proc/self/cgroup").context("read /proc/self/cgroup")?;
    let own = text
        .lines()
        .find_map(|l| l.strip_prefix("0::"))
        .context("no cgroup v2 line in /proc/self/cgroup")?;
    let src = Path::new("/sys/fs/cgroup").join(own.trim_start_matches('/'));
    syscalls::mount(
        Some(&src),
        &fd_path(target.as_fd()),
        None,
        MsFlags::MS_BIND,
        None,
    )
    .with_context(|| format!("bind mount {} on {}", src.display(), op.dest.display()))?;
    let m = root.open_in(&op.dest, OFlag::O_PATH, Lookup::InRoot)?;
    let re = op.opts.bind_remount_flags(mount_flags_of(m.as_fd())?);
    syscalls::mount(None, &fd_path(m.as_fd()), None, re, None).with_context(|| {
        format!(
            "remount {} (flags {})",
            op.dest.display(),
            syscalls::flags_str(re)
        )
    })?;
    Ok(())
}

fn mount_v1(
    root: &Root,
    op: &MountOp,
    target: std::os::fd::OwnedFd,
    view: Option<&HostView>,
) -> Result<()> {
    let flags = op.opts.flags;
    // The tmpfs stays writable until the binds and symlinks are in.
    let tmpfs_flags = flags & !MsFlags::MS_RDONLY;
    let data = crate::security::selinux::mount_data("mode=755", op.label.as_deref());
    syscalls::mount(
        Some(Path::new("tmpfs")),
        &fd_path(target.as_fd()),
        Some("tmpfs"),
        tmpfs_flags,
        Some(&data),
    )
    .with_context(|| {
        format!(
            "mount tmpfs on {} (flags {}, data {data})",
            op.dest.display(),
            syscalls::flags_str(tmpfs_flags)
        )
    })?;
    let plan = match view {
        Some(v) => plan_v1(v.proc_cgroup, v.mountinfo),
        None => {
            let read = |path: &str| {
                crate::sys::read_to_string(path).with_context(|| format!("read {path}"))
            };
            plan_v1(&read("/proc/self/cgroup")?, &read("/proc/self/mountinfo")?)
        }
    };
    let dir = root.open_in(&op.dest, OFlag::O_PATH | OFlag::O_DIRECTORY, Lookup::InRoot)?;
    for (name, source) in plan {
        let dest = op.dest.join(&name);
        // The tmpfs is new and ours: nothing in it can be a symlink, so its
        // directories are made and opened right there.
        let sub = mkdir_open(&dir, &name).with_context(|| format!("mkdir {}", dest.display()))?;
        let target = fd_path(sub.as_fd());
        match &source {
            V1Source::Bind(src) => {
                let bind = MsFlags::MS_BIND | MsFlags::MS_REC;
                syscalls::mount(Some(src), &target, None, bind, None).with_context(|| {
                    format!(
                        "bind mount {} on {} (flags bind|rec)",
                        src.display(),
                        dest.display()
                    )
                })?;
            }
            V1Source::Fresh { fstype, data } => {
                let data = (!data.is_empty()).then_some(data.as_str());
                syscalls::mount(
                    Some(Path::new(fstype)),
                    &target,
                    Some(fstype),
                    MsFlags::empty(),
                    data,
                )
                .with_context(|| {
                    format!(
                        "mount {fstype} on {} (data {})",
                        dest.display(),
                        data.unwrap_or("")
                    )
                })?;
            }
        }
        // Co-mounted controllers are reachable under each controller's name.
        if name.contains(',') {
            for ctl in name.split(',').filter(|c| *c != name) {
                match nix::unistd::symlinkat(name.as_str(), Some(dir.as_raw_fd()), ctl) {
                    Ok(()) | Err(nix::errno::Errno::EEXIST) => {}
                    Err(e) => {
                        return Err(SysError(e)).with_context(|| {
                            format!("symlink {}/{ctl} -> {name}", op.dest.display())
                        })
                    }
                }
            }
        }
    }
    // The mount's flags (ro, nosuid, ...) on the tmpfs and every hierarchy
    // under it at once: one mount_setattr, not a remount per mount.
    let (set, clear) = op.opts.tree_attrs();
    if set != 0 || clear != 0 {
        syscalls::mount_setattr_recursive(dir.as_fd(), set, clear).with_context(|| {
            format!(
                "set mount attributes on {} and below (set {set:#x}, clear {clear:#x})",
                op.dest.display()
            )
        })?;
    }
    let mut rest = op.clone();
    rest.opts.flags = MsFlags::empty();
    rest.opts.cleared = MsFlags::empty();
    rest.opts.rec_set = 0;
    rest.opts.rec_clear = 0;
    finish_mount(root, &rest)
}

/// mkdirat + open (O_PATH, no symlink followed) in a directory of ours.
fn mkdir_open(dir: &std::os::fd::OwnedFd, name: &str) -> Result<std::os::fd::OwnedFd> {
    match nix::sys::stat::mkdirat(
        Some(dir.as_raw_fd()),
        name,
        nix::sys::stat::Mode::from_bits_truncate(0o755),
    ) {
        Ok(()) | Err(nix::errno::Errno::EEXIST) => {}
        Err(e) => return Err(SysError(e).into()),
    }
    syscalls::openat(
        dir.as_fd(),
        Path::new(name),
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW,
        nix::sys::stat::Mode::empty(),
    )
    .map_err(Into::into)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PROC_CGROUP: &str = "\
12:pids:/process_api/x
8:memory:/process_api/x
4:cpu,cpuacct:/process_api/x
1:name=systemd:/user.slice
0::/process_api/x
";

    const MOUNTINFO: &str = "\
25 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
30 25 0:26 / /sys/fs/cgroup rw shared:9 - tmpfs tmpfs ro,mode=755
31 30 0:27 / /sys/fs/cgroup/unified rw,nosuid shared:10 - cgroup2 cgroup2 rw,nsdelegate
32 30 0:28 / /sys/fs/cgroup/systemd rw,nosuid shared:11 - cgroup cgroup rw,xattr,name=systemd
33 30 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid shared:12 - cgroup cgroup rw,cpu,cpuacct
34 30 0:30 / /sys/fs/cgroup/memory rw,nosuid shared:13 - cgroup cgroup rw,memory
35 30 0:31 / /sys/fs/cgroup/pids rw,nosuid shared:14 - cgroup cgroup rw,pids
36 30 0:32 / /sys/fs/cgroup/cpuset rw,nosuid shared:15 - cgroup cgroup rw,cpuset
37 25 0:33 / /mnt/with\\040space rw - cgroup cgroup rw,pids
";

    #[test]
    fn parses_memberships() {
        let m = parse_proc_cgroup(PROC_CGROUP);
        assert_eq!(m.len(), 5);
        assert_eq!(
            m[2],
            Membership {
                controllers: "cpu,cpuacct",
                path: "/process_api/x"
            }
        );
        assert_eq!(
            m[4],
            Membership {
                controllers: "",
                path: "/process_api/x"
            }
        );
    }

    #[test]
    fn parses_cgroup_mounts_and_unescapes() {
        let m = parse_mountinfo_cgroups(MOUNTINFO);
        assert_eq!(m.len(), 7);
        assert!(m[0].v2);
        assert_eq!(m[0].mountpoint, Path::new("/sys/fs/cgroup/unified"));
        assert_eq!(m[6].mountpoint, Path::new("/mnt/with space"));
    }

    #[test]
    fn binds_only_own_cgroups_of_joined_hierarchies() {
        let b = plan_v1(PROC_CGROUP, MOUNTINFO);
        let bind = |p: &str| V1Source::Bind(PathBuf::from(p));
        assert_eq!(
            b,
            vec![
                (
                    "pids".to_string(),
                    bind("/sys/fs/cgroup/pids/process_api/x")
                ),
                (
                    "memory".to_string(),
                    bind("/sys/fs/cgroup/memory/process_api/x")
                ),
                (
                    "cpu,cpuacct".to_string(),
                    bind("/sys/fs/cgroup/cpu,cpuacct/process_api/x")
                ),
                (
                    "systemd".to_string(),
                    bind("/sys/fs/cgroup/systemd/user.slice")
                ),
                (
                    "unified".to_string(),
                    bind("/sys/fs/cgroup/unified/process_api/x")
                ),
            ]
        );
        // cpuset is mounted but this process's file does not list it.
        assert!(!b.iter().any(|(n, _)| n == "cpuset"));
    }

    #[test]
    fn cgroup_namespace_below_mount_root_mounts_fresh() {
        // What `unshare -C` shows on this host.
        let proc_cgroup = "4:memory:/\n1:name=systemd:/\n2:cpu:/\n0::/\n";
        let mountinfo = "\
35 31 0:32 /../.. /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory
40 31 0:37 /.. /sys/fs/cgroup/systemd rw - cgroup cgroup rw,name=systemd
32 31 0:29 / /sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu
41 31 0:38 /.. /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw
";
        let fresh = |fstype, data: &str| V1Source::Fresh {
            fstype,
            data: data.to_string(),
        };
        assert_eq!(
            plan_v1(proc_cgroup, mountinfo),
            vec![
                ("memory".to_string(), fresh("cgroup", "memory")),
                ("systemd".to_string(), fresh("cgroup", "none,name=systemd")),
                (
                    "cpu".to_string(),
                    V1Source::Bind(PathBuf::from("/sys/fs/cgroup/cpu"))
                ),
                ("unified".to_string(), fresh("cgroup2", "")),
            ]
        );
    }
}
