//! The container's root mount: the choice between overlay and bind mode, the
//! per-container layer dirs (`upper`, `work`), and the mount that
//! becomes `/`. In overlay mode the bundle's rootfs is only ever the
//! read-only lower layer; this module must never write into it.

use std::os::fd::AsFd;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::spec::types::Spec;
use anyhow::{bail, Context, Result};
use nix::fcntl::OFlag;
use nix::mount::MsFlags;
use nix::sys::statfs::{statfs, OVERLAYFS_SUPER_MAGIC};

use super::syscalls::{self, fd_path};
use super::Mode;

/// Annotation that picks the mode by hand: "overlay" or "bind".
pub const ROOTFS_ANNOTATION: &str = "run.berth.rootfs";
pub const UPPER: &str = "upper";
pub const WORK: &str = "work";
/// What overlayfs makes inside the work dir (mode 000), and the marker of
/// a volatile mount in it.
const WORK_WORK: &str = "work/work";
const INCOMPAT: &str = "work/work/incompat";
const VOLATILE: &str = "work/work/incompat/volatile";
const VOLATILE_DIRTY: &str = "work/work/incompat/volatile/dirty";

/// Overlay's data string is limited to one page; stay well below it.
const MAX_DATA: usize = 4000;

/// The pure part of [`super::choose_mode`]. An explicit "overlay" wins even
/// over `root.readonly`: the root is then an overlay remounted read-only,
/// which keeps the bundle untouched just as well and honours the request.
pub fn decide_mode(
    annotation: Option<&str>,
    readonly: bool,
    rootfs_is_overlay: bool,
) -> Result<Mode> {
    match annotation {
        Some("overlay") => Ok(Mode::Overlay),
        Some("bind") => Ok(Mode::Bind),
        Some(other) => {
            bail!("annotation {ROOTFS_ANNOTATION} {other:?} must be \"overlay\" or \"bind\"")
        }
        // Read-only root: nothing to capture, so no upper dir is needed.
        // Rootfs already an overlay: its manager must see the writes.
        None if readonly || rootfs_is_overlay => Ok(Mode::Bind),
        None => Ok(Mode::Overlay),
    }
}

pub fn choose_mode(spec: &Spec, rootfs: &Path) -> Result<Mode> {
    let annotation = spec
        .annotations()
        .as_ref()
        .and_then(|a| a.get(ROOTFS_ANNOTATION))
        .map(String::as_str);
    let readonly = spec
        .root()
        .as_ref()
        .and_then(|r| r.readonly())
        .unwrap_or(false);
    if let Some(a) = annotation {
        return decide_mode(Some(a), readonly, false);
    }
    let st = statfs(rootfs)
        .map_err(syscalls::SysError)
        .with_context(|| format!("statfs rootfs {}", rootfs.display()))?;
    decide_mode(
        None,
        readonly,
        st.filesystem_type() == OVERLAYFS_SUPER_MAGIC,
    )
}

pub fn create_layer(layer_dir: &Path) -> Result<()> {
    // 0700: the upper dir holds the container's files with their owners and
    // modes; no other host user may walk into it. A leftover dir is refused
    // so that no earlier container's writes show through. The layer root
    // is made only the first time.
    let mkdir = || std::fs::DirBuilder::new().mode(0o700).create(layer_dir);
    match mkdir() {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if let Some(parent) = layer_dir.parent() {
                std::fs::create_dir_all(parent)
                    .with_context(|| format!("create layer root {}", parent.display()))?;
            }
            mkdir()
        }
        other => other,
    }
    .with_context(|| format!("create layer dir {}", layer_dir.display()))?;
    std::fs::set_permissions(layer_dir, std::fs::Permissions::from_mode(0o700))
        .with_context(|| format!("chmod 0700 {}", layer_dir.display()))?;
    for d in [UPPER, WORK] {
        let p = layer_dir.join(d);
        std::fs::DirBuilder::new()
            .mode(0o755)
            .create(&p)
            .with_context(|| format!("create layer dir {}", p.display()))?;
    }
    Ok(())
}

/// Give the layer dir and its `upper` and `work` to the host ids of
/// the container's root, so that root inside a user namespace can mount the
/// overlay and write the upper dir.
pub fn chown_layer(layer_dir: &Path, uid: u32, gid: u32) -> Result<()> {
    let (uid, gid) = (
        Some(nix::unistd::Uid::from_raw(uid)),
        Some(nix::unistd::Gid::from_raw(gid)),
    );
    for p in [
        layer_dir.to_path_buf(),
        layer_dir.join(UPPER),
        layer_dir.join(WORK),
    ] {
        nix::unistd::chown(&p, uid, gid)
            .map_err(syscalls::SysError)
            .with_context(|| format!("chown layer dir {} to the container's root", p.display()))?;
    }
    Ok(())
}

