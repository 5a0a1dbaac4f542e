//! `pause` and `resume`: freeze and thaw every process of a container through
//! its cgroup (v2 `cgroup.freeze`, v1 freezer). Status `paused` is derived
//! from the freezer, never stored alone.

use std::path::Path;

use anyhow::{bail, Result};

use super::load_locked;
use crate::state::Status;

pub fn pause(root: &Path, id: &str) -> Result<u8> {
    let (mut st, dir, _lock) = load_locked(root, id)?;
    match st.status(&dir) {
        Status::Running | Status::Created => {}
        other => bail!("cannot pause container {id}: it is {other}"),
    }
    st.cgroup.freeze()?;
    st.status = Status::Paused;
    st.save(&dir)?;
    Ok(0)
}

pub fn resume(root: &Path, id: &str) -> Result<u8> {
    let (mut st, dir, _lock) = load_locked(root, id)?;
    if st.status(&dir) != Status::Paused {
        bail!("cannot resume container {id}: it is not paused");
    }
    st.cgroup.thaw()?;
    st.status = Status::Running;
    st.save(&dir)?;
    Ok(0)
}
