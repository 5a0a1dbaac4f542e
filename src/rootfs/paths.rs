//! Paths inside the container's root. Every path in the rootfs is treated as
//! hostile: lookups go through `openat2(RESOLVE_IN_ROOT)` relative to an fd on
//! the new root, so `..` and symlinks (absolute or relative) can never lead
//! out of it. This module must never join a container path onto a host path
//! and hand the result to a syscall.

use std::ffi::OsStr;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Component, Path, PathBuf};

use anyhow::{Context, Result};
use nix::errno::Errno;
use nix::fcntl::{OFlag, ResolveFlag};
use nix::sys::stat::Mode;

use super::syscalls::{self, SysError, SysResult};

/// What to create when a mount destination is missing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Dir,
    File,
}

/// How strictly a destination is looked up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookup {
    /// Symlinks are followed, but only inside the root.
    InRoot,
    /// No symlinks and no mount crossings at all: for `/proc`, `/sys`, whose
    /// replacement by a symlink or a planted mount would redirect procfs or
    /// sysfs (CVE-2019-16884, CVE-2019-19921).
    Strict,
}

impl Lookup {
    fn resolve(self) -> ResolveFlag {
        match self {
            Lookup::InRoot => ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS,
            Lookup::Strict => {
                ResolveFlag::RESOLVE_IN_ROOT
                    | ResolveFlag::RESOLVE_NO_SYMLINKS
                    | ResolveFlag::RESOLVE_NO_XDEV
            }
        }
    }
}

/// The lexically clean absolute form of a container path: `.` dropped, `..`
/// popped (never above `/`), duplicate and trailing slashes gone. Relative
/// input is taken relative to `/`, as runc does.
pub fn clean(path: &Path) -> PathBuf {
    let mut out = PathBuf::from("/");
    for c in path.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::ParentDir => {
                out.pop();
            }
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    out
}

