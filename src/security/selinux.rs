//! SELinux: `process.selinuxLabel` (and `exec --process-label`), set as the
//! exec label of the container process so that the kernel moves it into
//! that context at its execve, and `linux.mountLabel`, the `context=` of the
//! filesystems berth mounts for the container. Both follow runc.
//!
//! A label asked for on a host without SELinux is an error (validation
//! calls [`check`]), since the kernel would otherwise refuse the mount
//! option or the attr write only after the container was half made. The
//! label must be valid in the loaded policy; the kernel judges that.

use std::ffi::CString;
use std::os::fd::{AsRawFd, BorrowedFd};

use anyhow::{bail, Context, Result};

use super::procattr;

/// Where selinuxfs lives when SELinux is enabled.
const SELINUXFS: &str = "/sys/fs/selinux";

/// `SELINUX_MAGIC` of the kernel's `include/uapi/linux/magic.h`.
const SELINUX_MAGIC: nix::sys::statfs::FsType = nix::sys::statfs::FsType(0xf97c_ff8c);

/// The current context of this process, readable only with SELinux active.
const CURRENT: &str = "/proc/self/attr/current";

/// The exec label of the calling thread, below the (container's) /proc.
/// SELinux has no directory of its own there (AppArmor and Smack do), so
/// the shared file is the one; the LSM-specific name is tried first in case
/// a kernel adds one.
const EXEC_ATTRS: &[&str] = &["thread-self/attr/selinux/exec", "thread-self/attr/exec"];

/// The extended attribute holding a file's context.
const XATTR: &str = "security.selinux";

/// Filesystem types whose mount takes `context=` in its data: runc's rule
/// is every filesystem but procfs and sysfs (which SELinux labels itself),
/// cgroup (no labels) and mqueue, whose superblock belongs to the ipc
/// namespace and may already be mounted with other settings; an mqueue
/// mount gets the label on its root instead ([`set_file_label`]).
pub fn takes_context(fstype: &str) -> bool {
    !matches!(fstype, "proc" | "sysfs" | "cgroup" | "cgroup2" | "mqueue")
}

/// Whether SELinux is enabled here, as go-selinux decides it: selinuxfs is
/// mounted, and this process has a context other than "kernel" (which all
/// processes have until a policy is loaded, when no label can be valid).
pub fn enabled() -> bool {
    let mounted =
        nix::sys::statfs::statfs(SELINUXFS).is_ok_and(|s| s.filesystem_type() == SELINUX_MAGIC);
    mounted
        && std::fs::read_to_string(CURRENT)
            .is_ok_and(|c| !matches!(c.trim_end_matches(['\0', '\n']), "" | "kernel"))
}

/// Validation of a label given by `field` (`process.selinuxLabel`,
/// `linux.mountLabel`, `--process-label`); an empty one means none.
pub fn check(field: &str, label: &str) -> Result<()> {
    if label.is_empty() {
        return Ok(());
    }
    // A quote would end the quoted `context="..."` mount option early; a
    // control character is never part of a context.
    if label.chars().any(|c| c.is_control() || c == '"') {
        bail!("{field} {label:?}: contains a control character or a double quote");
    }
    if !enabled() {
        bail!("{field} {label:?}: SELinux is not enabled on this host");
    }
    Ok(())
}

/// `data` with `context="label"` added, as go-selinux's FormatMountLabel
/// does: quoted, since an MLS range has commas (`s0:c1,c2`), which the
/// kernel's option parser keeps inside quotes.
pub fn mount_data(data: &str, label: Option<&str>) -> String {
    match label {
        None | Some("") => data.to_string(),
        Some(l) if data.is_empty() => format!("context=\"{l}\""),
        Some(l) => format!("{data},context=\"{l}\""),
    }
}

/// Make `label` the context this thread enters at its next execve, through
/// the hardened procfs handle of [`procattr`].
pub fn apply_on_exec(field: &str, label: &str) -> Result<()> {
    if label.is_empty() {
        return Ok(());
    }
    procattr::write_exec_attr(EXEC_ATTRS, label).with_context(|| format!("{field} {label:?}"))
}

/// Set the context of the file open as `fd` (a directory opened for
/// reading: fsetxattr does not take O_PATH fds). `what` names it in errors.
pub fn set_file_label(fd: BorrowedFd<'_>, label: &str, what: &str) -> Result<()> {
    let name = CString::new(XATTR).context("xattr name")?;
    // SAFETY: fsetxattr reads the NUL-terminated name and `label.len()`
    // bytes of `label`, both alive for the call; `fd` is borrowed, open.
    let rc = unsafe {
        libc::fsetxattr(
            fd.as_raw_fd(),
            name.as_ptr(),
            label.as_ptr().cast(),
            label.len(),
            0,
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error())
            .with_context(|| format!("linux.mountLabel {label:?}: set {XATTR} of {what}"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mount_data_adds_a_quoted_context() {
        assert_eq!(mount_data("", None), "");
        assert_eq!(mount_data("mode=755", None), "mode=755");
        assert_eq!(mount_data("mode=755", Some("")), "mode=755");
        assert_eq!(
            mount_data("", Some("system_u:object_r:container_file_t:s0")),
            r#"context="system_u:object_r:container_file_t:s0""#
        );
        assert_eq!(
            mount_data("mode=755,size=65536k", Some("u:r:t:s0:c1,c2")),
            r#"mode=755,size=65536k,context="u:r:t:s0:c1,c2""#
        );
    }

    #[test]
    fn context_goes_on_all_but_kernel_labelled_filesystems() {
        for fstype in ["tmpfs", "devpts", "overlay"] {
            assert!(takes_context(fstype), "{fstype}");
        }
        for fstype in ["proc", "sysfs", "cgroup", "cgroup2", "mqueue"] {
            assert!(!takes_context(fstype), "{fstype}");
        }
    }

    #[test]
    fn empty_label_is_none() {
        assert!(check("process.selinuxLabel", "").is_ok());
        assert!(apply_on_exec("process.selinuxLabel", "").is_ok());
    }

    #[test]
    fn check_follows_the_host() {
        let err = check("linux.mountLabel", "u:object_r:t:s0")
            .err()
            .map(|e| format!("{e:#}"));
        if enabled() {
            assert_eq!(err, None);
        } else {
            assert_eq!(
                err.as_deref(),
                Some(r#"linux.mountLabel "u:object_r:t:s0": SELinux is not enabled on this host"#)
            );
        }
    }

    #[test]
    fn quotes_and_control_characters_are_refused() {
        for bad in ["a\"b", "a\nb", "a\0b"] {
            let err = check("process.selinuxLabel", bad).expect_err(bad);
            assert!(format!("{err:#}").contains("double quote"), "{bad:?}");
        }
    }
}
