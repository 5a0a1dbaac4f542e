//! `delete`: refuse a running container unless `--force`; otherwise kill
//! what is left and remove cgroup, layer and state.

use std::path::Path;

use anyhow::{bail, Result};

use super::load_locked;
use crate::cli::DeleteArgs;
use crate::process::parent::destroy;
use crate::state::Status;

pub fn run(root: &Path, args: &DeleteArgs) -> Result<u8> {
    delete_container(root, &args.id, args.force).map(|_| 0)
}

pub fn delete_container(root: &Path, id: &str, force: bool) -> Result<()> {
    let (st, dir, _lock) = load_locked(root, id)?;
    match st.status(&dir) {
        // A created container never ran user code: runc deletes it unasked.
        Status::Stopped | Status::Created => {}
        Status::Running | Status::Paused | Status::Creating if force => {}
        other => bail!("cannot delete container {id} that is not stopped: {other} (use --force)"),
    }
    destroy(&st, &dir)
}
