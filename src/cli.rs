//! Command-line definitions. runc's CLI is the contract: every subcommand and
//! flag that runc has keeps runc's meaning here. berth's own conveniences
//! (a trailing command, `--env`, `--tty`, `diff`) only add, never change.
//!
//! Each command is a table (`args::Cmd`) that the parser, the help and the
//! usage errors all read; the typed structs below are built from its
//! matches, and nothing else about the command line is computed on start.

mod args;
mod build;
mod help;
mod table;

use std::ffi::{OsStr, OsString};
use std::path::PathBuf;

use args::{Cmd, Matches, Stop};
use build::Build;
use table::{COMMANDS, TOP};

pub const DEFAULT_ROOT: &str = "/run/berth";
pub const DEFAULT_LAYER_ROOT: &str = "/var/lib/berth/layers";
const VERSION: &str = concat!("berth ", env!("CARGO_PKG_VERSION"), "\nspec: 1.2.0\n");

/// The global flags go before the subcommand, as runc's do.
#[derive(Debug)]
pub struct Cli {
    /// Root directory for container state
    pub root: PathBuf,
    /// Directory holding each container's writable overlay layer
    pub layer_root: PathBuf,
    /// Write log lines to this file instead of stderr
    pub log: Option<PathBuf>,
    pub log_format: LogFormat,
    pub debug: bool,
    /// Treat cgroupsPath as systemd's slice:prefix:name
    pub systemd_cgroup: bool,
    /// `--rootless` as given: true, false or auto.
    pub rootless: Option<String>,
    /// `--rootless` resolved: true, false, or what auto decided.
    pub rootless_mode: bool,
    pub command: Command,
}

impl Cli {
    /// Parse the command line, then fill in what depends on who runs berth:
    /// the rootless mode (runc's `--rootless` auto: rootless when not root,
    /// or when already inside a user namespace) and, for a caller without
    /// root (or with `--rootless=true`), per-user dirs for state and layers
    /// wherever `--root`/`--layer-root` are not given. Help, version and
    /// usage errors end the process here.
    pub fn parse_resolved() -> Cli {
        let args: Vec<OsString> = std::env::args_os().skip(1).collect();
        let (mut cli, top) = Cli::parse_words(&args).unwrap_or_else(|stop| stop.exit());
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
            if !top.given("root") {
                cli.root = rootless_root(env("XDG_RUNTIME_DIR"), euid);
                // /tmp is shared: a dir planted there by someone else must
                // never hold our state.
                if let Ok(meta) = std::fs::symlink_metadata(&cli.root) {
                    use std::os::unix::fs::MetadataExt;
                    if !meta.is_dir() || meta.uid() != euid {
                        let msg = format!(
                            "state dir {} is not a directory owned by uid {euid}; set XDG_RUNTIME_DIR or --root",
                            cli.root.display()
                        );
                        args::usage(&TOP, "berth", &msg, None).exit();
                    }
                }
            }
            if !top.given("layer-root") {
                let home = env("HOME").or_else(|| {
                    let passwd = crate::sys::read_to_string("/etc/passwd").ok()?;
                    crate::sys::passwd_field(&passwd, euid, 5).map(PathBuf::from)
                });
                cli.layer_root = rootless_layer_root(env("XDG_DATA_HOME"), home, euid);
            }
        }
        cli
    }

    /// The words after the program name, parsed; also the top-level
    /// matches (which globals were given).
    fn parse_words(args: &[OsString]) -> Result<(Cli, Matches), Stop> {
        let top = args::parse(&TOP, "berth", args, true).map_err(|stop| match stop {
            Stop::Help(_) => Stop::Help(top_help()),
            usage => usage,
        })?;
        if top.on("version") {
            return Err(Stop::Help(VERSION.into()));
        }
        let Some((name, rest)) = top.trailing.split_first() else {
            let mut text = top_help();
            text.insert_str(
                0,
                "error: 'berth' requires a subcommand but one was not provided\n\n",
            );
            return Err(Stop::Usage(text));
        };
        if name == "help" {
            return Err(Stop::Help(match rest.first().and_then(|n| find(n)) {
                Some(cmd) => args::help(cmd, &format!("berth {}", cmd.name)),
                None => top_help(),
            }));
        }
        let Some(cmd) = find(name) else {
            let name = name.to_string_lossy();
            let tip = args::similar(&name, COMMANDS.iter().map(|c| c.name))
                .map(|s| format!("a similar subcommand exists: '{s}'"));
            let msg = format!("unrecognized subcommand '{name}'");
            return Err(args::usage(&TOP, "berth", &msg, tip.as_deref()));
        };
        let path = format!("berth {}", cmd.name);
        let m = args::parse(cmd, &path, rest, false)?;
        let b = Build {
            cmd,
            path: &path,
            m: &m,
        };
        let command = b.command()?;
        let tb = Build {
            cmd: &TOP,
            path: "berth",
            m: &top,
        };
        let cli = Cli {
            root: tb.path("root").unwrap_or_default(),
            layer_root: tb.path("layer-root").unwrap_or_default(),
            log: tb.path("log"),
            log_format: match tb.string("log-format")?.as_deref() {
                Some("json") => LogFormat::Json,
                _ => LogFormat::Text,
            },
            debug: top.on("debug"),
            systemd_cgroup: top.on("systemd-cgroup"),
            rootless: match (top.given("rootless"), tb.string("rootless")?) {
                (true, None) => Some("true".into()),
                (_, v) => v,
            },
            rootless_mode: false,
            command,
        };
        Ok((cli, top))
    }

    /// For tests: parse a full argv (program name first), no resolving.
    #[cfg(test)]
    pub fn try_parse_from(argv: &[&str]) -> Result<Cli, Stop> {
        let words: Vec<OsString> = argv.iter().skip(1).map(OsString::from).collect();
        Cli::parse_words(&words).map(|(cli, _)| cli)
    }
}

