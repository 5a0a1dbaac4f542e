//! The OCI runtime-spec's `config.json`, as berth reads it: plain serde
//! structs for the Linux parts of runtime-spec 1.2, with read getters named
//! after the fields (`spec.process()`, `process.cwd()`).
//!
//! This module owns the shape of the config and nothing else: no validation
//! (that is `spec::validate`), no defaults beyond "absent". It must never
//! accept a field under another name or drop one silently that berth acts
//! on. Fields berth refuses (`spec::unsupported`) are kept as raw JSON values:
//! being present is all that matters about them.
//!
//! Why not the `oci-spec` crate: its regex-based validation and builder
//! machinery were over a third of the berth binary, and binary size and
//! start-up time are product features (README, Architecture).

mod linux;
mod process;
mod seccomp;

use std::collections::BTreeMap;
use std::path::PathBuf;

pub use linux::*;
pub use process::*;
pub use seccomp::*;

/// Declares a spec struct and its getters in one list.
///
/// Each field is `opt KIND name: T` (optional: stored as `Option<T>`,
/// absent in JSON is `None`, `None` is left out when serialized) or
/// `KIND name: T` (stored as `T`; add `#[serde(default)]` where absent
/// means the default). KIND `get` makes a getter returning `&field`, `copy`
/// one returning the field by value. Other attributes pass through.
macro_rules! spec_struct {
    ($(#[$attr:meta])* pub struct $name:ident { $($body:tt)* }) => {
        spec_struct!(@munch [$(#[$attr])* $name] [] [] $($body)*);
    };
    (@munch [$(#[$attr:meta])* $name:ident] [$($fields:tt)*] [$($getters:tt)*]) => {
        #[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
        $(#[$attr])*
        pub struct $name { $($fields)* }
        // A uniform API: not every field's getter has a caller.
        #[allow(dead_code)]
        impl $name { $($getters)* }
    };
    (@munch $head:tt [$($fields:tt)*] [$($getters:tt)*]
        $(#[$fattr:meta])* opt $kind:ident $field:ident : $ty:ty $(, $($rest:tt)*)?) => {
        spec_struct!(@munch $head
            [$($fields)* $(#[$fattr])*
             #[serde(default, skip_serializing_if = "Option::is_none")] pub $field: Option<$ty>,]
            [$($getters)* spec_struct!(@get $kind $field Option<$ty>);]
            $($($rest)*)?);
    };
    (@munch $head:tt [$($fields:tt)*] [$($getters:tt)*]
        $(#[$fattr:meta])* $kind:ident $field:ident : $ty:ty $(, $($rest:tt)*)?) => {
        spec_struct!(@munch $head
            [$($fields)* $(#[$fattr])* pub $field: $ty,]
            [$($getters)* spec_struct!(@get $kind $field $ty);]
            $($($rest)*)?);
    };
    (@get get $field:ident $ty:ty) => {
        pub fn $field(&self) -> &$ty {
            &self.$field
        }
    };
    (@get copy $field:ident $ty:ty) => {
        pub fn $field(&self) -> $ty {
            self.$field
        }
    };
}
pub(crate) use spec_struct;

/// Display an enum as config.json spells it (`RLIMIT_NOFILE`,
/// `SCMP_ARCH_X86_64`), so messages name values the way the user wrote them.
macro_rules! display_as_json {
    ($($t:ty),*) => {$(
        impl std::fmt::Display for $t {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                match crate::spec::convert(self) {
                    Ok(serde_json::Value::String(s)) => f.write_str(&s),
                    _ => write!(f, "{self:?}"),
                }
            }
        }
    )*};
}

display_as_json!(
    PosixRlimitType,
    LinuxNamespaceType,
    LinuxDeviceType,
    LinuxSeccompAction,
    LinuxSeccompOperator,
    LinuxSeccompFilterFlag,
    Arch
);

spec_struct! {
    /// The whole config.json.
    #[serde(rename_all = "camelCase")]
    pub struct Spec {
        #[serde(default, rename = "ociVersion")]
        get version: String,
        opt get root: Root,
        opt get mounts: Vec<Mount>,
        opt get process: Process,
        opt get hostname: String,
        opt get domainname: String,
        opt get hooks: Hooks,
        opt get annotations: BTreeMap<String, String>,
        opt get linux: Linux,
    }
}

spec_struct! {
    /// `root`: the bundle's root filesystem.
    pub struct Root {
        #[serde(default)]
        get path: PathBuf,
        opt copy readonly: bool,
    }
}

spec_struct! {
    /// One entry of `mounts`.
    pub struct Mount {
        get destination: PathBuf,
        #[serde(rename = "type")]
        opt get typ: String,
        opt get source: PathBuf,
        opt get options: Vec<String>,
    }
}

spec_struct! {
    /// `hooks`: programs run at points of the lifecycle.
    #[serde(rename_all = "camelCase")]
    pub struct Hooks {
        opt get prestart: Vec<Hook>,
        opt get create_runtime: Vec<Hook>,
        opt get create_container: Vec<Hook>,
        opt get start_container: Vec<Hook>,
        opt get poststart: Vec<Hook>,
        opt get poststop: Vec<Hook>,
    }
}

spec_struct! {
    /// One hook.
    pub struct Hook {
        get path: PathBuf,
        opt get args: Vec<String>,
        opt get env: Vec<String>,
        opt copy timeout: i64,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absent_fields_stay_absent_both_ways() {
        let spec: Spec = serde_json::from_str(r#"{"ociVersion": "1.2.0"}"#).expect("parse");
        assert_eq!(spec.version(), "1.2.0");
        assert!(spec.process().is_none() && spec.linux().is_none());
        assert_eq!(
            serde_json::to_string(&spec).expect("serialize"),
            r#"{"ociVersion":"1.2.0"}"#
        );
    }

    #[test]
    fn json_names_are_the_runtime_specs() {
        let json = r#"{"ociVersion": "1.2.0",
            "root": {"path": "rootfs", "readonly": true},
            "mounts": [{"destination": "/proc", "type": "proc", "source": "proc"}],
            "hooks": {"createRuntime": [{"path": "/bin/true", "timeout": 3}]},
            "annotations": {"a": "b"}}"#;
        let spec: Spec = serde_json::from_str(json).expect("parse");
        assert_eq!(spec.root().as_ref().and_then(|r| r.readonly()), Some(true));
        let mount = &spec.mounts().as_ref().expect("mounts")[0];
        assert_eq!(mount.typ().as_deref(), Some("proc"));
        let hooks = spec.hooks().as_ref().expect("hooks");
        let hook = &hooks.create_runtime().as_ref().expect("createRuntime")[0];
        assert_eq!(hook.timeout(), Some(3));
        let back: serde_json::Value = serde_json::to_value(&spec).expect("serialize");
        let want: serde_json::Value = serde_json::from_str(json).expect("parse");
        assert_eq!(back, want);
    }

    #[test]
    fn a_mount_without_destination_is_an_error() {
        let err = serde_json::from_str::<Mount>(r#"{"type": "proc"}"#).expect_err("no destination");
        assert!(
            err.to_string().contains("missing field `destination`"),
            "{err}"
        );
    }
}
