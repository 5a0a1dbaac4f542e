//! Mount options from config.json (`["nosuid","rbind","ro","mode=755"]`)
//! turned into what the kernel takes: mount flags to set and to clear, a
//! propagation change, recursive attributes for `mount_setattr`, and the
//! filesystem data string. Pure parsing; this module must never touch the
//! system.

use nix::mount::MsFlags;

use super::syscalls::{
    MOUNT_ATTR_ATIME, MOUNT_ATTR_NOATIME, MOUNT_ATTR_NODEV, MOUNT_ATTR_NODIRATIME,
    MOUNT_ATTR_NOEXEC, MOUNT_ATTR_NOSUID, MOUNT_ATTR_RDONLY, MOUNT_ATTR_RELATIME,
    MOUNT_ATTR_STRICTATIME,
};

/// The atime modes are exclusive: choosing one clears the others.
const ATIME_MODES: MsFlags = MsFlags::MS_NOATIME
    .union(MsFlags::MS_RELATIME)
    .union(MsFlags::MS_STRICTATIME);

/// Flags that a bind remount may carry; anything else is a no-op there.
pub const PER_MOUNT: MsFlags = MsFlags::MS_RDONLY
    .union(MsFlags::MS_NOSUID)
    .union(MsFlags::MS_NODEV)
    .union(MsFlags::MS_NOEXEC)
    .union(MsFlags::MS_NODIRATIME)
    .union(ATIME_MODES);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountOptions {
    /// Flags to set, including `MS_BIND` (and `MS_REC` for `rbind`).
    pub flags: MsFlags,
    /// Flags the options explicitly turned off (`rw`, `dev`, `suid`, ...), so
    /// a bind remount knows not to carry them over from the source mount.
    pub cleared: MsFlags,
    /// `MS_SHARED`/`MS_SLAVE`/`MS_PRIVATE`/`MS_UNBINDABLE`, with `MS_REC`
    /// for the r-forms; empty when no propagation option was given.
    pub propagation: MsFlags,
    /// `MOUNT_ATTR_*` to set and clear on the whole tree (`rro`, `rnosuid`, ...).
    pub rec_set: u64,
    pub rec_clear: u64,
    /// Everything the VFS does not know, comma-joined, for the filesystem.
    pub data: String,
    /// `tmpcopyup`: a tmpfs starts with a copy of the directory it hides.
    pub tmpcopyup: bool,
}

impl Default for MountOptions {
    fn default() -> Self {
        MountOptions {
            flags: MsFlags::empty(),
            cleared: MsFlags::empty(),
            propagation: MsFlags::empty(),
            rec_set: 0,
            rec_clear: 0,
            data: String::new(),
            tmpcopyup: false,
        }
    }
}

impl MountOptions {
    pub fn is_bind(&self) -> bool {
        self.flags.contains(MsFlags::MS_BIND)
    }

    /// The flags for the first `mount(2)`: everything but propagation.
    pub fn mount_flags(&self) -> MsFlags {
        self.flags
    }

    /// Whether a bind needs a second, `MS_REMOUNT` call to apply flags: the
    /// kernel ignores per-mount flags on the initial `MS_BIND`.
    pub fn needs_bind_remount(&self) -> bool {
        self.flags.intersects(PER_MOUNT) || self.cleared.intersects(PER_MOUNT)
    }

    /// Flags for the bind remount, given the flags the new bind mount
    /// already has (`existing`, from statvfs). Keeping what the options do
    /// not mention matters twice: a read-only or nosuid source stays so unless
    /// the spec says `rw`/`suid`, and flags locked by a user namespace are not
    /// dropped (which the kernel refuses with EPERM).
    pub fn bind_remount_flags(&self, existing: MsFlags) -> MsFlags {
        let mut keep = existing & PER_MOUNT & !self.cleared;
        if self.flags.intersects(ATIME_MODES) {
            keep &= !ATIME_MODES;
        }
        MsFlags::MS_REMOUNT | MsFlags::MS_BIND | keep | (self.flags & PER_MOUNT)
    }

