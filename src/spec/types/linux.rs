//! `linux`: namespaces, id maps, devices, cgroup resources and the rest of
//! the Linux-only part of the config.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{spec_struct, LinuxSeccomp};

spec_struct! {
    /// `linux`.
    #[serde(rename_all = "camelCase")]
    pub struct Linux {
        opt get uid_mappings: Vec<LinuxIdMapping>,
        opt get gid_mappings: Vec<LinuxIdMapping>,
        opt get sysctl: BTreeMap<String, String>,
        opt get resources: LinuxResources,
        opt get cgroups_path: PathBuf,
        opt get namespaces: Vec<LinuxNamespace>,
        opt get devices: Vec<LinuxDevice>,
        opt get seccomp: LinuxSeccomp,
        opt get rootfs_propagation: String,
        opt get masked_paths: Vec<String>,
        opt get readonly_paths: Vec<String>,
        opt get mount_label: String,
        /// Refused (spec::unsupported): kept as given.
        opt get intel_rdt: Value,
        opt get personality: Value,
        opt get time_offsets: BTreeMap<String, Value>,
    }
}

spec_struct! {
    /// One of `linux.uidMappings` / `gidMappings`.
    #[derive(Copy)]
    pub struct LinuxIdMapping {
        #[serde(default, rename = "containerID")]
        copy container_id: u32,
        #[serde(default, rename = "hostID")]
        copy host_id: u32,
        #[serde(default)]
        copy size: u32,
    }
}

spec_struct! {
    /// One of `linux.namespaces`: a new one, or `path` to join.
    pub struct LinuxNamespace {
        #[serde(rename = "type")]
        copy typ: LinuxNamespaceType,
        opt get path: PathBuf,
    }
}

/// `linux.namespaces[].type`; each value is its `CLONE_NEW*` flag, so
/// `typ as u64` is what clone(2) and setns(2) take.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LinuxNamespaceType {
    #[default]
    Mount = libc::CLONE_NEWNS as isize,
    Cgroup = libc::CLONE_NEWCGROUP as isize,
    Uts = libc::CLONE_NEWUTS as isize,
    Ipc = libc::CLONE_NEWIPC as isize,
    User = libc::CLONE_NEWUSER as isize,
    Pid = libc::CLONE_NEWPID as isize,
    Network = libc::CLONE_NEWNET as isize,
    Time = libc::CLONE_NEWTIME as isize,
}

spec_struct! {
    /// One of `linux.devices`: a node made in the container's /dev.
    #[serde(rename_all = "camelCase")]
    pub struct LinuxDevice {
        #[serde(default)]
        get path: PathBuf,
        #[serde(rename = "type")]
        copy typ: LinuxDeviceType,
        #[serde(default)]
        copy major: i64,
        #[serde(default)]
        copy minor: i64,
        opt copy file_mode: u32,
        opt copy uid: u32,
        opt copy gid: u32,
    }
}

/// A device type: `c`/`u` character, `b` block, `p` fifo, `a` all (cgroup
/// rules only).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LinuxDeviceType {
    #[default]
    A,
    B,
    C,
    U,
    P,
}

spec_struct! {
    /// `linux.resources`: the cgroup limits.
    #[serde(rename_all = "camelCase")]
    pub struct LinuxResources {
        opt get devices: Vec<LinuxDeviceCgroup>,
        opt get memory: LinuxMemory,
        opt get cpu: LinuxCpu,
        opt get pids: LinuxPids,
        #[serde(rename = "blockIO")]
        opt get block_io: LinuxBlockIo,
        opt get hugepage_limits: Vec<LinuxHugepageLimit>,
        opt get network: LinuxNetwork,
        opt get rdma: BTreeMap<String, LinuxRdma>,
        opt get unified: BTreeMap<String, String>,
    }
}

spec_struct! {
    /// One of `linux.resources.devices`: an allow or deny rule.
    pub struct LinuxDeviceCgroup {
        #[serde(default)]
        copy allow: bool,
        #[serde(rename = "type")]
        opt copy typ: LinuxDeviceType,
        opt copy major: i64,
        opt copy minor: i64,
        opt get access: String,
    }
}

spec_struct! {
    /// `linux.resources.memory` (bytes; -1 is unlimited).
    #[derive(Copy)]
    #[serde(rename_all = "camelCase")]
    pub struct LinuxMemory {
        opt copy limit: i64,
        opt copy reservation: i64,
        opt copy swap: i64,
        opt copy kernel: i64,
        #[serde(rename = "kernelTCP")]
        opt copy kernel_tcp: i64,
        opt copy swappiness: u64,
        #[serde(rename = "disableOOMKiller")]
        opt copy disable_oom_killer: bool,
        opt copy use_hierarchy: bool,
        opt copy check_before_update: bool,
    }
}

