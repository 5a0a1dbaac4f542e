//! A small command-line parser driven by tables: each command is a `Cmd`
//! naming its options and positional arguments, and parsing yields the
//! `Matches` the typed structs in `cli` are built from.
//!
//! It keeps the behaviour callers see from the clap-based parser it
//! replaced (and from runc where the two differ): `--long value`,
//! `--long=value`, `-s value`, `-svalue`, `-s=value`, bundled switches
//! (`-dt`), `--` ending the options, a trailing command that takes
//! everything after it verbatim, usage errors on stderr with exit status 2,
//! help on stdout with status 0. What it drops is weight: clap built a tree
//! of every argument on each start and made up about a tenth of the binary.

use std::ffi::{OsStr, OsString};
use std::fmt::Write as _;
use std::os::unix::ffi::OsStrExt;

pub use super::help::{help, invalid, options_and_example, section, similar, usage};

/// How an option takes its value.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A switch: `--keep`. `--keep=true|false` is taken too, as Go's flag
    /// package (runc) takes it.
    Switch,
    /// One value: `--bundle DIR` or `--bundle=DIR`; given twice, the last wins.
    Value(&'static str),
    /// A value each time it is given: `-e A=1 -e B=2`.
    Many(&'static str),
    /// A value only after `=`: `--rootless` alone means `true`.
    Equals(&'static str),
}

pub struct Opt {
    pub long: &'static str,
    pub short: Option<char>,
    pub kind: Kind,
    pub help: &'static str,
    /// The value when the option is not given; help shows it as
    /// `[default: …]`, and `Build` reads it from here (nowhere else).
    pub default: Option<&'static str>,
    /// Only these values are accepted.
    pub choices: &'static [&'static str],
    /// A second long name, shown in help.
    pub alias: Option<&'static str>,
    /// Accepted, never shown (runc flags berth has no use for).
    pub hidden: bool,
    /// The value may start with `-` (`--memory -1`).
    pub hyphen_value: bool,
}

impl Opt {
    pub const fn switch(long: &'static str, short: Option<char>, help: &'static str) -> Opt {
        Opt {
            long,
            short,
            kind: Kind::Switch,
            help,
            default: None,
            choices: &[],
            alias: None,
            hidden: false,
            hyphen_value: false,
        }
    }

    pub const fn value(
        long: &'static str,
        short: Option<char>,
        name: &'static str,
        help: &'static str,
    ) -> Opt {
        Opt {
            kind: Kind::Value(name),
            ..Opt::switch(long, short, help)
        }
    }

    /// A value option that may be given again and again (`-e A=1 -e B=2`).
    pub const fn many(self) -> Opt {
        match self.kind {
            Kind::Value(name) => Opt {
                kind: Kind::Many(name),
                ..self
            },
            _ => self,
        }
    }

    /// A value only after `=` (`--rootless`, `--rootless=auto`).
    pub const fn equals(self, name: &'static str) -> Opt {
        Opt {
            kind: Kind::Equals(name),
            ..self
        }
    }

    pub const fn default(self, value: &'static str) -> Opt {
        Opt {
            default: Some(value),
            ..self
        }
    }

    pub const fn choices(self, choices: &'static [&'static str]) -> Opt {
        Opt { choices, ..self }
    }

    pub const fn alias(self, alias: &'static str) -> Opt {
        Opt {
            alias: Some(alias),
            ..self
        }
    }

    pub const fn hidden(self) -> Opt {
        Opt {
            hidden: true,
            ..self
        }
    }

    pub const fn hyphen_value(self) -> Opt {
        Opt {
            hyphen_value: true,
            ..self
        }
    }

    /// `-b, --bundle <BUNDLE>` as help and errors show it.
    pub(super) fn spelling(&self) -> String {
        let mut s = match self.short {
            Some(c) => format!("-{c}, --{}", self.long),
            None => format!("    --{}", self.long),
        };
        match self.kind {
            Kind::Switch => {}
            Kind::Value(n) | Kind::Many(n) => {
                let _ = write!(s, " <{n}>");
            }
            Kind::Equals(n) => {
                let _ = write!(s, "[=<{n}>]");
            }
        }
        s
    }
}

