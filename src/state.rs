//! Per-container state under `<root>/<id>/`: `state.json` (written atomically),
//! the per-container `flock`, id rules, and the derived status. Status is never
//! trusted from the file: it is recomputed from the live process (pid + start
//! time), the exec fifo and the freezer. This module never kills or mounts.

use std::collections::BTreeMap;
use std::fmt;
use std::fs::{self, File};
use std::io::{ErrorKind, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use nix::errno::Errno;
use nix::fcntl::{renameat2, RenameFlags};
use serde::{Deserialize, Serialize};

use crate::cgroups::Cgroup;
use crate::rootfs;

pub const STATE_FILE: &str = "state.json";
/// Where a new state.json is written before it replaces the old one.
const STATE_TEMP: &str = ".state.json.tmp";
pub const EXEC_FIFO: &str = "exec.fifo";
pub const OCI_VERSION: &str = "1.2.0";

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Creating,
    Created,
    Running,
    Paused,
    Stopped,
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Status::Creating => "creating",
            Status::Created => "created",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Stopped => "stopped",
        })
    }
}

/// Errors a caller branches on.
#[derive(Debug)]
pub enum StateError {
    NotFound(String),
    Exists(String),
}

impl fmt::Display for StateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StateError::NotFound(id) => write!(f, "container {id} does not exist"),
            StateError::Exists(id) => write!(f, "container {id} already exists"),
        }
    }
}

impl std::error::Error for StateError {}

/// What `state.json` holds: the OCI state plus berth's own bookkeeping.
#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct State {
    #[serde(rename = "ociVersion")]
    pub oci_version: String,
    pub id: String,
    /// Status when last written; read it through [`State::status`].
    pub status: Status,
    /// Container process pid in the host pid namespace (0 before it exists).
    pub pid: i32,
    pub bundle: PathBuf,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    /// The bundle's rootfs (absolute), as runc reports it.
    pub rootfs: PathBuf,
    /// RFC 3339 creation time.
    pub created: String,
    pub owner: String,
    /// Start time (clock ticks since boot) of `pid`, so a reused pid is never
    /// mistaken for the container.
    #[serde(default)]
    pub pid_start_time: u64,
    /// The `berth create`/`run` process while it is still creating.
    #[serde(default)]
    pub creator_pid: i32,
    #[serde(default)]
    pub creator_start_time: u64,
    #[serde(default)]
    pub cgroup: Cgroup,
    pub rootfs_mode: rootfs::Mode,
    /// `<layer root>/<id>` in overlay mode.
    #[serde(default)]
    pub layer_dir: Option<PathBuf>,
    /// The container's effective process (after command-line overrides):
    /// the template `exec` starts from, as runc does.
    #[serde(default)]
    pub process: Option<crate::spec::types::Process>,
    /// The config's hooks: `start` runs poststart and `delete` poststop.
    #[serde(default)]
    pub hooks: Option<crate::spec::types::Hooks>,
    /// The config's `linux.seccomp`: `exec` filters its process the same way.
    #[serde(default)]
    pub seccomp: Option<crate::spec::types::LinuxSeccomp>,
    /// The container has a pid namespace of its own: when its process (the
    /// namespace's init) is gone, the kernel has killed every other process
    /// in it, so `delete` has nothing left to kill. False (kill) in a state
    /// written before the field existed.
    #[serde(default)]
    pub own_pid_ns: bool,
}

/// Container ids: `[A-Za-z0-9][A-Za-z0-9_.-]{0,1023}`, checked before any file is made.
pub fn validate_id(id: &str) -> Result<()> {
    let mut chars = id.chars();
    let ok_first = chars.next().is_some_and(|c| c.is_ascii_alphanumeric());
    let ok_rest = chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if !ok_first || !ok_rest || id.len() > 1024 {
        bail!("invalid container id {id:?}: must match [A-Za-z0-9][A-Za-z0-9_.-]{{0,1023}}");
    }
    Ok(())
}

pub fn container_dir(root: &Path, id: &str) -> PathBuf {
    root.join(id)
}

/// An exclusive `flock` on a container's state dir, held until dropped.
pub struct Lock {
    _dir: File,
}

