//! berth: entry point. Parses the command line, sets up logging, dispatches to
//! one subcommand and turns an error into the one line a person or an
//! orchestrator reads: `berth: <what failed>: <why>`.
//!
//! berth is started twice per create, run and exec (the sealed re-exec, the
//! first time only as far as `security::exeseal::early`), so
//! it skips std's runtime start-up: that reads /proc/self/maps for the main
//! thread's stack bounds and installs a SIGSEGV/SIGBUS handler on an
//! alternate stack, only to print "stack overflow" instead of the plain
//! SIGSEGV the kernel's guard gap gives anyway. What of it berth relies on
//! (fds 0-2 open, SIGPIPE ignored, stdout flushed at exit) `main` does itself.
#![cfg_attr(not(test), no_main)]

mod cgroups;
mod cli;
mod commands;
mod cpuid;
mod hooks;
mod logging;
mod namespaces;
mod notify;
mod process;
mod rootfs;
mod security;
mod sorted;
mod spec;
mod state;
mod sys;
mod tty;

/// The C entry point glibc calls (std still captures argv and the
/// environment through its own init hook, so `std::env` works).
// SAFETY: the one `main` symbol of the program, with the C signature glibc's
// start code calls; nothing else defines it. (Under `cargo test` the
// harness has its own main and this one is plain Rust.)
#[cfg_attr(not(test), no_mangle)]
extern "C" fn main(_argc: libc::c_int, _argv: *const *const libc::c_char) -> libc::c_int {
    sys::open_stdio_on_dev_null();
    sys::ignore_sigpipe();
    let code = berth_main();
    // std's runtime would flush a partial last line of stdout at exit.
    let _ = std::io::Write::flush(&mut std::io::stdout());
    code.into()
}

fn berth_main() -> u8 {
    let cli = cli::Cli::parse_resolved();
    // Fds the caller leaked (not close-on-exec) must never reach a container
    // (CVE-2024-21626): close all but stdio and the ones to pass on before
    // berth opens anything of its own. create/run's child is a clone of this
    // process and would hold them until start (runc's init never sees them):
    // it keeps LISTEN_FDS or --preserve-fds, whichever is more; exec keeps
    // its --preserve-fds above the LISTEN_FDS.
    let listen = notify::listen_fds().unwrap_or(0);
    let first = match &cli.command {
        cli::Command::Create(a) | cli::Command::Run(cli::RunArgs { create: a, .. }) => {
            Some(3 + a.preserve_fds.max(listen))
        }
        cli::Command::Exec(a) => Some(3 + a.preserve_fds + listen),
        _ => None,
    };
    if let Some(first) = first {
        sys::close_fds_from(first);
    }
    logging::init(cli.log.as_deref(), cli.log_format, cli.debug);
    // The commands whose child execs into a container run from a sealed
    // view of berth, never from a writable host file (CVE-2019-5736).
    let sealed = match &cli.command {
        cli::Command::Create(_) | cli::Command::Run(_) | cli::Command::Exec(_) => {
            security::exeseal::ensure_sealed()
        }
        _ => Ok(()),
    };
    match sealed.and_then(|()| commands::dispatch(&cli)) {
        Ok(code) => code,
        Err(err) => {
            let msg = format!("{err:#}");
            logging::log(logging::Level::Error, &msg);
            if logging::has_file() {
                eprintln!("berth: {msg}");
            }
            exit_code_of(&err)
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