pub fn remove_layer(layer_dir: &Path) -> Result<()> {
    // A container that wrote nothing leaves empty dirs (and overlay's own
    // work/work): plain rmdirs, the walk only for what holds files.
    let known = [
        (UPPER, true),
        (VOLATILE_DIRTY, false),
        (VOLATILE, true),
        (INCOMPAT, true),
        (WORK_WORK, true),
        (WORK, true),
    ];
    match crate::sys::remove_dir_known(layer_dir, &known) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
            // Overlay leaves work/work with mode 000; without CAP_DAC_OVERRIDE
            // (rootless) the walk needs the dirs opened up first.
            open_up_dirs(layer_dir)?;
            std::fs::remove_dir_all(layer_dir)
                .with_context(|| format!("remove layer dir {}", layer_dir.display()))
        }
        Err(e) => Err(e).with_context(|| format!("remove layer dir {}", layer_dir.display())),
    }
}

fn open_up_dirs(dir: &Path) -> Result<()> {
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
        .with_context(|| format!("chmod 0700 {}", dir.display()))?;
    let entries = std::fs::read_dir(dir).with_context(|| format!("read dir {}", dir.display()))?;
    for e in entries {
        let e = e.with_context(|| format!("read dir {}", dir.display()))?;
        if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
            open_up_dirs(&e.path())?;
        }
    }
    Ok(())
}

