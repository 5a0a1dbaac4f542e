//! The one table of config fields berth refuses because it does not
//! implement them *yet*.
//!
//! Each of these, if silently ignored, would run a container with less
//! isolation or different behaviour than its config asks for, so a config
//! that sets one is refused. When a later issue implements a feature, it
//! deletes its row here (and nothing else in this module). Idmapped mounts
//! are refused in `raw`, because the types drop those fields before this
//! table could see them.

use crate::spec::types::Spec;
use anyhow::{bail, Result};

/// A field berth does not support yet: where it is, the message, and whether
/// a spec sets it.
struct Unsupported {
    field: &'static str,
    message: &'static str,
    is_set: fn(&Spec) -> bool,
}

const NOT_YET_SUPPORTED: &[Unsupported] = &[
    Unsupported {
        field: "linux.intelRdt",
        message: "intel rdt is not supported yet",
        is_set: |s| linux(s, |l| l.intel_rdt().is_some()),
    },
    Unsupported {
        field: "linux.personality",
        message: "personality is not supported yet",
        is_set: |s| linux(s, |l| l.personality().is_some()),
    },
    Unsupported {
        field: "linux.timeOffsets",
        message: "time namespace offsets are not supported yet",
        is_set: |s| {
            linux(s, |l| {
                l.time_offsets().as_ref().is_some_and(|m| !m.is_empty())
            })
        },
    },
    Unsupported {
        field: "process.scheduler",
        message: "scheduler settings are not supported yet",
        is_set: |s| process(s, |p| p.scheduler().is_some()),
    },
    Unsupported {
        field: "process.ioPriority",
        message: "io priorities are not supported yet",
        is_set: |s| process(s, |p| p.io_priority().is_some()),
    },
    Unsupported {
        field: "process.execCPUAffinity",
        message: "cpu affinity is not supported yet",
        is_set: |s| process(s, |p| p.exec_cpu_affinity().is_some()),
    },
];

/// Refuse the first field in [`NOT_YET_SUPPORTED`] that the spec sets.
pub fn check(spec: &Spec) -> Result<()> {
    if let Some(row) = NOT_YET_SUPPORTED.iter().find(|row| (row.is_set)(spec)) {
        bail!("{}: {}", row.field, row.message);
    }
    Ok(())
}

fn linux(spec: &Spec, f: impl Fn(&crate::spec::types::Linux) -> bool) -> bool {
    spec.linux().as_ref().is_some_and(f)
}

fn process(spec: &Spec, f: impl Fn(&crate::spec::types::Process) -> bool) -> bool {
    spec.process().as_ref().is_some_and(f)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refusal(json: &str) -> Option<String> {
        let spec: Spec = serde_json::from_str(json).expect("test spec");
        check(&spec).err().map(|e| format!("{e:#}"))
    }

    #[test]
    fn plain_spec_passes() {
        assert_eq!(
            refusal(r#"{"process": {"cwd": "/", "user": {}, "terminal": false}, "hooks": {}}"#),
            None
        );
        assert_eq!(
            refusal(r#"{"process": {"cwd": "/", "user": {}, "apparmorProfile": ""}}"#),
            None
        );
    }

    #[test]
    fn each_row_refuses() {
        let cases = [
            (
                r#"{"linux": {"intelRdt": {"closID": "x"}}}"#,
                "linux.intelRdt: intel rdt is not supported yet",
            ),
            (
                r#"{"linux": {"personality": {"domain": "LINUX32"}}}"#,
                "linux.personality: personality is not supported yet",
            ),
            (
                r#"{"linux": {"timeOffsets": {"monotonic": "1"}}}"#,
                "linux.timeOffsets: time namespace offsets are not supported yet",
            ),
            (
                r#"{"process": {"cwd": "/", "user": {}, "scheduler": {"policy": "SCHED_OTHER"}}}"#,
                "process.scheduler: scheduler settings are not supported yet",
            ),
            (
                r#"{"process": {"cwd": "/", "user": {}, "ioPriority": {"class": "IOPRIO_CLASS_IDLE"}}}"#,
                "process.ioPriority: io priorities are not supported yet",
            ),
        ];
        for (json, want) in cases {
            assert_eq!(refusal(json).as_deref(), Some(want), "{json}");
        }
    }
}