/// A positional argument; `trailing` takes every argument from its first on.
pub struct Pos {
    pub name: &'static str,
    pub help: &'static str,
    pub required: bool,
    pub trailing: bool,
    /// For an optional one: its value when not given (shown in help).
    pub default: Option<&'static str>,
}

impl Pos {
    pub const fn required(name: &'static str, help: &'static str) -> Pos {
        Pos {
            name,
            help,
            required: true,
            trailing: false,
            default: None,
        }
    }

    pub const fn default(self, value: &'static str) -> Pos {
        Pos {
            default: Some(value),
            ..self
        }
    }

    pub const fn optional(name: &'static str, help: &'static str) -> Pos {
        Pos {
            required: false,
            ..Pos::required(name, help)
        }
    }

    pub const fn trailing(name: &'static str, help: &'static str) -> Pos {
        Pos {
            required: false,
            trailing: true,
            ..Pos::required(name, help)
        }
    }

    pub(super) fn spelling(&self) -> String {
        match (self.required, self.trailing) {
            (_, true) => format!("[{}]...", self.name),
            (true, false) => format!("<{}>", self.name),
            (false, false) => format!("[{}]", self.name),
        }
    }
}

pub struct Cmd {
    pub name: &'static str,
    pub about: &'static str,
    pub example: &'static str,
    pub aliases: &'static [&'static str],
    /// Groups of options (`run` is `create`'s plus its own).
    pub opts: &'static [&'static [Opt]],
    pub pos: &'static [Pos],
}

impl Cmd {
    pub(super) fn options(&self) -> impl Iterator<Item = &'static Opt> + Clone {
        self.opts.iter().flat_map(|group| group.iter())
    }
}

/// What parsing a command line came to, other than a result.
#[derive(Debug)]
pub enum Stop {
    /// `--help`: print this on stdout, exit 0.
    Help(String),
    /// A usage error: print this on stderr, exit 2.
    Usage(String),
}

impl Stop {
    /// Print the help or the error and exit as clap and runc do.
    pub fn exit(self) -> ! {
        match self {
            Stop::Help(text) => {
                print!("{text}");
                let _ = std::io::Write::flush(&mut std::io::stdout());
                std::process::exit(0)
            }
            Stop::Usage(text) => {
                eprint!("{text}");
                std::process::exit(2)
            }
        }
    }
}

/// The options and positionals of one command line.
#[derive(Default, Debug)]
pub struct Matches {
    given: Vec<(&'static str, Option<OsString>)>,
    pub pos: Vec<OsString>,
    pub trailing: Vec<OsString>,
}

impl Matches {
    pub fn given(&self, long: &str) -> bool {
        self.given.iter().any(|(l, _)| *l == long)
    }

    /// A switch: given without a value, or with a true one.
    pub fn on(&self, long: &str) -> bool {
        self.given
            .iter()
            .rev()
            .find(|(l, _)| *l == long)
            .is_some_and(|(_, v)| v.as_deref().is_none_or(|v| boolish(v) == Some(true)))
    }

    pub fn value_os(&self, long: &str) -> Option<&OsStr> {
        self.given
            .iter()
            .rev()
            .find(|(l, _)| *l == long)
            .and_then(|(_, v)| v.as_deref())
    }

    pub fn values_os<'a>(&'a self, long: &'a str) -> impl Iterator<Item = &'a OsStr> + 'a {
        self.given
            .iter()
            .filter(move |(l, _)| *l == long)
            .filter_map(|(_, v)| v.as_deref())
    }
}

/// clap's "boolish" words, in any case: `Some(true)` for yes, `Some(false)`
/// for no, `None` for anything else.
fn boolish(v: &OsStr) -> Option<bool> {
    const YES: [&[u8]; 6] = [b"y", b"yes", b"t", b"true", b"on", b"1"];
    const NO: [&[u8]; 6] = [b"n", b"no", b"f", b"false", b"off", b"0"];
    let is = |words: &[&[u8]]| words.iter().any(|w| w.eq_ignore_ascii_case(v.as_bytes()));
    if is(&YES) {
        Some(true)
    } else if is(&NO) {
        Some(false)
    } else {
        None
    }
}