fn find(name: &OsStr) -> Option<&'static Cmd> {
    COMMANDS
        .iter()
        .find(|c| c.name == name || c.aliases.iter().any(|a| *a == name))
}

fn top_help() -> String {
    let mut s = format!("{}\n\nUsage: berth [OPTIONS] <COMMAND>\n", TOP.about);
    let mut rows: Vec<(String, String)> = COMMANDS
        .iter()
        .map(|c| (c.name.to_string(), c.about.to_string()))
        .collect();
    rows.push((
        "help".into(),
        "Print this message or the help of the given subcommand(s)".into(),
    ));
    args::section(&mut s, "Commands", &rows);
    args::options_and_example(&mut s, &TOP);
    s
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

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug)]
pub enum Command {
    Create(CreateArgs),
    Start(IdArgs),
    Run(RunArgs),
    State(IdArgs),
    List(ListArgs),
    Kill(KillArgs),
    Delete(DeleteArgs),
    Exec(ExecArgs),
    Pause(IdArgs),
    Resume(IdArgs),
    Ps(PsArgs),
    Update(UpdateArgs),
    Events(EventsArgs),
    Diff(IdArgs),
    Spec(SpecArgs),
    Features,
}

#[derive(Debug)]
pub struct IdArgs {
    pub id: String,
}

#[derive(Debug, Clone)]
pub struct CreateArgs {
    pub bundle: PathBuf,
    pub console_socket: Option<PathBuf>,
    pub pid_file: Option<PathBuf>,
    pub no_pivot: bool,
    pub preserve_fds: u32,
    pub env: Vec<String>,
    pub tty: bool,
    pub id: String,
    pub command: Vec<String>,
}

#[derive(Debug)]
pub struct RunArgs {
    pub detach: bool,
    pub keep: bool,
    pub create: CreateArgs,
}

