//! `create`, `start` and `run`: the lifecycle's first half.

use std::fs;
use std::io::ErrorKind;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use anyhow::{bail, Context, Result};
use oci_spec::runtime::Spec;

use super::load_locked;
use crate::cli::{Cli, CreateArgs, RunArgs};
use crate::process::parent::{self, CreateOptions, Created};
use crate::process::wait;
use crate::spec;
use crate::state::{Status, EXEC_FIFO};

pub fn create(cli: &Cli, args: &CreateArgs) -> Result<u8> {
    create_container(cli, args).map(|_| 0)
}

pub fn run(cli: &Cli, args: &RunArgs) -> Result<u8> {
    let foreground = !args.detach;
    if foreground {
        wait::block_all_signals()?;
    }
    let created = create_container(cli, &args.create)?;
    let Created { dir, pid, lock, .. } = created;
    drop(lock);
    if let Err(e) = start(&cli.root, &args.create.id) {
        let _ = super::delete::delete_container(&cli.root, &args.create.id, true);
        return Err(e);
    }
    if !foreground {
        return Ok(0);
    }
    let code = wait::forward_until_exit(pid)?;
    if !args.keep {
        super::delete::delete_container(&cli.root, &args.create.id, true)
            .with_context(|| format!("delete {} after it exited", dir.display()))?;
    }
    Ok(code)
}

fn create_container(cli: &Cli, args: &CreateArgs) -> Result<Created> {
    crate::state::validate_id(&args.id)?;
    let bundle = fs::canonicalize(&args.bundle)
        .with_context(|| format!("bundle {}", args.bundle.display()))?;
    let mut spec = spec::load(&bundle)?;
    apply_overrides(&mut spec, args);
    if args.console_socket.is_some()
        && !spec
            .process()
            .as_ref()
            .is_some_and(|p| p.terminal().unwrap_or(false))
    {
        bail!("--console-socket needs process.terminal to be true");
    }
    parent::create(
        &CreateOptions {
            root: &cli.root,
            layer_root: &cli.layer_root,
            id: &args.id,
            bundle: &bundle,
            pid_file: args.pid_file.as_deref(),
            no_pivot: args.no_pivot,
            preserve_fds: args.preserve_fds,
            systemd_cgroup: cli.systemd_cgroup,
        },
        &spec,
    )
}

/// berth's shell conveniences: a command after the id, `-e`, `-t`.
fn apply_overrides(spec: &mut Spec, args: &CreateArgs) {
    if args.command.is_empty() && args.env.is_empty() && !args.tty {
        return;
    }
    let mut process = spec.process().clone().unwrap_or_default();
    if !args.command.is_empty() {
        process.set_args(Some(args.command.clone()));
    }
    if !args.env.is_empty() {
        let mut env = process.env().clone().unwrap_or_default();
        for kv in &args.env {
            let key = kv.split('=').next().unwrap_or(kv);
            env.retain(|e| e.split('=').next() != Some(key));
            env.push(kv.clone());
        }
        process.set_env(Some(env));
    }
    if args.tty {
        process.set_terminal(Some(true));
    }
    spec.set_process(Some(process));
}

/// Release a created container's process: one byte into its exec fifo.
pub fn start(root: &Path, id: &str) -> Result<()> {
    let (mut st, dir, _lock) = load_locked(root, id)?;
    match st.status(&dir) {
        Status::Created => {}
        Status::Stopped => bail!("cannot start container {id}: its process has exited"),
        other => bail!("cannot start container {id}: it is {other}, not created"),
    }
    let fifo = dir.join(EXEC_FIFO);
    let mut f = match fs::OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(&fifo)
    {
        Ok(f) => f,
        // ENXIO: no reader, the process waiting on the fifo is gone.
        Err(e) if e.raw_os_error() == Some(libc::ENXIO) => {
            bail!("cannot start container {id}: its process has exited")
        }
        Err(e) if e.kind() == ErrorKind::NotFound => {
            bail!("cannot start container {id}: it has already been started")
        }
        Err(e) => return Err(e).with_context(|| format!("open {}", fifo.display())),
    };
    std::io::Write::write_all(&mut f, b"0").with_context(|| format!("write {}", fifo.display()))?;
    fs::remove_file(&fifo).with_context(|| format!("remove {}", fifo.display()))?;
    st.status = Status::Running;
    st.save(&dir)
}
