//! `list`: every container under `--root`, as runc's table, JSON or ids.
//! A half-written or foreign entry is skipped, never fatal.

use std::fs;
use std::io::{ErrorKind, Write};
use std::path::Path;

use anyhow::{Context, Result};

use crate::cli::{ListArgs, ListFormat};
use crate::logging;
use crate::state::{State, Status};

pub fn run(root: &Path, args: &ListArgs) -> Result<u8> {
    let containers = collect(root)?;
    let mut out = std::io::stdout().lock();
    if args.quiet {
        for (st, _) in &containers {
            writeln!(out, "{}", st.id)?;
        }
        return Ok(0);
    }
    match args.format {
        ListFormat::Json => {
            let all: Vec<_> = containers.iter().map(|(st, s)| st.to_oci(*s)).collect();
            writeln!(out, "{}", serde_json::to_string(&all)?)?;
        }
        ListFormat::Table => {
            let mut rows =
                vec![["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"].map(String::from)];
            for (st, status) in &containers {
                let pid = if *status == Status::Stopped {
                    0
                } else {
                    st.pid
                };
                rows.push([
                    st.id.clone(),
                    pid.to_string(),
                    status.to_string(),
                    st.bundle.display().to_string(),
                    st.created.clone(),
                    st.owner.clone(),
                ]);
            }
            write_table(&mut out, &rows)?;
        }
    }
    Ok(0)
}

/// Containers sorted by id, with their derived status.
fn collect(root: &Path) -> Result<Vec<(State, Status)>> {
    let entries = match fs::read_dir(root) {
        Ok(e) => e,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("read {}", root.display())),
    };
    // The names sorted before anything is loaded: the same sort of
    // OsStrings that `diff` uses, not one more of (State, Status) pairs.
    let mut names: Vec<std::ffi::OsString> = entries
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| e.file_name())
        .collect();
    names.sort_unstable();
    let mut out = Vec::new();
    for name in &names {
        let Some(id) = name.to_str() else { continue };
        if id.starts_with('.') {
            continue;
        }
        let dir = root.join(id);
        match State::load(&dir, id) {
            Ok(st) => {
                let status = st.status(&dir);
                out.push((st, status));
            }
            Err(e) => logging::debug(&format!("list: skip {}: {e:#}", dir.display())),
        }
    }
    Ok(out)
}

/// Columns padded like Go's tabwriter with minwidth 12, padding 1 (runc).
fn write_table(out: &mut impl Write, rows: &[[String; 6]]) -> Result<()> {
    let mut widths = [12usize; 6];
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.len() + 1);
        }
    }
    for row in rows {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            if i + 1 == row.len() {
                line.push_str(cell);
            } else {
                line.push_str(&format!("{cell:<width$}", width = widths[i]));
            }
        }
        writeln!(out, "{line}")?;
    }
    Ok(())
}
