//! Command-line definitions. runc's CLI is the contract: every subcommand and
//! flag that runc has keeps runc's meaning here. berth's own conveniences
//! (a trailing command, `--env`, `--tty`, `diff`) only add, never change.

#[cfg(test)]
use std::path::Path;
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
/// The global flags go before the subcommand, as runc's do. (clap's
/// `global` would also take them after it, at the price of copying every
/// one into all sixteen subcommands on each start.)
pub struct Cli {
    /// Root directory for container state
    #[arg(long, default_value = DEFAULT_ROOT)]
    pub root: PathBuf,
    /// Directory holding each container's writable overlay layer
    #[arg(long, default_value = DEFAULT_LAYER_ROOT)]
    pub layer_root: PathBuf,
    /// Write log lines to this file instead of stderr
    #[arg(long)]
    pub log: Option<PathBuf>,
    /// Format of log lines
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Log debug messages
    #[arg(long)]
    pub debug: bool,
    /// Treat cgroupsPath as systemd's slice:prefix:name
    #[arg(long, num_args = 0..=1, default_missing_value = "true",
          require_equals = true, value_parser = clap::builder::BoolishValueParser::new(),
          default_value = "false")]
    pub systemd_cgroup: bool,
    /// Rootless mode: true, false or auto (default auto: rootless when not root)
    #[arg(long, num_args = 0..=1, default_missing_value = "true", require_equals = true,
          value_parser = ["true", "false", "auto"])]
    pub rootless: Option<String>,
    /// `--rootless` resolved: true, false, or what auto decided.
    #[arg(skip)]
    pub rootless_mode: bool,
    /// Path to criu (accepted for runc compatibility; berth has no checkpointing)
    #[arg(long, hide = true)]
    pub criu: Option<String>,
    #[command(subcommand)]
    pub command: Command,
}

impl Cli {
    /// Parse the command line, then fill in what depends on who runs berth:
    /// the rootless mode (runc's `--rootless` auto: rootless when not root,
    /// or when already inside a user namespace) and, for a caller without
    /// root (or with `--rootless=true`), per-user dirs for state and layers
    /// wherever `--root`/`--layer-root` are not given.
    pub fn parse_resolved() -> Cli {
        use clap::parser::ValueSource;
        use clap::{CommandFactory, FromArgMatches};
        let mut command = Cli::command();
        let matches = command.get_matches_mut();
        // berth exits soon after: freeing the tree is work for nothing.
        std::mem::forget(command);
        let mut cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
        let given = |id: &str| matches.value_source(id) == Some(ValueSource::CommandLine);
        let euid = nix::unistd::geteuid().as_raw();
        cli.rootless_mode = match cli.rootless.as_deref() {
            Some("true") => true,
            Some("false") => false,
            _ => euid != 0 || crate::namespaces::in_user_ns(),
        };
        if euid != 0 || cli.rootless.as_deref() == Some("true") {
            let env = |k: &str| {
                std::env::var_os(k)
                    .filter(|v| !v.is_empty())
                    .map(PathBuf::from)
            };
            if !given("root") {
                cli.root = rootless_root(env("XDG_RUNTIME_DIR"), euid);
                // /tmp is shared: a dir planted there by someone else must
                // never hold our state.
                if let Ok(meta) = std::fs::symlink_metadata(&cli.root) {
                    use std::os::unix::fs::MetadataExt;
                    if !meta.is_dir() || meta.uid() != euid {
                        clap::Error::raw(
                            clap::error::ErrorKind::ValueValidation,
                            format!(
                                "state dir {} is not a directory owned by uid {euid}; set XDG_RUNTIME_DIR or --root\n",
                                cli.root.display()
                            ),
                        )
                        .exit();
                    }
                }
            }
            if !given("layer_root") {
                let home = env("HOME").or_else(|| {
                    let passwd = crate::sys::read_to_string("/etc/passwd").ok()?;
                    crate::sys::passwd_field(&passwd, euid, 5).map(PathBuf::from)
                });
                cli.layer_root = rootless_layer_root(env("XDG_DATA_HOME"), home, euid);
            }
        }
        cli
    }
}