impl Lock {
    /// Wait for the lock on `dir`; `NotFound` if the dir does not exist.
    pub fn acquire(dir: &Path, id: &str) -> Result<Lock> {
        let f = match File::open(dir) {
            Ok(f) => f,
            Err(e) if e.kind() == ErrorKind::NotFound => {
                return Err(StateError::NotFound(id.to_string()).into())
            }
            Err(e) => return Err(e).with_context(|| format!("open {}", dir.display())),
        };
        // SAFETY: flock on an fd we own; no memory is shared with the kernel.
        let rc = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) };
        if rc != 0 {
            return Err(std::io::Error::last_os_error())
                .with_context(|| format!("lock {}", dir.display()));
        }
        Ok(Lock { _dir: f })
    }
}

impl Lock {
    /// In a forked child: drop the child's copy of the lock fd. An flock
    /// belongs to the open file description, so a child holding a copy would
    /// keep the container locked until it execs (and `start` would wait on it).
    pub fn close_inherited(&self) {
        // SAFETY: called only in a clone of the lock's owner, which never
        // drops this Lock (it ends in execve or _exit), so no double close.
        unsafe { libc::close(self._dir.as_raw_fd()) };
    }
}

/// Make the state dir of a new container, atomically: a hidden temp dir is
/// made, locked and given its state.json, then renamed into place without
/// replacing anything. So `<root>/<id>` never exists without a state.json, and
/// a taken id is refused with `Exists`.
pub fn create_locked(root: &Path, id: &str, st: &State) -> Result<(PathBuf, Lock)> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o711)
        .create(root)
        .with_context(|| format!("create state root {}", root.display()))?;
    let dir = container_dir(root, id);
    let tmp = root.join(format!(".{id}.{}", std::process::id()));
    fs::DirBuilder::new()
        .mode(0o711)
        .create(&tmp)
        .with_context(|| format!("create state dir {}", tmp.display()))?;
    let placed = (|| {
        let lock = Lock::acquire(&tmp, id)?;
        st.save_first(&tmp)?;
        rename_noreplace(&tmp, &dir)?;
        Ok(lock)
    })();
    match placed {
        Ok(lock) => Ok((dir, lock)),
        Err(e) => {
            let _ = fs::remove_dir_all(&tmp);
            Err(e)
        }
    }
}

/// Remove `<root>/.<id>.<pid>` temp dirs left by a `create` that was killed
/// before it renamed its state dir into place. A live creator holds the flock
/// on its temp dir, so only dead ones are taken. Returns how many went.
pub fn remove_stale_temp_dirs(root: &Path, id: &str) -> usize {
    let prefix = format!(".{id}.");
    let Ok(entries) = fs::read_dir(root) else {
        return 0;
    };
    let mut removed = 0;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(rest) = name.to_str().and_then(|n| n.strip_prefix(&prefix)) else {
            continue;
        };
        if rest.is_empty() || !rest.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let Ok(f) = File::open(entry.path()) else {
            continue;
        };
        // SAFETY: flock on an fd we own.
        let got = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0;
        if got && fs::remove_dir_all(entry.path()).is_ok() {
            removed += 1;
        }
    }
    removed
}

fn rename_noreplace(from: &Path, to: &Path) -> Result<()> {
    match renameat2(None, from, None, to, RenameFlags::RENAME_NOREPLACE) {
        Ok(()) => Ok(()),
        Err(Errno::EEXIST) => {
            let id = to.file_name().map(|n| n.to_string_lossy().into_owned());
            Err(StateError::Exists(id.unwrap_or_default()).into())
        }
        Err(e) => Err(e).with_context(|| format!("rename {} to {}", from.display(), to.display())),
    }
}

/// A new state.json under its temp name (see [`State::save`]).
#[must_use = "a staged state.json is not in place until placed"]
pub struct Staged {
    tmp: PathBuf,
    path: PathBuf,
}

impl Staged {
    /// Put the staged file in place, atomically for readers.
    pub fn place(self) -> Result<Replaced> {
        match renameat2(
            None,
            &self.tmp,
            None,
            &self.path,
            RenameFlags::RENAME_EXCHANGE,
        ) {
            Ok(()) => Ok(Replaced(Some(self.tmp))),
            Err(Errno::ENOENT | Errno::EINVAL) => {
                fs::rename(&self.tmp, &self.path)
                    .with_context(|| format!("rename {}", self.path.display()))?;
                Ok(Replaced(None))
            }
            Err(e) => Err(e).with_context(|| format!("rename {}", self.path.display())),
        }
    }
}

/// The state.json a placed one replaced, still under the temp name when it
/// was exchanged; removing it can wait until the hurry is over.
pub struct Replaced(Option<PathBuf>);

