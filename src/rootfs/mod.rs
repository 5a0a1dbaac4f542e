//! The container's root filesystem: choosing overlay or bind mode, the
//! per-container layer dirs, building the root inside the child's mount
//! namespace (root mount, config mounts, `/dev`, masked and read-only paths,
//! `pivot_root`), and `berth diff`. Everything is planned from the spec first
//! (pure, testable without root) and then executed in a few lines.
//!
//! Must never: change a mount the host can see (every mount is made after
//! `/` is rslave, so the host's mountinfo gains nothing); follow a symlink
//! in the rootfs out of it (all container paths go through `openat2` with
//! `RESOLVE_IN_ROOT`); write into the bundle's rootfs in overlay mode.

mod cgroup;
mod copyup;
mod dev;
mod diff;
mod masked;
mod mounts;
mod options;
mod overlay;
mod paths;
mod pivot;
mod syscalls;

/// The sealed overlay of berth's own binary is mounted with these too.
pub use syscalls::{MOUNT_ATTR_NODEV, MOUNT_ATTR_NOSUID, MOUNT_ATTR_RDONLY};

use std::path::{Path, PathBuf};

use crate::spec::types::Spec;
use anyhow::{anyhow, Context, Result};
use nix::mount::MsFlags;
use serde::{Deserialize, Serialize};

/// How the container's root is made from the bundle's rootfs.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Bundle rootfs is the read-only lower layer; writes go to the layer dir.
    Overlay,
    /// The bundle rootfs itself is bind-mounted (OCI spec behaviour).
    Bind,
}

/// Parent side: pick the mode from the spec, annotations and the rootfs
/// itself. Bind when `root.readonly`, when the rootfs is already an overlay
/// mount, or when annotated `run.berth.rootfs=bind`; `=overlay` forces
/// overlay (with `root.readonly` too: an overlay remounted read-only).
pub fn choose_mode(spec: &Spec, rootfs: &Path) -> Result<Mode> {
    overlay::choose_mode(spec, rootfs)
}

/// Parent side: make `<layer_dir>/{upper,work}`, `layer_dir` mode
/// 0700. A `layer_dir` that already exists is refused.
pub fn create_layer(layer_dir: &Path) -> Result<()> {
    overlay::create_layer(layer_dir)
}

/// Parent side, for a user-namespaced container: the layer dirs belong to
/// the host uid/gid of the container's root.
pub fn chown_layer(layer_dir: &Path, uid: u32, gid: u32) -> Result<()> {
    overlay::chown_layer(layer_dir, uid, gid)
}

/// Remove a layer dir and everything under it; absent is fine.
pub fn remove_layer(layer_dir: &Path) -> Result<()> {
    overlay::remove_layer(layer_dir)
}

/// Everything the child needs to build the root.
pub struct RootfsConfig<'a> {
    pub spec: &'a Spec,
    pub bundle: &'a Path,
    pub rootfs: &'a Path,
    pub mode: Mode,
    pub layer_dir: Option<&'a Path>,
    pub no_pivot: bool,
    /// Puts the process in its cgroups and cgroup namespace, if that is
    /// still to do: called once, before the first cgroup mount (whose view
    /// depends on both) or else after the last of the spec's mounts, and
    /// always before `/dev` is populated (device rules) and the hooks.
    /// Returns /proc/self/cgroup as read in between (in its cgroups, still
    /// in the host's cgroup namespace) when `host_mountinfo` is given.
    pub enter_cgroups: &'a dyn Fn() -> Result<Option<String>>,
    /// The host's /proc/self/mountinfo as the parent read it before the
    /// clone, when the child's mount namespace is a copy of the parent's
    /// and a v1 cgroup mount will be planned from it.
    pub host_mountinfo: Option<&'a str>,
    /// Runs after the root is built and before it is entered: the
    /// runtime-spec wants createRuntime/createContainer hooks exactly there.
    pub before_pivot: &'a dyn Fn() -> Result<()>,
}

/// What [`setup`] will do, worked out from the spec alone.
struct Plan<'s> {
    mounts: Vec<mounts::MountOp>,
    dev: dev::DevMount,
    devices: Vec<dev::Device>,
    masked: &'s [String],
    readonly: &'s [String],
    readonly_root: bool,
    root_propagation: Option<MsFlags>,
    /// `linux.mountLabel`, for the mounts berth adds itself.
    label: Option<&'s str>,
}

fn plan<'s>(spec: &'s Spec, bundle: &Path) -> Result<Plan<'s>> {
    let mounts = mounts::plan_mounts(spec, bundle)?;
    let linux = spec.linux().as_ref();
    let root_propagation = match linux.and_then(|l| l.rootfs_propagation().as_deref()) {
        None | Some("") => None,
        Some(word) => Some(options::parse_propagation(word).ok_or_else(|| {
            anyhow!("linux.rootfsPropagation {word:?} is not one of shared, slave, private, unbindable (or their r-forms)")
        })?),
    };
    Ok(Plan {
        dev: dev::dev_mount(&mounts),
        devices: dev::plan_devices(spec)?,
        masked: linux
            .and_then(|l| l.masked_paths().as_deref())
            .unwrap_or_default(),
        readonly: linux
            .and_then(|l| l.readonly_paths().as_deref())
            .unwrap_or_default(),
        readonly_root: spec
            .root()
            .as_ref()
            .and_then(|r| r.readonly())
            .unwrap_or(false),
        root_propagation,
        mounts,
        label: mounts::mount_label(spec),
    })
}

