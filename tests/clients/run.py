#!/usr/bin/env python3
"""Real orchestrators drive an OCI runtime: podman 4.3.1 (+ conmon) and
containerd 1.6.20 (+ its runc v2 shim), from Debian's packages.

    tests/clients/run.py                      # berth: $RUNTIME or target/x86_64-unknown-linux-gnu/release/berth
    RUNTIME=/usr/sbin/runc tests/clients/run.py   # the same suite against runc
    tests/clients/run.py --runtime /usr/sbin/runc 3 6   # only cases 3 and 6
    KEEP=1 tests/clients/run.py               # keep the temp dir (logs) afterwards

`make test-clients` runs it (as root) against berth, then against runc, so a
case that fails only for berth is berth's bug and not the test's.

The cases (issue 6):
  1  podman run --rm IMAGE echo hi -> "hi"; sh -c 'exit 5' -> 5; a missing
     / non-executable program -> 127 / 126; stdin with -i;
     1b: podman's default seccomp profile is in force (Seccomp: 2)
     1c: everyday run options (--read-only and --tmpfs: runc's tmpcopyup,
         -v, --user, --hostname, -e, -w)
  2  podman run -d, exec (output, exit codes, -d), stop (SIGTERM honoured; a
     process that ignores TERM is SIGKILLed after --time), rm; create ->
     init -> start; podman ps/inspect states throughout
  3  podman run -it through a pty: an interactive shell (conmon's
     --console-socket path)
  4  podman run --memory 32m is enforced (OOM kill, exit 137); pause/unpause
     (the container really stops and resumes); podman top; podman stats;
     podman update
  5  podman logs shows stdout and stderr; podman inspect names the runtime
  6  containerd: ctr run --rm echoes and exits with the container's code;
     ctr task exec / ps / pause / resume / kill / delete; ctr run -t (a pty
     through the shim's console socket)
  8  afterwards nothing of the suite's containers remains: runtime state,
     cgroups, mounts, processes
(7 is this whole suite passing with RUNTIME=/usr/sbin/runc.)

Isolation: podman gets private --root/--runroot/--tmpdir, a private
containers.conf (CONTAINERS_CONF: the system's one plus berth in
runtime_supports_json, so podman passes --log-format=json --log FILE to berth
as it does to runc) and network config dir; containerd gets a
private config, root, state and socket, and is stopped afterwards. The
runtime's own state is podman's default --root for the runtime (podman 4.3.1
drops --runtime-flag root=... on `delete --force`, so a private one would
leak) and a private --runc-root for containerd. Nothing global is changed
except what podman itself always writes (/var/lib/containers/cache, the
/libpod_parent cgroup, which this script removes again when empty).

The host's hard rlimits are below podman's defaults, hence --ulimit on every
podman run (see shared/ENVIRONMENT.md). Every command has a timeout.
Exit status: 0 when every selected case passed, 1 otherwise.
"""

import fcntl
import json
import os
import pty
import re
import select
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import termios
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
ROOTFS = os.path.join(REPO, "bundles", "busybox", "rootfs")
IMAGE = "localhost/berth-clients-bb:1"
ULIMITS = ["--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1000:1000"]
# podman's default seccomp profile is exercised by case 1b alone, so that a
# runtime without seccomp still gets every other case tested. SECCOMP=default
# drops the override everywhere.
SECCOMP_OPT = (
    []
    if os.environ.get("SECCOMP") == "default"
    else ["--security-opt", "seccomp=unconfined"]
)
# containerd namespace and ctr container ids carry the harness's pid, so two
# runs on one host (cgroups are host-wide: /<namespace>/<id>) never collide.
CTR_NS = "berth-clients-%d" % os.getpid()


class CaseFail(Exception):
    pass


def check(cond, msg):
    if not cond:
        raise CaseFail(msg)


class Result:
    def __init__(self, argv, rc, out, err, secs):
        self.argv, self.rc, self.out, self.err, self.secs = argv, rc, out, err, secs

    def __str__(self):
        return "`%s` -> rc=%s\n  stdout: %r\n  stderr: %r" % (
            " ".join(self.argv[-8:]),
            self.rc,
            self.out[-600:],
            self.err[-1200:],
        )


def sh(argv, timeout=60, env=None, input=None):
    """Run argv, capture output (through files: a detached container can
    inherit a pipe and hold it open), never raise on a non-zero rc."""
    t0 = time.monotonic()
    with tempfile.TemporaryFile() as o, tempfile.TemporaryFile() as e:
        try:
            p = subprocess.run(
                argv,
                stdout=o,
                stderr=e,
                stdin=subprocess.DEVNULL if input is None else None,
                input=input.encode() if input is not None else None,
                timeout=timeout,
                env=env,
            )
            rc = p.returncode
        except subprocess.TimeoutExpired:
            rc = "timeout(%ss)" % timeout
        o.seek(0)
        e.seek(0)
        return Result(
            argv,
            rc,
            o.read().decode(errors="replace"),
            e.read().decode(errors="replace"),
            time.monotonic() - t0,
        )


