//! Log lines, as runc writes them: plain text on stderr by default, or
//! `{"level":…,"msg":…,"time":…}` lines into `--log FILE` with
//! `--log-format json`, which containerd's shim and conmon read to find the
//! last error. This module never panics: a log that cannot be written is lost.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::cli::LogFormat;

struct Logger {
    file: Option<File>,
    format: LogFormat,
    debug: bool,
}

static LOGGER: Mutex<Option<Logger>> = Mutex::new(None);

#[derive(Copy, Clone, PartialEq, Eq, Debug)]
pub enum Level {
    Debug,
    Warn,
    Error,
}

impl Level {
    fn as_str(self) -> &'static str {
        match self {
            Level::Debug => "debug",
            Level::Warn => "warning",
            Level::Error => "error",
        }
    }
}

/// Set up logging. A `--log` file that cannot be opened falls back to stderr.
pub fn init(log: Option<&Path>, format: LogFormat, debug: bool) {
    let file = log.and_then(|p| OpenOptions::new().create(true).append(true).open(p).ok());
    if let Ok(mut g) = LOGGER.lock() {
        *g = Some(Logger {
            file,
            format,
            debug,
        });
    }
}

/// True when `--log FILE` was given and opened: the error is then written
/// there as well as printed.
pub fn has_file() -> bool {
    LOGGER
        .lock()
        .map(|g| g.as_ref().is_some_and(|l| l.file.is_some()))
        .unwrap_or(false)
}

pub fn log(level: Level, msg: &str) {
    let Ok(mut guard) = LOGGER.lock() else { return };
    let Some(logger) = guard.as_mut() else {
        if level != Level::Debug {
            eprintln!("berth: {msg}");
        }
        return;
    };
    if level == Level::Debug && !logger.debug {
        return;
    }
    let line = match logger.format {
        LogFormat::Json => format!(
            "{{\"level\":\"{}\",\"msg\":{},\"time\":\"{}\"}}\n",
            level.as_str(),
            serde_json::to_string(msg).unwrap_or_else(|_| "\"\"".into()),
            rfc3339_now()
        ),
        LogFormat::Text => format!(
            "time=\"{}\" level={} msg={:?}\n",
            rfc3339_now(),
            level.as_str(),
            msg
        ),
    };
    match logger.file.as_mut() {
        Some(f) => {
            let _ = f.write_all(line.as_bytes());
        }
        None => {
            // Without a log file, a plain one-line message is what a person wants.
            if level == Level::Error {
                eprintln!("berth: {msg}");
            } else {
                eprint!("{line}");
            }
        }
    }
}

pub fn debug(msg: &str) {
    log(Level::Debug, msg)
}

pub fn warn(msg: &str) {
    log(Level::Warn, msg)
}

/// The current UTC time as RFC 3339 with nanoseconds, e.g. `2026-11-26T05:32:08.123456789Z`.
pub fn rfc3339_now() -> String {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    rfc3339(d.as_secs() as i64, d.subsec_nanos())
}

pub fn rfc3339(secs: i64, nanos: u32) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{nanos:09}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to (year, month, day), Howard Hinnant's algorithm.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_known_instants() {
        assert_eq!(rfc3339(0, 0), "1970-01-01T00:00:00.000000000Z");
        assert_eq!(rfc3339(951_782_400, 5), "2000-02-29T00:00:00.000000005Z");
        assert_eq!(rfc3339(1795671128, 0), "2026-11-26T05:32:08.000000000Z");
    }
}