#[derive(Debug)]
pub struct ListArgs {
    pub format: ListFormat,
    pub quiet: bool,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum ListFormat {
    Table,
    Json,
}

#[derive(Debug)]
pub struct KillArgs {
    pub all: bool,
    pub id: String,
    pub signal: String,
}

#[derive(Debug)]
pub struct DeleteArgs {
    pub force: bool,
    pub id: String,
}

#[derive(Debug)]
pub struct SpecArgs {
    pub bundle: PathBuf,
    pub rootless: bool,
}

#[derive(Debug)]
pub struct ExecArgs {
    pub process: Option<PathBuf>,
    pub tty: bool,
    pub console_socket: Option<PathBuf>,
    pub detach: bool,
    pub pid_file: Option<PathBuf>,
    pub cwd: Option<PathBuf>,
    pub env: Vec<String>,
    pub user: Option<String>,
    pub additional_gids: Vec<u32>,
    pub caps: Vec<String>,
    pub no_new_privs: bool,
    pub preserve_fds: u32,
    pub process_label: Option<String>,
    pub apparmor: Option<String>,
    pub cgroup: Option<String>,
    pub ignore_paused: bool,
    pub id: String,
    pub command: Vec<String>,
}

#[derive(Debug)]
pub struct PsArgs {
    pub format: ListFormat,
    pub id: String,
    pub ps_args: Vec<String>,
}

#[derive(Debug, Default)]
pub struct UpdateArgs {
    pub resources: Option<PathBuf>,
    pub memory: Option<String>,
    pub memory_swap: Option<String>,
    pub memory_reservation: Option<String>,
    pub kernel_memory: Option<String>,
    pub kernel_memory_tcp: Option<String>,
    pub cpu_shares: Option<u64>,
    pub cpu_quota: Option<i64>,
    pub cpu_period: Option<u64>,
    pub cpu_rt_runtime: Option<i64>,
    pub cpu_rt_period: Option<u64>,
    pub cpuset_cpus: Option<String>,
    pub cpuset_mems: Option<String>,
    pub pids_limit: Option<i64>,
    pub blkio_weight: Option<u16>,
    pub l3_cache_schema: Option<String>,
    pub mem_bw_schema: Option<String>,
    pub id: String,
}

#[derive(Debug)]
pub struct EventsArgs {
    pub stats: bool,
    pub interval: String,
    pub id: String,
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::security::exeseal::early;

    /// berth_entry reads the global options before anything is parsed, from
    /// its own list; it must agree with the table.
    #[test]
    fn the_early_scan_knows_every_global_option() {
        for o in table::GLOBAL_OPTS {
            let expect = match (o.long, o.kind) {
                ("version", _) => early::Global::Other,
                (_, args::Kind::Switch | args::Kind::Equals(_)) => early::Global::Switch,
                _ => early::Global::Value,
            };
            assert_eq!(
                early::global_option(o.long.as_bytes()),
                expect,
                "--{}",
                o.long
            );
        }
        assert_eq!(early::global_option(b"help"), early::Global::Other);
        assert_eq!(early::global_option(b"roo"), early::Global::Other);
    }

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

    fn parse(args: &[&str]) -> Cli {
        Cli::try_parse_from(args).unwrap_or_else(|e| panic!("{args:?}: {e:?}"))
    }

    fn usage_error(args: &[&str]) -> String {
        match Cli::try_parse_from(args) {
            Err(Stop::Usage(text)) => text,
            other => panic!("{args:?}: expected a usage error, got {other:?}"),
        }
    }

    #[test]
    fn what_containerd_and_conmon_pass_is_taken() {
        let cli = parse(&[
            "berth",
            "--root",
            "/r",
            "--log",
            "/l.json",
            "--log-format",
            "json",
            "--systemd-cgroup",
            "create",
            "--bundle",
            "/b",
            "--pid-file",
            "/p",
            "--console-socket",
            "/s",
            "--no-new-keyring",
            "c1",
        ]);
        assert_eq!(cli.root, Path::new("/r"));
        assert_eq!(cli.log.as_deref(), Some(Path::new("/l.json")));
        assert_eq!(cli.log_format, LogFormat::Json);
        assert!(cli.systemd_cgroup);
        let Command::Create(a) = cli.command else {
            panic!("create")
        };
        assert_eq!(
            (a.bundle, a.pid_file, a.console_socket, a.id),
            (
                "/b".into(),
                Some("/p".into()),
                Some("/s".into()),
                "c1".into()
            )
        );
        let cli = parse(&[
            "berth",
            "exec",
            "--process",
            "/x.json",
            "--detach",
            "--pid-file",
            "/p",
            "-g",
            "5",
            "--additional-gids=6",
            "c1",
        ]);
        let Command::Exec(e) = cli.command else {
            panic!("exec")
        };
        assert!(e.detach && e.command.is_empty());
        assert_eq!(e.additional_gids, [5, 6]);
        let cli = parse(&["berth", "kill", "--all", "c1", "9"]);
        let Command::Kill(k) = cli.command else {
            panic!("kill")
        };
        assert_eq!((k.all, k.id.as_str(), k.signal.as_str()), (true, "c1", "9"));
        let cli = parse(&["berth", "kill", "c1"]);
        let Command::Kill(k) = cli.command else {
            panic!("kill")
        };
        assert_eq!(k.signal, "SIGTERM");
        let cli = parse(&[
            "berth",
            "update",
            "--cpu-share",
            "512",
            "--memory",
            "-1",
            "c1",
        ]);
        let Command::Update(u) = cli.command else {
            panic!("update")
        };
        assert_eq!((u.cpu_shares, u.memory.as_deref()), (Some(512), Some("-1")));
        let cli = parse(&["berth", "ls", "-q"]);
        assert!(matches!(
            cli.command,
            Command::List(ListArgs { quiet: true, .. })
        ));
    }