/// Parse `args` (the words after the command's name) against `cmd`.
/// `path` is how the command is spelled in usage lines (`berth run`).
/// With `stop_at_word`, the first word that is no option ends parsing and is
/// left in `trailing` with all after it (the top level: the subcommand's
/// name and its arguments).
pub fn parse(
    cmd: &Cmd,
    path: &str,
    args: &[OsString],
    stop_at_word: bool,
) -> Result<Matches, Stop> {
    let mut m = Matches::default();
    let fixed = cmd.pos.iter().filter(|p| !p.trailing).count();
    let has_trailing = cmd.pos.iter().any(|p| p.trailing);
    let mut i = 0;
    while i < args.len() {
        let arg = &args[i];
        let bytes = arg.as_bytes();
        i += 1;
        let positional = |m: &mut Matches, word: &OsString| {
            if m.pos.len() < fixed {
                m.pos.push(word.clone());
                Ok(false)
            } else if has_trailing || stop_at_word {
                m.trailing.push(word.clone());
                Ok(true)
            } else {
                Err(usage(
                    cmd,
                    path,
                    &format!("unexpected argument '{}' found", word.to_string_lossy()),
                    None,
                ))
            }
        };
        if bytes == b"--" {
            for word in &args[i..] {
                positional(&mut m, word)?;
            }
            break;
        }
        if bytes.len() < 2 || bytes[0] != b'-' {
            if stop_at_word {
                m.trailing.extend(args[i - 1..].iter().cloned());
                break;
            }
            if positional(&mut m, arg)? {
                m.trailing.extend(args[i..].iter().cloned());
                break;
            }
            continue;
        }
        if bytes == b"-h" || bytes == b"--help" {
            return Err(Stop::Help(help(cmd, path)));
        }
        let known = if let Some(long) = bytes.strip_prefix(b"--") {
            let (name, inline) = split_eq(long);
            cmd.options()
                .find(|o| {
                    o.long.as_bytes() == name || o.alias.is_some_and(|a| a.as_bytes() == name)
                })
                .map(|o| (o, inline, format!("--{}", String::from_utf8_lossy(name))))
                .map(|(o, inline, shown)| take(cmd, path, o, inline, &shown, args, &mut i, &mut m))
        } else {
            shorts(cmd, path, &bytes[1..], args, &mut i, &mut m)
        };
        match known {
            Some(r) => r?,
            // A word like `-1` or an unknown flag after the fixed
            // positionals starts the trailing command (`sh -c …`).
            None if has_trailing && m.pos.len() >= fixed => {
                m.trailing.extend(args[i - 1..].iter().cloned());
                break;
            }
            None => {
                let shown = arg.to_string_lossy();
                let name = shown.split('=').next().unwrap_or_default();
                let tip = similar(
                    name.trim_start_matches('-'),
                    cmd.options().filter(|o| !o.hidden).map(|o| o.long),
                )
                .map(|s| format!("a similar argument exists: '--{s}'"));
                return Err(usage(
                    cmd,
                    path,
                    &format!("unexpected argument '{shown}' found"),
                    tip.as_deref(),
                ));
            }
        }
    }
    // The top level reports a missing subcommand in its own words.
    let missing: Vec<String> = cmd
        .pos
        .iter()
        .filter(|p| p.required && !stop_at_word)
        .skip(m.pos.len())
        .map(Pos::spelling)
        .collect();
    if !missing.is_empty() {
        return Err(usage(
            cmd,
            path,
            &format!(
                "the following required arguments were not provided:\n  {}",
                missing.join("\n  ")
            ),
            None,
        ));
    }
    Ok(m)
}

fn split_eq(s: &[u8]) -> (&[u8], Option<&[u8]>) {
    match s.iter().position(|&b| b == b'=') {
        Some(at) => (&s[..at], Some(&s[at + 1..])),
        None => (s, None),
    }
}

/// `-dt`, `-bDIR`, `-b DIR`, `-b=DIR`. None when the first letter is unknown.
fn shorts(
    cmd: &Cmd,
    path: &str,
    letters: &[u8],
    args: &[OsString],
    i: &mut usize,
    m: &mut Matches,
) -> Option<Result<(), Stop>> {
    let find = |c: u8| cmd.options().find(|o| o.short == Some(c as char));
    find(letters[0])?;
    let mut at = 0;
    while at < letters.len() {
        let c = letters[at];
        let Some(o) = find(c) else {
            let msg = format!("unexpected argument '-{}' found", c as char);
            return Some(Err(usage(cmd, path, &msg, None)));
        };
        let shown = format!("-{}", c as char);
        if o.kind == Kind::Switch {
            m.given.push((o.long, None));
            at += 1;
            continue;
        }
        let rest = &letters[at + 1..];
        let inline = match rest {
            [] => None,
            [b'=', v @ ..] => Some(v),
            v => Some(v),
        };
        return Some(take(cmd, path, o, inline, &shown, args, i, m));
    }
    Some(Ok(()))
}

