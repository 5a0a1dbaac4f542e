//! `berth diff`: what a container changed, read from its overlay upper dir
//! against the lower dir, in `docker diff` terms. A 0/0 character device is a
//! whiteout (deleted); a directory with `trusted.overlay.opaque=y` replaced
//! its lower namesake entirely; `=x` marks a dir holding xattr whiteouts.
//! Both trees are walked by fd with `O_NOFOLLOW`, since a running container
//! can swap any upper entry for a symlink. Read-only: this module must never
//! change either tree.

use std::ffi::{CStr, OsStr, OsString};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use nix::fcntl::{AtFlags, OFlag};
use nix::sys::stat::{fstatat, FileStat, Mode};

use super::syscalls::{self, fd_path, SysError};
use super::ChangeKind;

/// The `trusted.` names, then the `user.` ones an overlay mounted in a user
/// namespace (`userxattr`) writes instead.
const OPAQUE: [&CStr; 2] = [c"trusted.overlay.opaque", c"user.overlay.opaque"];
const WHITEOUT: [&CStr; 2] = [c"trusted.overlay.whiteout", c"user.overlay.whiteout"];

/// The first of `attrs` that is set, as [`xattr_byte`] reads it.
fn overlay_xattr(dir: &OwnedFd, name: &OsStr, attrs: &[&CStr]) -> Result<Option<u8>> {
    for attr in attrs {
        if let Some(b) = xattr_byte(dir, name, attr)? {
            return Ok(Some(b));
        }
    }
    Ok(None)
}

fn open_dir(dir: &OwnedFd, name: &OsStr) -> Option<OwnedFd> {
    let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW;
    syscalls::openat(dir.as_fd(), Path::new(name), flags, Mode::empty()).ok()
}

fn lstat_at(dir: &OwnedFd, name: &OsStr) -> Option<FileStat> {
    fstatat(Some(dir.as_raw_fd()), name, AtFlags::AT_SYMLINK_NOFOLLOW).ok()
}

fn is_type(st: &FileStat, t: libc::mode_t) -> bool {
    st.st_mode & libc::S_IFMT == t
}

/// The first byte of an xattr of `dir/name` (0 if empty), not following a
/// symlink; `None` when the xattr is absent.
fn xattr_byte(dir: &OwnedFd, name: &OsStr, attr: &CStr) -> Result<Option<u8>> {
    let path = fd_path(dir.as_fd()).join(name);
    let mut buf = [0u8; 4];
    match syscalls::lgetxattr(&path, attr, &mut buf) {
        // An empty value (xattr whiteouts) is still "set".
        Ok(Some(n)) => Ok(Some(if n > 0 { buf[0] } else { 0 })),
        Ok(None) => Ok(None),
        // Filesystems without xattrs simply have no opaque dirs.
        Err(SysError(nix::errno::Errno::EOPNOTSUPP)) => Ok(None),
        // A value longer than our buffer is still "set".
        Err(SysError(nix::errno::Errno::ERANGE)) => Ok(Some(0)),
        Err(e) => Err(e).with_context(|| format!("read xattr {attr:?} of {}", path.display())),
    }
}

fn list(dir: &OwnedFd, shown: &Path) -> Result<Vec<OsString>> {
    let rd = std::fs::read_dir(fd_path(dir.as_fd()))
        .with_context(|| format!("read dir {}", shown.display()))?;
    let mut names = Vec::new();
    for e in rd {
        names.push(
            e.with_context(|| format!("read dir {}", shown.display()))?
                .file_name(),
        );
    }
    names.sort_unstable();
    Ok(names)
}

struct Walk<'a> {
    upper_root: &'a Path,
    out: Vec<(ChangeKind, PathBuf)>,
}

impl Walk<'_> {
    /// `hide_lower`: this dir is opaque or inside one, so every lower entry
    /// absent from upper is gone from the container's view.
    fn dir(
        &mut self,
        up: &OwnedFd,
        low: Option<&OwnedFd>,
        rel: &Path,
        hide_lower: bool,
        xwhiteouts: bool,
    ) -> Result<()> {
        let shown = self.upper_root.join(rel.strip_prefix("/").unwrap_or(rel));
        let names = list(up, &shown)?;
        for name in &names {
            let Some(st) = lstat_at(up, name) else {
                continue; // removed while we looked: a running container
            };
            let path = rel.join(name);
            let whiteout = (is_type(&st, libc::S_IFCHR) && st.st_rdev == 0)
                || (xwhiteouts
                    && is_type(&st, libc::S_IFREG)
                    && overlay_xattr(up, name, &WHITEOUT)?.is_some());
            if whiteout {
                if low.is_some() {
                    self.out.push((ChangeKind::Deleted, path));
                }
                continue;
            }
            let lower_st = low.and_then(|l| lstat_at(l, name));
            let kind = if lower_st.is_some() {
                ChangeKind::Changed
            } else {
                ChangeKind::Added
            };
            self.out.push((kind, path.clone()));
            if !is_type(&st, libc::S_IFDIR) {
                continue;
            }
            let Some(child_up) = open_dir(up, name) else {
                continue;
            };
            let opaque = overlay_xattr(up, name, &OPAQUE)?;
            // Overlay merges a dir only with a lower dir of the same name.
            let child_low = match (low, &lower_st) {
                (Some(l), Some(s)) if is_type(s, libc::S_IFDIR) => open_dir(l, name),
                _ => None,
            };
            let hide = hide_lower || opaque == Some(b'y');
            self.dir(
                &child_up,
                child_low.as_ref(),
                &path,
                hide,
                opaque == Some(b'x'),
            )?;
        }
        if let (true, Some(l)) = (hide_lower, low) {
            for name in list(l, rel)? {
                if names.binary_search(&name).is_err() {
                    self.out.push((ChangeKind::Deleted, rel.join(&name)));
                }
            }
        }
        Ok(())
    }
}