def wait_until(pred, timeout, what):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = pred()
        if last:
            return last
        time.sleep(0.1)
    raise CaseFail("timed out after %ss waiting for %s" % (timeout, what))


class Suite:
    def __init__(self, runtime, tmp):
        self.runtime = runtime
        self.rt_name = os.path.basename(runtime)
        self.tmp = tmp
        self.ids = set()  # every container id the clients made, for case 8
        self.log = open(os.path.join(tmp, "commands.log"), "a")
        self.containerd = None
        self.env = dict(os.environ)
        self.env["CONTAINERS_CONF"] = os.path.join(tmp, "containers.conf")
        self.pod = [
            "podman",
            "--root", os.path.join(tmp, "storage"),
            "--runroot", os.path.join(tmp, "runroot"),
            "--tmpdir", os.path.join(tmp, "podman-tmp"),
            "--storage-driver", "overlay",
            "--network-config-dir", os.path.join(tmp, "net"),
            "--cgroup-manager=cgroupfs",
            "--events-backend=file",
            "--runtime", runtime,
        ]
        self.ctrd_dir = os.path.join(tmp, "containerd")
        self.ctr_sock = os.path.join(self.ctrd_dir, "containerd.sock")
        self.ctr_runc_root = os.path.join(self.ctrd_dir, "runtime-root")
        self.ctr = ["ctr", "-a", self.ctr_sock, "-n", CTR_NS]
        # Cgroup dirs that exist before the suite (podman's and containerd's
        # parents are removed afterwards only if the suite made them).
        self.cgroups_before = set(cgroup_dirs())

    # ------------------------------------------------------------ helpers

    def cid(self, name):
        """A ctr container id unique to this run."""
        return "%s-%d" % (name, os.getpid())

    def run(self, argv, timeout=60, input=None):
        r = sh(argv, timeout=timeout, env=self.env, input=input)
        self.log.write("%s\n\n" % r)
        self.log.flush()
        return r

    def podman(self, *args, timeout=60):
        return self.run(self.pod + list(args), timeout=timeout)

    def pod_ok(self, *args, timeout=60):
        r = self.podman(*args, timeout=timeout)
        check(r.rc == 0, "podman %s failed:\n%s" % (args[0], r))
        return r.out

    def pod_run(self, *args, timeout=60):
        """podman run with the suite's flags; args start with run's own."""
        return self.podman("run", "--network", "none", *ULIMITS, *SECCOMP_OPT, *args, timeout=timeout)

    def remember(self, name):
        """Record a podman container's full id for the leftover checks."""
        r = self.podman("inspect", "--format", "{{.Id}}", name)
        if r.rc == 0 and r.out.strip():
            self.ids.add(r.out.strip())

    def pod_status(self, name):
        """(podman ps status text, inspect State.Status)."""
        r = self.podman("ps", "-a", "--filter", "name=^%s$" % name, "--format", "{{.Status}}")
        ps = r.out.strip()
        r = self.podman("inspect", "--format", "{{.State.Status}}", name)
        return ps, r.out.strip()

    def expect_state(self, name, ps_prefix, inspect_status, timeout=10):
        def ok():
            ps, st = self.pod_status(name)
            return ps.startswith(ps_prefix) and st == inspect_status and (ps, st)

        try:
            return wait_until(ok, timeout, "%s to be %s" % (name, inspect_status))
        except CaseFail:
            ps, st = self.pod_status(name)
            raise CaseFail(
                "container %s: podman ps says %r, inspect says %r; expected %r / %r"
                % (name, ps, st, ps_prefix + "…", inspect_status)
            )

    def pod_rm(self, name):
        self.podman("rm", "-f", "-t", "0", name)

    # ------------------------------------------------------------ setup

    def setup(self):
        check(os.path.isfile(os.path.join(ROOTFS, "bin", "busybox")),
              "%s missing: run `make bundles`" % ROOTFS)
        os.makedirs(os.path.join(self.tmp, "net"), exist_ok=True)
        # podman passes --log-format=json --log FILE only to the runtimes it
        # knows support it (by the binary's name: runc, crun, ...): list berth
        # there too, so that podman reads berth's errors as it reads runc's.
        # CONTAINERS_CONF replaces the system's file, so start from it: its
        # defaults (a sysctl, capabilities) are part of what podman sends.
        system_conf = "/usr/share/containers/containers.conf"
        with open(system_conf) as f:
            conf = f.read()
        check(re.search(r"^\[engine\]$", conf, re.M), "no [engine] table in " + system_conf)
        names = ["crun", "runc", "kata", "runsc", "krun", "berth", self.rt_name]
        conf = re.sub(r"^\[engine\]$", "[engine]\nruntime_supports_json = "
                      + json.dumps(sorted(set(names))), conf, count=1, flags=re.M)
        with open(self.env["CONTAINERS_CONF"], "w") as f:
            f.write(conf)
        tar = os.path.join(self.tmp, "rootfs.tar")
        r = self.run(["tar", "-C", ROOTFS, "-cf", tar, "."])
        check(r.rc == 0, "tar rootfs: %s" % r)
        r = self.podman("import", tar, IMAGE, timeout=120)
        check(r.rc == 0, "podman import: %s" % r)

    # ------------------------------------------------------------ cases

    def case_1(self):
        """podman run --rm: echo hi; exit code 5"""
        r = self.pod_run("--rm", IMAGE, "echo", "hi")
        check(r.rc == 0 and r.out == "hi\n", "echo hi:\n%s" % r)
        r = self.pod_run("--rm", IMAGE, "sh", "-c", "exit 5")
        check(r.rc == 5, "exit 5:\n%s" % r)
        # podman maps the runtime's "not found" / "permission denied" to 127 / 126.
        r = self.pod_run("--rm", IMAGE, "/no/such/binary")
        check(r.rc == 127, "missing executable should exit 127:\n%s" % r)
        r = self.pod_run("--rm", IMAGE, "/etc/passwd")
        check(r.rc == 126, "non-executable file should exit 126:\n%s" % r)
        # stdin reaches the container (-i, conmon's pipe)
        r = self.run(self.pod + ["run", "--rm", "-i", "--network", "none", *ULIMITS,
                                 *SECCOMP_OPT, IMAGE, "sh", "-c", "read x; echo got:$x"],
                     input="line\n")
        check(r.rc == 0 and r.out == "got:line\n", "stdin:\n%s" % r)

    def case_1b(self):
        """podman run --rm with podman's default seccomp profile"""
        r = self.podman("run", "--rm", "--network", "none", *ULIMITS, IMAGE, "sh", "-c",
                        "grep ^Seccomp: /proc/self/status")
        check(r.rc == 0, "default seccomp profile:\n%s" % r)
        check("Seccomp:\t2" in r.out, "seccomp filter not in force: %r" % r.out)

    def case_1c(self):
        """podman run with everyday options: --read-only, --tmpfs, -v, --user, -e, -w"""
        vol = os.path.join(self.tmp, "vol")
        os.makedirs(vol, exist_ok=True)
        with open(os.path.join(vol, "hello"), "w") as f:
            f.write("from-host\n")
        # --read-only makes podman add tmpfs on /tmp, /var/tmp and /run with
        # runc's "tmpcopyup" option; --tmpfs uses it too.
        r = self.pod_run("--rm", "--read-only", "--tmpfs", "/scratch", "-v", vol + ":/vol:ro",
                         "--user", "65534:65534", "--hostname", "bc-host", "-e", "FOO=bar",
                         "-w", "/tmp", IMAGE, "sh", "-c",
                         "id -u; hostname; echo $FOO; pwd; cat /vol/hello; "
                         "touch /x 2>/dev/null && echo root-writable; "
                         "touch /tmp/y /scratch/z && echo tmpfs-writable")
        want = "65534\nbc-host\nbar\n/tmp\nfrom-host\ntmpfs-writable\n"
        check(r.rc == 0 and r.out == want, "expected %r:\n%s" % (want, r))

    def case_2(self):
        """podman run -d, exec, stop (TERM; KILL after --time), rm; ps states"""
        # A process that honours SIGTERM (exits 0 on it).
        name = "bc-term"
        self.pod_rm(name)
        r = self.pod_run("-d", "--name", name, IMAGE, "sh", "-c",
                         "trap 'exit 0' TERM; echo ready; while :; do sleep 0.2 & wait; done")
        check(r.rc == 0, "run -d:\n%s" % r)
        self.remember(name)
        self.expect_state(name, "Up", "running")
        out = self.pod_ok("exec", name, "sh", "-c", "echo from-exec:$(cat /proc/1/comm)")
        check(out == "from-exec:sh\n", "exec output %r" % out)
        r = self.podman("exec", name, "sh", "-c", "exit 3")
        check(r.rc == 3, "exec exit code:\n%s" % r)
        r = self.podman("exec", name, "/no/such/binary")
        check(r.rc == 127, "exec of a missing binary should exit 127:\n%s" % r)
        r = self.podman("exec", "-d", name, "sleep", "30")
        check(r.rc == 0, "exec -d:\n%s" % r)
        r = self.podman("stop", "-t", "20", name, timeout=40)
        check(r.rc == 0, "stop:\n%s" % r)
        check(r.secs < 10, "stop of a TERM-honouring container took %.1fs" % r.secs)
        self.expect_state(name, "Exited (0)", "exited")
        r = self.podman("inspect", "--format", "{{.State.ExitCode}}", name)
        check(r.out.strip() == "0", "exit code after TERM: %r" % r.out)
        self.pod_ok("rm", name)
        r = self.podman("ps", "-a", "--format", "{{.Names}}")
        check(name not in r.out.split(), "still listed after rm: %r" % r.out)

        # create -> init (the runtime's `create`: podman says Initialized) ->
        # start (the runtime's `start`, a separate call a while later).
        name = "bc-init"
        self.pod_rm(name)
        r = self.podman("create", "--name", name, "--network", "none", *ULIMITS, *SECCOMP_OPT,
                        IMAGE, "sh", "-c", "echo started; exec sleep 1000")
        check(r.rc == 0, "podman create:\n%s" % r)
        self.remember(name)
        self.expect_state(name, "Created", "created")
        self.pod_ok("init", name)
        self.expect_state(name, "Initialized", "initialized")
        time.sleep(0.5)
        r = self.podman("logs", name)
        check("started" not in r.out, "the process ran before start: %r" % r.out)
        self.pod_ok("start", name)
        self.expect_state(name, "Up", "running")
        wait_until(lambda: "started" in self.podman("logs", name).out, 10, "output after start")
        self.pod_ok("rm", "-f", "-t", "0", name)

        # A process that ignores SIGTERM: killed after --time.
        name = "bc-noterm"
        self.pod_rm(name)
        r = self.pod_run("-d", "--name", name, IMAGE, "sh", "-c",
                         "trap '' TERM; while :; do sleep 0.2; done")
        check(r.rc == 0, "run -d:\n%s" % r)
        self.remember(name)
        self.expect_state(name, "Up", "running")
        r = self.podman("stop", "-t", "2", name, timeout=40)
        check(r.rc == 0, "stop -t 2:\n%s" % r)
        check(2 <= r.secs < 12, "stop -t 2 of a TERM-ignoring container took %.1fs" % r.secs)
        self.expect_state(name, "Exited (137)", "exited")
        self.pod_ok("rm", name)

    def case_3(self):
        """podman run -it: an interactive shell on a pty"""
        name = "bc-tty"
        self.pod_rm(name)
        argv = self.pod + ["run", "-it", "--rm", "--name", name, "--network", "none",
                           *ULIMITS, *SECCOMP_OPT, IMAGE, "sh"]
        try:
            run_in_pty(argv, self.env, [
                ("expect", r"[#$] "),
                ("send", b"echo $((6*7)); tty; stty size\r"),
                ("expect", r"42"),
                ("expect", r"/dev/pts/\d+"),
                ("expect", r"25 80"),
                ("send", b"exit 7\r"),
            ], exit_code=7)
            # exec -it: conmon's exec console socket into a running container.
            r = self.pod_run("-d", "--name", name, IMAGE, "sleep", "1000")
            check(r.rc == 0, "run -d:\n%s" % r)
            self.remember(name)
            run_in_pty(self.pod + ["exec", "-it", name, "sh"], self.env, [
                ("expect", r"[#$] "),
                ("send", b"tty; echo $((7*6))x\r"),
                ("expect", r"/dev/pts/\d+"),
                ("expect", r"42x"),
                ("send", b"exit 8\r"),
            ], exit_code=8)
        finally:
            self.pod_rm(name)

    def case_4(self):
        """--memory 32m OOM (137); pause/unpause; top; stats"""
        name = "bc-oom"
        self.pod_rm(name)
        # dd's 64 MiB buffer is touched by read(): more than the limit.
        r = self.pod_run("--name", name, "--memory", "32m", IMAGE,
                         "dd", "if=/dev/zero", "of=/dev/null", "bs=64M", "count=1")
        self.remember(name)
        check(r.rc == 137, "--memory 32m with a 64 MiB buffer should be OOM-killed (137):\n%s" % r)
        self.pod_ok("rm", name)
        # Within the limit the same program succeeds.
        r = self.pod_run("--rm", "--memory", "32m", IMAGE,
                         "dd", "if=/dev/zero", "of=/dev/null", "bs=4M", "count=4")
        check(r.rc == 0, "--memory 32m with a 4 MiB buffer:\n%s" % r)

        name = "bc-pause"
        self.pod_rm(name)
        r = self.pod_run("-d", "--name", name, IMAGE, "sh", "-c",
                         "sleep 1000 & i=0; while :; do i=$((i+1)); echo $i > /tmp/count; sleep 0.05; done")
        check(r.rc == 0, "run -d:\n%s" % r)
        self.remember(name)
        self.expect_state(name, "Up", "running")
        merged = self.pod_ok("mount", name).strip()
        count = os.path.join(merged, "tmp", "count")

        def read_count():
            try:
                with open(count) as f:
                    return int(f.read().strip() or 0)
            except (OSError, ValueError):
                return 0

        wait_until(lambda: read_count() > 0, 10, "the counter to start")
        self.pod_ok("pause", name)
        self.expect_state(name, "Paused", "paused")
        a = read_count()
        time.sleep(0.6)
        b = read_count()
        check(a == b, "paused container kept running: counter %d -> %d" % (a, b))
        self.pod_ok("unpause", name)
        self.expect_state(name, "Up", "running")
        wait_until(lambda: read_count() > b, 5, "the counter to move after unpause")

        out = self.pod_ok("top", name, "pid", "comm")
        check(re.search(r"^\s*1\s+sh\s*$", out, re.M), "podman top: no pid 1 sh in %r" % out)
        out = self.pod_ok("stats", "--no-stream", "--format", "json", name)
        try:
            st = json.loads(out)[0]
        except (ValueError, IndexError) as e:
            raise CaseFail("podman stats json: %s: %r" % (e, out))
        check(re.match(r"[\d.]+[kMG]?B / [\d.]+[kMGT]?B$", st.get("mem_usage", "")) and
              not st["mem_usage"].startswith("0B"), "stats mem_usage %r" % st.get("mem_usage"))
        check(st.get("pids", "0").isdigit() and int(st["pids"]) >= 2,
              "stats pids %r (sh and its background sleep at least)" % st.get("pids"))
        check(re.match(r"[\d.]+(ns|µs|us|ms|s)$", st.get("cpu_time", "")) and
              st["cpu_time"] != "0s", "stats cpu_time %r" % st.get("cpu_time"))
        # podman update: the runtime's `update --resources FILE`.
        self.pod_ok("update", "--memory", "48m", "--cpu-shares", "300", name)
        out = self.pod_ok("exec", name, "sh", "-c",
                          "cat /sys/fs/cgroup/memory.max 2>/dev/null || "
                          "cat /sys/fs/cgroup/memory/memory.limit_in_bytes")
        check(out.strip() == str(48 << 20), "memory limit seen in the container after "
              "podman update --memory 48m: %r" % out)
        self.pod_ok("unmount", name)
        self.pod_ok("rm", "-f", "-t", "0", name)

    def case_5(self):
        """podman logs; podman inspect names the runtime"""
        name = "bc-logs"
        self.pod_rm(name)
        r = self.pod_run("-d", "--name", name, IMAGE, "sh", "-c",
                         "echo out-line; echo err-line >&2; exit 2")
        check(r.rc == 0, "run -d:\n%s" % r)
        self.remember(name)
        r = self.podman("wait", name)
        check(r.out.strip() == "2", "podman wait: %s" % r)
        r = self.podman("logs", name)
        check(r.rc == 0 and "out-line" in r.out and "err-line" in r.err,
              "podman logs:\n%s" % r)
        out = self.pod_ok("inspect", "--format", "{{.OCIRuntime}}", name).strip()
        check(out in (self.runtime, self.rt_name),
              "inspect OCIRuntime %r, expected %r" % (out, self.runtime))
        self.pod_ok("rm", name)

    # ------------------------------------------------------------ containerd

    def start_containerd(self):
        d = self.ctrd_dir
        os.makedirs(d, exist_ok=True)
        conf = os.path.join(d, "config.toml")
        with open(conf, "w") as f:
            f.write(
                'version = 2\n'
                'root = "%s/root"\n'
                'state = "%s/state"\n'
                'disabled_plugins = ["io.containerd.grpc.v1.cri"]\n'
                '[grpc]\n  address = "%s"\n'
                '[ttrpc]\n  address = "%s.ttrpc"\n'
                '[debug]\n  address = "%s/debug.sock"\n' % (d, d, self.ctr_sock, self.ctr_sock, d)
            )
        self.containerd_log = os.path.join(d, "containerd.log")
        logf = open(self.containerd_log, "w")
        self.containerd = subprocess.Popen(
            ["containerd", "--config", conf], stdout=logf, stderr=logf,
            stdin=subprocess.DEVNULL, start_new_session=True)
        wait_until(lambda: self.run(self.ctr + ["version"], timeout=5).rc == 0, 20,
                   "containerd to answer on %s" % self.ctr_sock)
        archive = os.path.join(self.tmp, "bb-oci.tar")
        if not os.path.exists(archive):
            r = self.podman("save", "--format", "oci-archive", "-o", archive, IMAGE, timeout=120)
            check(r.rc == 0, "podman save: %s" % r)
        r = self.run(self.ctr + ["image", "import", "--base-name", IMAGE.rsplit(":", 1)[0],
                                 archive], timeout=120)
        check(r.rc == 0, "ctr image import: %s" % r)

    def stop_containerd(self):
        if not self.containerd:
            return []
        # Tasks and containers first, so that no shim outlives containerd.
        for c in self.run(self.ctr + ["containers", "ls", "-q"], timeout=10).out.split():
            self.run(self.ctr + ["task", "kill", "-s", "KILL", c], timeout=10)
            self.run(self.ctr + ["task", "delete", "-f", c], timeout=20)
            self.run(self.ctr + ["containers", "delete", c], timeout=10)
        self.containerd.terminate()
        try:
            self.containerd.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.containerd.kill()
            self.containerd.wait()
        self.containerd = None
        # Whatever is still mounted under containerd's dirs now was left by a
        # task (case 8 reports it); unmount it so the temp dir can go.
        left = mounts_under(self.ctrd_dir)
        umount_under(self.ctrd_dir)
        return left

    def ctr_run(self, *args, timeout=60):
        return self.run(self.ctr + ["run", "--runc-binary", self.runtime, "--runc-root",
                                    self.ctr_runc_root, *args], timeout=timeout)

    def case_6(self):
        """containerd + runc v2 shim: run, exec, ps, pause, kill, delete, -t"""
        if not self.containerd:
            self.start_containerd()
        log_mark = os.path.getsize(self.containerd_log)
        self.ids.update(self.cid(n) for n in ("bc-echo", "bc-exit", "bc-task", "bc-ctrtty"))
        r = self.ctr_run("--rm", IMAGE, self.cid("bc-echo"), "echo", "hi")
        check(r.rc == 0 and r.out.replace("\r", "") == "hi\n", "ctr run echo hi:\n%s" % r)
        r = self.ctr_run("--rm", IMAGE, self.cid("bc-exit"), "sh", "-c", "exit 5")
        check(r.rc == 5, "ctr run exit 5:\n%s" % r)

        r = self.ctr_run("-d", IMAGE, self.cid("bc-task"), "sh", "-c",
                         "trap 'exit 3' TERM; while :; do sleep 0.2 & wait; done")
        check(r.rc == 0, "ctr run -d:\n%s" % r)

        def task_status():
            r = self.run(self.ctr + ["task", "ls"], timeout=10)
            m = re.search(r"^%s\s+\d+\s+(\w+)" % re.escape(self.cid("bc-task")), r.out, re.M)
            return m.group(1) if m else r.out.strip()

        wait_until(lambda: task_status() == "RUNNING", 10, "bc-task RUNNING")
        r = self.run(self.ctr + ["task", "exec", "--exec-id", "e1", self.cid("bc-task"), "sh", "-c",
                                 "echo from-exec:$(cat /proc/1/comm)"])
        check(r.rc == 0 and r.out == "from-exec:sh\n", "ctr task exec:\n%s" % r)
        r = self.run(self.ctr + ["task", "exec", "--exec-id", "e2", self.cid("bc-task"), "sh", "-c", "exit 4"])
        check(r.rc == 4, "ctr task exec exit 4:\n%s" % r)
        r = self.run(self.ctr + ["task", "ps", self.cid("bc-task")])  # the shim runs `ps --format json`
        pids = re.findall(r"^(\d+)\s", r.out, re.M)
        check(r.rc == 0 and len(pids) >= 1, "ctr task ps:\n%s" % r)
        run_in_pty(self.ctr + ["task", "exec", "-t", "--exec-id", "e3", self.cid("bc-task"), "sh"], self.env, [
            ("expect", r"[#$] "),
            ("send", b"tty; echo $((7*6))x\r"),
            ("expect", r"/dev/pts/\d+"),
            ("expect", r"42x"),
            ("send", b"exit 9\r"),
        ], exit_code=9)
        r = self.run(self.ctr + ["task", "metrics", "--format", "json", self.cid("bc-task")])
        check(r.rc == 0 and '"memory"' in r.out.lower(), "ctr task metrics:\n%s" % r)
        r = self.run(self.ctr + ["task", "pause", self.cid("bc-task")])
        check(r.rc == 0, "ctr task pause:\n%s" % r)
        wait_until(lambda: task_status() == "PAUSED", 10, "bc-task PAUSED")
        r = self.run(self.ctr + ["task", "resume", self.cid("bc-task")])
        check(r.rc == 0, "ctr task resume:\n%s" % r)
        wait_until(lambda: task_status() == "RUNNING", 10, "bc-task RUNNING again")
        # kill --all: SIGHUP to every process in the cgroup. It ends the
        # `sleep`s; pid 1 (sh) has no HUP handler, so it ignores it and loops on.
        r = self.run(self.ctr + ["task", "kill", "--all", "-s", "HUP", self.cid("bc-task")])
        check(r.rc == 0, "ctr task kill --all:\n%s" % r)
        time.sleep(0.3)
        check(task_status() == "RUNNING", "after kill --all -s HUP: %s" % task_status())
        r = self.run(self.ctr + ["task", "kill", self.cid("bc-task")])  # SIGTERM
        check(r.rc == 0, "ctr task kill:\n%s" % r)
        wait_until(lambda: task_status() == "STOPPED", 10, "bc-task STOPPED after SIGTERM")
        r = self.run(self.ctr + ["task", "delete", self.cid("bc-task")])
        check(r.rc == 0 and "exit code 3" in r.err, "ctr task delete (exit code 3 expected):\n%s" % r)
        r = self.run(self.ctr + ["containers", "delete", self.cid("bc-task")])
        check(r.rc == 0, "ctr containers delete:\n%s" % r)
        r = self.run(self.ctr + ["task", "ls", "-q"])
        check(r.out.strip() == "", "tasks left: %r" % r.out)

        # A terminal: the shim passes --console-socket and reads the master.
        run_in_pty(self.ctr + ["run", "--runc-binary", self.runtime, "--runc-root",
                               self.ctr_runc_root, "--rm", "-t", IMAGE, self.cid("bc-ctrtty"),
                               "sh", "-c", "tty; exit 6"],
                   self.env, [("expect", r"/dev/pts/\d+")], exit_code=6)

        # What the shim said about the runtime while doing all that.
        with open(self.containerd_log) as f:
            f.seek(log_mark)
            complaints = [l for l in f.read().splitlines()
                          if "level=error" in l]
        # (Not checked: the shim's own cleanup logs "failed to remove runc
        # container ... exit status 255" now and then with runc too.)
        check(not complaints, "containerd logged runtime errors:\n  " + "\n  ".join(complaints[-5:]))

        # Forced delete of a paused task that SIGKILL ended: the shim sends
        # `kill --all <id> 9` to a stopped container, which must succeed.
        # (containerd logs an error here with runc too: it resumes the exited task.)
        self.ids.add(self.cid("bc-paused"))
        r = self.ctr_run("-d", IMAGE, self.cid("bc-paused"), "sleep", "1000")
        check(r.rc == 0, "ctr run -d:\n%s" % r)
        r = self.run(self.ctr + ["task", "pause", self.cid("bc-paused")])
        check(r.rc == 0, "ctr task pause:\n%s" % r)
        r = self.run(self.ctr + ["task", "kill", "-s", "KILL", self.cid("bc-paused")])
        check(r.rc == 0, "ctr task kill -s KILL of a paused task:\n%s" % r)
        r = self.run(self.ctr + ["task", "delete", "-f", self.cid("bc-paused")], timeout=30)
        check(r.rc == 0, "ctr task delete -f:\n%s" % r)
        self.run(self.ctr + ["containers", "delete", self.cid("bc-paused")])

    # ------------------------------------------------------------ leftovers

    def case_8(self):
        """nothing of the suite's containers remains"""
        problems = []
        # Whatever a failed case left to podman goes the way a user removes it.
        self.podman("rm", "-a", "-f", "-t", "0", timeout=60)
        r = self.podman("ps", "-a", "-q")
        if r.out.strip():
            problems.append("podman rm -af left containers: %r" % r.out.split())
        for mp in self.stop_containerd():
            problems.append("mount left under containerd's dirs: %s" % mp)
        # The runtime's default --root (podman's), containerd's --runc-root,
        # and berth's default layer root (empty when the rootfs is already an
        # overlay, as it is under both clients).
        roots = [self.ctr_runc_root, os.path.join("/run", self.rt_name),
                 "/var/lib/%s/layers" % self.rt_name]
        for root in roots:
            for dirpath, dirnames, filenames in os.walk(root):
                for n in dirnames + filenames:
                    if any(i in n for i in self.ids):
                        problems.append("runtime state left: %s" % os.path.join(dirpath, n))
        for d in cgroup_dirs():
            if any(i in os.path.basename(d) for i in self.ids):
                problems.append("cgroup left: %s" % d)
        with open("/proc/self/mountinfo") as f:
            for line in f:
                if self.tmp in line or any(i in line for i in self.ids):
                    problems.append("mount left: %s" % line.split(" - ")[0])
        for pid, cmd in processes_matching(self.tmp, *self.ids):
            problems.append("process left: %s %s" % (pid, cmd[:200]))
        check(not problems, "\n  ".join(problems[:20]))

    def teardown(self):
        try:
            self.podman("rm", "-a", "-f", "-t", "0", timeout=60)
        except Exception:
            pass
        try:
            self.stop_containerd()
        except Exception:
            traceback.print_exc()
        # A hung case can leave a shim (or conmon) and a created container:
        # end them, then have the runtime delete what it still knows.
        for pid, cmd in processes_matching(self.tmp):
            if "containerd-shim" in cmd or "conmon" in cmd:
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
        root = os.path.join(self.ctr_runc_root, CTR_NS)
        if os.path.isdir(root):
            for cid in os.listdir(root):
                self.run([self.runtime, "--root", root, "delete", "--force", cid], timeout=30)
        umount_under(self.tmp)
        # podman and containerd make these parents; the runtime removes only
        # the container's own cgroup. Remove them if the suite made them.
        for d in sorted(set(cgroup_dirs()) - self.cgroups_before, key=len, reverse=True):
            if re.search(r"/(libpod_parent|conmon|%s)$" % re.escape(CTR_NS), d):
                try:
                    os.rmdir(d)
                except OSError:
                    pass
        self.log.close()


