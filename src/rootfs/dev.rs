//! The container's `/dev`: a fresh tmpfs (unless the spec mounts one),
//! holding only the default devices and `linux.devices`, plus the standard
//! symlinks. Device nodes are made with mknod; where that is refused (a user
//! namespace) the host's node is bind-mounted instead. Must never create
//! anything in a `/dev` that the spec bind-mounted from the host.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::path::{Path, PathBuf};

use crate::spec::types::{LinuxDeviceType, Spec};
use anyhow::{bail, Context, Result};
use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::stat::{makedev, mknodat, Mode, SFlag};
use nix::unistd::{fchownat, symlinkat, unlinkat, Gid, Uid, UnlinkatFlags};

use super::mounts::{Action, MountOp};
use super::options::parse_options;
use super::paths::{clean, Kind, Lookup, Root};
use super::syscalls::{self, fd_path, SysError};
use crate::security::selinux;

/// The devices every container gets, as runc and crun give them.
const DEFAULT_DEVICES: [(&str, u64, u64); 6] = [
    ("/dev/null", 1, 3),
    ("/dev/zero", 1, 5),
    ("/dev/full", 1, 7),
    ("/dev/random", 1, 8),
    ("/dev/urandom", 1, 9),
    ("/dev/tty", 5, 0),
];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Device {
    pub path: PathBuf,
    pub kind: SFlag,
    pub major: u64,
    pub minor: u64,
    pub mode: u32,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
}

/// How the spec provides `/dev`, judged by its last mount there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DevMount {
    /// No mount on /dev: berth mounts its own tmpfs first.
    Missing,
    /// A tmpfs: fresh and private, berth fills it.
    Tmpfs,
    /// A bind of the host's /dev, or devtmpfs (the host's device
    /// superblock): left exactly as it is, since replacing a node there
    /// would replace the host's.
    Host,
}

pub fn dev_mount(ops: &[MountOp]) -> DevMount {
    match ops.iter().rev().find(|o| o.dest == Path::new("/dev")) {
        None => DevMount::Missing,
        Some(MountOp {
            action: Action::Fs { fstype, .. },
            ..
        }) if fstype == "tmpfs" => DevMount::Tmpfs,
        Some(_) => DevMount::Host,
    }
}

/// The `/dev` mount berth adds when the spec has none: runc's default one,
/// with `linux.mountLabel` as its context.
pub fn default_dev_mount(label: Option<&str>) -> MountOp {
    let mut opts = parse_options(&["nosuid", "strictatime", "mode=755", "size=65536k"]);
    opts.data = selinux::mount_data(&opts.data, label);
    MountOp {
        dest: PathBuf::from("/dev"),
        action: Action::Fs {
            fstype: "tmpfs".into(),
            source: "tmpfs".into(),
        },
        opts,
        label: label.map(str::to_string),
    }
}

/// Default devices, then `linux.devices`; a spec device replaces a default
/// one at the same path.
pub fn plan_devices(spec: &Spec) -> Result<Vec<Device>> {
    let mut out: Vec<Device> = DEFAULT_DEVICES
        .iter()
        .map(|&(p, major, minor)| Device {
            path: PathBuf::from(p),
            kind: SFlag::S_IFCHR,
            major,
            minor,
            mode: 0o666,
            uid: None,
            gid: None,
        })
        .collect();
    let spec_devices = spec.linux().as_ref().and_then(|l| l.devices().as_ref());
    for (i, d) in spec_devices.into_iter().flatten().enumerate() {
        let path = clean(d.path());
        let here = || format!("linux.devices[{i}] {}", d.path().display());
        let kind = match d.typ() {
            LinuxDeviceType::C | LinuxDeviceType::U => SFlag::S_IFCHR,
            LinuxDeviceType::B => SFlag::S_IFBLK,
            LinuxDeviceType::P => SFlag::S_IFIFO,
            LinuxDeviceType::A => bail!("{}: type \"a\" is not a device type", here()),
        };
        if path == Path::new("/") {
            bail!("{}: not a device path", here());
        }
        let (Ok(major), Ok(minor)) = (u64::try_from(d.major()), u64::try_from(d.minor())) else {
            bail!("{}: negative major or minor number", here());
        };
        let dev = Device {
            path,
            kind,
            major,
            minor,
            mode: d.file_mode().unwrap_or(0o666) & 0o7777,
            uid: d.uid(),
            gid: d.gid(),
        };
        match out.iter_mut().find(|x| x.path == dev.path) {
            Some(slot) => *slot = dev,
            None => out.push(dev),
        }
    }
    Ok(out)
}

