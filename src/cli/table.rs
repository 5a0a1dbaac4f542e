//! The command line's shape: every option and positional of every
//! subcommand, with the help text shown for it. One entry per line (the
//! tables are data, not code, and read best that way).

use super::args::{Cmd, Opt, Pos};
use super::{DEFAULT_LAYER_ROOT, DEFAULT_ROOT};

#[rustfmt::skip]
pub const GLOBAL_OPTS: &[Opt] = &[
    Opt::value("root", None, "ROOT", "Root directory for container state").default(DEFAULT_ROOT),
    Opt::value("layer-root", None, "LAYER_ROOT", "Directory holding each container's writable overlay layer").default(DEFAULT_LAYER_ROOT),
    Opt::value("log", None, "LOG", "Write log lines to this file instead of stderr"),
    Opt::value("log-format", None, "LOG_FORMAT", "Format of log lines").default("text").choices(&["text", "json"]),
    Opt::switch("debug", None, "Log debug messages"),
    Opt::switch("systemd-cgroup", None, "Treat cgroupsPath as systemd's slice:prefix:name").equals("BOOL"),
    Opt::switch("rootless", None, "Rootless mode: true, false or auto (default auto: rootless when not root)").equals("MODE").choices(&["true", "false", "auto"]),
    // Accepted for runc compatibility; berth has no checkpointing.
    Opt::value("criu", None, "CRIU", "Path to criu").hidden(),
    Opt::switch("version", Some('V'), "Print version"),
];

#[rustfmt::skip]
pub const TOP: Cmd = Cmd {
    name: "berth",
    about: "berth: a daemonless OCI container runtime",
    example: "berth run -b bundles/busybox demo sh -c 'echo hello from $(hostname)'",
    aliases: &[],
    opts: &[GLOBAL_OPTS],
    // For the usage line; the parser stops at the subcommand's name.
    pos: &[Pos::required("COMMAND", "The subcommand")],
};

const ID: Pos = Pos::required("ID", "Container id");

#[rustfmt::skip]
const CREATE_OPTS: &[Opt] = &[
    Opt::value("bundle", Some('b'), "BUNDLE", "Path to the bundle directory (holds config.json)").default("."),
    Opt::value("console-socket", None, "CONSOLE_SOCKET", "Unix socket that receives the pty master of a terminal container"),
    Opt::value("pid-file", None, "PID_FILE", "Write the container process's pid to this file"),
    Opt::switch("no-pivot", None, "Use chroot-style MS_MOVE instead of pivot_root"),
    Opt::switch("no-new-keyring", None, "Do not create a new session keyring (accepted; berth creates none)"),
    Opt::value("preserve-fds", None, "PRESERVE_FDS", "Pass this many extra fds (3, 4, …) to the container process").default("0"),
    Opt::value("env", Some('e'), "KEY=VAL", "Add KEY=VAL to process.env (berth extension)").many(),
    Opt::switch("tty", Some('t'), "Ask for a terminal (process.terminal = true) (berth extension)"),
];

#[rustfmt::skip]
const CREATE_POS: &[Pos] = &[
    ID,
    Pos::trailing("COMMAND", "Command replacing process.args (berth extension)"),
];

#[rustfmt::skip]
const RUN_OPTS: &[Opt] = &[
    Opt::switch("detach", Some('d'), "Detach: return once the container runs"),
    Opt::switch("keep", None, "Keep the container's state after it exits (foreground only)"),
    // runc's; berth never makes itself a subreaper.
    Opt::switch("no-subreaper", None, "Accepted for runc compatibility").hidden(),
];

#[rustfmt::skip]
const FORMAT: Opt = Opt::value("format", Some('f'), "FORMAT", "Output format").default("table").choices(&["table", "json"]);

#[rustfmt::skip]
const EXEC_OPTS: &[Opt] = &[
    Opt::value("process", Some('p'), "PROCESS", "JSON file holding the process to run (runtime-spec `process`)"),
    Opt::switch("tty", Some('t'), "Allocate a terminal"),
    Opt::value("console-socket", None, "CONSOLE_SOCKET", "Unix socket that receives the pty master"),
    Opt::switch("detach", Some('d'), "Return once the process runs"),
    Opt::value("pid-file", None, "PID_FILE", "Write the new process's pid to this file"),
    Opt::value("cwd", None, "CWD", "Working directory inside the container"),
    Opt::value("env", Some('e'), "KEY=VAL", "Add KEY=VAL to the environment").many(),
    Opt::value("user", Some('u'), "USER", "UID[:GID] to run as"),
    Opt::value("additional-gids", Some('g'), "ADDITIONAL_GIDS", "Additional group ids").many(),
    Opt::value("cap", Some('c'), "CAPS", "Add a capability (CAP_xxx) to the process's sets").many(),
    Opt::switch("no-new-privs", None, "Set no_new_privs"),
    Opt::value("preserve-fds", None, "PRESERVE_FDS", "Pass this many extra fds (3, 4, …) to the process").default("0"),
    Opt::value("process-label", None, "PROCESS_LABEL", "SELinux label of the process (must be valid in the loaded policy; needs SELinux on the host)"),
    Opt::value("apparmor", None, "APPARMOR", "AppArmor profile of the process (must be loaded; needs AppArmor on the host)"),
    Opt::value("cgroup", None, "CGROUP", "Sub-cgroup to run in (cgroup v2 only; accepted, refused if set)"),
    Opt::switch("ignore-paused", None, "Allow exec into a paused container (the process starts on resume)"),
];