def run_in_pty(argv, env, steps, exit_code, timeout=20):
    """Run argv with a new pty (25x80) as its controlling terminal and stdio,
    play steps [("expect", regex) | ("send", bytes)], then require exit_code."""
    transcript = []
    pid, master = pty.fork()
    if pid == 0:  # child: the pty is our controlling terminal
        try:
            os.execvpe(argv[0], argv, env)
        finally:
            os._exit(127)

    def said():
        return "".join(transcript)[-800:]

    def read_some(wait):
        r, _, _ = select.select([master], [], [], wait)
        if not r:
            return None
        try:
            data = os.read(master, 4096).decode(errors="replace")
        except OSError:  # EIO: every slave fd is closed
            data = ""
        transcript.append(data)
        return data

    try:
        fcntl.ioctl(master, termios.TIOCSWINSZ, struct.pack("HHHH", 25, 80, 0, 0))
        seen = 0  # expectations match in order, each after the previous one
        for kind, arg in steps:
            if kind == "send":
                os.write(master, arg)
                continue
            deadline = time.monotonic() + timeout
            while True:
                m = re.compile(arg).search("".join(transcript), seen)
                if m:
                    seen = m.end()
                    break
                if time.monotonic() > deadline or read_some(0.2) == "":
                    raise CaseFail("no %r on the terminal; got %r" % (arg, said()))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            wpid, status = os.waitpid(pid, os.WNOHANG)
            if wpid == pid:
                pid = 0
                code = os.waitstatus_to_exitcode(status)
                check(code == exit_code, "%s exited %s, expected %s; terminal: %r"
                      % (" ".join(argv[-6:]), code, exit_code, said()))
                return said()
            if read_some(0.2) == "":
                time.sleep(0.1)
        raise CaseFail("%s did not exit; terminal: %r" % (" ".join(argv[-6:]), said()))
    finally:
        if pid:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        os.close(master)


