//! Help text and usage errors, laid out as clap laid them out: callers and
//! people who read berth's messages before keep reading the same shapes.

use std::ffi::OsStr;
use std::fmt::Write as _;

use super::args::{Cmd, Stop};

/// A usage error as clap words it.
pub fn usage(cmd: &Cmd, path: &str, msg: &str, tip: Option<&str>) -> Stop {
    let mut s = format!("error: {msg}\n\n");
    if let Some(tip) = tip {
        let _ = writeln!(s, "  tip: {tip}\n");
    }
    let _ = write!(
        s,
        "Usage: {}\n\nFor more information, try '--help'.\n",
        usage_line(cmd, path)
    );
    Stop::Usage(s)
}

/// A value that does not parse as its option's type.
pub fn invalid(cmd: &Cmd, path: &str, long: &str, value: &OsStr, why: &str) -> Stop {
    let spelled = cmd.options().find(|o| o.long == long).map_or_else(
        || format!("--{long}"),
        |o| o.spelling().trim_start().to_string(),
    );
    let msg = format!(
        "invalid value '{}' for '{spelled}': {why}",
        value.to_string_lossy()
    );
    usage(cmd, path, &msg, None)
}

fn usage_line(cmd: &Cmd, path: &str) -> String {
    let mut s = path.to_string();
    if cmd.options().any(|o| !o.hidden) {
        s.push_str(" [OPTIONS]");
    }
    for p in cmd.pos {
        s.push(' ');
        s.push_str(&p.spelling());
    }
    s
}

/// `cmd`'s help: what it does, usage, arguments, options, an example.
pub fn help(cmd: &Cmd, path: &str) -> String {
    let mut s = format!("{}\n\nUsage: {}\n", cmd.about, usage_line(cmd, path));
    if !cmd.pos.is_empty() {
        let rows: Vec<(String, String)> = cmd
            .pos
            .iter()
            .map(|p| {
                let text = match p.default {
                    Some(d) => format!("{} [default: {d}]", p.help),
                    None => p.help.to_string(),
                };
                (p.spelling(), text)
            })
            .collect();
        section(&mut s, "Arguments", &rows);
    }
    options_and_example(&mut s, cmd);
    s
}

/// The options block (with `-h`) and the example line, which every help
/// text ends with, the top level's too.
pub fn options_and_example(s: &mut String, cmd: &Cmd) {
    let mut rows: Vec<(String, String)> = cmd
        .options()
        .filter(|o| !o.hidden)
        .map(|o| {
            let mut text = o.help.to_string();
            if let Some(d) = o.default {
                let _ = write!(text, " [default: {d}]");
            }
            if !o.choices.is_empty() {
                let _ = write!(text, " [possible values: {}]", o.choices.join(", "));
            }
            if let Some(a) = o.alias {
                let _ = write!(text, " [aliases: --{a}]");
            }
            (o.spelling(), text)
        })
        .collect();
    rows.push(("-h, --help".into(), "Print help".into()));
    section(s, "Options", &rows);
    let _ = write!(s, "\nExample: {}\n", cmd.example);
}

/// A titled two-column block, the left column padded to its widest entry.
pub fn section(s: &mut String, title: &str, rows: &[(String, String)]) {
    let width = rows.iter().map(|(l, _)| l.len()).max().unwrap_or(0);
    let _ = writeln!(s, "\n{title}:");
    for (left, right) in rows {
        let _ = writeln!(s, "  {left:width$}  {right}");
    }
}

/// The candidate closest to `word`, if it is close enough to be a typo.
pub fn similar<'a>(word: &str, candidates: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    candidates
        .map(|c| (edit_distance(word, c), c))
        .filter(|(d, c)| *d <= (c.len() / 3).max(1))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// Edit distance over bytes where swapping two neighbours counts as one
/// edit (`strat` is one from `start`).
fn edit_distance(a: &str, b: &str) -> usize {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    // d[i][j]: distance between a[..i] and b[..j], kept two rows back.
    let mut rows = vec![vec![0usize; b.len() + 1]; 3];
    for (j, cell) in rows[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        let (cur, prev, prev2) = (i % 3, (i - 1) % 3, (i + 1) % 3);
        rows[cur][0] = i;
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut d = (rows[prev][j] + 1)
                .min(rows[cur][j - 1] + 1)
                .min(rows[prev][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                d = d.min(rows[prev2][j - 2] + 1);
            }
            rows[cur][j] = d;
        }
    }
    rows[a.len() % 3][b.len()]
}

#[cfg(test)]
mod tests {
    use std::ffi::OsString;

    use super::super::args::{parse, Opt, Pos};
    use super::*;

    const CMD: Cmd = Cmd {
        name: "run",
        about: "Run",
        example: "berth run x",
        aliases: &[],
        opts: &[&[
            Opt::value("bundle", Some('b'), "BUNDLE", "Bundle").default("."),
            Opt::switch("rootless", None, "Rootless").equals("BOOL"),
            Opt::switch("secret", None, "Secret").hidden(),
        ]],
        pos: &[
            Pos::required("ID", "Container id"),
            Pos::trailing("COMMAND", "Command"),
        ],
    };

    #[test]
    fn help_lists_arguments_options_defaults_and_the_example() {
        let words: Vec<OsString> = ["c", "--help"].iter().map(OsString::from).collect();
        let Err(Stop::Help(h)) = parse(&CMD, "berth run", &words, false) else {
            panic!("expected help");
        };
        assert!(
            h.starts_with("Run\n\nUsage: berth run [OPTIONS] <ID> [COMMAND]...\n"),
            "{h}"
        );
        assert!(h.contains("  <ID>          Container id\n"), "{h}");
        assert!(h.contains("-b, --bundle <BUNDLE>"), "{h}");
        assert!(h.contains("[default: .]"), "{h}");
        assert!(h.contains("--rootless[=<BOOL>]"), "{h}");
        assert!(h.ends_with("\nExample: berth run x\n"), "{h}");
        assert!(!h.contains("secret"), "hidden options stay hidden: {h}");
    }

    #[test]
    fn typos_find_their_neighbour() {
        let names = ["start", "state", "create", "delete"];
        assert_eq!(similar("strat", names.into_iter()), Some("start"));
        assert_eq!(similar("delet", names.into_iter()), Some("delete"));
        assert_eq!(similar("zzzzzz", names.into_iter()), None);
        assert_eq!(edit_distance("strat", "start"), 1);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }
}