    /// The per-mount flags as `mount_setattr` attributes to set and to
    /// clear, recursive ones (`rro`...) on top: for a tree whose mounts are
    /// all new, one call instead of a bind remount per mount. An atime mode
    /// is only ever set (a cleared one leaves the mount's mode as it is).
    pub fn tree_attrs(&self) -> (u64, u64) {
        const MAP: [(MsFlags, u64); 5] = [
            (MsFlags::MS_RDONLY, MOUNT_ATTR_RDONLY),
            (MsFlags::MS_NOSUID, MOUNT_ATTR_NOSUID),
            (MsFlags::MS_NODEV, MOUNT_ATTR_NODEV),
            (MsFlags::MS_NOEXEC, MOUNT_ATTR_NOEXEC),
            (MsFlags::MS_NODIRATIME, MOUNT_ATTR_NODIRATIME),
        ];
        let (mut set, mut clear) = (0, 0);
        for (flag, attr) in MAP {
            if self.flags.contains(flag) {
                set |= attr;
            } else if self.cleared.contains(flag) {
                clear |= attr;
            }
        }
        for (flag, attr) in [
            (MsFlags::MS_NOATIME, MOUNT_ATTR_NOATIME),
            (MsFlags::MS_RELATIME, MOUNT_ATTR_RELATIME),
            (MsFlags::MS_STRICTATIME, MOUNT_ATTR_STRICTATIME),
        ] {
            if self.flags.contains(flag) {
                set |= attr;
                clear |= MOUNT_ATTR_ATIME;
            }
        }
        let set = (set & !self.rec_clear) | self.rec_set;
        let clear = (clear & !self.rec_set) | self.rec_clear;
        (set, clear)
    }

    pub fn data(&self) -> Option<&str> {
        (!self.data.is_empty()).then_some(self.data.as_str())
    }
}

enum Effect {
    Set(MsFlags),
    Clear(MsFlags),
    Propagation(MsFlags),
    Recursive { set: u64, clear: u64 },
    Ignore,
    TmpCopyUp,
}

fn effect(opt: &str) -> Option<Effect> {
    use Effect::*;
    let rec = MsFlags::MS_REC;
    Some(match opt {
        "defaults" | "async" | "nomand" => Ignore,
        "tmpcopyup" => TmpCopyUp,
        "ro" => Set(MsFlags::MS_RDONLY),
        "rw" => Clear(MsFlags::MS_RDONLY),
        "nosuid" => Set(MsFlags::MS_NOSUID),
        "suid" => Clear(MsFlags::MS_NOSUID),
        "nodev" => Set(MsFlags::MS_NODEV),
        "dev" => Clear(MsFlags::MS_NODEV),
        "noexec" => Set(MsFlags::MS_NOEXEC),
        "exec" => Clear(MsFlags::MS_NOEXEC),
        "sync" => Set(MsFlags::MS_SYNCHRONOUS),
        "dirsync" => Set(MsFlags::MS_DIRSYNC),
        "mand" => Set(MsFlags::MS_MANDLOCK),
        "remount" => Set(MsFlags::MS_REMOUNT),
        "noatime" => Set(MsFlags::MS_NOATIME),
        "atime" => Clear(MsFlags::MS_NOATIME),
        "relatime" => Set(MsFlags::MS_RELATIME),
        "norelatime" => Clear(MsFlags::MS_RELATIME),
        "strictatime" => Set(MsFlags::MS_STRICTATIME),
        "nostrictatime" => Clear(MsFlags::MS_STRICTATIME),
        "nodiratime" => Set(MsFlags::MS_NODIRATIME),
        "diratime" => Clear(MsFlags::MS_NODIRATIME),
        "bind" => Set(MsFlags::MS_BIND),
        "rbind" => Set(MsFlags::MS_BIND | rec),
        "private" => Propagation(MsFlags::MS_PRIVATE),
        "rprivate" => Propagation(MsFlags::MS_PRIVATE | rec),
        "shared" => Propagation(MsFlags::MS_SHARED),
        "rshared" => Propagation(MsFlags::MS_SHARED | rec),
        "slave" => Propagation(MsFlags::MS_SLAVE),
        "rslave" => Propagation(MsFlags::MS_SLAVE | rec),
        "unbindable" => Propagation(MsFlags::MS_UNBINDABLE),
        "runbindable" => Propagation(MsFlags::MS_UNBINDABLE | rec),
        "rro" => Recursive {
            set: MOUNT_ATTR_RDONLY,
            clear: 0,
        },
        "rrw" => Recursive {
            set: 0,
            clear: MOUNT_ATTR_RDONLY,
        },
        "rnosuid" => Recursive {
            set: MOUNT_ATTR_NOSUID,
            clear: 0,
        },
        "rsuid" => Recursive {
            set: 0,
            clear: MOUNT_ATTR_NOSUID,
        },
        "rnodev" => Recursive {
            set: MOUNT_ATTR_NODEV,
            clear: 0,
        },
        "rdev" => Recursive {
            set: 0,
            clear: MOUNT_ATTR_NODEV,
        },
        "rnoexec" => Recursive {
            set: MOUNT_ATTR_NOEXEC,
            clear: 0,
        },
        "rexec" => Recursive {
            set: 0,
            clear: MOUNT_ATTR_NOEXEC,
        },
        "rnodiratime" => Recursive {
            set: MOUNT_ATTR_NODIRATIME,
            clear: 0,
        },
        "rdiratime" => Recursive {
            set: 0,
            clear: MOUNT_ATTR_NODIRATIME,
        },
        "rnoatime" => Recursive {
            set: MOUNT_ATTR_NOATIME,
            clear: MOUNT_ATTR_ATIME,
        },
        "rrelatime" => Recursive {
            set: MOUNT_ATTR_RELATIME,
            clear: MOUNT_ATTR_ATIME,
        },
        "rstrictatime" => Recursive {
            set: MOUNT_ATTR_STRICTATIME,
            clear: MOUNT_ATTR_ATIME,
        },
        // mount(8) convention: x-* options are for userspace tools only.
        o if o.starts_with("x-") => Ignore,
        _ => return None,
    })
}