/// Restores the umask when dropped, also on an early error return.
struct UmaskGuard(Mode);

impl Drop for UmaskGuard {
    fn drop(&mut self) {
        nix::sys::stat::umask(self.0);
    }
}

/// Fill `/dev` (already mounted) with the devices and the symlinks.
pub fn populate_dev(root: &Root, devices: &[Device]) -> Result<()> {
    // Modes must be exactly the spec's (0666), not cut by our umask.
    let _umask = UmaskGuard(nix::sys::stat::umask(Mode::empty()));
    let dev = root
        .open_in(
            Path::new("/dev"),
            OFlag::O_PATH | OFlag::O_DIRECTORY,
            Lookup::InRoot,
        )
        .context("open /dev in the container root")?;
    for d in devices {
        create_device(root, dev.as_fd(), d).with_context(|| {
            format!(
                "create device {} ({}:{})",
                d.path.display(),
                d.major,
                d.minor
            )
        })?;
    }
    let mut links: Vec<(&str, &str)> = vec![
        ("/proc/self/fd", "fd"),
        ("/proc/self/fd/0", "stdin"),
        ("/proc/self/fd/1", "stdout"),
        ("/proc/self/fd/2", "stderr"),
    ];
    // Only where the kernel has one, or the link would dangle.
    if Path::new("/proc/kcore").exists() {
        links.push(("/proc/kcore", "core"));
    }
    for (target, name) in links {
        symlink(dev.as_fd(), target, name)?;
    }
    // ptmx must be the devpts instance's, so a spec device there is replaced.
    match unlinkat(Some(dev.as_raw_fd()), "ptmx", UnlinkatFlags::NoRemoveDir) {
        Ok(()) | Err(Errno::ENOENT) => {}
        Err(e) => return Err(SysError(e)).context("remove /dev/ptmx"),
    }
    symlink(dev.as_fd(), "pts/ptmx", "ptmx")
}

fn symlink(dir: BorrowedFd<'_>, target: &str, name: &str) -> Result<()> {
    match symlinkat(target, Some(dir.as_raw_fd()), name) {
        Ok(()) | Err(Errno::EEXIST) => Ok(()),
        Err(e) => Err(SysError(e)).with_context(|| format!("symlink /dev/{name} -> {target}")),
    }
}

/// `dev` is the open `/dev`, used directly for the usual `/dev/<name>`.
fn create_device(root: &Root, dev: BorrowedFd<'_>, d: &Device) -> Result<()> {
    let (Some(parent), Some(name)) = (d.path.parent(), d.path.file_name()) else {
        bail!("not a device path");
    };
    let other;
    let dirfd = if parent == Path::new("/dev") {
        dev.as_raw_fd()
    } else {
        other = root.ensure(parent, Kind::Dir, Lookup::InRoot)?;
        other.as_raw_fd()
    };
    let perm = Mode::from_bits_truncate(d.mode);
    let dev = makedev(d.major, d.minor);
    let mut made = mknodat(Some(dirfd), name, d.kind, perm, dev);
    if made == Err(Errno::EEXIST) {
        // Whatever the image left there is replaced by the node asked for.
        unlinkat(Some(dirfd), name, UnlinkatFlags::NoRemoveDir).map_err(SysError)?;
        made = mknodat(Some(dirfd), name, d.kind, perm, dev);
    }
    match made {
        Ok(()) => {}
        // No CAP_MKNOD (user namespace): borrow the host's node instead.
        Err(Errno::EPERM) => return bind_host_device(root, d),
        Err(e) => return Err(SysError(e).into()),
    }
    if d.uid.is_some() || d.gid.is_some() {
        fchownat(
            Some(dirfd),
            name,
            d.uid.map(Uid::from_raw),
            d.gid.map(Gid::from_raw),
            nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
        )
        .map_err(SysError)
        .context("chown")?;
    }
    Ok(())
}

