//! One module per subcommand. Each is thin: it loads state, calls into the
//! modules that do the work, and prints what runc would print.

mod create;
mod delete;
mod diff;
mod events;
mod exec;
mod features;
mod kill;
mod list;
mod pause;
mod ps;
mod spec;
mod state;
mod update;

use std::path::Path;

use anyhow::Result;

use crate::cli::{Cli, Command};
use crate::state::{container_dir, validate_id, Lock, State};

pub use create::start;

/// Run the chosen subcommand; the result is the process exit status.
pub fn dispatch(cli: &Cli) -> Result<u8> {
    match &cli.command {
        Command::Create(args) => create::create(cli, args),
        Command::Start(args) => start(&cli.root, &args.id).map(|_| 0),
        Command::Run(args) => create::run(cli, args),
        Command::State(args) => state::run(&cli.root, &args.id),
        Command::List(args) => list::run(&cli.root, args),
        Command::Kill(args) => kill::run(&cli.root, args),
        Command::Delete(args) => delete::run(&cli.root, args),
        Command::Exec(args) => exec::run(&cli.root, args),
        Command::Pause(args) => pause::pause(&cli.root, &args.id),
        Command::Resume(args) => pause::resume(&cli.root, &args.id),
        Command::Ps(args) => ps::run(&cli.root, args),
        Command::Update(args) => update::run(&cli.root, args),
        Command::Events(args) => events::run(&cli.root, args),
        Command::Diff(args) => diff::run(&cli.root, &args.id),
        Command::Spec(args) => spec::run(args),
        Command::Features => features::run(),
    }
}

/// Load a container's state without locking (read-only commands).
fn load(root: &Path, id: &str) -> Result<(State, std::path::PathBuf)> {
    validate_id(id)?;
    let dir = container_dir(root, id);
    Ok((State::load(&dir, id)?, dir))
}

/// Lock a container's state dir, then load its state (commands that change it).
fn load_locked(root: &Path, id: &str) -> Result<(State, std::path::PathBuf, Lock)> {
    validate_id(id)?;
    let dir = container_dir(root, id);
    let lock = Lock::acquire(&dir, id)?;
    Ok((State::load(&dir, id)?, dir, lock))
}
