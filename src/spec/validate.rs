//! `validate`: every check on a loaded spec, run before the system is touched.
//!
//! The top-level, root, process, mount and annotation checks live here; the
//! `linux` section's are in `linux.rs`, the not-yet-supported refusals in
//! `unsupported.rs`. Checks only read: the rootfs, bind sources and namespace
//! paths are stat'ed, the caller's rlimits queried. Resources
//! (`linux.resources`) are the cgroups module's to check.

use std::fs;
use std::path::{Path, PathBuf};

use crate::spec::types::{Mount, PosixRlimit, PosixRlimitType, Process, Spec};
use anyhow::{anyhow, bail, Result};

use super::{
    absolute, io_reason, linux, unsupported, ANNOTATION_ROOTFS, CONFIG_FILE, MOUNT_OPTIONS,
    ROOTFS_MODES,
};

/// Mount types the rootfs module mounts; any other type must be a bind mount.
const MOUNT_TYPES: &[&str] = &[
    "bind", "proc", "sysfs", "tmpfs", "devpts", "mqueue", "cgroup", "cgroup2", "overlay",
];

/// Check everything in `spec` before the system is touched. `bundle` is the
/// directory relative paths (root.path, bind sources) are resolved against.
pub fn validate(spec: &Spec, bundle: &Path) -> Result<()> {
    check_all(spec, bundle).map_err(|e| anyhow!("{CONFIG_FILE}: {e:#}"))
}

fn check_all(spec: &Spec, bundle: &Path) -> Result<()> {
    check_version(spec.version())?;
    unsupported::check(spec)?;
    check_root(spec, bundle)?;
    let process = spec
        .process()
        .as_ref()
        .ok_or_else(|| anyhow!("process must be set"))?;
    check_process(process)?;
    linux::check(spec)?;
    if let Some(s) = spec.linux().as_ref().and_then(|l| l.seccomp().as_ref()) {
        crate::security::seccomp::plan(s)?;
    }
    for (i, mount) in spec.mounts().iter().flatten().enumerate() {
        check_mount(i, mount, bundle)?;
    }
    check_annotations(spec)
}

fn check_version(version: &str) -> Result<()> {
    if version.is_empty() {
        bail!("ociVersion must be set");
    }
    let major = version
        .split('.')
        .next()
        .and_then(|m| m.parse::<u64>().ok());
    if major != Some(1) {
        bail!("ociVersion \"{version}\" is not supported: berth implements runtime-spec 1.x");
    }
    Ok(())
}

fn check_root(spec: &Spec, bundle: &Path) -> Result<()> {
    let root = spec
        .root()
        .as_ref()
        .ok_or_else(|| anyhow!("root must be set"))?;
    if root.path().as_os_str().is_empty() {
        bail!("root.path must be set");
    }
    let path = absolute(&bundle.join(root.path()));
    let meta = fs::metadata(&path)
        .map_err(|e| anyhow!("root.path {}: {}", path.display(), io_reason(&e)))?;
    if !meta.is_dir() {
        bail!("root.path {}: not a directory", path.display());
    }
    Ok(())
}

fn check_process(process: &Process) -> Result<()> {
    let args = process.args().as_deref().unwrap_or_default();
    if args.is_empty() {
        bail!("process.args must not be empty");
    }
    for (i, arg) in args.iter().enumerate() {
        if arg.contains('\0') {
            bail!("process.args[{i}] contains a NUL byte");
        }
    }
    if !process.cwd().is_absolute() {
        bail!("process.cwd {:?} must be an absolute path", process.cwd());
    }
    for (i, var) in process.env().iter().flatten().enumerate() {
        if var.contains('\0') {
            bail!("process.env[{i}] contains a NUL byte");
        }
        match var.split_once('=') {
            Some((key, _)) if !key.is_empty() => {}
            _ => bail!("process.env[{i}] {var:?} must be KEY=VALUE"),
        }
    }
    if let Some(adj) = process.oom_score_adj() {
        if !(-1000..=1000).contains(&adj) {
            bail!("process.oomScoreAdj {adj} must be between -1000 and 1000");
        }
    }
    if let Some(profile) = process.apparmor_profile() {
        crate::security::apparmor::check(profile)?;
    }
    if let Some(label) = process.selinux_label() {
        crate::security::selinux::check("process.selinuxLabel", label)?;
    }
    check_rlimits(process.rlimits().as_deref().unwrap_or_default())
}

