//! Finding the cgroup hierarchies and where a container's cgroup goes in each.
//!
//! Probes the host once (statfs of /sys/fs/cgroup, one read of
//! /proc/self/mountinfo and /proc/self/cgroup) and resolves `cgroupsPath`
//! per hierarchy: relative or absent nests under the caller's own cgroup,
//! absolute is taken as given, systemd's `slice:prefix:name` is mapped to a
//! cgroupfs path. The parsers are pure functions over text; this module never
//! writes anything.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

use anyhow::{bail, Context, Result};

/// Where cgroup filesystems are conventionally mounted.
pub const CGROUP_ROOT: &str = "/sys/fs/cgroup";

/// v1 controllers berth joins when their hierarchy is mounted.
pub const V1_CONTROLLERS: &[&str] = &[
    "cpu",
    "cpuacct",
    "cpuset",
    "memory",
    "devices",
    "freezer",
    "blkio",
    "pids",
    "net_cls",
    "net_prio",
    "hugetlb",
    "perf_event",
    "rdma",
    "misc",
];

/// A mounted cgroup hierarchy: mount point and the cgroup path it shows.
#[derive(Clone, Debug, PartialEq)]
pub struct Mount {
    pub point: PathBuf,
    pub root: PathBuf,
    /// v1 controllers of this hierarchy (empty for cgroup2).
    pub controllers: Vec<String>,
}

/// What the host has: `pure_v2`, or v1 hierarchies plus perhaps a cgroup2
/// mount beside them (hybrid).
#[derive(Clone, Debug, Default)]
pub struct Layout {
    pub pure_v2: bool,
    pub v2: Option<Mount>,
    pub v1: Vec<Mount>,
}

/// The caller's own cgroup per hierarchy, from /proc/self/cgroup.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct OwnCgroups {
    pub v2: Option<PathBuf>,
    /// v1 controller name → path.
    pub v1: BTreeMap<String, PathBuf>,
}

#[cfg(test)]
pub fn probe_layout() -> Result<Layout> {
    probe_layout_and_mountinfo().map(|(layout, _)| layout)
}

/// Probe the mounts: statfs says whether /sys/fs/cgroup itself is cgroup2.
/// Also the text of /proc/self/mountinfo the layout was read from.
pub fn probe_layout_and_mountinfo() -> Result<(Layout, String)> {
    let st =
        nix::sys::statfs::statfs(CGROUP_ROOT).with_context(|| format!("statfs {CGROUP_ROOT}"))?;
    let pure_v2 = st.filesystem_type() == nix::sys::statfs::CGROUP2_SUPER_MAGIC;
    let text =
        crate::sys::read_to_string("/proc/self/mountinfo").context("read /proc/self/mountinfo")?;
    let mut layout = parse_mountinfo(&text);
    layout.pure_v2 = pure_v2;
    if pure_v2 {
        layout.v1.clear();
        let keep_root = layout
            .v2
            .as_ref()
            .filter(|m| m.point == Path::new(CGROUP_ROOT))
            .map(|m| m.root.clone());
        layout.v2 = Some(Mount {
            point: CGROUP_ROOT.into(),
            root: keep_root.unwrap_or_else(|| "/".into()),
            controllers: vec![],
        });
    }
    if layout.v2.is_none() && layout.v1.is_empty() {
        bail!("no cgroup filesystem is mounted (looked in /proc/self/mountinfo)");
    }
    Ok((layout, text))
}

pub fn read_own_cgroups() -> Result<OwnCgroups> {
    let text = crate::sys::read_to_string("/proc/self/cgroup").context("read /proc/self/cgroup")?;
    Ok(parse_proc_cgroup(&text))
}

/// Parse /proc/self/mountinfo: `id parent maj:min root point opts - fstype src superopts`.
pub fn parse_mountinfo(text: &str) -> Layout {
    let mut layout = Layout::default();
    for line in text.lines() {
        let Some((pre, post)) = line.split_once(" - ") else {
            continue;
        };
        let pre: Vec<&str> = pre.split(' ').collect();
        let post: Vec<&str> = post.split(' ').collect();
        if pre.len() < 5 || post.len() < 3 {
            continue;
        }
        let point = PathBuf::from(unescape(pre[4]));
        let root = PathBuf::from(unescape(pre[3]));
        match post[0] {
            "cgroup2" => {
                // Prefer the conventional places when cgroup2 is mounted twice.
                let better = layout
                    .v2
                    .as_ref()
                    .filter(|m| m.point.starts_with(CGROUP_ROOT))
                    .is_none();
                if better {
                    layout.v2 = Some(Mount {
                        point,
                        root,
                        controllers: vec![],
                    });
                }
            }
            "cgroup" => {
                let controllers: Vec<String> = post[2]
                    .split(',')
                    .filter(|o| V1_CONTROLLERS.contains(o))
                    .map(str::to_string)
                    .collect();
                // Named hierarchies (name=systemd) carry no controller.
                if controllers.is_empty() || layout.v1.iter().any(|m| m.controllers == controllers)
                {
                    continue;
                }
                layout.v1.push(Mount {
                    point,
                    root,
                    controllers,
                });
            }
            _ => {}
        }
    }
    layout
}

