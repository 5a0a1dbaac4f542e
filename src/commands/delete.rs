//! `delete`: refuse a running container unless `--force`; otherwise kill
//! what is left and remove cgroup, layer and state.

use std::path::Path;

use anyhow::{bail, Result};

use super::load_locked;
use crate::cli::DeleteArgs;
use crate::process::parent::destroy;
use crate::state::{remove_stale_temp_dirs, StateError, Status};

pub fn run(root: &Path, args: &DeleteArgs) -> Result<u8> {
    delete_container(root, &args.id, args.force).map(|_| 0)
}

pub fn delete_container(root: &Path, id: &str, force: bool) -> Result<()> {
    let (st, dir, _lock) = match load_locked(root, id) {
        Ok(found) => found,
        // runc: `delete --force` of a container that does not exist succeeds
        // (containerd's shim and conmon call it after a plain `delete` and
        // after a failed create). A create killed before its state dir was in
        // place leaves a hidden temp dir: remove that on the way.
        Err(e) if force && is_not_found(&e) => {
            if remove_stale_temp_dirs(root, id) == 0 {
                crate::logging::warn(&format!("{e:#}"));
            }
            return Ok(());
        }
        Err(e) => return Err(e),
    };
    match st.status(&dir) {
        // A created container never ran user code: runc deletes it unasked.
        Status::Stopped | Status::Created => {}
        Status::Running | Status::Paused | Status::Creating if force => {}
        other => bail!("cannot delete container {id} that is not stopped: {other} (use --force)"),
    }
    destroy(&st, &dir)?;
    crate::hooks::run_poststop(&st);
    Ok(())
}

fn is_not_found(e: &anyhow::Error) -> bool {
    matches!(
        e.downcast_ref::<StateError>(),
        Some(StateError::NotFound(_))
    )
}