fn check_rlimits(rlimits: &[PosixRlimit]) -> Result<()> {
    let mut seen = Vec::with_capacity(rlimits.len());
    let raisable = can_raise_hard_limits();
    for rlimit in rlimits {
        let (typ, soft, hard) = (rlimit.typ(), rlimit.soft(), rlimit.hard());
        if seen.contains(&typ) {
            bail!("process.rlimits: duplicate rlimit {typ}");
        }
        seen.push(typ);
        if soft > hard {
            bail!("process.rlimits: rlimit {typ} soft limit {soft} exceeds its hard limit {hard}");
        }
        let caller_hard = caller_hard_limit(typ)?;
        if hard <= caller_hard {
            continue;
        }
        // Raising a hard limit needs CAP_SYS_RESOURCE (and RLIMIT_NOFILE
        // never goes past fs.nr_open); without it setrlimit in the child
        // would fail with EPERM after the container had been half made.
        if !raisable {
            bail!("process.rlimits: rlimit {typ} {hard} exceeds the hard limit {caller_hard} of the caller");
        }
        if typ == PosixRlimitType::RlimitNofile {
            let nr_open = nr_open()?;
            if hard > nr_open {
                bail!("process.rlimits: rlimit {typ} {hard} exceeds fs.nr_open {nr_open}");
            }
        }
    }
    Ok(())
}

/// The caller's current hard limit for `typ`.
fn caller_hard_limit(typ: PosixRlimitType) -> Result<u64> {
    use nix::sys::resource::{getrlimit, Resource};
    let resource = match typ {
        PosixRlimitType::RlimitCpu => Resource::RLIMIT_CPU,
        PosixRlimitType::RlimitFsize => Resource::RLIMIT_FSIZE,
        PosixRlimitType::RlimitData => Resource::RLIMIT_DATA,
        PosixRlimitType::RlimitStack => Resource::RLIMIT_STACK,
        PosixRlimitType::RlimitCore => Resource::RLIMIT_CORE,
        PosixRlimitType::RlimitRss => Resource::RLIMIT_RSS,
        PosixRlimitType::RlimitNproc => Resource::RLIMIT_NPROC,
        PosixRlimitType::RlimitNofile => Resource::RLIMIT_NOFILE,
        PosixRlimitType::RlimitMemlock => Resource::RLIMIT_MEMLOCK,
        PosixRlimitType::RlimitAs => Resource::RLIMIT_AS,
        PosixRlimitType::RlimitLocks => Resource::RLIMIT_LOCKS,
        PosixRlimitType::RlimitSigpending => Resource::RLIMIT_SIGPENDING,
        PosixRlimitType::RlimitMsgqueue => Resource::RLIMIT_MSGQUEUE,
        PosixRlimitType::RlimitNice => Resource::RLIMIT_NICE,
        PosixRlimitType::RlimitRtprio => Resource::RLIMIT_RTPRIO,
        PosixRlimitType::RlimitRttime => Resource::RLIMIT_RTTIME,
    };
    let (_, hard) = getrlimit(resource).map_err(|e| anyhow!("getrlimit {typ}: {}", e.desc()))?;
    Ok(hard)
}

fn can_raise_hard_limits() -> bool {
    caps::has_cap(
        None,
        caps::CapSet::Effective,
        caps::Capability::CAP_SYS_RESOURCE,
    )
    .unwrap_or(false)
}

fn nr_open() -> Result<u64> {
    let path = "/proc/sys/fs/nr_open";
    let text = fs::read_to_string(path).map_err(|e| anyhow!("read {path}: {}", io_reason(&e)))?;
    text.trim()
        .parse()
        .map_err(|_| anyhow!("read {path}: not a number: {:?}", text.trim()))
}

