//! `events`: runc's event stream. `--stats` prints one stats event; without
//! it, a stats event every `--interval` and an `oom` event whenever the
//! cgroup's OOM-kill count rises, until the container stops.

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde_json::json;

use super::load;
use crate::cli::EventsArgs;
use crate::state::Status;

pub fn run(root: &Path, args: &EventsArgs) -> Result<u8> {
    let (st, dir) = load(root, &args.id)?;
    if st.status(&dir) == Status::Stopped {
        bail!("container {} is not running", args.id);
    }
    let mut out = std::io::stdout().lock();
    let event =
        |kind: &str, data: serde_json::Value| json!({ "type": kind, "id": st.id, "data": data });
    if args.stats {
        writeln!(out, "{}", event("stats", st.cgroup.stats()?))?;
        return Ok(0);
    }
    let interval = parse_duration(&args.interval)?;
    let tick = Duration::from_millis(100).min(interval);
    let mut ooms = st.cgroup.oom_count().unwrap_or(0);
    let mut since_stats = interval;
    while st.status(&dir) != Status::Stopped {
        let now = st.cgroup.oom_count().unwrap_or(ooms);
        if now > ooms {
            writeln!(out, "{}", json!({ "type": "oom", "id": st.id }))?;
            ooms = now;
        }
        if since_stats >= interval {
            writeln!(out, "{}", event("stats", st.cgroup.stats()?))?;
            since_stats = Duration::ZERO;
        }
        out.flush()?;
        std::thread::sleep(tick);
        since_stats += tick;
    }
    Ok(0)
}

/// Go-style durations as runc takes them: `5s`, `500ms`, `1m`, `2`.
fn parse_duration(s: &str) -> Result<Duration> {
    let (num, unit) = s
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .map(|i| s.split_at(i))
        .unwrap_or((s, "s"));
    let n: f64 = num
        .parse()
        .with_context(|| format!("invalid --interval {s:?}"))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => bail!("invalid --interval {s:?}"),
    };
    if secs <= 0.0 {
        bail!("--interval must be positive");
    }
    Ok(Duration::from_secs_f64(secs))
}

#[cfg(test)]
mod tests {
    use super::parse_duration;
    use std::time::Duration;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("5s").unwrap(), Duration::from_secs(5));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("2").unwrap(), Duration::from_secs(2));
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("5x").is_err());
    }
}