#[rustfmt::skip]
const UPDATE_OPTS: &[Opt] = &[
    Opt::value("resources", Some('r'), "RESOURCES", "JSON file with linux.resources (`-` for stdin); the flags below are ignored with it"),
    Opt::value("memory", None, "MEMORY", "Memory limit in bytes (suffixes k, m, g allowed; -1 unlimited)").hyphen_value(),
    Opt::value("memory-swap", None, "MEMORY_SWAP", "Memory plus swap limit").hyphen_value(),
    Opt::value("memory-reservation", None, "MEMORY_RESERVATION", "Memory soft limit").hyphen_value(),
    Opt::value("kernel-memory", None, "KERNEL_MEMORY", "Kernel memory limit (refused: removed from the kernel)"),
    Opt::value("kernel-memory-tcp", None, "KERNEL_MEMORY_TCP", "Kernel TCP memory limit (refused: removed from the kernel)"),
    Opt::value("cpu-shares", None, "CPU_SHARES", "CPU shares (relative weight); runc spells it --cpu-share").alias("cpu-share"),
    Opt::value("cpu-quota", None, "CPU_QUOTA", "CPU CFS quota in microseconds (-1 unlimited)").hyphen_value(),
    Opt::value("cpu-period", None, "CPU_PERIOD", "CPU CFS period in microseconds"),
    Opt::value("cpu-rt-runtime", None, "CPU_RT_RUNTIME", "CPU realtime runtime in microseconds"),
    Opt::value("cpu-rt-period", None, "CPU_RT_PERIOD", "CPU realtime period in microseconds"),
    Opt::value("cpuset-cpus", None, "CPUSET_CPUS", "CPUs to run on (e.g. 0-1)"),
    Opt::value("cpuset-mems", None, "CPUSET_MEMS", "Memory nodes to use"),
    Opt::value("pids-limit", None, "PIDS_LIMIT", "Maximum number of tasks (-1 unlimited)").hyphen_value(),
    Opt::value("blkio-weight", None, "BLKIO_WEIGHT", "Block IO weight (10-1000)"),
    Opt::value("l3-cache-schema", None, "L3_CACHE_SCHEMA", "Intel RDT/CAT L3 cache schema (accepted; refused if set, no Intel RDT support)"),
    Opt::value("mem-bw-schema", None, "MEM_BW_SCHEMA", "Intel RDT/MBA memory bandwidth schema (accepted; refused if set, no Intel RDT support)"),
];

/// One command per subcommand, in the order help lists them.
#[rustfmt::skip]
pub const COMMANDS: &[Cmd] = &[
    cmd("create", "Create a container (its process waits for `start`)",
        "berth create -b bundles/busybox c1 && berth start c1", &[CREATE_OPTS], CREATE_POS),
    cmd("start", "Run the user process of a created container", "berth start c1", &[], &[ID]),
    cmd("run", "Create and start a container; in the foreground berth waits for it",
        "berth run -b bundles/busybox demo sh -c 'exit 3'", &[RUN_OPTS, CREATE_OPTS], CREATE_POS),
    cmd("state", "Print the OCI state of a container as JSON", "berth state c1", &[], &[ID]),
    Cmd {
        aliases: &["ls"],
        ..cmd("list", "List containers", "berth list --format json",
              &[&[FORMAT, Opt::switch("quiet", Some('q'), "Print only the ids")]], &[])
    },
    cmd("kill", "Send a signal to a container's process (default SIGTERM)", "berth kill c1 KILL",
        &[&[Opt::switch("all", Some('a'), "Send the signal to every process in the container's cgroup")]],
        &[ID, Pos::optional("SIGNAL", "Signal name (TERM, SIGTERM) or number").default("SIGTERM")]),
    cmd("delete", "Delete a container and everything berth made for it", "berth delete --force c1",
        &[&[Opt::switch("force", Some('f'), "Kill a running container first")]], &[ID]),
    cmd("exec", "Run a new process inside a running container", "berth exec -e DEBUG=1 c1 sh -c 'ps'",
        &[EXEC_OPTS], &[ID, Pos::trailing("COMMAND", "Command to run (unless --process)")]),
    cmd("pause", "Freeze every process of a container", "berth pause c1", &[], &[ID]),
    cmd("resume", "Thaw a paused container", "berth resume c1", &[], &[ID]),
    cmd("ps", "List the processes of a container", "berth ps --format json c1",
        &[&[FORMAT]], &[ID, Pos::trailing("PS_ARGS", "Arguments passed to ps(1) (default -ef)")]),
    cmd("update", "Change the resource limits of a running container",
        "berth update --memory 64M --pids-limit 50 c1", &[UPDATE_OPTS], &[ID]),
    cmd("events", "Show container events and resource statistics", "berth events --stats c1",
        &[&[Opt::switch("stats", None, "Print one statistics event and exit"),
            Opt::value("interval", None, "INTERVAL", "Interval between statistics events").default("5s")]],
        &[ID]),
    cmd("diff", "Show the changes in a container's writable layer (A added, C changed, D deleted)",
        "berth diff demo", &[], &[ID]),
    cmd("spec", "Write a default config.json", "berth spec -b bundles/new --rootless",
        &[&[Opt::value("bundle", Some('b'), "BUNDLE", "Directory to write config.json into").default("."),
            Opt::switch("rootless", None, "Write a spec for rootless containers")]],
        &[]),
    cmd("features", "Print the runtime-spec features berth supports as JSON",
        "berth features | jq .namespaces", &[], &[]),
];

const fn cmd(
    name: &'static str,
    about: &'static str,
    example: &'static str,
    opts: &'static [&'static [Opt]],
    pos: &'static [Pos],
) -> Cmd {
    Cmd {
        name,
        about,
        example,
        aliases: &[],
        opts,
        pos,
    }
}