/// mountinfo escapes space, tab, newline and backslash as octal `\NNN`.
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
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

/// Parse /proc/self/cgroup: `hierarchy-id:controllers:path`.
pub fn parse_proc_cgroup(text: &str) -> OwnCgroups {
    let mut own = OwnCgroups::default();
    for line in text.lines() {
        let mut parts = line.splitn(3, ':');
        let (Some(id), Some(ctrls), Some(path)) = (parts.next(), parts.next(), parts.next()) else {
            continue;
        };
        if id == "0" && ctrls.is_empty() {
            own.v2 = Some(PathBuf::from(path));
            continue;
        }
        for c in ctrls.split(',').filter(|c| !c.is_empty()) {
            own.v1.insert(c.to_string(), PathBuf::from(path));
        }
    }
    own
}

/// Where the container's cgroup goes, independent of hierarchy.
#[derive(Clone, Debug, PartialEq)]
pub enum Target {
    /// Below the caller's own cgroup in each hierarchy.
    Nested(PathBuf),
    /// From the hierarchy's root, as given.
    Absolute(PathBuf),
    /// A systemd unit's cgroup, from the hierarchy's root.
    Systemd(PathBuf),
}

/// Turn the id, `linux.cgroupsPath` and `--systemd-cgroup` into a target.
pub fn resolve_target(id: &str, cgroups_path: Option<&Path>, systemd: bool) -> Result<Target> {
    if id.is_empty() || id.contains('/') || id == "." || id == ".." {
        bail!("container id {id:?} cannot name a cgroup");
    }
    let given = cgroups_path.filter(|p| !p.as_os_str().is_empty());
    if systemd {
        let text = match given {
            Some(p) => p
                .to_str()
                .with_context(|| format!("cgroupsPath {} is not UTF-8", p.display()))?
                .to_string(),
            None => format!("system.slice:berth:{id}"),
        };
        return Ok(Target::Systemd(systemd_path(&text)?));
    }
    let Some(path) = given else {
        return Ok(Target::Nested(PathBuf::from("berth").join(id)));
    };
    if path.components().any(|c| matches!(c, Component::ParentDir)) {
        bail!("cgroupsPath {} must not contain '..'", path.display());
    }
    if path.is_absolute() {
        let rel: PathBuf = path
            .components()
            .filter(|c| matches!(c, Component::Normal(_)))
            .collect();
        if rel.as_os_str().is_empty() {
            bail!("cgroupsPath {} names the root cgroup", path.display());
        }
        Ok(Target::Absolute(Path::new("/").join(rel)))
    } else {
        Ok(Target::Nested(
            path.components()
                .filter(|c| matches!(c, Component::Normal(_)))
                .collect(),
        ))
    }
}

/// Map `slice:prefix:name` to the cgroup path systemd would use.
pub fn systemd_path(text: &str) -> Result<PathBuf> {
    let parts: Vec<&str> = text.split(':').collect();
    if parts.len() != 3 {
        bail!("cgroupsPath {text:?} is not of the form slice:prefix:name required by --systemd-cgroup");
    }
    let (slice, prefix, name) = (parts[0], parts[1], parts[2]);
    if name.is_empty() || name.contains('/') || prefix.contains('/') {
        bail!(
            "cgroupsPath {text:?}: name must be non-empty and prefix and name must not contain '/'"
        );
    }
    let mut path = expand_slice(if slice.is_empty() {
        "system.slice"
    } else {
        slice
    })?;
    if name.ends_with(".slice") {
        // A slice as the unit: it nests like any slice, under the parent.
        let sub = expand_slice(name)?;
        path.push(sub.file_name().context("empty slice name")?);
    } else if prefix.is_empty() {
        path.push(format!("{name}.scope"));
    } else {
        path.push(format!("{prefix}-{name}.scope"));
    }
    Ok(path)
}