/// Record option `o`, its value inline (`=v`) or the next argument.
#[allow(clippy::too_many_arguments)]
fn take(
    cmd: &Cmd,
    path: &str,
    o: &'static Opt,
    inline: Option<&[u8]>,
    shown: &str,
    args: &[OsString],
    i: &mut usize,
    m: &mut Matches,
) -> Result<(), Stop> {
    let value = match (o.kind, inline) {
        (Kind::Switch, None) | (Kind::Equals(_), None) => None,
        (Kind::Switch, Some(v)) => {
            let v = OsStr::from_bytes(v);
            if boolish(v).is_none() {
                let msg = format!(
                    "unexpected value '{}' for '{shown}' found; no more were expected",
                    v.to_string_lossy()
                );
                return Err(usage(cmd, path, &msg, None));
            }
            Some(v.to_os_string())
        }
        (_, Some(v)) => Some(OsStr::from_bytes(v).to_os_string()),
        (_, None) => {
            let next = args.get(*i).filter(|v| {
                o.hyphen_value || !v.as_bytes().starts_with(b"-") || v.as_bytes() == b"-"
            });
            let Some(next) = next else {
                let msg = format!(
                    "a value is required for '{}' but none was supplied",
                    o.spelling().trim_start()
                );
                return Err(usage(cmd, path, &msg, None));
            };
            *i += 1;
            Some(next.clone())
        }
    };
    // An `=`-only option without choices is a boolean (`--systemd-cgroup`).
    if let (Kind::Equals(_), true, Some(v)) = (o.kind, o.choices.is_empty(), &value) {
        if boolish(v).is_none() {
            let msg = format!(
                "invalid value '{}' for '{}': expected true or false",
                v.to_string_lossy(),
                o.spelling().trim_start()
            );
            return Err(usage(cmd, path, &msg, None));
        }
    }
    if let (false, Some(v)) = (o.choices.is_empty(), &value) {
        if !o.choices.iter().any(|c| c.as_bytes() == v.as_bytes()) {
            let msg = format!(
                "invalid value '{}' for '{}'\n  [possible values: {}]",
                v.to_string_lossy(),
                o.spelling().trim_start(),
                o.choices.join(", ")
            );
            return Err(usage(cmd, path, &msg, None));
        }
    }
    m.given.push((o.long, value));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const OPTS: &[Opt] = &[
        Opt::value("bundle", Some('b'), "BUNDLE", "Bundle").default("."),
        Opt::switch("detach", Some('d'), "Detach"),
        Opt::switch("tty", Some('t'), "Tty"),
        Opt::value("env", Some('e'), "KEY=VAL", "Env").many(),
        Opt::value("memory", None, "MEMORY", "Memory").hyphen_value(),
        Opt::value("format", Some('f'), "FORMAT", "Format").choices(&["table", "json"]),
        Opt::switch("rootless", None, "Rootless")
            .equals("MODE")
            .choices(&["true", "false", "auto"]),
        Opt::switch("systemd", None, "Systemd").equals("BOOL"),
    ];
    const CMD: Cmd = Cmd {
        name: "run",
        about: "Run",
        example: "berth run x",
        aliases: &[],
        opts: &[OPTS],
        pos: &[
            Pos::required("ID", "Container id"),
            Pos::trailing("COMMAND", "Command"),
        ],
    };

    fn words(s: &[&str]) -> Vec<OsString> {
        s.iter().map(OsString::from).collect()
    }

    fn ok(s: &[&str]) -> Matches {
        parse(&CMD, "berth run", &words(s), false).expect("parses")
    }

    fn err(s: &[&str]) -> String {
        match parse(&CMD, "berth run", &words(s), false) {
            Err(Stop::Usage(text)) => text,
            other => panic!("expected a usage error, got {other:?}"),
        }
    }

    #[test]
    fn values_every_way_clap_took_them() {
        for args in [
            &["-b", "x", "c"][..],
            &["-bx", "c"],
            &["-b=x", "c"],
            &["--bundle", "x", "c"],
            &["--bundle=x", "c"],
            &["c", "--bundle", "x"],
        ] {
            let m = ok(args);
            assert_eq!(m.value_os("bundle"), Some(OsStr::new("x")), "{args:?}");
            assert_eq!(m.pos, words(&["c"]), "{args:?}");
        }
        let m = ok(&["-b", "x", "-b", "y", "c"]);
        assert_eq!(
            m.value_os("bundle"),
            Some(OsStr::new("y")),
            "the last one wins"
        );
    }

    #[test]
    fn switches_bundle_and_take_go_style_booleans() {
        let m = ok(&["-dt", "c"]);
        assert!(m.on("detach") && m.on("tty"));
        let m = ok(&["--detach=false", "c"]);
        assert!(m.given("detach") && !m.on("detach"));
        assert!(err(&["--detach=maybe", "c"]).contains("unexpected value 'maybe'"));
        let m = ok(&["-dtb", "x", "c"]);
        assert_eq!(m.value_os("bundle"), Some(OsStr::new("x")));
    }

    #[test]
    fn the_trailing_command_is_taken_verbatim() {
        let m = ok(&["-d", "c", "sh", "-c", "exit 3", "--bundle", "z"]);
        assert_eq!(m.trailing, words(&["sh", "-c", "exit 3", "--bundle", "z"]));
        assert_eq!(m.value_os("bundle"), None);
        // A known flag before the command is still a flag; an unknown one
        // starts the command.
        let m = ok(&["c", "-t", "-x", "y"]);
        assert!(m.on("tty"));
        assert_eq!(m.trailing, words(&["-x", "y"]));
        let m = ok(&["c", "--", "-t"]);
        assert_eq!(m.trailing, words(&["-t"]));
        assert!(!m.on("tty"));
    }

    #[test]
    fn many_values_and_hyphen_values() {
        let m = ok(&["-e", "A=1", "--env=B=2", "--memory", "-1", "c"]);
        let env: Vec<&OsStr> = m.values_os("env").collect();
        assert_eq!(env, [OsStr::new("A=1"), OsStr::new("B=2")]);
        assert_eq!(m.value_os("memory"), Some(OsStr::new("-1")));
        assert!(err(&["-e"]).contains("a value is required for '-e, --env <KEY=VAL>'"));
        assert!(err(&["--bundle", "--tty", "c"]).contains("a value is required"));
    }

    #[test]
    fn equals_only_values() {
        let m = ok(&["--rootless", "c"]);
        assert!(m.on("rootless"));
        assert_eq!(m.pos, words(&["c"]), "a bare --rootless takes no next word");
        let m = ok(&["--rootless=auto", "c"]);
        assert_eq!(m.value_os("rootless"), Some(OsStr::new("auto")));
        assert!(err(&["--rootless=maybe", "c"]).contains("[possible values: true, false, auto]"));
        // Without choices an `=` value is a boolean, in clap's words for one.
        assert!(ok(&["--systemd=yes", "c"]).on("systemd"));
        assert!(!ok(&["--systemd=off", "c"]).on("systemd"));
        assert!(err(&["--systemd=maybe", "c"]).contains("expected true or false"));
    }

    #[test]
    fn usage_errors_read_like_claps() {
        let e = err(&["--bundel", "x", "c"]);
        assert!(
            e.starts_with("error: unexpected argument '--bundel' found"),
            "{e}"
        );
        assert!(
            e.contains("tip: a similar argument exists: '--bundle'"),
            "{e}"
        );
        assert!(
            e.contains("Usage: berth run [OPTIONS] <ID> [COMMAND]..."),
            "{e}"
        );
        let e = err(&[]);
        assert!(
            e.contains("the following required arguments were not provided:\n  <ID>"),
            "{e}"
        );
        let e = err(&["--format", "xml", "c"]);
        assert!(
            e.contains("invalid value 'xml' for '-f, --format <FORMAT>'"),
            "{e}"
        );
        assert!(e.contains("[possible values: table, json]"), "{e}");
        assert!(err(&["-x", "c"]).contains("unexpected argument '-x' found"));
    }
}
