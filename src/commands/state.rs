//! `state`: the OCI state JSON of one container.

use std::path::Path;

use anyhow::Result;

use super::load;

pub fn run(root: &Path, id: &str) -> Result<u8> {
    let (st, dir) = load(root, id)?;
    let json = st.to_oci(st.status(&dir));
    println!("{}", serde_json::to_string_pretty(&json)?);
    Ok(0)
}