/// `a-b.slice` → `/a.slice/a-b.slice`, `-.slice` → `/`, as systemd does.
pub fn expand_slice(slice: &str) -> Result<PathBuf> {
    let Some(stem) = slice.strip_suffix(".slice") else {
        bail!("systemd slice {slice:?} must end in .slice");
    };
    if slice.contains('/') {
        bail!("systemd slice {slice:?} must not contain '/'");
    }
    let mut path = PathBuf::from("/");
    if stem == "-" {
        return Ok(path);
    }
    if stem.is_empty() || stem.starts_with('-') || stem.ends_with('-') || stem.contains("--") {
        bail!("systemd slice {slice:?} is not a valid slice name");
    }
    let mut acc = String::new();
    for part in stem.split('-') {
        if !acc.is_empty() {
            acc.push('-');
        }
        acc.push_str(part);
        path.push(format!("{acc}.slice"));
    }
    Ok(path)
}

/// Filesystem directory of cgroup `cg` (a path from the hierarchy's root) in
/// mount `m`, allowing for a mount that shows only a subtree (`root` ≠ `/`).
pub fn dir_in_mount(m: &Mount, cg: &Path) -> PathBuf {
    let rel = cg.strip_prefix(&m.root).unwrap_or(cg);
    let rel: PathBuf = rel
        .components()
        .filter(|c| matches!(c, Component::Normal(_)))
        .collect();
    m.point.join(rel)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID: &str = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
50 23 0:40 /docker/x /sys/fs/cgroup/pids rw - cgroup cgroup rw,pids
";

    #[test]
    fn parses_hybrid_mountinfo() {
        let l = parse_mountinfo(HYBRID);
        assert_eq!(
            l.v2.as_ref().map(|m| m.point.clone()),
            Some("/sys/fs/cgroup/unified".into())
        );
        let names: Vec<_> = l.v1.iter().map(|m| m.controllers.join(",")).collect();
        assert_eq!(names, ["cpu", "cpuacct", "memory", "pids"]);
        assert_eq!(l.v1[3].root, Path::new("/docker/x"));
    }

    #[test]
    fn parses_proc_cgroup() {
        let own = parse_proc_cgroup(
            "9:name=systemd:/\n4:memory:/process_api/abc\n1:cpu,cpuacct:/\n0::/user.slice\n",
        );
        assert_eq!(own.v2, Some("/user.slice".into()));
        assert_eq!(own.v1["memory"], Path::new("/process_api/abc"));
        assert_eq!(own.v1["cpuacct"], Path::new("/"));
        assert_eq!(own.v1["name=systemd"], Path::new("/"));
    }

    #[test]
    fn targets() {
        assert_eq!(
            resolve_target("c1", None, false).unwrap(),
            Target::Nested("berth/c1".into())
        );
        assert_eq!(
            resolve_target("c1", Some(Path::new("a/b")), false).unwrap(),
            Target::Nested("a/b".into())
        );
        assert_eq!(
            resolve_target("c1", Some(Path::new("/a//b/")), false).unwrap(),
            Target::Absolute("/a/b".into())
        );
        assert!(resolve_target("c1", Some(Path::new("a/../../x")), false).is_err());
        assert!(resolve_target("c1", Some(Path::new("/")), false).is_err());
        assert_eq!(
            resolve_target("c1", None, true).unwrap(),
            Target::Systemd("/system.slice/berth-c1.scope".into())
        );
    }

    #[test]
    fn systemd_paths() {
        assert_eq!(
            systemd_path("machine-a-b.slice:pod:c1").unwrap(),
            Path::new("/machine.slice/machine-a.slice/machine-a-b.slice/pod-c1.scope")
        );
        assert_eq!(
            systemd_path(":crio:x").unwrap(),
            Path::new("/system.slice/crio-x.scope")
        );
        assert_eq!(systemd_path("-.slice::x").unwrap(), Path::new("/x.scope"));
        assert_eq!(
            systemd_path("user.slice:p:sub-inner.slice").unwrap(),
            Path::new("/user.slice/sub-inner.slice")
        );
        assert!(systemd_path("a/b").is_err());
        assert!(systemd_path("bad:p:n").is_err());
        assert!(systemd_path("a--b.slice:p:n").is_err());
    }

    #[test]
    fn dirs_in_mounts() {
        let m = Mount {
            point: "/sys/fs/cgroup/pids".into(),
            root: "/docker/x".into(),
            controllers: vec![],
        };
        assert_eq!(
            dir_in_mount(&m, Path::new("/docker/x/berth/c1")),
            Path::new("/sys/fs/cgroup/pids/berth/c1")
        );
        let m = Mount {
            point: "/sys/fs/cgroup/memory".into(),
            root: "/".into(),
            controllers: vec![],
        };
        assert_eq!(
            dir_in_mount(&m, Path::new("/p/q")),
            Path::new("/sys/fs/cgroup/memory/p/q")
        );
    }
}