/// Parse options in order; a later option overrides an earlier one (`ro,rw`
/// is read-write), as mount(8) does.
pub fn parse_options<S: AsRef<str>>(opts: &[S]) -> MountOptions {
    let mut out = MountOptions::default();
    for opt in opts {
        let opt = opt.as_ref();
        match effect(opt) {
            Some(Effect::Set(f)) => {
                if f.intersects(ATIME_MODES) {
                    out.flags &= !ATIME_MODES;
                }
                out.flags |= f;
                out.cleared &= !f;
            }
            Some(Effect::Clear(f)) => {
                out.flags &= !f;
                out.cleared |= f;
            }
            Some(Effect::Propagation(p)) => out.propagation = p,
            Some(Effect::Recursive { set, clear }) => {
                out.rec_set = (out.rec_set & !clear & !set) | set;
                out.rec_clear = (out.rec_clear & !set) | clear;
            }
            Some(Effect::Ignore) => {}
            Some(Effect::TmpCopyUp) => out.tmpcopyup = true,
            None => {
                if !out.data.is_empty() {
                    out.data.push(',');
                }
                out.data.push_str(opt);
            }
        }
    }
    out
}

/// `linux.rootfsPropagation` to flags; `None` for an unknown word.
pub fn parse_propagation(word: &str) -> Option<MsFlags> {
    match effect(word) {
        Some(Effect::Propagation(p)) => Some(p),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tree_attrs_of_the_cgroup_mount() {
        let o = parse_options(&["nosuid", "noexec", "nodev", "relatime", "ro"]);
        let all = MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC;
        assert_eq!(
            o.tree_attrs(),
            (all | MOUNT_ATTR_RELATIME, MOUNT_ATTR_ATIME)
        );
        // Cleared flags are cleared; a recursive option has the last word.
        let o = parse_options(&["rw", "suid", "nodev"]);
        assert_eq!(
            o.tree_attrs(),
            (MOUNT_ATTR_NODEV, MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID)
        );
        let o = parse_options(&["ro", "rrw", "rnoexec"]);
        assert_eq!(o.tree_attrs(), (MOUNT_ATTR_NOEXEC, MOUNT_ATTR_RDONLY));
    }

    #[test]
    fn dev_tmpfs_options() {
        let o = parse_options(&["nosuid", "strictatime", "mode=755", "size=65536k"]);
        assert_eq!(o.flags, MsFlags::MS_NOSUID | MsFlags::MS_STRICTATIME);
        assert_eq!(o.data, "mode=755,size=65536k");
        assert!(o.propagation.is_empty());
        assert!(!o.is_bind());
    }

    #[test]
    fn devpts_data_keeps_order() {
        let o = parse_options(&[
            "nosuid",
            "noexec",
            "newinstance",
            "ptmxmode=0666",
            "mode=0620",
            "gid=5",
        ]);
        assert_eq!(o.flags, MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC);
        assert_eq!(o.data(), Some("newinstance,ptmxmode=0666,mode=0620,gid=5"));
    }

    #[test]
    fn rbind_ro_with_propagation() {
        let o = parse_options(&["rbind", "ro", "rprivate", "nosuid"]);
        assert!(o.is_bind());
        assert!(o
            .flags
            .contains(MsFlags::MS_REC | MsFlags::MS_RDONLY | MsFlags::MS_NOSUID));
        assert_eq!(o.propagation, MsFlags::MS_PRIVATE | MsFlags::MS_REC);
        assert!(o.needs_bind_remount());
        assert_eq!(o.data(), None);
    }

    #[test]
    fn later_options_override_earlier() {
        let o = parse_options(&["ro", "rw", "noatime", "relatime", "nodev", "dev"]);
        assert_eq!(o.flags, MsFlags::MS_RELATIME);
        assert!(o.cleared.contains(MsFlags::MS_RDONLY | MsFlags::MS_NODEV));
        let o = parse_options(&["rw", "ro"]);
        assert_eq!(o.flags, MsFlags::MS_RDONLY);
        assert!(!o.cleared.contains(MsFlags::MS_RDONLY));
    }

    #[test]
    fn plain_bind_needs_no_remount() {
        let o = parse_options(&["bind"]);
        assert!(o.is_bind() && !o.needs_bind_remount());
        assert!(!o.flags.contains(MsFlags::MS_REC));
        assert!(parse_options(&["bind", "rw"]).needs_bind_remount());
    }

    #[test]
    fn bind_remount_keeps_unmentioned_source_flags() {
        let existing = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOATIME;
        let o = parse_options(&["bind", "ro"]);
        let f = o.bind_remount_flags(existing);
        assert_eq!(
            f,
            MsFlags::MS_REMOUNT | MsFlags::MS_BIND | MsFlags::MS_RDONLY | existing
        );
        // Explicit dev and a new atime mode replace the source's.
        let o = parse_options(&["bind", "dev", "strictatime"]);
        let f = o.bind_remount_flags(existing);
        assert_eq!(
            f,
            MsFlags::MS_REMOUNT | MsFlags::MS_BIND | MsFlags::MS_NOSUID | MsFlags::MS_STRICTATIME
        );
        // A read-only source stays read-only unless the spec says rw.
        let ro = MsFlags::MS_RDONLY;
        assert!(parse_options(&["bind", "nosuid"])
            .bind_remount_flags(ro)
            .contains(ro));
        assert!(!parse_options(&["bind", "rw"])
            .bind_remount_flags(ro)
            .contains(ro));
    }

    #[test]
    fn recursive_attributes() {
        let o = parse_options(&["rbind", "rro", "rnosuid", "rnoatime"]);
        assert_eq!(
            o.rec_set,
            MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NOATIME
        );
        assert_eq!(o.rec_clear, MOUNT_ATTR_ATIME);
        let o = parse_options(&["rro", "rrw"]);
        assert_eq!((o.rec_set, o.rec_clear), (0, MOUNT_ATTR_RDONLY));
    }

    #[test]
    fn userspace_options_are_dropped() {
        let o = parse_options(&["x-systemd.automount", "defaults", "size=1m"]);
        assert_eq!(o.flags, MsFlags::empty());
        assert_eq!(o.data, "size=1m");
    }

    #[test]
    fn rootfs_propagation_words() {
        assert_eq!(
            parse_propagation("rslave"),
            Some(MsFlags::MS_SLAVE | MsFlags::MS_REC)
        );
        assert_eq!(parse_propagation("private"), Some(MsFlags::MS_PRIVATE));
        assert_eq!(parse_propagation("ro"), None);
        assert_eq!(parse_propagation("bogus"), None);
    }
}
