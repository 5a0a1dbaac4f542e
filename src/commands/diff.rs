//! `diff`: what the container changed, from its overlay upper dir, printed
//! as `docker diff` does (`A`dded, `C`hanged, `D`eleted).

use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result};

use super::load;
use crate::rootfs::{diff, ChangeKind};

pub fn run(root: &Path, id: &str) -> Result<u8> {
    let (st, _) = load(root, id)?;
    let layer = st.layer_dir.as_ref().with_context(|| {
        format!("container {id} runs on its bundle rootfs (bind mode): it has no layer to diff")
    })?;
    let changes = diff(&layer.join("upper"), &st.rootfs)?;
    let mut out = std::io::stdout().lock();
    for (kind, path) in changes {
        let c = match kind {
            ChangeKind::Added => 'A',
            ChangeKind::Changed => 'C',
            ChangeKind::Deleted => 'D',
        };
        writeln!(out, "{c} {}", path.display())?;
    }
    Ok(0)
}