impl Replaced {
    /// Unlink the old copy. The new state is in place by now, so a failure
    /// here fails nothing (the next save truncates the file, delete removes
    /// it with the state dir): it is logged, not returned.
    pub fn remove(self) {
        if let Some(old) = self.0 {
            if let Err(e) = fs::remove_file(&old) {
                crate::logging::debug(&format!(
                    "remove the replaced state file {}: {e}",
                    old.display()
                ));
            }
        }
    }
}

impl State {
    /// Load `<dir>/state.json`; `NotFound` when the dir or file is gone.
    pub fn load(dir: &Path, id: &str) -> Result<State> {
        let path = dir.join(STATE_FILE);
        let data = match fs::read(&path) {
            Ok(d) => d,
            Err(e) if e.kind() == ErrorKind::NotFound => {
                return Err(StateError::NotFound(id.to_string()).into())
            }
            Err(e) => return Err(e).with_context(|| format!("read {}", path.display())),
        };
        serde_json::from_slice(&data).with_context(|| format!("parse {}", path.display()))
    }

    /// Write `<dir>/state.json` atomically: temp file, rename. No fsync:
    /// the rename alone makes a reader (or a crash of berth) see the old or
    /// the new file, never a torn one; only a crash of the whole machine
    /// could lose the write, and that also ends every container it describes
    /// (state lives in /run, a tmpfs on most hosts). runc and crun do the
    /// same. An fsync cost 0.5-6 ms per write on this ext4 /run (three
    /// writes per `run`), more when the disk is busy.
    ///
    /// The new file is exchanged with the old one (`RENAME_EXCHANGE`), which
    /// is just as atomic for readers, and the old one, now under the temp
    /// name, is unlinked. A plain rename over an existing file makes ext4
    /// allocate the new file's blocks at once (its `auto_da_alloc` guard),
    /// 70-100 µs here, and the block so allocated costs a synchronous
    /// discard when `delete` frees it; exchanged, a short-lived state.json
    /// never gets a block at all. Where the exchange is not supported (or
    /// there is no old file) it is a plain rename.
    pub fn save(&self, dir: &Path) -> Result<()> {
        self.stage(dir)?.place()?.remove();
        Ok(())
    }

    /// The first step of [`State::save`]: the new state.json, written under
    /// its temp name, invisible to readers until it is placed.
    pub fn stage(&self, dir: &Path) -> Result<Staged> {
        let tmp = dir.join(STATE_TEMP);
        self.write_to(&tmp)?;
        Ok(Staged {
            tmp,
            path: dir.join(STATE_FILE),
        })
    }

    /// The first state.json of a state dir nobody can see yet (it is still
    /// under its temp name): written in place, no temp file and rename.
    fn save_first(&self, dir: &Path) -> Result<()> {
        self.write_to(&dir.join(STATE_FILE))
    }

    fn write_to(&self, path: &Path) -> Result<()> {
        let data = serde_json::to_vec(self).context("serialize state")?;
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(path)
            .with_context(|| format!("create {}", path.display()))?;
        f.write_all(&data)
            .with_context(|| format!("write {}", path.display()))
    }

    /// True when `pid` is alive and still the process we started.
    pub fn process_alive(&self) -> bool {
        self.pid > 0 && same_process(self.pid, self.pid_start_time)
    }

    /// The status, derived from the live system.
    pub fn status(&self, dir: &Path) -> Status {
        if self.pid == 0 {
            if self.creator_pid > 0 && same_process(self.creator_pid, self.creator_start_time) {
                return Status::Creating;
            }
            return Status::Stopped;
        }
        if !self.process_alive() {
            return Status::Stopped;
        }
        if dir.join(EXEC_FIFO).exists() {
            return Status::Created;
        }
        if self.cgroup.is_frozen() {
            return Status::Paused;
        }
        Status::Running
    }

    /// The OCI state, as `berth state` prints it: runc's fields, in runc's
    /// order (hence a struct, not a JSON map, which would sort the keys).
    pub fn to_oci(&self, status: Status) -> OciState<'_> {
        OciState {
            oci_version: &self.oci_version,
            id: &self.id,
            pid: if status == Status::Stopped {
                0
            } else {
                self.pid
            },
            status,
            bundle: &self.bundle,
            rootfs: &self.rootfs,
            created: &self.created,
            owner: &self.owner,
            annotations: &self.annotations,
        }
    }
}

