//! `update`: new resource limits for a running container, from
//! `--resources FILE|-` or runc's flags, applied through the cgroup module
//! (which fails naming the file when a limit cannot be applied).

use std::io::Read;
use std::path::Path;

use crate::spec::types::LinuxResources;
use anyhow::{bail, Context, Result};
use serde_json::{json, Map, Value};

use super::load_locked;
use crate::cli::UpdateArgs;
use crate::state::Status;

pub fn run(root: &Path, args: &UpdateArgs) -> Result<u8> {
    let resources = match &args.resources {
        Some(path) => read_resources(path)?,
        None => from_flags(args)?,
    };
    let (st, dir, _lock) = load_locked(root, &args.id)?;
    if matches!(st.status(&dir), Status::Stopped) {
        bail!("cannot update container {}: it is stopped", args.id);
    }
    st.cgroup.update(&resources)?;
    Ok(0)
}

fn read_resources(path: &Path) -> Result<LinuxResources> {
    let data = if path == Path::new("-") {
        let mut buf = Vec::new();
        std::io::stdin()
            .read_to_end(&mut buf)
            .context("read resources from stdin")?;
        buf
    } else {
        std::fs::read(path).with_context(|| format!("read {}", path.display()))?
    };
    serde_json::from_slice(&data).with_context(|| format!("parse resources {}", path.display()))
}

/// runc's update flags as a LinuxResources JSON object.
fn from_flags(a: &UpdateArgs) -> Result<LinuxResources> {
    if a.kernel_memory.is_some() || a.kernel_memory_tcp.is_some() {
        bail!("--kernel-memory and --kernel-memory-tcp are not supported: kernel memory limits were removed from Linux");
    }
    if a.l3_cache_schema.is_some() || a.mem_bw_schema.is_some() {
        bail!("--l3-cache-schema and --mem-bw-schema are not supported: berth has no Intel RDT support");
    }
    let mut memory = Map::new();
    for (key, value) in [
        ("limit", &a.memory),
        ("swap", &a.memory_swap),
        ("reservation", &a.memory_reservation),
    ] {
        if let Some(v) = value {
            memory.insert(
                key.into(),
                json!(parse_bytes(v).with_context(|| format!("--memory value {v:?}"))?),
            );
        }
    }
    let mut cpu = Map::new();
    put(&mut cpu, "shares", a.cpu_shares);
    put(&mut cpu, "quota", a.cpu_quota);
    put(&mut cpu, "period", a.cpu_period);
    put(&mut cpu, "realtimeRuntime", a.cpu_rt_runtime);
    put(&mut cpu, "realtimePeriod", a.cpu_rt_period);
    put(&mut cpu, "cpus", a.cpuset_cpus.clone());
    put(&mut cpu, "mems", a.cpuset_mems.clone());
    let mut res = Map::new();
    if !memory.is_empty() {
        res.insert("memory".into(), Value::Object(memory));
    }
    if !cpu.is_empty() {
        res.insert("cpu".into(), Value::Object(cpu));
    }
    if let Some(limit) = a.pids_limit {
        res.insert("pids".into(), json!({ "limit": limit }));
    }
    if let Some(w) = a.blkio_weight {
        res.insert("blockIO".into(), json!({ "weight": w }));
    }
    if res.is_empty() {
        bail!("update needs --resources or at least one limit flag");
    }
    crate::spec::convert(&Value::Object(res)).context("build resources from flags")
}

fn put<T: serde::Serialize>(m: &mut Map<String, Value>, key: &str, v: Option<T>) {
    if let Some(v) = v {
        m.insert(key.into(), json!(v));
    }
}

/// `1048576`, `64m`, `1G`, `-1`.
fn parse_bytes(s: &str) -> Result<i64> {
    if s == "-1" {
        return Ok(-1);
    }
    let lower = s.trim().to_ascii_lowercase();
    let lower = lower.strip_suffix('b').unwrap_or(&lower);
    let (num, mult) = match lower.chars().last() {
        Some('k') => (&lower[..lower.len() - 1], 1i64 << 10),
        Some('m') => (&lower[..lower.len() - 1], 1 << 20),
        Some('g') => (&lower[..lower.len() - 1], 1 << 30),
        Some('t') => (&lower[..lower.len() - 1], 1 << 40),
        _ => (lower, 1),
    };
    let n: i64 = num
        .trim()
        .parse()
        .with_context(|| format!("invalid size {s:?}"))?;
    n.checked_mul(mult)
        .filter(|v| *v >= 0)
        .with_context(|| format!("invalid size {s:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_bytes("1048576").unwrap(), 1 << 20);
        assert_eq!(parse_bytes("64m").unwrap(), 64 << 20);
        assert_eq!(parse_bytes("2G").unwrap(), 2 << 30);
        assert_eq!(parse_bytes("-1").unwrap(), -1);
        assert!(parse_bytes("12x").is_err());
        assert!(parse_bytes("-5").is_err());
    }

    #[test]
    fn flags_become_resources() {
        let a = UpdateArgs {
            memory: Some("32m".into()),
            pids_limit: Some(20),
            cpu_quota: Some(10000),
            cpu_period: Some(100000),
            id: "x".into(),
            ..Default::default()
        };
        let r = from_flags(&a).unwrap();
        assert_eq!(r.memory().as_ref().and_then(|m| m.limit()), Some(32 << 20));
        assert_eq!(r.pids().as_ref().map(|p| p.limit()), Some(20));
        assert_eq!(r.cpu().as_ref().and_then(|c| c.quota()), Some(10000));
        let none = UpdateArgs::default();
        assert!(from_flags(&none).is_err());
        let km = UpdateArgs {
            kernel_memory: Some("1m".into()),
            ..Default::default()
        };
        assert!(from_flags(&km).unwrap_err().to_string().contains("kernel"));
    }
}