/// State of a rootless caller: `$XDG_RUNTIME_DIR/berth`, else
/// `/run/user/<uid>/berth` when that runtime dir exists, else
/// `/tmp/berth-<uid>` (as runc falls back).
pub fn rootless_root(xdg_runtime_dir: Option<PathBuf>, uid: u32) -> PathBuf {
    if let Some(d) = xdg_runtime_dir {
        return d.join("berth");
    }
    let run_user = PathBuf::from(format!("/run/user/{uid}"));
    if run_user.is_dir() {
        return run_user.join("berth");
    }
    PathBuf::from(format!("/tmp/berth-{uid}"))
}

/// Layers of a rootless caller: `$XDG_DATA_HOME/berth/layers`, with
/// XDG_DATA_HOME defaulting to `~/.local/share`.
pub fn rootless_layer_root(
    xdg_data_home: Option<PathBuf>,
    home: Option<PathBuf>,
    uid: u32,
) -> PathBuf {
    let data = xdg_data_home
        .or_else(|| home.map(|h| h.join(".local/share")))
        .unwrap_or_else(|| PathBuf::from(format!("/tmp/berth-{uid}/data")));
    data.join("berth/layers")
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// `defer`: a subcommand's arguments are built only when it is the one
/// being run (or its help is shown), not all sixteen on every start.
#[derive(Subcommand, Debug)]
#[command(defer = true)]
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
    /// Run a new process inside a running container
    #[command(after_help = "Example: berth exec -e DEBUG=1 c1 sh -c 'ps'")]
    Exec(ExecArgs),
    /// Freeze every process of a container
    #[command(after_help = "Example: berth pause c1")]
    Pause(IdArgs),
    /// Thaw a paused container
    #[command(after_help = "Example: berth resume c1")]
    Resume(IdArgs),
    /// List the processes of a container
    #[command(after_help = "Example: berth ps --format json c1")]
    Ps(PsArgs),
    /// Change the resource limits of a running container
    #[command(after_help = "Example: berth update --memory 64M --pids-limit 50 c1")]
    Update(UpdateArgs),
    /// Show container events and resource statistics
    #[command(after_help = "Example: berth events --stats c1")]
    Events(EventsArgs),
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
    /// Accepted for runc compatibility: berth never makes itself a subreaper
    #[arg(long, hide = true)]
    pub no_subreaper: bool,
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

#[derive(Args, Debug)]
pub struct ExecArgs {
    /// JSON file holding the process to run (runtime-spec `process`)
    #[arg(short = 'p', long)]
    pub process: Option<PathBuf>,
    /// Allocate a terminal
    #[arg(short = 't', long)]
    pub tty: bool,
    /// Unix socket that receives the pty master
    #[arg(long)]
    pub console_socket: Option<PathBuf>,
    /// Return once the process runs
    #[arg(short = 'd', long)]
    pub detach: bool,
    /// Write the new process's pid to this file
    #[arg(long)]
    pub pid_file: Option<PathBuf>,
    /// Working directory inside the container
    #[arg(long)]
    pub cwd: Option<PathBuf>,
    /// Add KEY=VAL to the environment
    #[arg(short = 'e', long = "env", value_name = "KEY=VAL")]
    pub env: Vec<String>,
    /// UID[:GID] to run as
    #[arg(short = 'u', long)]
    pub user: Option<String>,
    /// Additional group ids
    #[arg(short = 'g', long = "additional-gids")]
    pub additional_gids: Vec<u32>,
    /// Add a capability (CAP_xxx) to the process's sets
    #[arg(short = 'c', long = "cap")]
    pub caps: Vec<String>,
    /// Set no_new_privs
    #[arg(long)]
    pub no_new_privs: bool,
    /// Pass this many extra fds (3, 4, …) to the process
    #[arg(long, default_value_t = 0)]
    pub preserve_fds: u32,
    /// SELinux label of the process (must be valid in the loaded policy; needs SELinux on the host)
    #[arg(long)]
    pub process_label: Option<String>,
    /// AppArmor profile of the process (must be loaded; needs AppArmor on the host)
    #[arg(long)]
    pub apparmor: Option<String>,
    /// Sub-cgroup to run in (cgroup v2 only; accepted, refused if set)
    #[arg(long)]
    pub cgroup: Option<String>,
    /// Allow exec into a paused container (the process starts on resume)
    #[arg(long)]
    pub ignore_paused: bool,
    /// Container id
    pub id: String,
    /// Command to run (unless --process)
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
}

#[derive(Args, Debug)]
pub struct PsArgs {
    /// Output format
    #[arg(short = 'f', long, value_enum, default_value_t = ListFormat::Table)]
    pub format: ListFormat,
    /// Container id
    pub id: String,
    /// Arguments passed to ps(1) (default -ef)
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub ps_args: Vec<String>,
}

#[derive(Args, Debug, Default)]
pub struct UpdateArgs {
    /// JSON file with linux.resources (`-` for stdin); the flags below are ignored with it
    #[arg(short = 'r', long)]
    pub resources: Option<PathBuf>,
    /// Memory limit in bytes (suffixes k, m, g allowed; -1 unlimited)
    #[arg(long, allow_hyphen_values = true)]
    pub memory: Option<String>,
    /// Memory plus swap limit
    #[arg(long, allow_hyphen_values = true)]
    pub memory_swap: Option<String>,
    /// Memory soft limit
    #[arg(long, allow_hyphen_values = true)]
    pub memory_reservation: Option<String>,
    /// Kernel memory limit (refused: removed from the kernel)
    #[arg(long)]
    pub kernel_memory: Option<String>,
    /// Kernel TCP memory limit (refused: removed from the kernel)
    #[arg(long)]
    pub kernel_memory_tcp: Option<String>,
    /// CPU shares (relative weight); runc spells it --cpu-share
    #[arg(long, visible_alias = "cpu-share")]
    pub cpu_shares: Option<u64>,
    /// CPU CFS quota in microseconds (-1 unlimited)
    #[arg(long, allow_hyphen_values = true)]
    pub cpu_quota: Option<i64>,
    /// CPU CFS period in microseconds
    #[arg(long)]
    pub cpu_period: Option<u64>,
    /// CPU realtime runtime in microseconds
    #[arg(long)]
    pub cpu_rt_runtime: Option<i64>,
    /// CPU realtime period in microseconds
    #[arg(long)]
    pub cpu_rt_period: Option<u64>,
    /// CPUs to run on (e.g. 0-1)
    #[arg(long)]
    pub cpuset_cpus: Option<String>,
    /// Memory nodes to use
    #[arg(long)]
    pub cpuset_mems: Option<String>,
    /// Maximum number of tasks (-1 unlimited)
    #[arg(long, allow_hyphen_values = true)]
    pub pids_limit: Option<i64>,
    /// Block IO weight (10-1000)
    #[arg(long)]
    pub blkio_weight: Option<u16>,
    /// Intel RDT/CAT L3 cache schema (accepted; refused if set, no Intel RDT support)
    #[arg(long)]
    pub l3_cache_schema: Option<String>,
    /// Intel RDT/MBA memory bandwidth schema (accepted; refused if set, no Intel RDT support)
    #[arg(long)]
    pub mem_bw_schema: Option<String>,
    /// Container id
    pub id: String,
}

#[derive(Args, Debug)]
pub struct EventsArgs {
    /// Print one statistics event and exit
    #[arg(long)]
    pub stats: bool,
    /// Interval between statistics events
    #[arg(long, default_value = "5s")]
    pub interval: String,
    /// Container id
    pub id: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rootless_dirs_follow_xdg() {
        assert_eq!(
            rootless_root(Some("/run/user/1000".into()), 1000),
            Path::new("/run/user/1000/berth")
        );
        // No XDG_RUNTIME_DIR and (on a test host) no /run/user/<uid>.
        assert_eq!(
            rootless_root(None, 4_000_000_000),
            Path::new("/tmp/berth-4000000000")
        );
        assert_eq!(
            rootless_layer_root(Some("/x/data".into()), Some("/home/u".into()), 1000),
            Path::new("/x/data/berth/layers")
        );
        assert_eq!(
            rootless_layer_root(None, Some("/home/u".into()), 1000),
            Path::new("/home/u/.local/share/berth/layers")
        );
    }

    #[test]
    fn rootless_flag_takes_runc_values() {
        let parse = |args: &[&str]| Cli::try_parse_from(args).map(|c| c.rootless);
        assert_eq!(
            parse(&["berth", "--rootless=auto", "list"]).unwrap(),
            Some("auto".into())
        );
        assert_eq!(
            parse(&["berth", "--rootless", "list"]).unwrap(),
            Some("true".into())
        );
        assert!(parse(&["berth", "--rootless=maybe", "list"]).is_err());
    }
}