fn check_mount(i: usize, mount: &Mount, bundle: &Path) -> Result<()> {
    let dest = mount.destination();
    if !dest.is_absolute() {
        bail!("mounts[{i}].destination {dest:?} must be an absolute path");
    }
    let options = mount.options().as_deref().unwrap_or_default();
    let typ = mount.typ().as_deref().unwrap_or_default();
    let is_bind = typ == "bind" || options.iter().any(|o| o == "bind" || o == "rbind");
    if !is_bind {
        if typ.is_empty() {
            bail!("mounts[{i}].type must be set unless options has bind or rbind");
        }
        if !MOUNT_TYPES.contains(&typ) {
            bail!(
                "mounts[{i}].type \"{typ}\" is not supported (supported: {}, or a bind mount)",
                MOUNT_TYPES.join(" ")
            );
        }
        return Ok(());
    }
    // For a bind mount the kernel ignores data options, so an option the
    // rootfs module does not turn into a flag would be silently dropped.
    if let Some(unknown) = options
        .iter()
        .find(|o| !MOUNT_OPTIONS.contains(&o.as_str()))
    {
        bail!("mounts[{i}].options: unknown option \"{unknown}\" for a bind mount");
    }
    let source = mount
        .source()
        .as_ref()
        .filter(|s| !s.as_os_str().is_empty())
        .ok_or_else(|| anyhow!("mounts[{i}].source must be set for a bind mount"))?;
    let source: PathBuf = absolute(&bundle.join(source));
    fs::metadata(&source)
        .map_err(|e| anyhow!("mounts[{i}].source {}: {}", source.display(), io_reason(&e)))?;
    Ok(())
}

