//! `ps`: the container's processes, as runc shows them: `--format json` is
//! the list of pids; the table is ps(1)'s output (default `-ef`) filtered to
//! the pids in the container's cgroup.

use std::collections::HashSet;
use std::io::Write;
use std::path::Path;
use std::process::Command;

use anyhow::{bail, Context, Result};

use super::load;
use crate::cli::{ListFormat, PsArgs};

pub fn run(root: &Path, args: &PsArgs) -> Result<u8> {
    let (st, _) = load(root, &args.id)?;
    let pids = st.cgroup.procs()?;
    let mut out = std::io::stdout().lock();
    if args.format == ListFormat::Json {
        writeln!(out, "{}", serde_json::to_string(&pids)?)?;
        return Ok(0);
    }
    let ps_args: Vec<&str> = if args.ps_args.is_empty() {
        vec!["-ef"]
    } else {
        args.ps_args.iter().map(String::as_str).collect()
    };
    let output = Command::new("ps")
        .args(&ps_args)
        .output()
        .context("run ps")?;
    if !output.status.success() {
        bail!(
            "ps {}: {}",
            ps_args.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    let text = String::from_utf8_lossy(&output.stdout);
    let mut lines = text.lines();
    let header = lines.next().context("ps printed nothing")?;
    let col = header
        .split_whitespace()
        .position(|h| h == "PID")
        .context("ps output has no PID column")?;
    let wanted: HashSet<i32> = pids.into_iter().collect();
    writeln!(out, "{header}")?;
    for line in lines {
        let pid = line
            .split_whitespace()
            .nth(col)
            .and_then(|p| p.parse().ok());
        if pid.is_some_and(|p| wanted.contains(&p)) {
            writeln!(out, "{line}")?;
        }
    }
    Ok(0)
}