/// `clean(path)` without its leading `/`, as openat2 wants it; "." for the root.
fn relative(path: &Path) -> PathBuf {
    let c = clean(path);
    match c.strip_prefix("/") {
        Ok(r) if !r.as_os_str().is_empty() => r.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// The new root: an fd on it plus its host path, used only in messages.
pub struct Root {
    fd: OwnedFd,
    host: PathBuf,
}

impl Root {
    /// Open the directory that will become `/`. Call it after the root mount
    /// is in place, so the fd is on the mount and not on what lies under it.
    pub fn open(host: &Path) -> Result<Root> {
        let fd = syscalls::open_host(host, OFlag::O_PATH | OFlag::O_DIRECTORY)
            .with_context(|| format!("open new root {}", host.display()))?;
        Ok(Root {
            fd,
            host: host.to_path_buf(),
        })
    }

    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    pub fn host(&self) -> &Path {
        &self.host
    }

    /// Where a container path lies on the host, for error messages only.
    pub fn display(&self, path: &Path) -> String {
        self.host.join(relative(path)).display().to_string()
    }

    /// Open an existing path inside the root.
    pub fn open_in(&self, path: &Path, flags: OFlag, lookup: Lookup) -> SysResult<OwnedFd> {
        syscalls::openat2(self.fd(), &relative(path), flags, lookup.resolve())
    }

    /// `O_PATH` fd on `path` inside the root, creating missing parent
    /// directories (0755) and the final component as `kind`. The fd is what a
    /// mount goes onto, through `/proc/self/fd/N`.
    pub fn ensure(&self, path: &Path, kind: Kind, lookup: Lookup) -> Result<OwnedFd> {
        let rel = relative(path);
        // Fast path: destinations usually exist already.
        match self.open_in(&rel, OFlag::O_PATH, lookup) {
            Ok(fd) => return Ok(fd),
            Err(SysError(Errno::ENOENT)) => {}
            Err(e) => {
                return Err(e)
                    .with_context(|| format!("open {} in the container root", self.display(path)))
            }
        }
        self.create(&rel, kind, lookup)
            .with_context(|| format!("create {} in the container root", self.display(path)))
    }

    /// Walk `rel` one component at a time, each prefix resolved afresh in the
    /// root, so a symlink met on the way is followed inside the root only.
    /// Called after `rel` itself was found missing; its parent usually
    /// exists, so the walk starts there when it does.
    fn create(&self, rel: &Path, kind: Kind, lookup: Lookup) -> Result<OwnedFd> {
        let names: Vec<&OsStr> = rel
            .components()
            .filter_map(|c| match c {
                Component::Normal(n) => Some(n),
                _ => None,
            })
            .collect();
        let dir = OFlag::O_PATH | OFlag::O_DIRECTORY;
        let mut prefix = PathBuf::with_capacity(rel.as_os_str().len());
        let mut start = 0;
        let mut parent = None;
        if let Some((_, above)) = names.split_last().filter(|(_, a)| !a.is_empty()) {
            prefix.extend(above);
            match self.open_in(&prefix, OFlag::O_PATH, lookup) {
                Ok(fd) => {
                    parent = Some(fd);
                    start = above.len();
                }
                Err(SysError(Errno::ENOENT)) => prefix.clear(),
                Err(e) => return Err(e.into()),
            }
        }
        let mut parent = match parent {
            Some(fd) => fd,
            None => self.open_in(Path::new("."), dir, lookup)?,
        };
        for (i, name) in names.iter().enumerate().skip(start) {
            prefix.push(name);
            let last = i + 1 == names.len();
            // The last component was just found missing by `ensure`.
            if !last {
                match self.open_in(&prefix, OFlag::O_PATH, lookup) {
                    Ok(fd) => {
                        parent = fd;
                        continue;
                    }
                    Err(SysError(Errno::ENOENT)) => {}
                    Err(e) => return Err(e.into()),
                }
            }
            let made = if last && kind == Kind::File {
                // O_EXCL|O_NOFOLLOW: never open through a symlink planted here.
                syscalls::openat(
                    parent.as_fd(),
                    Path::new(name),
                    OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_WRONLY | OFlag::O_NOFOLLOW,
                    Mode::from_bits_truncate(0o644),
                )
                .map(drop)
            } else {
                nix::sys::stat::mkdirat(
                    Some(std::os::fd::AsRawFd::as_raw_fd(&parent)),
                    *name,
                    Mode::from_bits_truncate(0o755),
                )
                .map_err(SysError)
            };
            match made {
                Ok(()) | Err(SysError(Errno::EEXIST)) => {}
                Err(e) => return Err(e.into()),
            }
            // ENOENT here means the name is a dangling symlink: refuse rather
            // than guess where its target should be made.
            parent = self.open_in(&prefix, OFlag::O_PATH, lookup)?;
        }
        Ok(parent)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_normalises_container_paths() {
        assert_eq!(clean(Path::new("/proc")), Path::new("/proc"));
        assert_eq!(clean(Path::new("/a/./b//c/")), Path::new("/a/b/c"));
        assert_eq!(clean(Path::new("/../../etc/../x")), Path::new("/x"));
        assert_eq!(clean(Path::new("dev/shm")), Path::new("/dev/shm"));
        assert_eq!(clean(Path::new("/")), Path::new("/"));
        assert_eq!(relative(Path::new("/")), Path::new("."));
        assert_eq!(relative(Path::new("/a/../b")), Path::new("b"));
    }

    #[test]
    fn ensure_stays_inside_root_through_symlinks() {
        let tmp = tempfile::tempdir().unwrap();
        let root_dir = tmp.path().join("root");
        let outside = tmp.path().join("outside");
        std::fs::create_dir_all(&root_dir).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        // An absolute symlink that would escape if followed on the host.
        std::os::unix::fs::symlink(&outside, root_dir.join("evil")).unwrap();
        std::fs::create_dir_all(root_dir.join("target")).unwrap();
        std::os::unix::fs::symlink("/target", root_dir.join("good")).unwrap();
        let root = Root::open(&root_dir).unwrap();
        // A dangling symlink is refused, and nothing appears outside.
        let err = root
            .ensure(Path::new("/evil/sub/file"), Kind::File, Lookup::InRoot)
            .unwrap_err();
        assert!(format!("{err:#}").contains("No such file"), "{err:#}");
        assert!(!outside.join("sub").exists());
        // An absolute symlink resolves against the container root.
        root.ensure(Path::new("/good/sub/file"), Kind::File, Lookup::InRoot)
            .unwrap();
        assert!(root_dir.join("target/sub/file").is_file());

        // Strict lookups refuse symlinks outright.
        std::os::unix::fs::symlink("/", root_dir.join("proc")).unwrap();
        let err = root
            .ensure(Path::new("/proc"), Kind::Dir, Lookup::Strict)
            .unwrap_err();
        assert!(format!("{err:#}").contains("proc"), "{err:#}");
    }

    #[test]
    fn ensure_dotdot_is_clamped_at_root() {
        let tmp = tempfile::tempdir().unwrap();
        let root_dir = tmp.path().join("root");
        std::fs::create_dir_all(&root_dir).unwrap();
        let root = Root::open(&root_dir).unwrap();
        root.ensure(Path::new("/../../../d"), Kind::Dir, Lookup::InRoot)
            .unwrap();
        assert!(root_dir.join("d").is_dir());
        assert!(!tmp.path().join("d").exists());
    }
}