/// Parent side, before anything touches the system: refuse a spec whose
/// mounts, devices or rootfsPropagation [`setup`] could never apply.
pub fn validate(spec: &Spec, bundle: &Path) -> Result<()> {
    plan(spec, bundle).map(drop)
}

/// Child side, in a fresh mount namespace with the host's /proc still at
/// /proc: build the root and enter it. On return the process's root is the container's and its cwd is "/".
pub fn setup(cfg: &RootfsConfig) -> Result<()> {
    let plan = plan(cfg.spec, cfg.bundle)?;

    // Nothing done below may reach the host: every mount in this namespace
    // becomes a slave, receiving the host's events but never sending any.
    syscalls::set_propagation(Path::new("/"), MsFlags::MS_SLAVE | MsFlags::MS_REC)
        .context("make / rslave (flags slave|rec)")?;
    // The directory that will be "/": an overlay whose lower layer is the
    // bundle rootfs, or the rootfs bound onto itself (a mount point, as
    // pivot_root needs).
    let new_root = match cfg.mode {
        Mode::Overlay => {
            let layer = cfg.layer_dir.context("overlay mode needs a layer dir")?;
            overlay::mount_overlay(layer, cfg.rootfs)?
        }
        Mode::Bind => overlay::bind_rootfs(cfg.rootfs)?,
    };
    // From here on every container path is resolved from this fd, inside it.
    let root = paths::Root::open(&new_root)?;
    // A fresh /dev first, since the spec's mounts may go under it (/dev/pts).
    if plan.dev == dev::DevMount::Missing {
        mounts::apply_mounts(&root, &[dev::default_dev_mount(plan.label)])?;
    }
    // The spec's mounts, in order (/proc and /sys refuse symlinks and
    // planted mounts); a cgroup mount only once we are in our cgroups.
    let first_cgroup = plan
        .mounts
        .iter()
        .position(mounts::MountOp::shows_cgroups)
        .unwrap_or(plan.mounts.len());
    let (before, after) = plan.mounts.split_at(first_cgroup);
    mounts::apply_mounts(&root, before)?;
    let proc_cgroup = (cfg.enter_cgroups)()?;
    let view = proc_cgroup
        .as_deref()
        .zip(cfg.host_mountinfo)
        .map(|(proc_cgroup, mountinfo)| cgroup::HostView {
            proc_cgroup,
            mountinfo,
        });
    mounts::apply_mounts_in(&root, after, view.as_ref())?;
    // Only the default and the spec's devices; a host /dev (bind, devtmpfs) is left alone.
    if plan.dev != dev::DevMount::Host {
        dev::populate_dev(&root, &plan.devices)?;
    }
    // Hide kernel interfaces, then freeze the read-only ones. Done before
    // pivot_root so /proc/self/fd/N names work even without a container /proc.
    masked::mask_paths(&root, plan.masked, plan.label)?;
    masked::readonly_paths(&root, plan.readonly)?;
    // root.readonly: the root mount only, not the mounts on it (/dev, /proc...).
    if plan.readonly_root {
        mounts::remount_readonly(&root, Path::new("/"))
            .context("make the container root read-only")?;
    }
    // Hooks that must see the finished root from the runtime's namespace.
    (cfg.before_pivot)()?;
    // Enter the root; the host's mounts become unreachable.
    if cfg.no_pivot {
        pivot::enter_with_move(&root)?;
    } else {
        pivot::enter_with_pivot_root(&root)?;
    }
    // The propagation the spec asks for, now that only container mounts are
    // left; doing it earlier could let a shared "/" leak mounts to the host.
    if let Some(p) = plan.root_propagation {
        syscalls::set_propagation(Path::new("/"), p)
            .with_context(|| format!("set propagation of / to {}", syscalls::flags_str(p)))?;
    }
    Ok(())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeKind {
    Added,
    Changed,
    Deleted,
}

/// The letter `docker diff` prints: `println!("{kind} {}", path.display())`.
impl std::fmt::Display for ChangeKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ChangeKind::Added => "A",
            ChangeKind::Changed => "C",
            ChangeKind::Deleted => "D",
        })
    }
}

/// Changes recorded in an overlay upper dir (`<layer_dir>/upper`) relative
/// to its lower dir (the bundle rootfs), container-absolute paths
/// ("/etc/passwd"), sorted by path.
pub fn diff(upper: &Path, lower: &Path) -> Result<Vec<(ChangeKind, PathBuf)>> {
    diff::diff(upper, lower)
}

#[cfg(test)]
mod tests;