fn check_annotations(spec: &Spec) -> Result<()> {
    let annotations = spec.annotations().iter().flatten();
    for (key, value) in annotations {
        if key.is_empty() {
            bail!("annotations: keys must not be empty");
        }
        if key == ANNOTATION_ROOTFS && !ROOTFS_MODES.contains(&value.as_str()) {
            bail!(
                "annotations.{key} \"{value}\" must be one of: {}",
                ROOTFS_MODES.join(", ")
            );
        }
    }
    Ok(())
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// A bundle with an empty rootfs dir; `spec_json` gets `root` and a valid
    /// `process` unless it sets them.
    pub fn bundle() -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("tempdir");
        fs::create_dir(dir.path().join("rootfs")).expect("mkdir rootfs");
        dir
    }

    /// A minimal valid config with `extra` (a JSON object) merged over it.
    pub fn spec_with(extra: &str) -> Spec {
        let mut base: serde_json::Value = serde_json::from_str(
            r#"{"ociVersion": "1.0.2", "root": {"path": "rootfs"},
                "process": {"args": ["sh"], "cwd": "/", "user": {"uid": 0, "gid": 0}},
                "linux": {"namespaces": [{"type": "mount"}, {"type": "pid"}]}}"#,
        )
        .expect("base json");
        let extra: serde_json::Value = serde_json::from_str(extra).expect("extra json");
        merge(&mut base, extra);
        serde_json::from_value(base).expect("test spec")
    }

    fn merge(base: &mut serde_json::Value, extra: serde_json::Value) {
        match (base, extra) {
            (serde_json::Value::Object(b), serde_json::Value::Object(e)) => {
                for (k, v) in e {
                    merge(b.entry(k).or_insert(serde_json::Value::Null), v);
                }
            }
            (b, e) => *b = e,
        }
    }

    /// The validation error for `extra` merged over the minimal config.
    pub fn err(extra: &str) -> String {
        let dir = bundle();
        match validate(&spec_with(extra), dir.path()) {
            Ok(()) => panic!("{extra} should be refused"),
            Err(e) => format!("{e:#}"),
        }
    }

    pub fn ok(extra: &str) {
        let dir = bundle();
        if let Err(e) = validate(&spec_with(extra), dir.path()) {
            panic!("{extra} should pass: {e:#}");
        }
    }

    #[test]
    fn minimal_spec_passes() {
        ok("{}");
    }

    #[test]
    fn version() {
        assert_eq!(
            err(r#"{"ociVersion": ""}"#),
            "config.json: ociVersion must be set"
        );
        assert_eq!(
            err(r#"{"ociVersion": "2.0.0"}"#),
            "config.json: ociVersion \"2.0.0\" is not supported: berth implements runtime-spec 1.x"
        );
        ok(r#"{"ociVersion": "1.2.0"}"#);
    }

    #[test]
    fn root() {
        let dir = bundle();
        let mut spec = spec_with(r#"{"root": {"path": "nope"}}"#);
        let want = format!(
            "config.json: root.path {}/nope: No such file or directory",
            dir.path().display()
        );
        assert_eq!(
            format!("{:#}", validate(&spec, dir.path()).expect_err("missing")),
            want
        );
        fs::write(dir.path().join("file"), "").expect("write");
        spec = spec_with(r#"{"root": {"path": "file"}}"#);
        let want = format!(
            "config.json: root.path {}/file: not a directory",
            dir.path().display()
        );
        assert_eq!(
            format!("{:#}", validate(&spec, dir.path()).expect_err("file")),
            want
        );
        let abs = dir.path().join("rootfs");
        validate(
            &spec_with(&format!(r#"{{"root": {{"path": {abs:?}}}}}"#)),
            Path::new("/nonexistent"),
        )
        .expect("absolute root.path ignores the bundle");
        assert_eq!(err(r#"{"root": null}"#), "config.json: root must be set");
    }

    #[test]
    fn process() {
        assert_eq!(
            err(r#"{"process": null}"#),
            "config.json: process must be set"
        );
        assert_eq!(
            err(r#"{"process": {"args": []}}"#),
            "config.json: process.args must not be empty"
        );
        assert_eq!(
            err(r#"{"process": {"args": null}}"#),
            "config.json: process.args must not be empty"
        );
        assert_eq!(
            err(r#"{"process": {"cwd": "tmp"}}"#),
            "config.json: process.cwd \"tmp\" must be an absolute path"
        );
        assert_eq!(
            err(r#"{"process": {"env": ["A=1", "FOO"]}}"#),
            "config.json: process.env[1] \"FOO\" must be KEY=VALUE"
        );
        assert_eq!(
            err(r#"{"process": {"env": ["=x"]}}"#),
            "config.json: process.env[0] \"=x\" must be KEY=VALUE"
        );
        assert_eq!(
            err(r#"{"process": {"args": ["a\u0000b"]}}"#),
            "config.json: process.args[0] contains a NUL byte"
        );
        assert_eq!(
            err(r#"{"process": {"oomScoreAdj": 1001}}"#),
            "config.json: process.oomScoreAdj 1001 must be between -1000 and 1000"
        );
        ok(
            r#"{"process": {"env": ["A=", "B=c=d"], "oomScoreAdj": -1000, "user": {"uid": 1000, "gid": 1000}}}"#,
        );
    }

    #[test]
    fn rlimits() {
        assert_eq!(
            err(r#"{"process": {"rlimits": [{"type": "RLIMIT_CORE", "soft": 2, "hard": 1}]}}"#),
            "config.json: process.rlimits: rlimit RLIMIT_CORE soft limit 2 exceeds its hard limit 1"
        );
        assert_eq!(
            err(
                r#"{"process": {"rlimits": [{"type": "RLIMIT_CORE", "soft": 0, "hard": 0},
                                             {"type": "RLIMIT_CORE", "soft": 0, "hard": 0}]}}"#
            ),
            "config.json: process.rlimits: duplicate rlimit RLIMIT_CORE"
        );
        // Beyond any caller's hard limit and beyond fs.nr_open, with or
        // without CAP_SYS_RESOURCE.
        let huge = 1u64 << 40;
        let e = err(&format!(
            r#"{{"process": {{"rlimits": [{{"type": "RLIMIT_NOFILE", "soft": 1, "hard": {huge}}}]}}}}"#
        ));
        let caller = caller_hard_limit(PosixRlimitType::RlimitNofile).expect("getrlimit");
        let want = if can_raise_hard_limits() {
            format!(
                "config.json: process.rlimits: rlimit RLIMIT_NOFILE {huge} exceeds fs.nr_open {}",
                nr_open().expect("nr_open")
            )
        } else {
            format!("config.json: process.rlimits: rlimit RLIMIT_NOFILE {huge} exceeds the hard limit {caller} of the caller")
        };
        assert_eq!(e, want);
        ok(&format!(
            r#"{{"process": {{"rlimits": [{{"type": "RLIMIT_NOFILE", "soft": {caller}, "hard": {caller}}}]}}}}"#
        ));
    }

    #[test]
    fn annotations() {
        assert_eq!(
            err(r#"{"annotations": {"run.berth.rootfs": "zfs"}}"#),
            "config.json: annotations.run.berth.rootfs \"zfs\" must be one of: overlay, bind"
        );
        assert_eq!(
            err(r#"{"annotations": {"": "x"}}"#),
            "config.json: annotations: keys must not be empty"
        );
        ok(r#"{"annotations": {"run.berth.rootfs": "bind", "org.example.x": ""}}"#);
    }

    #[test]
    fn unsupported_fields_are_refused_first() {
        assert_eq!(
            err(r#"{"process": {"scheduler": {"policy": "SCHED_OTHER"}, "cwd": "rel"}}"#),
            "config.json: process.scheduler: scheduler settings are not supported yet"
        );
        ok(r#"{"linux": {"seccomp": {"defaultAction": "SCMP_ACT_ERRNO"}}}"#);
        assert_eq!(
            err(
                r#"{"linux": {"seccomp": {"defaultAction": "SCMP_ACT_ALLOW", "listenerMetadata": "m"}}}"#
            ),
            "config.json: linux.seccomp.listenerMetadata is set but listenerPath is not"
        );
    }

    #[test]
    fn mounts() {
        assert_eq!(
            err(r#"{"mounts": [{"destination": "proc", "type": "proc", "source": "proc"}]}"#),
            "config.json: mounts[0].destination \"proc\" must be an absolute path"
        );
        assert_eq!(
            err(r#"{"mounts": [{"destination": "/x", "type": "nfs", "source": "h:/x"}]}"#),
            "config.json: mounts[0].type \"nfs\" is not supported (supported: bind proc sysfs tmpfs devpts mqueue cgroup cgroup2 overlay, or a bind mount)"
        );
        assert_eq!(
            err(r#"{"mounts": [{"destination": "/x"}]}"#),
            "config.json: mounts[0].type must be set unless options has bind or rbind"
        );
        assert_eq!(
            err(
                r#"{"mounts": [{"destination": "/x", "source": "/nonexistent/berth", "options": ["rbind"]}]}"#
            ),
            "config.json: mounts[0].source /nonexistent/berth: No such file or directory"
        );
        assert_eq!(
            err(r#"{"mounts": [{"destination": "/x", "type": "bind"}]}"#),
            "config.json: mounts[0].source must be set for a bind mount"
        );
        assert_eq!(
            err(
                r#"{"mounts": [{"destination": "/x", "type": "none", "source": "/", "options": ["rbind", "nosymfollow"]}]}"#
            ),
            "config.json: mounts[0].options: unknown option \"nosymfollow\" for a bind mount"
        );
        ok(
            r#"{"mounts": [{"destination": "/proc", "type": "proc", "source": "proc"},
                          {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "mode=755"]},
                          {"destination": "/data", "type": "none", "source": "rootfs", "options": ["rbind", "ro", "rprivate"]},
                          {"destination": "/etc/hosts", "source": "/etc/hosts", "options": ["bind"]}]}"#,
        );
    }
}