fn bind_host_device(root: &Root, d: &Device) -> Result<()> {
    let src = syscalls::open_host(&d.path, OFlag::O_PATH)
        .with_context(|| format!("open host device {} to bind it", d.path.display()))?;
    let target = root.ensure(&d.path, Kind::File, Lookup::InRoot)?;
    syscalls::mount(
        Some(&fd_path(src.as_fd())),
        &fd_path(target.as_fd()),
        None,
        nix::mount::MsFlags::MS_BIND,
        None,
    )
    .with_context(|| format!("bind mount host {} (flags bind)", d.path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_devices_extend_and_replace_defaults() {
        let spec: Spec = serde_json::from_str(
            r#"{"ociVersion":"1.0.2","linux":{"devices":[
                {"path":"/dev/null","type":"c","major":1,"minor":3,"fileMode":438,"uid":0,"gid":0},
                {"path":"/dev/net/tun","type":"c","major":10,"minor":200,"fileMode":8630},
                {"path":"/dev/loop0","type":"b","major":7,"minor":0},
                {"path":"/dev/fifo","type":"p"}]}}"#,
        )
        .unwrap();
        let d = plan_devices(&spec).unwrap();
        assert_eq!(d.len(), 9);
        assert_eq!(d[0].path, Path::new("/dev/null"));
        assert_eq!(d[0].uid, Some(0));
        let tun = d
            .iter()
            .find(|x| x.path == Path::new("/dev/net/tun"))
            .unwrap();
        assert_eq!((tun.major, tun.minor, tun.mode), (10, 200, 0o666));
        assert_eq!(d[7].kind, SFlag::S_IFBLK);
        assert_eq!(d[8].kind, SFlag::S_IFIFO);
    }

    #[test]
    fn bad_devices_are_refused() {
        let bad = |dev: &str| {
            let s: Spec = serde_json::from_str(&format!(
                r#"{{"ociVersion":"1.0.2","linux":{{"devices":[{dev}]}}}}"#
            ))
            .unwrap();
            format!("{:#}", plan_devices(&s).unwrap_err())
        };
        assert!(bad(r#"{"path":"/dev/x","type":"a"}"#).contains("not a device type"));
        assert!(bad(r#"{"path":"/dev/x","type":"c","major":-1}"#).contains("negative"));
    }

    #[test]
    fn dev_mount_kind_follows_last_mount() {
        assert_eq!(dev_mount(&[]), DevMount::Missing);
        let mut ops = vec![default_dev_mount(None)];
        assert_eq!(dev_mount(&ops), DevMount::Tmpfs);
        ops.push(MountOp {
            dest: PathBuf::from("/dev"),
            action: Action::Bind {
                source: PathBuf::from("/dev"),
            },
            opts: parse_options(&["rbind"]),
            label: None,
        });
        assert_eq!(dev_mount(&ops), DevMount::Host);
        assert_eq!(
            default_dev_mount(None).describe(),
            "mount tmpfs on /dev (flags nosuid|strictatime, data mode=755,size=65536k)"
        );
        assert_eq!(
            default_dev_mount(Some("u:object_r:t:s0:c1,c2")).describe(),
            r#"mount tmpfs on /dev (flags nosuid|strictatime, data mode=755,size=65536k,context="u:object_r:t:s0:c1,c2")"#
        );
    }

    #[test]
    fn populates_a_dev_dir() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir(tmp.path().join("dev")).unwrap();
        let root = Root::open(tmp.path()).unwrap();
        let spec: Spec = serde_json::from_str(r#"{"ociVersion":"1.0.2"}"#).unwrap();
        populate_dev(&root, &plan_devices(&spec).unwrap()).unwrap();
        use std::os::unix::fs::{FileTypeExt, MetadataExt};
        let null = std::fs::symlink_metadata(tmp.path().join("dev/null")).unwrap();
        assert!(null.file_type().is_char_device());
        assert_eq!(null.rdev(), makedev(1, 3));
        assert_eq!(null.mode() & 0o777, 0o666);
        let ptmx = std::fs::read_link(tmp.path().join("dev/ptmx")).unwrap();
        assert_eq!(ptmx, Path::new("pts/ptmx"));
        let fd = std::fs::read_link(tmp.path().join("dev/fd")).unwrap();
        assert_eq!(fd, Path::new("/proc/self/fd"));
        // Running it twice replaces, it does not fail.
        populate_dev(&root, &plan_devices(&spec).unwrap()).unwrap();
    }
}
