//! Command-line definitions. runc's CLI is the contract: every subcommand and
//! flag that runc has keeps runc's meaning here. berth's own conveniences
//! (a trailing command, `--env`, `--tty`, `diff`) only add, never change.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

pub const DEFAULT_ROOT: &str = "/run/berth";
pub const DEFAULT_LAYER_ROOT: &str = "/var/lib/berth/layers";

#[derive(Parser, Debug)]
#[command(
    name = "berth",
    version = concat!(env!("CARGO_PKG_VERSION"), "\nspec: ", "1.2.0"),
    about = "berth: a daemonless OCI container runtime",
    after_help = "Example: berth run -b bundles/busybox demo sh -c 'echo hello from $(hostname)'"
)]
pub struct Cli {
    /// Root directory for container state
    #[arg(long, global = true, default_value = DEFAULT_ROOT)]
    pub root: PathBuf,
    /// Directory holding each container's writable overlay layer
    #[arg(long, global = true, default_value = DEFAULT_LAYER_ROOT)]
    pub layer_root: PathBuf,
    /// Write log lines to this file instead of stderr
    #[arg(long, global = true)]
    pub log: Option<PathBuf>,
    /// Format of log lines
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Log debug messages
    #[arg(long, global = true)]
    pub debug: bool,
    /// Treat cgroupsPath as systemd's slice:prefix:name
    #[arg(long, global = true, num_args = 0..=1, default_missing_value = "true",
          require_equals = true, value_parser = clap::builder::BoolishValueParser::new(),
          default_value = "false")]
    pub systemd_cgroup: bool,
    /// Rootless mode: true, false or auto (accepted as runc does; before the subcommand)
    #[arg(long, num_args = 0..=1, default_missing_value = "true", require_equals = true)]
    pub rootless: Option<String>,
    /// Path to criu (accepted for runc compatibility; berth has no checkpointing)
    #[arg(long, global = true, hide = true)]
    pub criu: Option<String>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Create a container (its process waits for `start`)
    #[command(after_help = "Example: berth create -b bundles/busybox c1 && berth start c1")]
    Create(CreateArgs),
    /// Run the user process of a created container
    #[command(after_help = "Example: berth start c1")]
    Start(IdArgs),
    /// Create and start a container; in the foreground berth waits for it
    #[command(after_help = "Example: berth run -b bundles/busybox demo sh -c 'exit 3'")]
    Run(RunArgs),
    /// Print the OCI state of a container as JSON
    #[command(after_help = "Example: berth state c1")]
    State(IdArgs),
    /// List containers
    #[command(visible_alias = "ls", after_help = "Example: berth list --format json")]
    List(ListArgs),
    /// Send a signal to a container's process (default SIGTERM)
    #[command(after_help = "Example: berth kill c1 KILL")]
    Kill(KillArgs),
    /// Delete a container and everything berth made for it
    #[command(after_help = "Example: berth delete --force c1")]
    Delete(DeleteArgs),
    /// Show the changes in a container's writable layer (A added, C changed, D deleted)
    #[command(after_help = "Example: berth diff demo")]
    Diff(IdArgs),
    /// Write a default config.json
    #[command(after_help = "Example: berth spec -b bundles/new --rootless")]
    Spec(SpecArgs),
    /// Print the runtime-spec features berth supports as JSON
    #[command(after_help = "Example: berth features | jq .namespaces")]
    Features,
}

#[derive(Args, Debug)]
pub struct IdArgs {
    /// Container id
    pub id: String,
}

#[derive(Args, Debug, Clone)]
pub struct CreateArgs {
    /// Path to the bundle directory (holds config.json)
    #[arg(short = 'b', long, default_value = ".")]
    pub bundle: PathBuf,
    /// Unix socket that receives the pty master of a terminal container
    #[arg(long)]
    pub console_socket: Option<PathBuf>,
    /// Write the container process's pid to this file
    #[arg(long)]
    pub pid_file: Option<PathBuf>,
    /// Use chroot-style MS_MOVE instead of pivot_root
    #[arg(long)]
    pub no_pivot: bool,
    /// Do not create a new session keyring (accepted; berth creates none)
    #[arg(long)]
    pub no_new_keyring: bool,
    /// Pass this many extra fds (3, 4, …) to the container process
    #[arg(long, default_value_t = 0)]
    pub preserve_fds: u32,
    /// Add KEY=VAL to process.env (berth extension)
    #[arg(short = 'e', long = "env", value_name = "KEY=VAL")]
    pub env: Vec<String>,
    /// Ask for a terminal (process.terminal = true) (berth extension)
    #[arg(short = 't', long)]
    pub tty: bool,
    /// Container id
    pub id: String,
    /// Command replacing process.args (berth extension)
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
}

#[derive(Args, Debug)]
pub struct RunArgs {
    /// Detach: return once the container runs
    #[arg(short = 'd', long)]
    pub detach: bool,
    /// Keep the container's state after it exits (foreground only)
    #[arg(long)]
    pub keep: bool,
    #[command(flatten)]
    pub create: CreateArgs,
}

#[derive(Args, Debug)]
pub struct ListArgs {
    /// Output format
    #[arg(short = 'f', long, value_enum, default_value_t = ListFormat::Table)]
    pub format: ListFormat,
    /// Print only the ids
    #[arg(short = 'q', long)]
    pub quiet: bool,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum ListFormat {
    Table,
    Json,
}

#[derive(Args, Debug)]
pub struct KillArgs {
    /// Send the signal to every process in the container's cgroup
    #[arg(short = 'a', long)]
    pub all: bool,
    /// Container id
    pub id: String,
    /// Signal name (TERM, SIGTERM) or number
    #[arg(default_value = "SIGTERM")]
    pub signal: String,
}

#[derive(Args, Debug)]
pub struct DeleteArgs {
    /// Kill a running container first
    #[arg(short = 'f', long)]
    pub force: bool,
    /// Container id
    pub id: String,
}

#[derive(Args, Debug)]
pub struct SpecArgs {
    /// Directory to write config.json into
    #[arg(short = 'b', long, default_value = ".")]
    pub bundle: PathBuf,
    /// Write a spec for rootless containers
    #[arg(long = "rootless", id = "spec_rootless")]
    pub rootless: bool,
}
