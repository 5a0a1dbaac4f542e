//! Small file helpers for cgroupfs: every read, write, mkdir and rmdir names
//! the path and the OS reason, so an error reads like
//! `write 10000000 to /sys/fs/cgroup/memory/c1/memory.limit_in_bytes: Invalid argument`.
//! Nothing here knows about controllers or the spec.

use std::fs;
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};
use std::thread::sleep;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context, Result};

/// Write `value` to `dir/file` in one `write(2)`, as cgroupfs expects.
pub fn write_file(dir: &Path, file: &str, value: &str) -> Result<()> {
    let path = dir.join(file);
    write_path(&path, value)
}

pub fn write_path(path: &Path, value: &str) -> Result<()> {
    write_values(path, &[value])
}

/// Write each of `values` to `path` in a `write(2)` of its own, through one
/// open file (for files that take one entry per write, like devices.allow).
pub fn write_values(path: &Path, values: &[&str]) -> Result<()> {
    // No O_CREAT/O_TRUNC: a cgroup file that is missing is an unsupported
    // knob, and creating a regular file would hide that.
    let failed = |value: &str, e: std::io::Error| {
        anyhow!(
            "write {} to {}: {}",
            value.trim_end(),
            path.display(),
            os_reason(&e)
        )
    };
    let first = values.first().copied().unwrap_or_default();
    let mut file = fs::OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(|e| failed(first, e))?;
    for value in values {
        file.write_all(value.as_bytes())
            .map_err(|e| failed(value, e))?;
    }
    Ok(())
}

pub fn read_file(dir: &Path, file: &str) -> Result<String> {
    let path = dir.join(file);
    crate::sys::read_to_string(&path)
        .map_err(|e| anyhow!("read {}: {}", path.display(), os_reason(&e)))
}

/// Read a file holding one unsigned number (or `max`, read as `u64::MAX`).
pub fn read_u64(dir: &Path, file: &str) -> Result<u64> {
    let text = read_file(dir, file)?;
    parse_u64(text.trim()).with_context(|| format!("parse {}", dir.join(file).display()))
}

pub fn parse_u64(s: &str) -> Result<u64> {
    if s == "max" {
        return Ok(u64::MAX);
    }
    s.parse::<u64>().map_err(|_| anyhow!("not a number: {s:?}"))
}

/// Parse `key value` lines (cpu.stat, memory.stat, memory.events, …).
pub fn parse_flat_keyed(text: &str) -> Vec<(String, u64)> {
    text.lines()
        .filter_map(|line| {
            let (k, v) = line.split_once(' ')?;
            Some((k.to_string(), parse_u64(v.trim()).ok()?))
        })
        .collect()
}

/// Make every missing directory from `dir` up to (not including) an existing
/// ancestor, returning the ones made, top-down, so a failed create can remove
/// exactly those. The leaf is tried first: its parent usually exists. ENOENT
/// is retried a few times: another runtime may remove a parent between our
/// mkdirs.
pub fn make_dirs(dir: &Path) -> Result<Vec<PathBuf>> {
    match fs::create_dir(dir) {
        Ok(()) => return Ok(vec![dir.to_path_buf()]),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Ok(Vec::new()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(anyhow!("mkdir {}: {}", dir.display(), os_reason(&e))),
    }
    let mut made = Vec::new();
    for _ in 0..5 {
        let mut missing = Vec::new();
        let mut cur = dir;
        while !cur.exists() {
            missing.push(cur.to_path_buf());
            match cur.parent() {
                Some(p) => cur = p,
                None => break,
            }
        }
        let mut raced = false;
        for d in missing.iter().rev() {
            match fs::create_dir(d) {
                Ok(()) => made.push(d.clone()),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    raced = true;
                    break;
                }
                Err(e) => return Err(anyhow!("mkdir {}: {}", d.display(), os_reason(&e))),
            }
        }
        if !raced {
            return Ok(made);
        }
        made.retain(|d| d.exists());
    }
    Err(anyhow!("mkdir {}: parent kept disappearing", dir.display()))
}

/// One rmdir of `dir`: true when it is gone (or was never there), false
/// when something is still inside (tasks, sub-cgroups).
pub fn remove_if_empty(dir: &Path) -> Result<bool> {
    match fs::remove_dir(dir) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(true),
        Err(e) if matches!(e.raw_os_error(), Some(libc::EBUSY | libc::ENOTEMPTY)) => Ok(false),
        Err(e) => Err(anyhow!(
            "remove cgroup {}: {}",
            dir.display(),
            os_reason(&e)
        )),
    }
}