pub fn diff(upper: &Path, lower: &Path) -> Result<Vec<(ChangeKind, PathBuf)>> {
    let open = |p: &Path| {
        syscalls::open_host(p, OFlag::O_RDONLY | OFlag::O_DIRECTORY)
            .with_context(|| format!("open {}", p.display()))
    };
    let up = open(upper)?;
    let low = open(lower)?;
    let mut walk = Walk {
        upper_root: upper,
        out: Vec::new(),
    };
    // The upper root itself can be opaque when the whole lower was hidden.
    let root_opaque = {
        let parent = open(upper.parent().unwrap_or(Path::new("/")))?;
        match upper.file_name() {
            Some(n) => overlay_xattr(&parent, n, &OPAQUE)?,
            None => None,
        }
    };
    walk.dir(
        &up,
        Some(&low),
        Path::new("/"),
        root_opaque == Some(b'y'),
        root_opaque == Some(b'x'),
    )?;
    let mut out = walk.out;
    out.sort_unstable_by(|a, b| a.1.as_os_str().as_bytes().cmp(b.1.as_os_str().as_bytes()));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn whiteout(p: &Path) {
        nix::sys::stat::mknod(p, nix::sys::stat::SFlag::S_IFCHR, Mode::empty(), 0).unwrap();
    }

    fn set_opaque(p: &Path) {
        xattr_set(p, OPAQUE[0], b"y");
    }

    fn xattr_set(p: &Path, name: &CStr, v: &[u8]) {
        let c = std::ffi::CString::new(p.as_os_str().as_bytes()).unwrap();
        // SAFETY: valid NUL-terminated strings and a live buffer of v.len().
        let r =
            unsafe { libc::lsetxattr(c.as_ptr(), name.as_ptr(), v.as_ptr().cast(), v.len(), 0) };
        assert_eq!(
            r,
            0,
            "setxattr {}: {}",
            p.display(),
            std::io::Error::last_os_error()
        );
    }

    fn render(d: &[(ChangeKind, PathBuf)]) -> Vec<String> {
        d.iter()
            .map(|(k, p)| format!("{k} {}", p.display()))
            .collect()
    }

    /// Needs a filesystem with trusted xattrs: /tmp is the root ext4 here.
    fn xattr_tempdir() -> tempfile::TempDir {
        tempfile::tempdir().unwrap()
    }

    #[test]
    fn whiteouts_opaque_dirs_and_new_trees() {
        let tmp = xattr_tempdir();
        let (lower, upper) = (tmp.path().join("lower"), tmp.path().join("upper"));
        for d in ["bin", "etc", "old/dir", "rep", "keep"] {
            fs::create_dir_all(lower.join(d)).unwrap();
        }
        for f in [
            "bin/sh",
            "etc/passwd",
            "etc/hostname",
            "old/dir/x",
            "rep/a",
            "rep/b",
            "keep/file",
        ] {
            fs::write(lower.join(f), f).unwrap();
        }
        for d in ["etc", "rep", "newdir/sub"] {
            fs::create_dir_all(upper.join(d)).unwrap();
        }
        fs::write(upper.join("etc/passwd"), "changed").unwrap();
        fs::write(upper.join("etc/new"), "new").unwrap();
        whiteout(&upper.join("old"));
        whiteout(&upper.join("etc/hostname"));
        set_opaque(&upper.join("rep"));
        fs::write(upper.join("rep/a"), "again").unwrap();
        fs::write(upper.join("rep/c"), "c").unwrap();
        fs::write(upper.join("newdir/sub/f"), "f").unwrap();
        std::os::unix::fs::symlink("/etc/passwd", upper.join("link")).unwrap();

        let got = render(&diff(&upper, &lower).unwrap());
        assert_eq!(
            got,
            [
                "C /etc",
                "D /etc/hostname",
                "A /etc/new",
                "C /etc/passwd",
                "A /link",
                "A /newdir",
                "A /newdir/sub",
                "A /newdir/sub/f",
                "D /old",
                "C /rep",
                "C /rep/a",
                "D /rep/b",
                "A /rep/c",
            ]
        );
    }

    #[test]
    fn opaque_dir_replacing_a_file_and_xwhiteouts() {
        let tmp = xattr_tempdir();
        let (lower, upper) = (tmp.path().join("lower"), tmp.path().join("upper"));
        fs::create_dir_all(lower.join("d")).unwrap();
        fs::write(lower.join("d/gone"), "").unwrap();
        fs::write(lower.join("f"), "").unwrap();
        fs::create_dir_all(upper.join("d")).unwrap();
        // A lower file replaced by a dir: the dir is Changed, its content Added.
        fs::create_dir_all(upper.join("f/inner")).unwrap();
        set_opaque(&upper.join("f"));
        // Xattr whiteout inside a dir marked opaque=x.
        fs::write(upper.join("d/gone"), "").unwrap();
        xattr_set(&upper.join("d/gone"), WHITEOUT[0], b"");
        xattr_set(&upper.join("d"), OPAQUE[1], b"x");
        let got = render(&diff(&upper, &lower).unwrap());
        assert_eq!(got, ["C /d", "D /d/gone", "C /f", "A /f/inner"]);
    }

    #[test]
    fn missing_lower_is_an_error() {
        let tmp = tempfile::tempdir().unwrap();
        let e = diff(tmp.path(), &tmp.path().join("nope")).unwrap_err();
        assert!(format!("{e:#}").contains("nope"));
    }
}
