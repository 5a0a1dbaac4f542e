#!/usr/bin/env python3
"""berth's benchmark against runc and crun: `make bench` (never part of `make test`).

All runtimes are measured in one run, interleaved (rounds alternate the order
of the runtimes), each round with a warm-up, and reported as medians and
ratios: absolute times on a shared machine are noise, ratios measured side by
side are not. Sections (issue 7):

  1. run      `run` of /bin/true (create -> exit -> delete) + the floor
              `unshare -mpfiun chroot ROOTFS /bin/true`          [hyperfine]
  2. life     create, start, start->exited, delete, separately   [pidfd timer]
  3. exec     `exec ID /bin/true` into a running container       [hyperfine]
  4. scale    100 running at once (create+start all, list, delete all),
              list with 1000 entries, create+delete cost at N=10/100/1000
  5. memory   peak RSS of the runtime process during run and exec
              (/usr/bin/time -v), stripped binary size
  6. seccomp  run with a Docker-default-sized profile (~300 syscalls)

Modes (every row names its own):
  host  this machine as it is: hybrid cgroups; runc uses its v1 cgroupfs
        driver, berth its v1+v2 (hybrid) backend under the caller's cgroup.
  ns    a private mount namespace whose /sys/fs/cgroup is re-mounted as a pure
        cgroup2: the only way crun 1.8.1 runs here, with
        --cgroup-manager=disabled (no cgroup at all). berth runs in the same
        namespace and still makes its own v2 cgroup (CLONE_INTO_CGROUP).

State lives in separate --root dirs under a temp dir in /run, berth's layers
under a temp dir in /var/lib/berth; ids are unique per run; everything is
deleted at the end, on error and on Ctrl-C.

Usage: bench.py --berth PATH --rootfs DIR [--readme README.md] [--quick]
"""

import argparse
import contextlib
import datetime
import json
import os
import re
import select
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))

# Re-mount /sys/fs/cgroup as a pure cgroup2 inside a private mount namespace,
# then run the command there (ENVIRONMENT.md: how crun runs on this host).
NS_SETUP = (
    'umount -R /sys/fs/cgroup 2>/dev/null || umount -l /sys/fs/cgroup; '
    'mount -t cgroup2 cgroup2 /sys/fs/cgroup && exec "$@"'
)

MODE_TEXT = {
    "host": "host: hybrid cgroups (v1 controllers + v2 unified)",
    "ns": "ns: private mount ns, /sys/fs/cgroup = pure cgroup2",
}


def in_mode(mode, argv):
    if mode == "ns":
        return ["unshare", "-m", "--propagation", "private", "sh", "-c", NS_SETUP, "sh"] + argv
    return argv


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def median(xs):
    return statistics.median(xs) if xs else None


# ----------------------------------------------------------------- runtimes


class Runtime:
    """One runtime in one mode: how to call it and where its state lives."""

    def __init__(self, key, label, mode, argv, how):
        self.key, self.label, self.mode, self.argv, self.how = key, label, mode, argv, how

    def cmd(self, *args):
        return self.argv + list(args)


def make_runtimes(a, tmp, layers):
    def root(name):
        d = os.path.join(tmp, "root-" + name)
        os.makedirs(d, exist_ok=True)
        return d

    berth = [a.berth]
    rts = [
        Runtime("berth", "berth", "host", berth + ["--root", root("berth"), "--layer-root", os.path.join(layers, "host")],
                "v1+v2 cgroups, overlay rootfs (default)"),
        Runtime("runc", "runc", "host", ["runc", "--root", root("runc")],
                "v1 cgroups (cgroupfs), bind rootfs"),
        Runtime("crun", "crun", "ns", ["crun", "--cgroup-manager=disabled", "--root", root("crun")],
                "no cgroup (--cgroup-manager=disabled), bind rootfs"),
        Runtime("berth-ns", "berth", "ns", berth + ["--root", root("berth-ns"), "--layer-root", os.path.join(layers, "ns")],
                "own v2 cgroup, overlay rootfs (default)"),
    ]
    return {r.key: r for r in rts}


# ------------------------------------------------------------------ bundles


def write_bundle(tmp, name, base, rootfs, args, annotations=None, seccomp=None):
    """A bench bundle: the busybox config without berth-specific bits,
    terminal false, the given args, root.path = the absolute rootfs."""
    cfg = json.loads(json.dumps(base))
    cfg["process"]["terminal"] = False
    cfg["process"]["args"] = args
    cfg["root"] = {"path": rootfs, "readonly": False}
    cfg.pop("annotations", None)
    if annotations:
        cfg["annotations"] = annotations
    if seccomp:
        cfg["linux"]["seccomp"] = seccomp
    d = os.path.join(tmp, "bundle-" + name)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(cfg, f, indent=1)
    return d


