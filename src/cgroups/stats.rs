//! Reading a cgroup's usage counters into runc's `events --stats` shape
//! (`cpu`, `memory`, `pids`, `blkio`, `hugetlb`; field names as runc's
//! `types.Stats`). Readers take directories as parameters and skip what a
//! host lacks: stats describe, they never fail a command over one counter.
//! Nothing here writes.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::{json, Map, Value};

use super::files::{parse_flat_keyed, read_file, read_u64};

fn num(dir: &Path, file: &str) -> u64 {
    read_u64(dir, file).unwrap_or(0)
}

fn keyed(dir: &Path, file: &str) -> BTreeMap<String, u64> {
    read_file(dir, file)
        .map(|t| crate::sorted::inserted(parse_flat_keyed(&t)))
        .unwrap_or_default()
}

fn list(dir: &Path, file: &str) -> Vec<u64> {
    read_file(dir, file)
        .map(|t| {
            t.split_whitespace()
                .filter_map(|n| n.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// `max` (u64::MAX) reads as runc's "no limit" too: it prints the max value.
fn obj(pairs: &[(&str, u64)]) -> Value {
    Value::Object(crate::sorted::inserted(
        pairs.iter().map(|(k, v)| (k.to_string(), json!(v))),
    ))
}

/// Hugepage sizes this kernel has, as cgroup file names spell them (`2MB`).
pub fn hugepage_sizes() -> Vec<String> {
    let Ok(entries) = std::fs::read_dir("/sys/kernel/mm/hugepages") else {
        return vec![];
    };
    // In name order through a BTreeSet<String> (a type cgroups has anyway):
    // no sort of its own for these few names.
    let sizes: std::collections::BTreeSet<String> = crate::sorted::inserted(
        entries
            .filter_map(|e| {
                e.ok()?
                    .file_name()
                    .to_str()?
                    .strip_prefix("hugepages-")?
                    .strip_suffix("kB")?
                    .parse::<u64>()
                    .ok()
            })
            .map(page_size_name),
    );
    sizes.into_iter().collect()
}

pub fn page_size_name(kb: u64) -> String {
    match kb {
        kb if kb >= 1 << 20 && kb % (1 << 20) == 0 => format!("{}GB", kb >> 20),
        kb if kb >= 1 << 10 && kb % (1 << 10) == 0 => format!("{}MB", kb >> 10),
        kb => format!("{kb}KB"),
    }
}

/// v1 stats from each controller's directory; `v2_dir` supplies hugetlb on a
/// hybrid host where it is a v2-only controller.
pub fn v1(dirs: &BTreeMap<String, PathBuf>, v2_dir: Option<&Path>) -> Value {
    let mut out = Map::new();
    if let Some(d) = dirs.get("cpuacct") {
        // cpuacct.stat counts USER_HZ ticks; runc reports nanoseconds.
        let ticks = keyed(d, "cpuacct.stat");
        let ns = |k: &str| ticks.get(k).copied().unwrap_or(0) * (1_000_000_000 / 100);
        let mut usage = json!({
            "total": num(d, "cpuacct.usage"),
            "percpu": list(d, "cpuacct.usage_percpu"),
            "percpu_kernel": list(d, "cpuacct.usage_percpu_sys"),
            "percpu_user": list(d, "cpuacct.usage_percpu_user"),
            "kernel": ns("system"),
            "user": ns("user"),
        });
        let t = dirs
            .get("cpu")
            .map(|c| keyed(c, "cpu.stat"))
            .unwrap_or_default();
        let throttling = obj(&[
            ("periods", t.get("nr_periods").copied().unwrap_or(0)),
            (
                "throttledPeriods",
                t.get("nr_throttled").copied().unwrap_or(0),
            ),
            (
                "throttledTime",
                t.get("throttled_time").copied().unwrap_or(0),
            ),
        ]);
        if let Some(u) = usage.as_object_mut() {
            u.retain(|_, v| v != &json!([]));
        }
        out.insert(
            "cpu".into(),
            json!({ "usage": usage, "throttling": throttling }),
        );
    }
    if let Some(d) = dirs.get("memory") {
        let entry = |prefix: &str| {
            obj(&[
                ("limit", num(d, &format!("{prefix}limit_in_bytes"))),
                ("usage", num(d, &format!("{prefix}usage_in_bytes"))),
                ("max", num(d, &format!("{prefix}max_usage_in_bytes"))),
                ("failcnt", num(d, &format!("{prefix}failcnt"))),
            ])
        };
        let raw = keyed(d, "memory.stat");
        let oom = keyed(d, "memory.oom_control");
        out.insert(
            "memory".into(),
            json!({
                "cache": raw.get("cache").copied().unwrap_or(0),
                "usage": entry("memory."),
                "swap": entry("memory.memsw."),
                "kernel": entry("memory.kmem."),
                "kernelTCP": entry("memory.kmem.tcp."),
                "raw": raw,
                "oom_kill": oom.get("oom_kill").copied().unwrap_or(0),
            }),
        );
    }
    if let Some(d) = dirs.get("pids") {
        out.insert("pids".into(), pids(d));
    }
    if let Some(d) = dirs.get("blkio") {
        let entries = |file: &str| -> Value {
            let text = read_file(d, file).unwrap_or_default();
            Value::Array(
                text.lines()
                    .filter_map(|l| {
                        let f: Vec<&str> = l.split_whitespace().collect();
                        let (maj, min) = f.first()?.split_once(':')?;
                        if f.len() != 3 {
                            return None;
                        }
                        let (maj, min, value) = (
                            maj.parse::<u64>().ok()?,
                            min.parse::<u64>().ok()?,
                            f[2].parse::<u64>().ok()?,
                        );
                        Some(json!({"major": maj, "minor": min, "op": f[1], "value": value}))
                    })
                    .collect(),
            )
        };
        out.insert(
            "blkio".into(),
            json!({
                "ioServiceBytesRecursive": entries("blkio.throttle.io_service_bytes_recursive"),
                "ioServicedRecursive": entries("blkio.throttle.io_serviced_recursive"),
            }),
        );
    }
    match (dirs.get("hugetlb"), v2_dir) {
        (Some(d), _) => {
            let h = hugetlb(|size| {
                obj(&[
                    ("usage", num(d, &format!("hugetlb.{size}.usage_in_bytes"))),
                    ("max", num(d, &format!("hugetlb.{size}.max_usage_in_bytes"))),
                    ("failcnt", num(d, &format!("hugetlb.{size}.failcnt"))),
                ])
            });
            out.insert("hugetlb".into(), h);
        }
        (None, Some(d))
            if d.join(format!(
                "hugetlb.{}.current",
                hugepage_sizes().first().map_or("2MB", |s| s.as_str())
            ))
            .exists() =>
        {
            out.insert("hugetlb".into(), hugetlb_v2(d));
        }
        _ => {}
    }
    Value::Object(out)
}

fn pids(d: &Path) -> Value {
    let limit = read_u64(d, "pids.max")
        .ok()
        .filter(|v| *v != u64::MAX)
        .unwrap_or(0);
    obj(&[("current", num(d, "pids.current")), ("limit", limit)])
}

fn hugetlb(per_size: impl Fn(&str) -> Value) -> Value {
    Value::Object(crate::sorted::inserted(
        hugepage_sizes()
            .into_iter()
            .map(|s| (s.clone(), per_size(&s))),
    ))
}

fn hugetlb_v2(d: &Path) -> Value {
    hugetlb(|size| {
        let events = keyed(d, &format!("hugetlb.{size}.events"));
        obj(&[
            ("usage", num(d, &format!("hugetlb.{size}.current"))),
            ("failcnt", events.get("max").copied().unwrap_or(0)),
        ])
    })
}

/// v2 stats from the container's cgroup directory.
pub fn v2(d: &Path) -> Value {
    let mut out = Map::new();
    let cpu = keyed(d, "cpu.stat");
    let us = |k: &str| cpu.get(k).copied().unwrap_or(0) * 1000;
    out.insert(
        "cpu".into(),
        json!({
            "usage": { "total": us("usage_usec"), "kernel": us("system_usec"), "user": us("user_usec") },
            "throttling": obj(&[
                ("periods", cpu.get("nr_periods").copied().unwrap_or(0)),
                ("throttledPeriods", cpu.get("nr_throttled").copied().unwrap_or(0)),
                ("throttledTime", us("throttled_usec")),
            ]),
        }),
    );
    if d.join("memory.current").exists() {
        let raw = keyed(d, "memory.stat");
        let events = keyed(d, "memory.events");
        let (usage, limit) = (num(d, "memory.current"), num(d, "memory.max"));
        let swap_usage = num(d, "memory.swap.current");
        let swap_limit = num(d, "memory.swap.max");
        out.insert(
            "memory".into(),
            json!({
                "cache": raw.get("file").copied().unwrap_or(0),
                "usage": obj(&[("limit", limit), ("usage", usage), ("max", num(d, "memory.peak")), ("failcnt", events.get("max").copied().unwrap_or(0))]),
                "swap": obj(&[("limit", swap_limit.saturating_add(limit)), ("usage", swap_usage + usage), ("failcnt", 0)]),
                "raw": raw,
                "oom_kill": events.get("oom_kill").copied().unwrap_or(0),
            }),
        );
    }
    if d.join("pids.current").exists() {
        out.insert("pids".into(), pids(d));
    }
    if let Ok(text) = read_file(d, "io.stat") {
        out.insert("blkio".into(), io_stat(&text));
    }
    if !hugepage_sizes().is_empty()
        && d.join(format!("hugetlb.{}.current", hugepage_sizes()[0]))
            .exists()
    {
        out.insert("hugetlb".into(), hugetlb_v2(d));
    }
    Value::Object(out)
}

/// io.stat's `8:0 rbytes=1 wbytes=2 rios=3 wios=4 …` as runc's blkio entries.
pub fn io_stat(text: &str) -> Value {
    let (mut bytes, mut ios) = (Vec::new(), Vec::new());
    for line in text.lines() {
        let mut f = line.split_whitespace();
        let Some((maj, min)) = f.next().and_then(|d| d.split_once(':')) else {
            continue;
        };
        let (Ok(maj), Ok(min)) = (maj.parse::<u64>(), min.parse::<u64>()) else {
            continue;
        };
        for kv in f {
            let Some((k, v)) = kv.split_once('=') else {
                continue;
            };
            let Ok(v) = v.parse::<u64>() else { continue };
            let entry = |op: &str| json!({"major": maj, "minor": min, "op": op, "value": v});
            match k {
                "rbytes" => bytes.push(entry("Read")),
                "wbytes" => bytes.push(entry("Write")),
                "rios" => ios.push(entry("Read")),
                "wios" => ios.push(entry("Write")),
                _ => {}
            }
        }
    }
    json!({ "ioServiceBytesRecursive": bytes, "ioServicedRecursive": ios })
}

/// How many times the OOM killer has acted in this cgroup.
pub fn oom_count_v1(memory_dir: &Path) -> anyhow::Result<u64> {
    let text = read_file(memory_dir, "memory.oom_control")?;
    Ok(parse_flat_keyed(&text)
        .into_iter()
        .find(|(k, _)| k == "oom_kill")
        .map_or(0, |(_, v)| v))
}

pub fn oom_count_v2(dir: &Path) -> anyhow::Result<u64> {
    let text = read_file(dir, "memory.events")?;
    Ok(parse_flat_keyed(&text)
        .into_iter()
        .find(|(k, _)| k == "oom_kill")
        .map_or(0, |(_, v)| v))
}

#[cfg(test)]
mod tests {
    use super::super::files::testdir::TempDir;
    use super::*;

    #[test]
    fn v2_fixture() {
        let t = TempDir::new("stats2");
        t.put("cpu.stat", "usage_usec 1500\nuser_usec 1000\nsystem_usec 500\nnr_periods 10\nnr_throttled 4\nthrottled_usec 30\n");
        t.put("memory.current", "4096\n");
        t.put("memory.max", "max\n");
        t.put("memory.events", "low 0\nhigh 0\nmax 7\noom 2\noom_kill 1\n");
        t.put("memory.stat", "anon 100\nfile 200\n");
        t.put("pids.current", "3\n");
        t.put("pids.max", "20\n");
        t.put(
            "io.stat",
            "8:0 rbytes=10 wbytes=20 rios=1 wios=2 dbytes=0 dios=0\n",
        );
        let s = v2(t.path());
        assert_eq!(s["cpu"]["usage"]["total"], 1_500_000);
        assert_eq!(s["cpu"]["throttling"]["throttledTime"], 30_000);
        assert_eq!(s["memory"]["usage"]["limit"], u64::MAX);
        assert_eq!(s["memory"]["usage"]["failcnt"], 7);
        assert_eq!(s["memory"]["cache"], 200);
        assert_eq!(s["memory"]["oom_kill"], 1);
        assert_eq!(s["pids"], json!({"current": 3, "limit": 20}));
        assert_eq!(
            s["blkio"]["ioServiceBytesRecursive"][1],
            json!({"major": 8, "minor": 0, "op": "Write", "value": 20})
        );
        assert_eq!(oom_count_v2(t.path()).unwrap(), 1);
    }

    #[test]
    fn v1_fixture() {
        let t = TempDir::new("stats1");
        t.put("cpuacct.usage", "123\n");
        t.put("cpuacct.usage_percpu", "100 23 \n");
        t.put("cpuacct.stat", "user 2\nsystem 1\n");
        t.put("memory.limit_in_bytes", "33554432\n");
        t.put("memory.failcnt", "5\n");
        t.put(
            "memory.oom_control",
            "oom_kill_disable 0\nunder_oom 0\noom_kill 3\n",
        );
        t.put("pids.current", "1\n");
        t.put("pids.max", "max\n");
        t.put(
            "blkio.throttle.io_service_bytes_recursive",
            "8:0 Read 4096\n8:0 Write 0\nTotal 4096\n",
        );
        let p = t.path().to_path_buf();
        let dirs: BTreeMap<String, PathBuf> = ["cpuacct", "memory", "pids", "blkio"]
            .iter()
            .map(|c| (c.to_string(), p.clone()))
            .collect();
        let s = v1(&dirs, None);
        assert_eq!(s["cpu"]["usage"]["total"], 123);
        assert_eq!(s["cpu"]["usage"]["percpu"], json!([100, 23]));
        assert_eq!(s["cpu"]["usage"]["user"], 20_000_000);
        assert_eq!(s["memory"]["usage"]["limit"], 33_554_432);
        assert_eq!(s["memory"]["usage"]["failcnt"], 5);
        assert_eq!(s["memory"]["oom_kill"], 3);
        assert_eq!(s["pids"], json!({"current": 1, "limit": 0}));
        assert_eq!(
            s["blkio"]["ioServiceBytesRecursive"]
                .as_array()
                .map(Vec::len),
            Some(2)
        );
        assert_eq!(oom_count_v1(&p).unwrap(), 3);
    }

    #[test]
    fn page_size_names() {
        assert_eq!(page_size_name(2048), "2MB");
        assert_eq!(page_size_name(1_048_576), "1GB");
        assert_eq!(page_size_name(64), "64KB");
    }
}