def processes_matching(*needles):
    """(pid, cmdline) of every live process (not a zombie, not us) whose
    command line contains one of needles."""
    out = []
    for p in os.listdir("/proc"):
        if not p.isdigit() or int(p) == os.getpid():
            continue
        try:
            with open("/proc/%s/cmdline" % p, "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
            with open("/proc/%s/stat" % p) as f:
                state = f.read().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if state != "Z" and any(n in cmd for n in needles):
            out.append((int(p), cmd))
    return out


def cgroup_dirs():
    """Every cgroup directory on the host (v1 hierarchies and the v2 mount)."""
    out = []
    base = "/sys/fs/cgroup"
    for dirpath, dirnames, _ in os.walk(base):
        for n in dirnames:
            out.append(os.path.join(dirpath, n))
    return out


def mounts_under(path):
    """Mount points at or below path."""
    mps = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            mp = line.split()[4].encode().decode("unicode_escape")
            if mp == path or mp.startswith(path.rstrip("/") + "/"):
                mps.append(mp)
    return mps


def umount_under(path):
    """Lazily unmount every mount at or below path, deepest first."""
    for mp in sorted(mounts_under(path), key=len, reverse=True):
        subprocess.run(["umount", "-l", mp], stderr=subprocess.DEVNULL)


CASES = ["1", "1b", "1c", "2", "3", "4", "5", "6", "8"]


def main():
    args = sys.argv[1:]
    runtime = os.environ.get("RUNTIME") or os.path.join(
        REPO, "target", "x86_64-unknown-linux-gnu", "release", "berth")
    if args[:1] == ["--runtime"]:
        runtime, args = args[1], args[2:]
    runtime = os.path.abspath(runtime)
    selected = args or CASES
    for s in selected:
        if s not in CASES:
            sys.exit("unknown case %r; cases: %s" % (s, " ".join(CASES)))
    if os.geteuid() != 0:
        sys.exit("run as root")
    if not os.access(runtime, os.X_OK):
        sys.exit("runtime %s is not an executable (build it, or set RUNTIME=)" % runtime)
    for tool in ("podman", "conmon", "containerd", "ctr", "containerd-shim-runc-v2"):
        if not shutil.which(tool):
            sys.exit("%s is missing: `make test-clients` installs it" % tool)

    tmp = tempfile.mkdtemp(prefix="berth-clients-")
    # conmon writes an empty `oom` file into its working directory when the
    # container is OOM-killed (case 4): keep that out of the checkout.
    os.chdir(tmp)
    suite = Suite(runtime, tmp)
    print("clients suite: runtime %s, work dir %s" % (runtime, tmp), flush=True)
    results = []
    t_start = time.monotonic()
    try:
        suite.setup()
        for name in selected:
            fn = getattr(suite, "case_" + name)
            t0 = time.monotonic()
            try:
                fn()
                results.append((name, True, ""))
                print("ok     %-3s %s (%.1fs)" % (name, fn.__doc__, time.monotonic() - t0), flush=True)
            except CaseFail as e:
                results.append((name, False, str(e)))
                print("FAIL   %-3s %s (%.1fs)\n  %s" % (name, fn.__doc__, time.monotonic() - t0,
                                                     str(e).replace("\n", "\n  ")), flush=True)
            except Exception:
                results.append((name, False, traceback.format_exc()))
                print("ERROR  %-3s %s\n%s" % (name, fn.__doc__, traceback.format_exc()), flush=True)
    except CaseFail as e:
        print("SETUP FAILED: %s" % e, flush=True)
        results.append(("setup", False, str(e)))
    finally:
        suite.teardown()
    failed = [n for n, ok, _ in results if not ok]
    print("%s: %d/%d cases passed in %.0fs%s" % (
        os.path.basename(runtime), len(results) - len(failed), len(results),
        time.monotonic() - t_start,
        "; failed: " + " ".join(failed) if failed else ""), flush=True)
    if os.environ.get("KEEP"):
        print("kept %s (commands.log, containerd/containerd.log)" % tmp)
    else:
        shutil.rmtree(tmp, ignore_errors=True)
        # podman's storage may hold immutable-looking leftovers; report them.
        if os.path.exists(tmp):
            print("could not remove %s" % tmp)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