/// Backslash-escape what overlay's option parser treats as separators
/// (`,` between options, `:` between lower dirs) and the escape itself.
pub fn escape(path: &Path) -> String {
    let s = path.to_string_lossy();
    let mut out = String::with_capacity(s.len() + 4);
    for c in s.chars() {
        if matches!(c, ',' | ':' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

pub fn overlay_data(lower: &Path, upper: &Path, work: &Path) -> String {
    format!(
        "lowerdir={},upperdir={},workdir={}",
        escape(lower),
        escape(upper),
        escape(work)
    )
}

/// Mount the overlay on the rootfs directory itself, in the child's own
/// mount namespace (no mount point to make and remove per container; the
/// lower layer is looked up before the overlay covers it), and return it.
pub fn mount_overlay(layer_dir: &Path, rootfs: &Path) -> Result<PathBuf> {
    let upper = layer_dir.join(UPPER);
    let work = layer_dir.join(WORK);
    let mut data = overlay_data(rootfs, &upper, &work);
    // In a user namespace overlay may not use trusted.* xattrs (kernel >= 5.11).
    let userxattr = crate::namespaces::in_user_ns();
    if userxattr {
        data.push_str(",userxattr");
    }
    // Very long paths do not fit in one page: name the dirs by fd instead.
    let _fds;
    if data.len() > MAX_DATA {
        let open = |p: &Path| {
            syscalls::open_host(p, OFlag::O_PATH | OFlag::O_DIRECTORY).with_context(|| {
                format!(
                    "mount overlay on {}: open {}",
                    rootfs.display(),
                    p.display()
                )
            })
        };
        let fds = [open(rootfs)?, open(&upper)?, open(&work)?];
        data = overlay_data(
            &fd_path(fds[0].as_fd()),
            &fd_path(fds[1].as_fd()),
            &fd_path(fds[2].as_fd()),
        );
        if userxattr {
            data.push_str(",userxattr");
        }
        _fds = fds;
    }
    let target = syscalls::open_host(rootfs, OFlag::O_PATH | OFlag::O_DIRECTORY)
        .with_context(|| format!("open rootfs {}", rootfs.display()))?;
    let mount = |data: &str| {
        syscalls::mount(
            Some(Path::new("overlay")),
            &fd_path(target.as_fd()),
            Some("overlay"),
            MsFlags::empty(),
            Some(data),
        )
    };
    // Volatile: the upper layer lives as long as its container and is never
    // mounted again (a crash leaves it unusable, and overlayfs marks it so),
    // so nothing needs its syncs; without them the container's exit no
    // longer commits the upper filesystem's journal (~1.2 ms of every run
    // here). Kernels before 5.10 do not know the option.
    match mount(&format!("{data},volatile")) {
        Err(syscalls::SysError(nix::errno::Errno::EINVAL)) => mount(&data),
        other => other,
    }
    .with_context(|| overlay_error_context(rootfs, &upper, &work))?;
    Ok(rootfs.to_path_buf())
}

/// Name the one dir that is missing when there is one (runc's message:
/// `mount overlay on …/rootfs: lowerdir=/srv/b/rootfs`), else all three.
/// Runs only on the error path.
/// The overlay is mounted on its lower dir, so that is the target too.
fn overlay_error_context(lower: &Path, upper: &Path, work: &Path) -> String {
    let named = [("lowerdir", lower), ("upperdir", upper), ("workdir", work)];
    let what = match named.iter().find(|(_, p)| !p.exists()) {
        Some((n, p)) => format!("{n}={}", p.display()),
        None => format!(
            "lowerdir={},upperdir={},workdir={}",
            lower.display(),
            upper.display(),
            work.display()
        ),
    };
    format!("mount overlay on {}: {what}", lower.display())
}

/// Bind mode: bind the rootfs onto itself so it is a mount point that
/// pivot_root can enter, carrying any submounts with it.
pub fn bind_rootfs(rootfs: &Path) -> Result<PathBuf> {
    let fd = syscalls::open_host(rootfs, OFlag::O_PATH | OFlag::O_DIRECTORY)
        .with_context(|| format!("open rootfs {}", rootfs.display()))?;
    let p = fd_path(fd.as_fd());
    syscalls::mount(Some(&p), &p, None, MsFlags::MS_BIND | MsFlags::MS_REC, None)
        .with_context(|| format!("bind mount {} on itself (flags bind|rec)", rootfs.display()))?;
    Ok(rootfs.to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mode_rules() {
        assert_eq!(decide_mode(None, false, false).unwrap(), Mode::Overlay);
        assert_eq!(decide_mode(None, true, false).unwrap(), Mode::Bind);
        assert_eq!(decide_mode(None, false, true).unwrap(), Mode::Bind);
        assert_eq!(decide_mode(Some("bind"), false, false).unwrap(), Mode::Bind);
        assert_eq!(
            decide_mode(Some("overlay"), true, true).unwrap(),
            Mode::Overlay
        );
        let e = decide_mode(Some("xyz"), false, false)
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            r#"annotation run.berth.rootfs "xyz" must be "overlay" or "bind""#
        );
    }

    #[test]
    fn choose_mode_reads_spec_and_fs() {
        let tmp = tempfile::tempdir().unwrap();
        let spec = |extra: &str| -> Spec {
            serde_json::from_str(&format!(
                r#"{{"ociVersion":"1.0.2","root":{{"path":"rootfs"{extra}}}}}"#
            ))
            .unwrap()
        };
        assert_eq!(choose_mode(&spec(""), tmp.path()).unwrap(), Mode::Overlay);
        assert_eq!(
            choose_mode(&spec(r#","readonly":true"#), tmp.path()).unwrap(),
            Mode::Bind
        );
        let e = choose_mode(&spec(""), &tmp.path().join("nope")).unwrap_err();
        assert!(format!("{e:#}").contains("statfs rootfs"), "{e:#}");
        let s: Spec = serde_json::from_str(
            r#"{"ociVersion":"1.0.2","root":{"path":"rootfs","readonly":true},"annotations":{"run.berth.rootfs":"overlay"}}"#,
        )
        .unwrap();
        assert_eq!(choose_mode(&s, tmp.path()).unwrap(), Mode::Overlay);
    }

    #[test]
    fn escapes_separators() {
        assert_eq!(escape(Path::new("/a,b:c\\d")), "/a\\,b\\:c\\\\d");
        assert_eq!(
            overlay_data(Path::new("/l"), Path::new("/u"), Path::new("/w")),
            "lowerdir=/l,upperdir=/u,workdir=/w"
        );
    }

    #[test]
    fn error_names_the_missing_dir() {
        let tmp = tempfile::tempdir().unwrap();
        let t = tmp.path();
        let msg = overlay_error_context(Path::new("/srv/b/rootfs"), t, t);
        assert_eq!(
            msg,
            "mount overlay on /srv/b/rootfs: lowerdir=/srv/b/rootfs"
        );
    }

    #[test]
    fn layer_lifecycle_copes_with_mode_000_dirs() {
        let tmp = tempfile::tempdir().unwrap();
        let layer = tmp.path().join("layers/c1");
        create_layer(&layer).unwrap();
        let mode = std::fs::metadata(&layer).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
        for d in [UPPER, WORK] {
            assert!(layer.join(d).is_dir());
        }
        assert!(
            create_layer(&layer).is_err(),
            "a leftover layer must be refused"
        );
        let ww = layer.join("work/work");
        std::fs::create_dir(&ww).unwrap();
        std::fs::write(ww.join("f"), b"x").unwrap();
        std::fs::set_permissions(&ww, std::fs::Permissions::from_mode(0o000)).unwrap();
        remove_layer(&layer).unwrap();
        assert!(!layer.exists());
        remove_layer(&layer).unwrap();
    }
}