    #[test]
    fn defaults_are_runcs() {
        let cli = parse(&["berth", "run", "demo", "sh", "-c", "exit 3"]);
        assert_eq!(cli.root, Path::new(DEFAULT_ROOT));
        assert_eq!(cli.layer_root, Path::new(DEFAULT_LAYER_ROOT));
        assert_eq!(cli.log_format, LogFormat::Text);
        assert!(!cli.systemd_cgroup && cli.rootless.is_none());
        let Command::Run(r) = cli.command else {
            panic!("run")
        };
        assert_eq!(r.create.bundle, Path::new("."));
        assert_eq!(r.create.preserve_fds, 0);
        assert_eq!(r.create.command, ["sh", "-c", "exit 3"]);
        let cli = parse(&["berth", "events", "c1"]);
        assert!(
            matches!(cli.command, Command::Events(EventsArgs { ref interval, .. }) if interval == "5s")
        );
    }

    #[test]
    fn bad_command_lines_are_usage_errors() {
        let e = usage_error(&["berth", "state", "--root", "/r", "c1"]);
        assert!(e.contains("unexpected argument '--root'"), "{e}");
        let e = usage_error(&["berth", "strat", "c1"]);
        assert!(e.contains("unrecognized subcommand 'strat'"), "{e}");
        assert!(e.contains("a similar subcommand exists: 'start'"), "{e}");
        let e = usage_error(&["berth", "create", "--preserve-fds", "x", "c1"]);
        assert!(
            e.contains("invalid value 'x' for '--preserve-fds <PRESERVE_FDS>'"),
            "{e}"
        );
        let e = usage_error(&["berth", "--systemd-cgroup=maybe", "list"]);
        assert!(e.contains("invalid value 'maybe'"), "{e}");
        let e = usage_error(&["berth"]);
        assert!(e.contains("requires a subcommand"), "{e}");
        let e = usage_error(&["berth", "delete"]);
        assert!(
            e.contains("required arguments were not provided:\n  <ID>"),
            "{e}"
        );
        let e = usage_error(&["berth", "state", "a", "b"]);
        assert!(e.contains("unexpected argument 'b' found"), "{e}");
    }

    #[test]
    fn every_command_has_help_with_its_example() {
        for cmd in COMMANDS {
            let argv = ["berth", cmd.name, "--help"];
            let Err(Stop::Help(h)) = Cli::try_parse_from(&argv) else {
                panic!("{}: no help", cmd.name)
            };
            assert!(h.contains(&format!("Usage: berth {}", cmd.name)), "{h}");
            assert!(h.contains(&format!("Example: {}", cmd.example)), "{h}");
        }
        let Err(Stop::Help(top)) = Cli::try_parse_from(&["berth", "--help"]) else {
            panic!("no top-level help")
        };
        for cmd in COMMANDS {
            assert!(
                top.contains(&format!("\n  {} ", cmd.name)),
                "{}: {top}",
                cmd.name
            );
        }
        assert!(
            top.contains("--root <ROOT>") && top.contains("[default: /run/berth]"),
            "{top}"
        );
        assert!(!top.contains("criu"), "hidden flags stay hidden: {top}");
    }
}
