//! Control groups (placeholder interface; being built).

use std::os::fd::OwnedFd;
use std::path::Path;

use anyhow::Result;
use oci_spec::runtime::LinuxResources;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Clone, Debug, Default)]
pub struct Cgroup {}

impl Cgroup {
    /// Resolve where the container's cgroup lives; touches nothing.
    pub fn plan(_id: &str, _cgroups_path: Option<&Path>, _systemd: bool) -> Result<Cgroup> {
        Ok(Cgroup {})
    }
    /// Check that every limit asked for can be applied on this host.
    pub fn check(&self, _resources: Option<&LinuxResources>) -> Result<()> {
        Ok(())
    }
    /// Create the cgroup directories and apply the limits.
    pub fn create(&self, _resources: Option<&LinuxResources>) -> Result<()> {
        Ok(())
    }
    /// An fd of the v2 cgroup dir for clone3(CLONE_INTO_CGROUP), if pure v2.
    pub fn open_v2_dir(&self) -> Result<Option<OwnedFd>> {
        Ok(None)
    }
    pub fn add_process(&self, _pid: i32) -> Result<()> {
        Ok(())
    }
    pub fn procs(&self) -> Result<Vec<i32>> {
        Ok(Vec::new())
    }
    pub fn is_frozen(&self) -> bool {
        false
    }
    pub fn thaw(&self) -> Result<()> {
        Ok(())
    }
    pub fn kill_all(&self, _sig: i32) -> Result<()> {
        Ok(())
    }
    /// Remove the cgroup directories; absent is fine.
    pub fn destroy(&self) -> Result<()> {
        Ok(())
    }
}
