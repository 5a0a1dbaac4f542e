//! berth: entry point. Parses the command line, sets up logging, dispatches to
//! one subcommand and turns an error into the one line a person or an
//! orchestrator reads: `berth: <what failed>: <why>`.

mod cgroups;
mod cli;
mod commands;
mod hooks;
mod logging;
mod namespaces;
mod notify;
mod process;
mod rootfs;
mod security;
mod spec;
mod state;
mod sys;
mod tty;

use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = cli::Cli::parse_resolved();
    // Fds the caller leaked (not close-on-exec) must never reach a container
    // (CVE-2024-21626): close all but stdio, --preserve-fds and LISTEN_FDS
    // before berth opens anything of its own.
    let keep = match &cli.command {
        cli::Command::Create(a) => Some(a.preserve_fds),
        cli::Command::Run(a) => Some(a.create.preserve_fds),
        cli::Command::Exec(a) => Some(a.preserve_fds),
        _ => None,
    };
    if let Some(n) = keep {
        let first = 3 + n + notify::listen_fds().unwrap_or(0);
        // SAFETY: closes only fds nobody in this process has opened yet.
        unsafe { libc::syscall(libc::SYS_close_range, first, u32::MAX, 0) };
    }
    // create/run: the caller's fds beyond stdio and the ones to pass on
    // (--preserve-fds, LISTEN_FDS) are not ours to keep, and the child, a
    // clone of this process, would hold them until start. Close them before
    // berth opens anything of its own (runc's init never sees them).
    if let cli::Command::Create(a) | cli::Command::Run(cli::RunArgs { create: a, .. }) =
        &cli.command
    {
        let keep = a.preserve_fds.max(notify::listen_fds().unwrap_or(0));
        sys::close_fds_from(3 + keep);
    }
    logging::init(cli.log.as_deref(), cli.log_format, cli.debug);
    // The commands whose child execs into a container run from a sealed
    // copy of berth, never from the host's file (CVE-2019-5736).
    let sealed = match &cli.command {
        cli::Command::Create(_) | cli::Command::Run(_) | cli::Command::Exec(_) => {
            sys::reexec_from_sealed_copy()
        }
        _ => Ok(()),
    };
    match sealed.and_then(|()| commands::dispatch(&cli)) {
        Ok(code) => ExitCode::from(code),
        Err(err) => {
            let msg = format!("{err:#}");
            logging::log(logging::Level::Error, &msg);
            if logging::has_file() {
                eprintln!("berth: {msg}");
            }
            ExitCode::from(exit_code_of(&err))
        }
    }
}

/// Exit status for an error: 127/126 when the container's executable was not
/// found / not executable (as a shell does), 1 for any other runtime error.
fn exit_code_of(err: &anyhow::Error) -> u8 {
    match err.downcast_ref::<process::ExecError>() {
        Some(e) => e.exit_code(),
        None => 1,
    }
}