spec_struct! {
    /// `linux.resources.cpu`.
    #[serde(rename_all = "camelCase")]
    pub struct LinuxCpu {
        opt copy shares: u64,
        opt copy quota: i64,
        opt copy burst: u64,
        opt copy period: u64,
        opt copy realtime_runtime: i64,
        opt copy realtime_period: u64,
        opt get cpus: String,
        opt get mems: String,
        opt copy idle: i64,
    }
}

spec_struct! {
    /// `linux.resources.pids`.
    #[derive(Copy)]
    pub struct LinuxPids {
        #[serde(default)]
        copy limit: i64,
    }
}

spec_struct! {
    /// `linux.resources.blockIO`.
    #[serde(rename_all = "camelCase")]
    pub struct LinuxBlockIo {
        opt copy weight: u16,
        opt copy leaf_weight: u16,
        opt get weight_device: Vec<LinuxWeightDevice>,
        opt get throttle_read_bps_device: Vec<LinuxThrottleDevice>,
        opt get throttle_write_bps_device: Vec<LinuxThrottleDevice>,
        opt get throttle_read_iops_device: Vec<LinuxThrottleDevice>,
        opt get throttle_write_iops_device: Vec<LinuxThrottleDevice>,
    }
}

spec_struct! {
    /// A per-device blkio weight.
    #[derive(Copy)]
    #[serde(rename_all = "camelCase")]
    pub struct LinuxWeightDevice {
        #[serde(default)]
        copy major: i64,
        #[serde(default)]
        copy minor: i64,
        opt copy weight: u16,
        opt copy leaf_weight: u16,
    }
}

spec_struct! {
    /// A per-device blkio rate limit.
    #[derive(Copy)]
    pub struct LinuxThrottleDevice {
        #[serde(default)]
        copy major: i64,
        #[serde(default)]
        copy minor: i64,
        #[serde(default)]
        copy rate: u64,
    }
}

spec_struct! {
    /// One of `linux.resources.hugepageLimits`.
    #[serde(rename_all = "camelCase")]
    pub struct LinuxHugepageLimit {
        #[serde(default)]
        get page_size: String,
        #[serde(default)]
        copy limit: i64,
    }
}

spec_struct! {
    /// `linux.resources.network` (v1 net_cls / net_prio).
    pub struct LinuxNetwork {
        #[serde(rename = "classID")]
        opt copy class_id: u32,
        opt get priorities: Vec<LinuxInterfacePriority>,
    }
}

spec_struct! {
    /// One of `linux.resources.network.priorities`.
    pub struct LinuxInterfacePriority {
        #[serde(default)]
        get name: String,
        #[serde(default)]
        copy priority: u32,
    }
}

spec_struct! {
    /// One device's `linux.resources.rdma` limits.
    #[derive(Copy)]
    #[serde(rename_all = "camelCase")]
    pub struct LinuxRdma {
        opt copy hca_handles: u32,
        opt copy hca_objects: u32,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn linux_json_names() {
        let l: Linux = serde_json::from_str(
            r#"{"uidMappings": [{"containerID": 0, "hostID": 1000, "size": 1}],
                "namespaces": [{"type": "network", "path": "/proc/1/ns/net"}, {"type": "time"}],
                "devices": [{"path": "/dev/x", "type": "c", "major": 1, "minor": 3, "fileMode": 438}],
                "cgroupsPath": "/a/b", "mountLabel": "m", "intelRdt": {"closID": "x"},
                "resources": {"memory": {"limit": 1, "disableOOMKiller": true, "kernelTCP": 2},
                              "blockIO": {"weight": 10}, "pids": {"limit": 5},
                              "network": {"classID": 7},
                              "devices": [{"allow": false, "access": "rwm"}],
                              "rdma": {"mlx": {"hcaHandles": 3}}}}"#,
        )
        .expect("parse");
        let m = l.uid_mappings().as_ref().expect("maps")[0];
        assert_eq!((m.container_id(), m.host_id(), m.size()), (0, 1000, 1));
        let ns = l.namespaces().as_ref().expect("namespaces");
        assert_eq!(ns[0].typ(), LinuxNamespaceType::Network);
        assert_eq!(ns[1].typ(), LinuxNamespaceType::Time);
        let dev = &l.devices().as_ref().expect("devices")[0];
        assert_eq!(
            (dev.typ(), dev.file_mode()),
            (LinuxDeviceType::C, Some(438))
        );
        let r = l.resources().as_ref().expect("resources");
        let mem = r.memory().as_ref().expect("memory");
        assert_eq!(
            (mem.limit(), mem.disable_oom_killer(), mem.kernel_tcp()),
            (Some(1), Some(true), Some(2))
        );
        assert_eq!(r.block_io().as_ref().and_then(|b| b.weight()), Some(10));
        assert_eq!(r.network().as_ref().and_then(|n| n.class_id()), Some(7));
        assert_eq!(r.devices().as_ref().expect("rules")[0].typ(), None);
        assert!(l.intel_rdt().is_some());
    }

    #[test]
    fn unknown_namespace_type_is_an_error() {
        assert!(serde_json::from_str::<LinuxNamespace>(r#"{"type": "foo"}"#).is_err());
    }
}
