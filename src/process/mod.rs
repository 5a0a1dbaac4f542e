//! The container process: the parent side that creates it (`parent`), the
//! child side that becomes it (`child`), the channel between them (`sync`),
//! and the foreground wait of `berth run` (`wait`). No stage re-executes the
//! berth binary: the child is a clone of the parent that ends in `execve`.

pub mod child;
pub mod exec;
pub mod parent;
pub mod sync;
pub mod wait;

use std::fmt;

/// The container's executable could not be started: `berth` exits 127 (not
/// found) or 126 (not executable), as a shell does.
#[derive(Debug)]
pub struct ExecError {
    pub code: u8,
    pub msg: String,
}

impl ExecError {
    /// Turn an error reported by the child into the parent's error.
    pub fn from_child(code: u8, msg: String) -> anyhow::Error {
        if code == 126 || code == 127 {
            ExecError { code, msg }.into()
        } else {
            anyhow::anyhow!(msg)
        }
    }

    pub fn exit_code(&self) -> u8 {
        self.code
    }
}

impl fmt::Display for ExecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.msg)
    }
}

impl std::error::Error for ExecError {}
