//! config.json: loading and validation.
//!
//! This module owns reading `<bundle>/config.json` into an
//! [`crate::spec::types::Spec`] and checking *everything* in it before any
//! other module touches the system: a config that berth cannot honour fully is
//! refused here with one line naming the field, never half-applied later. It
//! must never create, mount or change anything; it only reads (the config, the
//! rootfs and namespace paths it names, the caller's limits).
//!
//! Every error is a single line starting with `config.json: `.

mod default;
mod linux;
mod raw;
mod seccomp;
pub mod types;
mod unsupported;
mod validate;

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crate::spec::types::Spec;
use anyhow::{anyhow, Result};

pub use default::{example, to_pretty_json, to_rootless};
pub use validate::validate;

pub const CONFIG_FILE: &str = "config.json";

/// Annotation that picks how the root filesystem is made: `overlay` (the
/// default) or `bind` (the OCI behaviour).
pub const ANNOTATION_ROOTFS: &str = "run.berth.rootfs";
/// The values [`ANNOTATION_ROOTFS`] accepts.
pub const ROOTFS_MODES: &[&str] = &["overlay", "bind"];

/// Mount options the rootfs module turns into mount flags; anything else in a
/// non-bind mount's options is filesystem data (`mode=755`, `size=64k`).
/// `berth features` prints this list, so keep it in step with the parser.
pub const MOUNT_OPTIONS: &[&str] = &[
    "ro",
    "rw",
    "nosuid",
    "suid",
    "nodev",
    "dev",
    "noexec",
    "exec",
    "sync",
    "async",
    "dirsync",
    "remount",
    "mand",
    "nomand",
    "atime",
    "noatime",
    "diratime",
    "nodiratime",
    "relatime",
    "norelatime",
    "strictatime",
    "nostrictatime",
    "bind",
    "rbind",
    "private",
    "rprivate",
    "shared",
    "rshared",
    "slave",
    "rslave",
    "unbindable",
    "runbindable",
];

/// Load `<bundle>/config.json`.
///
/// The bytes are parsed with serde_json directly so that a syntax or type
/// error carries its line and column, and the fields typed as enums
/// (capabilities, rlimit and namespace types) are checked first so that an
/// unknown name is reported with the field it is in.
pub fn load(bundle: &Path) -> Result<Spec> {
    let path = absolute(&bundle.join(CONFIG_FILE));
    let bytes = fs::read(&path)
        .map_err(|e| anyhow!("{CONFIG_FILE}: open {}: {}", path.display(), io_reason(&e)))?;
    parse(&bytes)
}

/// Parse config.json bytes into a spec (no validation beyond the types).
pub fn parse(bytes: &[u8]) -> Result<Spec> {
    let value: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| anyhow!("{CONFIG_FILE}: {e}"))?;
    raw::check(&value).map_err(|e| anyhow!("{CONFIG_FILE}: {e:#}"))?;
    serde_json::from_slice(bytes).map_err(|e| anyhow!("{CONFIG_FILE}: {e}"))
}

/// One serde type as another (a typed value from a JSON tree, a tree from
/// a typed value, an enum from its name), through the compact writer and
/// the slice reader that state.json and config.json already use:
/// `serde_json::from_value`/`to_value` would make a second copy of every
/// deserializer and serializer they reach (for `LinuxResources` all its
/// nested structs, for `berth spec` the whole spec's), ~100 KB of binary
/// for values of a few dozen bytes.
pub fn convert<T, S>(value: &S) -> serde_json::Result<T>
where
    T: serde::de::DeserializeOwned,
    S: serde::Serialize + ?Sized,
{
    serde_json::from_slice(&serde_json::to_vec(value)?)
}

/// `path` made absolute against the current directory, without touching the
/// filesystem (so a missing path can still be named in full).
pub(crate) fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

/// The OS reason of an I/O error without Rust's ` (os error N)` suffix, so
/// messages read like the C library's: `No such file or directory`.
pub(crate) fn io_reason(err: &io::Error) -> String {
    let text = err.to_string();
    match text.rfind(" (os error ") {
        Some(at) => text[..at].to_string(),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bundle_with(config: &str) -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("tempdir");
        fs::write(dir.path().join(CONFIG_FILE), config).expect("write config");
        dir
    }

    fn load_err(config: &str) -> String {
        let dir = bundle_with(config);
        format!("{:#}", load(dir.path()).expect_err("load should fail"))
    }

    #[test]
    fn missing_config_names_the_absolute_path() {
        let dir = tempfile::tempdir().expect("tempdir");
        let err = format!("{:#}", load(dir.path()).expect_err("missing"));
        let want = format!(
            "config.json: open {}/config.json: No such file or directory",
            dir.path().display()
        );
        assert_eq!(err, want);
    }

    #[test]
    fn relative_bundle_is_reported_absolute() {
        let err = format!(
            "{:#}",
            load(Path::new("no/such/bundle")).expect_err("missing")
        );
        assert!(err.starts_with("config.json: open /"), "{err}");
        assert!(
            err.ends_with("no/such/bundle/config.json: No such file or directory"),
            "{err}"
        );
    }

    #[test]
    fn malformed_json_has_line_and_column() {
        let err = load_err("{\n  \"ociVersion\": \"1.0.2\",\n    \"x\" 1\n}");
        assert_eq!(err, "config.json: expected `:` at line 3 column 9");
        let err = load_err("{\n  \"ociVersion\": \"1.0.2\"\n    \"x\": 1\n}");
        assert_eq!(err, "config.json: expected `,` or `}` at line 3 column 5");
    }

    #[test]
    fn wrong_type_has_line_and_column() {
        let err = load_err("{\"ociVersion\": \"1.0.2\",\n \"process\": {\"cwd\": \"/\", \"user\": {\"uid\": \"x\"}}}");
        assert!(
            err.starts_with("config.json: invalid type: string \"x\", expected u32 at line 2"),
            "{err}"
        );
    }

    #[test]
    fn unknown_capability_names_the_field() {
        let err = load_err(
            r#"{"ociVersion": "1.0.2", "process": {"cwd": "/", "user": {"uid": 0, "gid": 0},
                "capabilities": {"bounding": ["CAP_KILL", "CAP_FOO"]}}}"#,
        );
        assert_eq!(
            err,
            "config.json: process.capabilities.bounding: unknown capability \"CAP_FOO\""
        );
    }

    #[test]
    fn unknown_rlimit_and_namespace_name_the_field() {
        let err = load_err(
            r#"{"process": {"cwd": "/", "user": {}, "rlimits": [{"type": "RLIMIT_FOO", "hard": 1, "soft": 1}]}}"#,
        );
        assert_eq!(
            err,
            "config.json: process.rlimits[0].type: unknown rlimit \"RLIMIT_FOO\""
        );
        let err = load_err(r#"{"linux": {"namespaces": [{"type": "pid"}, {"type": "foo"}]}}"#);
        assert_eq!(
            err,
            "config.json: linux.namespaces[1].type: unknown namespace type \"foo\""
        );
    }

    #[test]
    fn good_config_loads() {
        let dir = bundle_with(r#"{"ociVersion": "1.0.2", "root": {"path": "rootfs"}}"#);
        let spec = load(dir.path()).expect("load");
        assert_eq!(spec.version(), "1.0.2");
    }

    #[test]
    fn io_reason_drops_the_os_error_suffix() {
        let err = io::Error::from_raw_os_error(libc::ENOENT);
        assert_eq!(io_reason(&err), "No such file or directory");
    }
}