#[derive(Serialize)]
pub struct OciState<'a> {
    #[serde(rename = "ociVersion")]
    oci_version: &'a str,
    id: &'a str,
    pid: i32,
    status: Status,
    bundle: &'a Path,
    rootfs: &'a Path,
    created: &'a str,
    owner: &'a str,
    annotations: &'a BTreeMap<String, String>,
}

/// Start time of a process in clock ticks since boot (field 22 of
/// `/proc/<pid>/stat`), or None if it does not exist or is a zombie.
pub fn process_start_time(pid: i32) -> Option<u64> {
    stat_start_time(pid)
        .filter(|&(state, _)| state != b'Z' && state != b'X')
        .map(|(_, t)| t)
}

/// The start time of our own child, not yet waited for: a zombie still is
/// the process we made (a `run` of a short command may be one before we
/// look), and no one else can reap it.
pub fn child_start_time(pid: i32) -> Option<u64> {
    stat_start_time(pid).map(|(_, t)| t)
}

/// The state letter and start time of `/proc/<pid>/stat`.
fn stat_start_time(pid: i32) -> Option<(u8, u64)> {
    let stat = crate::sys::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may contain spaces and ')': parse after the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    let state = *fields.next()?.as_bytes().first()?;
    // After ')' the fields start at field 3 (state); start time is field 22.
    Some((state, fields.nth(22 - 4)?.parse().ok()?))
}

pub fn same_process(pid: i32, start_time: u64) -> bool {
    process_start_time(pid).is_some_and(|t| t == start_time)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids() {
        for ok in ["a", "A0", "web-1", "x.y_z", &"a".repeat(1024)] {
            assert!(validate_id(ok).is_ok(), "{ok}");
        }
        for bad in ["", "../x", "a/b", "-a", ".a", "a b", "é", &"a".repeat(1025)] {
            assert!(validate_id(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn start_time_of_self_and_missing() {
        let me = std::process::id() as i32;
        let t = process_start_time(me).expect("own start time");
        assert!(same_process(me, t));
        assert!(!same_process(me, t + 1));
        assert!(process_start_time(i32::MAX).is_none());
    }

    fn sample() -> State {
        let me = std::process::id() as i32;
        State {
            oci_version: OCI_VERSION.into(),
            id: "t".into(),
            status: Status::Created,
            pid: me,
            bundle: "/b".into(),
            annotations: BTreeMap::new(),
            rootfs: "/b/rootfs".into(),
            created: "2026-01-01T00:00:00Z".into(),
            owner: "root".into(),
            pid_start_time: process_start_time(me).expect("start time"),
            creator_pid: 0,
            creator_start_time: 0,
            cgroup: Cgroup::default(),
            rootfs_mode: rootfs::Mode::Overlay,
            layer_dir: None,
            process: None,
            hooks: None,
            seccomp: None,
            own_pid_ns: true,
        }
    }

    #[test]
    fn state_round_trip_and_status() {
        let dir = tempfile::tempdir().expect("tempdir");
        let st = sample();
        st.save(dir.path()).expect("save");
        let back = State::load(dir.path(), "t").expect("load");
        assert_eq!(back.status(dir.path()), Status::Running);
        fs::write(dir.path().join(EXEC_FIFO), b"").expect("fifo stand-in");
        assert_eq!(back.status(dir.path()), Status::Created);
        let mut dead = back.clone();
        dead.pid_start_time += 1;
        assert_eq!(dead.status(dir.path()), Status::Stopped);
    }

    #[test]
    fn save_replaces_atomically_and_leaves_no_temp_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join(STATE_FILE);
        let mut st = sample();
        st.status = Status::Creating;
        // No old file: the exchange has nothing to swap with.
        st.save(dir.path()).expect("first save");
        let first = fs::read(&path).expect("read first");
        let mut reader = File::open(&path).expect("open first");
        st.status = Status::Running;
        st.save(dir.path()).expect("second save");
        // A reader that opened the old file still reads it whole; a new open
        // reads the new one; the replaced file is gone from the dir.
        let mut old = Vec::new();
        std::io::Read::read_to_end(&mut reader, &mut old).expect("read old");
        assert_eq!(old, first);
        let back = State::load(dir.path(), "t").expect("load");
        assert_eq!(back.status, Status::Running);
        let names: Vec<_> = fs::read_dir(dir.path())
            .expect("read dir")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(names, [std::ffi::OsString::from(STATE_FILE)]);
    }
}
