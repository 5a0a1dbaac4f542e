//! The typed command structs, built from one command's matches. A value
//! that does not parse is a usage error naming the option, as clap
//! reported it.

use std::ffi::OsStr;
use std::path::PathBuf;
use std::str::FromStr;

use super::args::{self, Cmd, Matches, Stop};
use super::*;

/// Typed values out of one command's matches; a value that does not
/// parse is a usage error naming the option, as clap reported it.
pub struct Build<'a> {
    pub cmd: &'a Cmd,
    pub path: &'a str,
    pub m: &'a Matches,
}

impl Build<'_> {
    /// The option's value as given (the last time), else its default from
    /// the table. For options with a default the `Option` is always `Some`.
    fn value_os(&self, long: &str) -> Option<&OsStr> {
        self.m.value_os(long).or_else(|| {
            self.cmd
                .options()
                .find(|o| o.long == long)
                .and_then(|o| o.default)
                .map(OsStr::new)
        })
    }

    pub(super) fn path(&self, long: &str) -> Option<PathBuf> {
        self.value_os(long).map(PathBuf::from)
    }

    pub(super) fn utf8<'v>(&self, long: &str, v: &'v OsStr) -> Result<&'v str, Stop> {
        v.to_str()
            .ok_or_else(|| args::invalid(self.cmd, self.path, long, v, "invalid UTF-8"))
    }

    pub(super) fn string(&self, long: &str) -> Result<Option<String>, Stop> {
        self.value_os(long)
            .map(|v| self.utf8(long, v).map(str::to_string))
            .transpose()
    }

    pub(super) fn strings(&self, long: &str) -> Result<Vec<String>, Stop> {
        self.m
            .values_os(long)
            .map(|v| self.utf8(long, v).map(str::to_string))
            .collect()
    }

    pub(super) fn number<T: FromStr>(&self, long: &str) -> Result<Option<T>, Stop>
    where
        T::Err: std::fmt::Display,
    {
        self.value_os(long)
            .map(|v| self.parse_one(long, v))
            .transpose()
    }

    pub(super) fn numbers<T: FromStr>(&self, long: &str) -> Result<Vec<T>, Stop>
    where
        T::Err: std::fmt::Display,
    {
        self.m
            .values_os(long)
            .map(|v| self.parse_one(long, v))
            .collect()
    }

    pub(super) fn parse_one<T: FromStr>(&self, long: &str, v: &OsStr) -> Result<T, Stop>
    where
        T::Err: std::fmt::Display,
    {
        let text = self.utf8(long, v)?;
        text.parse::<T>()
            .map_err(|e| args::invalid(self.cmd, self.path, long, v, &e.to_string()))
    }

    pub(super) fn format(&self) -> Result<ListFormat, Stop> {
        Ok(match self.string("format")?.as_deref() {
            Some("json") => ListFormat::Json,
            _ => ListFormat::Table,
        })
    }

    /// A word of the command line as UTF-8; `what` names it in the error.
    fn word(&self, v: &OsStr, what: &str) -> Result<String, Stop> {
        v.to_str().map(str::to_string).ok_or_else(|| {
            let msg = format!("invalid UTF-8 in {what}: '{}'", v.to_string_lossy());
            args::usage(self.cmd, self.path, &msg, None)
        })
    }

    /// Positional `at`, else its default from the table.
    fn positional(&self, at: usize) -> Result<Option<String>, Stop> {
        let pos = self.cmd.pos.get(at);
        match self.m.pos.get(at) {
            Some(v) => self
                .word(v, &pos.map_or_else(String::new, args::Pos::spelling))
                .map(Some),
            None => Ok(pos.and_then(|p| p.default).map(str::to_string)),
        }
    }

    /// The container id: the first positional, which the parser requires.
    pub(super) fn id(&self) -> Result<String, Stop> {
        Ok(self.positional(0)?.unwrap_or_default())
    }

    pub(super) fn trailing(&self) -> Result<Vec<String>, Stop> {
        self.m
            .trailing
            .iter()
            .map(|v| self.word(v, "argument"))
            .collect()
    }

    pub(super) fn create(&self) -> Result<CreateArgs, Stop> {
        Ok(CreateArgs {
            bundle: self.path("bundle").unwrap_or_default(),
            console_socket: self.path("console-socket"),
            pid_file: self.path("pid-file"),
            no_pivot: self.m.on("no-pivot"),
            preserve_fds: self.number("preserve-fds")?.unwrap_or_default(),
            env: self.strings("env")?,
            tty: self.m.on("tty"),
            id: self.id()?,
            command: self.trailing()?,
        })
    }

    pub(super) fn command(&self) -> Result<Command, Stop> {
        let on = |long: &str| self.m.on(long);
        Ok(match self.cmd.name {
            "create" => Command::Create(self.create()?),
            "run" => Command::Run(RunArgs {
                detach: on("detach"),
                keep: on("keep"),
                create: self.create()?,
            }),
            "list" => Command::List(ListArgs {
                format: self.format()?,
                quiet: on("quiet"),
            }),
            "kill" => Command::Kill(KillArgs {
                all: on("all"),
                id: self.id()?,
                signal: self.positional(1)?.unwrap_or_default(),
            }),
            "delete" => Command::Delete(DeleteArgs {
                force: on("force"),
                id: self.id()?,
            }),
            "exec" => Command::Exec(ExecArgs {
                process: self.path("process"),
                tty: on("tty"),
                console_socket: self.path("console-socket"),
                detach: on("detach"),
                pid_file: self.path("pid-file"),
                cwd: self.path("cwd"),
                env: self.strings("env")?,
                user: self.string("user")?,
                additional_gids: self.numbers("additional-gids")?,
                caps: self.strings("cap")?,
                no_new_privs: on("no-new-privs"),
                preserve_fds: self.number("preserve-fds")?.unwrap_or_default(),
                process_label: self.string("process-label")?,
                apparmor: self.string("apparmor")?,
                cgroup: self.string("cgroup")?,
                ignore_paused: on("ignore-paused"),
                id: self.id()?,
                command: self.trailing()?,
            }),
            "ps" => Command::Ps(PsArgs {
                format: self.format()?,
                id: self.id()?,
                ps_args: self.trailing()?,
            }),
            "update" => Command::Update(UpdateArgs {
                resources: self.path("resources"),
                memory: self.string("memory")?,
                memory_swap: self.string("memory-swap")?,
                memory_reservation: self.string("memory-reservation")?,
                kernel_memory: self.string("kernel-memory")?,
                kernel_memory_tcp: self.string("kernel-memory-tcp")?,
                cpu_shares: self.number("cpu-shares")?,
                cpu_quota: self.number("cpu-quota")?,
                cpu_period: self.number("cpu-period")?,
                cpu_rt_runtime: self.number("cpu-rt-runtime")?,
                cpu_rt_period: self.number("cpu-rt-period")?,
                cpuset_cpus: self.string("cpuset-cpus")?,
                cpuset_mems: self.string("cpuset-mems")?,
                pids_limit: self.number("pids-limit")?,
                blkio_weight: self.number("blkio-weight")?,
                l3_cache_schema: self.string("l3-cache-schema")?,
                mem_bw_schema: self.string("mem-bw-schema")?,
                id: self.id()?,
            }),
            "events" => Command::Events(EventsArgs {
                stats: on("stats"),
                interval: self.string("interval")?.unwrap_or_default(),
                id: self.id()?,
            }),
            "spec" => Command::Spec(SpecArgs {
                bundle: self.path("bundle").unwrap_or_default(),
                rootless: on("rootless"),
            }),
            "features" => Command::Features,
            name => {
                let id = IdArgs { id: self.id()? };
                match name {
                    "start" => Command::Start(id),
                    "state" => Command::State(id),
                    "pause" => Command::Pause(id),
                    "resume" => Command::Resume(id),
                    // The last name COMMANDS has.
                    _ => Command::Diff(id),
                }
            }
        })
    }
}
