//! `tmpcopyup`: a tmpfs mounted over a directory of the image starts with a
//! copy of what it hides (podman's `--read-only` and `--tmpfs` rely on it,
//! runc does it). The copy walks the hidden directory through a file
//! descriptor taken before the mount, and never follows a symlink: links are
//! recreated as links, so a hostile image cannot make the copy read the host.

use std::fs;
use std::os::unix::fs::{lchown, symlink, DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::Path;

use anyhow::{Context, Result};

/// Copy the tree under `from` into `to` (an existing directory), keeping
/// modes, owners and symlinks. Sockets, fifos and device nodes are skipped.
pub fn copy_tree(from: &Path, to: &Path) -> Result<()> {
    let entries =
        fs::read_dir(from).with_context(|| format!("tmpcopyup: read {}", from.display()))?;
    for entry in entries {
        let entry = entry.with_context(|| format!("tmpcopyup: read {}", from.display()))?;
        let src = entry.path();
        let dst = to.join(entry.file_name());
        let meta = fs::symlink_metadata(&src)
            .with_context(|| format!("tmpcopyup: stat {}", src.display()))?;
        let ft = meta.file_type();
        if ft.is_symlink() {
            let target = fs::read_link(&src)
                .with_context(|| format!("tmpcopyup: readlink {}", src.display()))?;
            symlink(&target, &dst)
                .with_context(|| format!("tmpcopyup: symlink {}", dst.display()))?;
        } else if ft.is_dir() {
            fs::DirBuilder::new()
                .mode(meta.mode() & 0o7777)
                .create(&dst)
                .with_context(|| format!("tmpcopyup: mkdir {}", dst.display()))?;
            copy_tree(&src, &dst)?;
        } else if ft.is_file() {
            fs::copy(&src, &dst).with_context(|| format!("tmpcopyup: copy {}", src.display()))?;
        } else {
            continue;
        }
        lchown(&dst, Some(meta.uid()), Some(meta.gid()))
            .with_context(|| format!("tmpcopyup: chown {}", dst.display()))?;
        if !ft.is_symlink() {
            fs::set_permissions(&dst, fs::Permissions::from_mode(meta.mode() & 0o7777))
                .with_context(|| format!("tmpcopyup: chmod {}", dst.display()))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copies_files_dirs_and_links_without_following() {
        let tmp = tempfile::tempdir().expect("tmp");
        let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
        fs::create_dir_all(a.join("sub")).expect("mkdir");
        fs::write(a.join("sub/f"), "data").expect("write");
        fs::set_permissions(a.join("sub/f"), fs::Permissions::from_mode(0o640)).expect("chmod");
        symlink("/etc/passwd", a.join("link")).expect("link");
        fs::create_dir(&b).expect("mkdir b");
        copy_tree(&a, &b).expect("copy");
        assert_eq!(fs::read_to_string(b.join("sub/f")).expect("read"), "data");
        let mode = fs::metadata(b.join("sub/f")).expect("stat").mode() & 0o777;
        assert_eq!(mode, 0o640);
        assert_eq!(
            fs::read_link(b.join("link")).expect("readlink"),
            Path::new("/etc/passwd")
        );
        assert!(fs::symlink_metadata(b.join("link"))
            .expect("lstat")
            .file_type()
            .is_symlink());
    }
}