/// rmdir `dir` after its sub-cgroups (children first). Absent is fine. EBUSY
/// (a dying task not yet released) is retried for a bounded ~1 s.
pub fn remove_tree(dir: &Path) -> Result<()> {
    // A container's cgroup rarely has sub-cgroups: one rmdir first, and the
    // listing (a kernfs readdir of every control file) only when it fails.
    if let Ok(true) = remove_if_empty(dir) {
        return Ok(());
    }
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(anyhow!("read dir {}: {}", dir.display(), os_reason(&e))),
    };
    for entry in entries {
        let entry = entry.with_context(|| format!("read dir {}", dir.display()))?;
        if entry.file_type().map(|t| t.is_dir()).unwrap_or(false) {
            remove_tree(&entry.path())?;
        }
    }
    let mut delay = Duration::from_millis(1);
    for attempt in 0..12 {
        match fs::remove_dir(dir) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) && attempt < 11 => {
                sleep(delay);
                delay = (delay * 2).min(Duration::from_millis(200));
            }
            Err(e) => {
                let procs = fs::read_to_string(dir.join("cgroup.procs")).unwrap_or_default();
                let pids: Vec<&str> = procs.split_whitespace().collect();
                let extra = if pids.is_empty() {
                    String::new()
                } else {
                    format!(" (processes still inside: {})", pids.join(" "))
                };
                return Err(anyhow!(
                    "remove cgroup {}: {}{extra}",
                    dir.display(),
                    os_reason(&e)
                ));
            }
        }
    }
    Ok(())
}

/// The OS reason alone (`Invalid argument`), without Rust's `(os error 22)`.
pub fn os_reason(e: &io::Error) -> String {
    match e.raw_os_error() {
        Some(code) => nix::errno::Errno::from_raw(code).desc().to_string(),
        None => e.to_string(),
    }
}

#[cfg(test)]
pub mod testdir {
    //! A throw-away directory for fixture tests, removed on drop.
    use std::path::{Path, PathBuf};
    use std::sync::atomic::{AtomicU32, Ordering};

    pub struct TempDir(PathBuf);

    impl TempDir {
        pub fn new(tag: &str) -> TempDir {
            static N: AtomicU32 = AtomicU32::new(0);
            let n = N.fetch_add(1, Ordering::SeqCst);
            let p = std::env::temp_dir().join(format!("berth-cg-{tag}-{}-{n}", std::process::id()));
            let _ = std::fs::remove_dir_all(&p);
            std::fs::create_dir_all(&p).expect("mkdir temp");
            TempDir(p)
        }
        pub fn path(&self) -> &Path {
            &self.0
        }
        pub fn put(&self, file: &str, text: &str) {
            std::fs::write(self.0.join(file), text).expect("write fixture");
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::testdir::TempDir;
    use super::*;

    #[test]
    fn write_names_path_and_reason() {
        let t = TempDir::new("files");
        let err = write_file(t.path(), "absent.file", "5").unwrap_err();
        let msg = format!("{err:#}");
        assert!(msg.starts_with("write 5 to "), "{msg}");
        assert!(
            msg.ends_with("absent.file: No such file or directory"),
            "{msg}"
        );
    }

    #[test]
    fn make_and_remove_dirs() {
        let t = TempDir::new("files");
        let leaf = t.path().join("a/b/c");
        let made = make_dirs(&leaf).unwrap();
        assert_eq!(
            made,
            vec![t.path().join("a"), t.path().join("a/b"), leaf.clone()]
        );
        assert!(make_dirs(&leaf).unwrap().is_empty());
        remove_tree(&t.path().join("a/b")).unwrap();
        assert!(!t.path().join("a/b").exists());
        assert!(t.path().join("a").exists());
        // The usual case, a parent that exists: one mkdir.
        assert_eq!(
            make_dirs(&t.path().join("a/d")).unwrap(),
            vec![t.path().join("a/d")]
        );
    }

    #[test]
    fn parses_flat_keyed() {
        let kv = parse_flat_keyed("usage_usec 10\nnr_periods 2\nbad\nmax max\n");
        assert_eq!(kv[0], ("usage_usec".into(), 10));
        assert_eq!(kv[2], ("max".into(), u64::MAX));
        assert_eq!(kv.len(), 3);
    }
}

/// Retry `step` with a backoff from 0.1 ms up to 10 ms until it reports done
/// (true) or `timeout` has passed (false). The freezers use it: the kernel
/// freezes tasks asynchronously.
pub fn wait_until(timeout: Duration, mut step: impl FnMut() -> Result<bool>) -> Result<bool> {
    let start = Instant::now();
    let mut delay = Duration::from_micros(100);
    loop {
        if step()? {
            return Ok(true);
        }
        if start.elapsed() > timeout {
            return Ok(false);
        }
        sleep(delay);
        delay = (delay * 2).min(Duration::from_millis(10));
    }
}
