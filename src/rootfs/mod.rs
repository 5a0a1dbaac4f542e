//! The container's root filesystem (placeholder interface; being built).

use std::path::{Path, PathBuf};

use anyhow::Result;
use oci_spec::runtime::Spec;
use serde::{Deserialize, Serialize};

/// How the container's root is made from the bundle's rootfs.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Bundle rootfs is the read-only lower layer; writes go to the layer dir.
    Overlay,
    /// The bundle rootfs itself is bind-mounted (OCI spec behaviour).
    Bind,
}

/// Parent side: pick the mode from the spec, annotations and the rootfs itself.
pub fn choose_mode(_spec: &Spec, _rootfs: &Path) -> Result<Mode> {
    Ok(Mode::Overlay)
}

/// Parent side: make `<layer_dir>/{upper,work,merged}`.
pub fn create_layer(layer_dir: &Path) -> Result<()> {
    for d in ["upper", "work", "merged"] {
        std::fs::create_dir_all(layer_dir.join(d))?;
    }
    Ok(())
}

/// Remove a layer dir and everything under it; absent is fine.
pub fn remove_layer(layer_dir: &Path) -> Result<()> {
    match std::fs::remove_dir_all(layer_dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        r => Ok(r?),
    }
}

/// Everything the child needs to build the root.
pub struct RootfsConfig<'a> {
    pub spec: &'a Spec,
    pub bundle: &'a Path,
    pub rootfs: &'a Path,
    pub mode: Mode,
    pub layer_dir: Option<&'a Path>,
    pub no_pivot: bool,
}

/// Child side, inside the new mount namespace: build the root and enter it.
pub fn setup(_cfg: &RootfsConfig) -> Result<()> {
    anyhow::bail!("rootfs setup is being built")
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeKind {
    Added,
    Changed,
    Deleted,
}

/// Changes recorded in an overlay upper dir relative to its lower dir.
pub fn diff(_upper: &Path, _lower: &Path) -> Result<Vec<(ChangeKind, PathBuf)>> {
    Ok(Vec::new())
}