# Docker's default profile refuses these (or allows them only with
# CAP_SYS_ADMIN & co, which the bench config does not have).
SECCOMP_DENY = set("""
acct add_key bpf clock_adjtime clock_settime clone clone3 create_module delete_module
finit_module fsconfig fsmount fsopen fspick get_kernel_syms get_mempolicy init_module ioperm
iopl kcmp kexec_file_load kexec_load keyctl lookup_dcookie mbind mount mount_setattr
move_mount move_pages name_to_handle_at nfsservctl open_by_handle_at open_tree
perf_event_open personality pivot_root process_vm_readv process_vm_writev ptrace
query_module quotactl quotactl_fd reboot request_key set_mempolicy setns settimeofday
swapon swapoff sysfs _sysctl syslog umount2 unshare uselib userfaultfd ustat vhangup
afs_syscall tuxcall security putpmsg getpmsg vserver lsm_get_self_attr lsm_set_self_attr
lsm_list_modules
""".split())


def docker_like_seccomp():
    """An OCI linux.seccomp the size and shape of Docker's default profile:
    ERRNO by default, one big allow rule (~300 syscalls of the x86_64
    table), and Docker's argument rules (personality, clone, socket)."""
    header = "/usr/include/x86_64-linux-gnu/asm/unistd_64.h"
    try:
        text = open(header).read()
    except OSError:
        return None, 0
    names = sorted(set(re.findall(r"^#define __NR_(\w+) ", text, re.M)) - SECCOMP_DENY)
    rules = [{"names": names, "action": "SCMP_ACT_ALLOW"}]
    for persona in (0, 8, 131072, 131080, 4294967295):
        rules.append({"names": ["personality"], "action": "SCMP_ACT_ALLOW",
                      "args": [{"index": 0, "value": persona, "op": "SCMP_CMP_EQ"}]})
    # clone without any namespace flag (Docker: 2114060288 = CLONE_NEW*).
    rules.append({"names": ["clone"], "action": "SCMP_ACT_ALLOW",
                  "args": [{"index": 0, "value": 2114060288, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}]})
    rules.append({"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38})
    rules.append({"names": ["socket"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1,
                  "args": [{"index": 0, "value": 40, "op": "SCMP_CMP_EQ"}]})
    prof = {"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 1,
            "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
            "syscalls": rules}
    return prof, len(names) + len(rules) - 1


# ---------------------------------------------------------------- hyperfine


class Failed(Exception):
    pass


def hyperfine(mode, cmds, runs, warmup, prepares=None, tmp="/tmp"):
    """Run hyperfine once over `cmds` (argv lists) in `mode`; returns one
    list of wall times (seconds) per command."""
    out = os.path.join(tmp, "hyperfine.json")
    args = ["hyperfine", "-N", "--style", "none", "-r", str(runs), "-w", str(warmup),
            "--export-json", out]
    for p in prepares or []:
        args += ["--prepare", p]
    args += [shlex.join(c) for c in cmds]
    res = sh(in_mode(mode, args), check=False)
    if res.returncode != 0:
        raise Failed(res.stderr.strip().splitlines()[-1] if res.stderr.strip() else "hyperfine failed")
    with open(out) as f:
        data = json.load(f)
    return [r["times"] for r in data["results"]]


def interleaved(groups, rounds, runs, warmup, tmp):
    """groups: {mode: [(key, argv, prepare-or-None)]}. Each round runs one
    hyperfine per mode, the order of modes and commands alternating between
    rounds. Returns {key: [times]} and {key: error}."""
    samples, errors = {}, {}
    modes = list(groups)
    for r in range(rounds):
        for mode in (modes if r % 2 == 0 else modes[::-1]):
            items = [it for it in groups[mode] if it[0] not in errors]
            if r % 2:
                items = items[::-1]
            if not items:
                continue
            prep = [it[2] or "true" for it in items] if any(it[2] for it in items) else None
            try:
                res = hyperfine(mode, [it[1] for it in items], runs, warmup, prep, tmp)
            except Failed:
                # Find the failing command(s) one by one, keep the others.
                res = []
                for it in items:
                    try:
                        res.append(hyperfine(mode, [it[1]], runs, warmup,
                                             [it[2]] if it[2] else None, tmp)[0])
                    except Failed:
                        # hyperfine only says "non-zero exit": ask the command.
                        r = sh(in_mode(mode, it[1]), check=False)
                        lines = r.stderr.strip().splitlines() or [f"exit {r.returncode}"]
                        errors[it[0]] = lines[-1][:200]
                        res.append(None)
            for it, times in zip(items, res):
                if times is not None:
                    samples.setdefault(it[0], []).extend(times)
    return samples, errors


# ------------------------------------------------------------------ workers
# Workers run inside the runtime's mode (`bench.py worker NAME JSON`) and print
# their result as JSON on stdout.


class Ran:
    def __init__(self, returncode, stderr, seconds):
        self.returncode, self.stderr, self.seconds = returncode, stderr, seconds


def sh(argv, check=True):
    """Run argv; stderr goes to a file, not a pipe: a container inherits its
    creator's stdio and would hold a pipe open for as long as it lives."""
    with tempfile.TemporaryFile(mode="w+") as err:
        t = time.perf_counter()
        rc = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=err).returncode
        t = time.perf_counter() - t
        err.seek(0)
        r = Ran(rc, err.read(), t)
    if check and r.returncode != 0:
        raise Failed(f"{shlex.join(argv)}: {r.stderr.strip()[-300:]}")
    return r


def timed(argv):
    return sh(argv).seconds


def worker_lifecycle(p):
    """create / start / start->exited (pidfd) / delete, p['iters'] times."""
    rt, bundle, cid, pidfile = p["argv"], p["bundle"], p["id"], p["pidfile"]
    out = {"create": [], "start": [], "exited": [], "delete": []}
    for i in range(p["warmup"] + p["iters"]):
        sh(rt + ["delete", "-f", cid], check=False)
        create = timed(rt + ["create", "--bundle", bundle, "--pid-file", pidfile, cid])
        pid = int(open(pidfile).read().strip())
        pidfd = os.pidfd_open(pid)
        t2 = time.perf_counter()
        start = timed(rt + ["start", cid])
        select.select([pidfd], [], [])
        exited = time.perf_counter() - t2
        os.close(pidfd)
        delete = timed(rt + ["delete", cid])
        if i >= p["warmup"]:
            out["create"].append(create)
            out["start"].append(start)
            out["exited"].append(exited)
            out["delete"].append(delete)
    return out


@contextlib.contextmanager
def removed_on_failure(rt, ids):
    """Delete the containers `ids` if the block fails; a block that ran to
    its end deleted them itself (a second delete of each would only cost
    time, and inside the N=1000 budget)."""
    try:
        yield
    except BaseException:
        for cid in ids:
            sh(rt + ["delete", "-f", cid], check=False)
        raise


def worker_scale(p):
    """100 running at once; list at 100 and 1000; create+delete per N."""
    rt, sleep_b, prefix = p["argv"], p["sleep_bundle"], p["prefix"]
    res = {}

    def list_times(n):
        times = hyperfine("host", [rt + ["list"]], p["list_runs"], 2, tmp=p["tmp"])[0]
        res[f"list{n}"] = median(times)

    # 100 created and running at once.
    ids = [f"{prefix}-r{i}" for i in range(100)]
    with removed_on_failure(rt, ids):
        t = 0.0
        for cid in ids:
            t += timed(rt + ["create", "--bundle", sleep_b, cid])
            t += timed(rt + ["start", cid])
        res["create_all100"] = t
        list_times(100)
        res["delete_all100"] = sum(timed(rt + ["delete", "-f", cid]) for cid in ids)
    # create + delete cost per container as N grows (created, not started).
    # A batch of N=10 averages only 20 commands, so one batch swings with the
    # host's noise (0.6x-2.3x of the N=1000 figure between runs): small N
    # take the median of SCALE_OPS // (2 N) batches, so that every N rests
    # on about as many commands as N=100 does. One batch of N=1000 still
    # moved the berth ratio by +-0.1 between runs (1.12x-1.34x in seven
    # runs on 2026-12-07), so N=1000 is repeated, up to SCALE_BIG_BATCHES
    # batches while they fit in SCALE_BIG_BUDGET seconds (a runtime at
    # ~140 ms per container gets one).
    for n in p["ns"]:
        per = []
        started = time.monotonic()
        while another_batch(n, per, started):
            ids = [f"{prefix}-n{n}-{len(per)}-{i}" for i in range(n)]
            with removed_on_failure(rt, ids):
                c = sum(timed(rt + ["create", "--bundle", sleep_b, cid]) for cid in ids)
                if n >= 1000 and not per:
                    list_times(n)
                d = sum(timed(rt + ["delete", "-f", cid]) for cid in ids)
            per.append((c + d) / n)
        res[f"per{n}"] = median(per)
        res[f"batches{n}"] = per
    return res


# Commands (creates + deletes) each per-container figure of `scale` rests on.
SCALE_OPS = 200
# N=1000: at most this many batches, while all of them fit in the budget (s).
SCALE_BIG_BATCHES = 3
SCALE_BIG_BUDGET = 75


def another_batch(n, per, started):
    """Whether `scale` times one more batch of n: SCALE_OPS // (2 n) in all
    (at least one), and for N=1000 up to SCALE_BIG_BATCHES while, at the
    pace so far since `started`, they fit in SCALE_BIG_BUDGET seconds."""
    if len(per) < max(1, SCALE_OPS // (2 * n)):
        return True
    if n < 1000 or len(per) >= SCALE_BIG_BATCHES:
        return False
    pace = (time.monotonic() - started) / len(per)
    return pace * (len(per) + 1) <= SCALE_BIG_BUDGET


def worker_rss(p):
    """Peak RSS (KiB) of the runtime during `argv`, via /usr/bin/time -v."""
    vals = []
    for _ in range(p["iters"]):
        r = sh(["/usr/bin/time", "-v"] + p["argv"], check=False)
        if r.returncode != 0:
            raise Failed(r.stderr.strip().splitlines()[0] if r.stderr.strip() else "failed")
        m = re.search(r"Maximum resident set size \(kbytes\): (\d+)", r.stderr)
        vals.append(int(m.group(1)))
    return {"rss": vals}


def worker_cleanup(p):
    """Delete every container under one runtime's --root."""
    rt = p["argv"]
    r = subprocess.run(rt + ["list", "-q"], capture_output=True, text=True)
    for cid in r.stdout.split():
        sh(rt + ["delete", "-f", cid], check=False)
    return {}


WORKERS = {"lifecycle": worker_lifecycle, "scale": worker_scale, "rss": worker_rss,
           "cleanup": worker_cleanup}


def call_worker(mode, name, params):
    argv = in_mode(mode, [sys.executable, os.path.abspath(__file__), "worker", name, json.dumps(params)])
    r = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True)
    if r.returncode != 0:
        raise Failed((r.stderr.strip().splitlines() or ["worker failed"])[-1])
    return json.loads(r.stdout)


# -------------------------------------------------------------------- report


def ms(x):
    return "—" if x is None else (f"{x * 1e3:.1f} ms" if x < 10 else f"{x:.2f} s")


def ratio(a, b):
    return "—" if a is None or b is None or b == 0 else f"{a / b:.2f}×"


def versions(berth):
    def first(argv):
        try:
            return subprocess.run(argv, capture_output=True, text=True).stdout.splitlines()[0].strip()
        except (OSError, IndexError):
            return "?"
    return {
        "berth": first([berth, "--version"]),
        "runc": first(["runc", "--version"]),
        "crun": first(["crun", "--version"]),
        "hyperfine": first(["hyperfine", "--version"]),
    }


def render(R, meta):
    L = []
    add = L.append
    add(f"Measured {meta['date']} on `{meta['kernel']}`, {meta['nproc']} CPUs, "
        f"load average at start {meta['load']}; {meta['versions']['berth']}, "
        f"{meta['versions']['runc']}, {meta['versions']['crun']}, {meta['versions']['hyperfine']}. "
        f"{meta['rounds']} interleaved rounds × {meta['runs']} runs per row (warm-up first); medians. "
        "Modes: **host** = this machine as it is (hybrid cgroups: v1 controllers + a v2 "
        "hierarchy with only hugetlb); **ns** = a private mount namespace whose "
        "`/sys/fs/cgroup` is re-mounted as a pure cgroup2 — the only way crun 1.8.1 runs "
        "here, and only with `--cgroup-manager=disabled`.")
    add("")
    run = R["run"]
    floor = run.get("floor")
    add("**1. run /bin/true** (busybox bundle, create → exit → delete, sequential)")
    add("")
    add("| runtime | mode | what it does | median | × floor | berth is faster by |")
    add("|---|---|---|---|---|---|")
    for key, label, mode, how, peer in R["run_rows"]:
        v = run.get(key)
        err = R["run_err"].get(key)
        if err:
            add(f"| {label} | {mode} | {how} | failed: {err} | | |")
            continue
        faster = ""
        if peer:
            faster = ", ".join(f"{ratio(run.get(p), v)} vs {pl}" for p, pl in peer if run.get(p))
        add(f"| {label} | {mode} | {how} | {ms(v)} | {ratio(v, floor)} | {faster} |")
    add("")
    add("**2. lifecycle** (each step timed on its own; *exited* = from `start` until the "
        "container process has exited, seen through a pidfd)")
    add("")
    add("| runtime | mode | create | start | start → exited | delete |")
    add("|---|---|---|---|---|---|")
    for key, label, mode in R["rt_rows"]:
        v = R["life"].get(key)
        if isinstance(v, str):
            add(f"| {label} | {mode} | failed: {v} | | | |")
        elif v:
            add(f"| {label} | {mode} | {ms(v['create'])} | {ms(v['start'])} | {ms(v['exited'])} | {ms(v['delete'])} |")
    add("")
    add("**3. exec /bin/true** into a running container")
    add("")
    add("| runtime | mode | median | vs runc exec |")
    add("|---|---|---|---|")
    for key, label, mode in R["rt_rows"]:
        v = R["exec"].get(key)
        err = R["exec_err"].get(key)
        if err:
            add(f"| {label} | {mode} | failed: {err} | |")
        else:
            add(f"| {label} | {mode} | {ms(v)} | {ratio(R['exec'].get('runc'), v)} faster |")
    add("")
    add("**4. scale** (100 containers created and running at once; per-container "
        "create+delete cost with N containers present: for N=10 the median of 10 "
        f"batches, for N=100 one, for N=1000 the median of up to {SCALE_BIG_BATCHES} "
        f"that fit in {SCALE_BIG_BUDGET} s)")
    add("")
    add("| runtime | mode | create+start all 100 | list (100) | delete -f all 100 | list (1000) "
        "| per container N=10 | N=100 | N=1000 | N=1000 / N=10 |")
    add("|---|---|---|---|---|---|---|---|---|---|")
    for key, label, mode in R["rt_rows"]:
        v = R["scale"].get(key)
        if isinstance(v, str):
            add(f"| {label} | {mode} | failed: {v} | | | | | | | |")
        elif v:
            add(f"| {label} | {mode} | {ms(v.get('create_all100'))} | {ms(v.get('list100'))} | "
                f"{ms(v.get('delete_all100'))} | {ms(v.get('list1000'))} | {ms(v.get('per10'))} | "
                f"{ms(v.get('per100'))} | {ms(v.get('per1000'))} | {ratio(v.get('per1000'), v.get('per10'))} |")
    add("")
    add("**5. memory and size** (peak RSS = `/usr/bin/time -v` maximum resident set size "
        "of the runtime's process tree, median)")
    add("")
    add("| runtime | mode | peak RSS, run | peak RSS, exec | binary (stripped) |")
    add("|---|---|---|---|---|")

    def kib(x):
        return "—" if x is None else (x if isinstance(x, str) else f"{x / 1024:.1f} MiB")
    for key, label, mode in R["rt_rows"]:
        m = R["mem"].get(key, {})
        add(f"| {label} | {mode} | {kib(m.get('run'))} | {kib(m.get('exec'))} | {R['size'].get(key, '')} |")
    add("")
    sc = R["seccomp"]
    add(f"**6. run /bin/true with a seccomp profile the size of Docker's default** "
        f"({sc['rules']} syscalls allowed, ERRNO by default, Docker's argument rules)")
    add("")
    add("| runtime | mode | median | vs the same runtime without seccomp |")
    add("|---|---|---|---|")
    for key, label, mode in R["rt_rows"]:
        v = sc["rows"].get(key)
        if isinstance(v, str):
            add(f"| {label} | {mode} | {v} | |")
        elif v is not None:
            base = run.get(key)
            add(f"| {label} | {mode} | {ms(v)} | {ratio(v, base)} |")
    add("")
    add("**Goals** (issue 7; measured here, never asserted in tests)")
    add("")
    add("| goal | measured | met |")
    add("|---|---|---|")
    for g, m, ok in R["goals"]:
        add(f"| {g} | {m} | {'yes' if ok else ('no' if ok is False else '?')} |")
    return "\n".join(L)


def goals(R):
    run, ex = R["run"], R["exec"]
    b, f, rc, cr, bns = (run.get(k) for k in ("berth", "floor", "runc", "crun", "berth-ns"))
    out = []

    def chk(name, val, ok):
        out.append((name, val, ok))
    if b and f:
        chk("run ≤ 1.5 × floor (berth, host)", f"{b / f:.2f} × floor", b / f <= 1.5)
    if b and rc:
        chk("run ≥ 4 × faster than runc (host)", f"{rc / b:.2f} ×", rc / b >= 4)
    if bns and cr:
        chk("run faster than crun (ns)", f"berth {ms(bns)} vs crun {ms(cr)}", bns < cr)
    if ex.get("berth") and ex.get("runc"):
        chk("exec ≥ 3 × faster than runc exec", f"{ex['runc'] / ex['berth']:.2f} ×",
            ex["runc"] / ex["berth"] >= 3)
    m, mc = R["mem"].get("berth", {}).get("run"), R["mem"].get("crun", {}).get("run")
    if isinstance(m, int) and isinstance(mc, int):
        chk("peak RSS ≤ crun's (run)", f"{m / 1024:.1f} MiB vs {mc / 1024:.1f} MiB", m <= mc)
    sz = R.get("berth_size")
    if sz:
        chk("stripped binary ≤ 2 MiB", f"{sz / 2**20:.2f} MiB", sz <= 2 * 2**20)
    s = R["scale"].get("berth")
    if isinstance(s, dict) and s.get("per1000") and s.get("per10"):
        r = s["per1000"] / s["per10"]
        chk("create+delete at N=1000 ≤ 1.2 × N=10", f"{r:.2f} ×", r <= 1.2)
    return out


def write_readme(path, body):
    text = open(path).read()
    start, end = "<!-- bench:start -->", "<!-- bench:end -->"
    if start not in text or end not in text:
        log(f"{path}: no {start}/{end} markers; not updated")
        return
    head, rest = text.split(start, 1)
    _, tail = rest.split(end, 1)
    tmp = path + ".bench.tmp"
    with open(tmp, "w") as f:
        f.write(head + start + "\n" + body + "\n" + end + tail)
    os.replace(tmp, path)
    log(f"updated the Performance section of {path}")


# ---------------------------------------------------------------------- main


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--berth", required=True)
    ap.add_argument("--rootfs", required=True)
    ap.add_argument("--config", help="base config.json (default: ROOTFS/../config.json)")
    ap.add_argument("--readme")
    ap.add_argument("--out", default="target/bench", help="where results.json goes")
    ap.add_argument("--rounds", type=int, default=int(os.environ.get("BENCH_ROUNDS", 6)))
    ap.add_argument("--runs", type=int, default=int(os.environ.get("BENCH_RUNS", 10)))
    ap.add_argument("--scale-max", type=int, default=int(os.environ.get("BENCH_SCALE_MAX", 1000)))
    ap.add_argument("--quick", action="store_true", help="few rounds, N up to 100: a smoke test")
    a = ap.parse_args()
    if a.quick:
        a.rounds, a.runs, a.scale_max = 2, 3, 100
    a.berth = os.path.abspath(a.berth)
    rootfs = os.path.abspath(a.rootfs)
    base = json.load(open(a.config or os.path.join(os.path.dirname(rootfs), "config.json")))
    for tool in ("hyperfine", "runc", "crun", "unshare", "/usr/bin/time"):
        if not shutil.which(tool):
            sys.exit(f"bench: {tool} is missing (make bench installs it)")

    tmp = tempfile.mkdtemp(prefix="berth-bench.", dir="/run")
    os.makedirs("/var/lib/berth", exist_ok=True)
    layers = tempfile.mkdtemp(prefix="bench.", dir="/var/lib/berth")
    rts = make_runtimes(a, tmp, layers)
    tag = f"b{os.getpid()}"

    def cleanup():
        for r in rts.values():
            try:
                call_worker(r.mode, "cleanup", {"argv": r.argv})
            except Exception as e:  # noqa: BLE001 - best effort, keep going
                log(f"cleanup {r.key}: {e}")
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(layers, ignore_errors=True)

    def on_signal(sig, _frame):
        raise KeyboardInterrupt(f"signal {sig}")
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)

    try:
        R = run_all(a, rts, tmp, tag, rootfs, base)
    except KeyboardInterrupt:
        log("bench: interrupted; deleting every bench container")
        cleanup()
        sys.exit(130)
    except BaseException:
        cleanup()
        raise
    cleanup()

    meta = {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "kernel": os.uname().release,
        "nproc": os.cpu_count(),
        "load": R["load"],
        "versions": versions(a.berth),
        "rounds": a.rounds,
        "runs": a.runs,
    }
    body = render(R, meta)
    print(body)
    os.makedirs(a.out, exist_ok=True)
    with open(os.path.join(a.out, "results.json"), "w") as f:
        json.dump({"meta": meta, "results": {k: v for k, v in R.items() if k != "goals"},
                   "goals": R["goals"]}, f, indent=1, default=str)
    if a.readme:
        write_readme(a.readme, body)


def run_all(a, rts, tmp, tag, rootfs, base):
    R = {"load": " ".join(open("/proc/loadavg").read().split()[:3])}
    true_b = write_bundle(tmp, "true", base, rootfs, ["/bin/true"])
    bind_b = write_bundle(tmp, "true-bind", base, rootfs, ["/bin/true"], {"run.berth.rootfs": "bind"})
    sleep_b = write_bundle(tmp, "sleep", base, rootfs, ["sleep", "1000000"])
    prof, nrules = docker_like_seccomp()
    sec_b = write_bundle(tmp, "seccomp", base, rootfs, ["/bin/true"], seccomp=prof) if prof else None
    b, rc, cr, bns = rts["berth"], rts["runc"], rts["crun"], rts["berth-ns"]
    R["rt_rows"] = [(r.key, r.label, f"{r.mode}: {r.how}") for r in rts.values()]

    # 1. run
    log("1/6 run /bin/true ...")
    groups = {
        "host": [
            ("floor", ["unshare", "-mpfiun", "chroot", rootfs, "/bin/true"], None),
            ("berth", b.cmd("run", "--bundle", true_b, f"{tag}-berth-run"), None),
            ("berth-bind", b.cmd("run", "--bundle", bind_b, f"{tag}-berth-runbind"), None),
            ("runc", rc.cmd("run", "--bundle", true_b, f"{tag}-runc-run"), None),
        ],
        "ns": [
            ("crun", cr.cmd("run", "--bundle", true_b, f"{tag}-crun-run"), None),
            ("berth-ns", bns.cmd("run", "--bundle", true_b, f"{tag}-berthns-run"), None),
            ("berth-ns-bind", bns.cmd("run", "--bundle", bind_b, f"{tag}-berthns-runbind"), None),
        ],
    }
    s, R["run_err"] = interleaved(groups, a.rounds, a.runs, 3, tmp)
    R["run"] = {k: median(v) for k, v in s.items()}
    R["run_rows"] = [
        ("floor", "floor: `unshare -mpfiun chroot ROOTFS /bin/true`", "host", "namespaces + chroot, no runtime", None),
        ("berth", "berth", "host", b.how, [("runc", "runc")]),
        ("berth-bind", "berth", "host", "v1+v2 cgroups, bind rootfs (`run.berth.rootfs=bind`)", [("runc", "runc")]),
        ("runc", "runc", "host", rc.how, None),
        ("crun", "crun", "ns", cr.how, None),
        ("berth-ns", "berth", "ns", bns.how, [("crun", "crun")]),
        ("berth-ns-bind", "berth", "ns", "own v2 cgroup, bind rootfs (`run.berth.rootfs=bind`)", [("crun", "crun")]),
    ]

    # 2. lifecycle (pidfd timer), interleaved by rounds
    log("2/6 lifecycle ...")
    life = {}
    for r in range(a.rounds):
        order = list(rts.values()) if r % 2 == 0 else list(rts.values())[::-1]
        for rt in order:
            if isinstance(life.get(rt.key), str):
                continue
            try:
                v = call_worker(rt.mode, "lifecycle", {
                    "argv": rt.argv, "bundle": true_b, "id": f"{tag}-{rt.key}-life",
                    "pidfile": os.path.join(tmp, f"{rt.key}.pid"),
                    "iters": a.runs, "warmup": 2 if r == 0 else 1})
                acc = life.setdefault(rt.key, {})
                for k, xs in v.items():
                    acc.setdefault(k, []).extend(xs)
            except Failed as e:
                life[rt.key] = str(e)
    R["life"] = {k: (v if isinstance(v, str) else {p: median(xs) for p, xs in v.items()})
                 for k, v in life.items()}

    # 3. exec into a running container
    log("3/6 exec ...")
    running = {}
    for rt in rts.values():
        cid = f"{tag}-{rt.key}-exec"
        try:
            sh(in_mode(rt.mode, rt.cmd("create", "--bundle", sleep_b, cid)))
            sh(in_mode(rt.mode, rt.cmd("start", cid)))
            running[rt.key] = cid
        except Failed as e:
            R.setdefault("exec_setup_err", {})[rt.key] = str(e)[-200:]
    groups = {"host": [], "ns": []}
    for rt in rts.values():
        if rt.key in running:
            groups[rt.mode].append((rt.key, rt.cmd("exec", running[rt.key], "/bin/true"), None))
    s, R["exec_err"] = interleaved(groups, a.rounds, a.runs, 3, tmp)
    for k, v in R.get("exec_setup_err", {}).items():
        R["exec_err"][k] = "setup: " + v.strip()
    R["exec"] = {k: median(v) for k, v in s.items()}

    # 5. memory (while the exec containers still run)
    log("5/6 memory ...")
    mem = {}
    for rt in rts.values():
        m = mem.setdefault(rt.key, {})
        try:
            v = call_worker(rt.mode, "rss", {"argv": rt.cmd("run", "--bundle", true_b, f"{tag}-{rt.key}-rss"), "iters": 7})
            m["run"] = int(median(v["rss"]))
        except Failed as e:
            m["run"] = f"failed: {e}"
        if rt.key in running:
            try:
                v = call_worker(rt.mode, "rss", {"argv": rt.cmd("exec", running[rt.key], "/bin/true"), "iters": 7})
                m["exec"] = int(median(v["rss"]))
            except Failed as e:
                m["exec"] = f"failed: {e}"
    R["mem"] = mem
    for rt in rts.values():
        if rt.key in running:
            subprocess.run(in_mode(rt.mode, rt.cmd("delete", "-f", running[rt.key])),
                           stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    stripped = os.path.join(tmp, "berth.stripped")
    shutil.copy(a.berth, stripped)
    subprocess.run(["strip", stripped], stderr=subprocess.DEVNULL)
    R["berth_size"] = os.path.getsize(stripped)
    size = {}
    for key, path in (("berth", stripped), ("runc", shutil.which("runc")), ("crun", shutil.which("crun"))):
        size[key] = f"{os.path.getsize(path) / 2**20:.2f} MiB"
    size["crun"] += " (+ shared libs)"
    size["berth-ns"] = size["berth"]
    R["size"] = size

    # 6. seccomp
    log("6/6 seccomp ...")
    R["seccomp"] = {"rules": nrules, "rows": {}}
    if sec_b:
        groups = {"host": [], "ns": []}
        for rt in rts.values():
            probe = sh(in_mode(rt.mode, rt.cmd("run", "--bundle", sec_b, f"{tag}-{rt.key}-scprobe")), check=False)
            if probe.returncode != 0:
                msg = (probe.stderr.strip().splitlines() or ["failed"])[-1]
                if "seccomp" in msg and "not supported" in msg:
                    msg = "n/a: seccomp not implemented"
                R["seccomp"]["rows"][rt.key] = msg
                continue
            groups[rt.mode].append((rt.key, rt.cmd("run", "--bundle", sec_b, f"{tag}-{rt.key}-sc"), None))
        s, err = interleaved(groups, a.rounds, a.runs, 3, tmp)
        for k, v in s.items():
            R["seccomp"]["rows"][k] = median(v)
        for k, v in err.items():
            R["seccomp"]["rows"][k] = "failed: " + v
    else:
        for rt in rts.values():
            R["seccomp"]["rows"][rt.key] = "n/a: no syscall table (linux-libc-dev)"

    # 4. scale last: it is the longest
    log("4/6 scale (this takes a few minutes) ...")
    ns = [n for n in (10, 100, 1000) if n <= a.scale_max]
    R["scale"] = {}
    for rt in rts.values():
        log(f"  scale: {rt.key} ({rt.mode})")
        try:
            R["scale"][rt.key] = call_worker(rt.mode, "scale", {
                "argv": rt.argv, "sleep_bundle": sleep_b, "prefix": f"{tag}-{rt.key}-s",
                "ns": ns, "list_runs": 10, "tmp": tmp})
        except Failed as e:
            R["scale"][rt.key] = str(e)
    R["goals"] = goals(R)
    return R


if __name__ == "__main__":
    if len(sys.argv) >= 4 and sys.argv[1] == "worker":
        try:
            print(json.dumps(WORKERS[sys.argv[2]](json.loads(sys.argv[3]))))
        except Failed as e:
            print(str(e), file=sys.stderr)
            sys.exit(1)
        sys.exit(0)
    main()
