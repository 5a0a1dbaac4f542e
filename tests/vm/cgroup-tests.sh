#!/bin/sh
# berth's cgroup suite on a pure cgroup-v2 kernel (busybox sh, run in the VM by
# /init; see tests/vm/run.sh).  Every test is a function t_<name>, run in its own
# process under a timeout, with its own --root and container ids; the runner
# deletes whatever a test left behind.  Output, one line per test:
#   BERTH-TEST PASS <name>
#   BERTH-TEST FAIL <name>: <reason>      followed by "    | " lines of its log
#   BERTH-TEST SKIP <name>: <reason>      (e.g. a berth command that is not there yet)
#   BERTH-TEST DONE pass=N fail=M skip=K
#
#   sh cgroup-tests.sh                 run every test
#   sh cgroup-tests.sh pids cpu-max    run these (leaks always runs last)
#   sh cgroup-tests.sh --one NAME      run one test in this process (runner use)

BERTH=${BERTH:-/usr/bin/berth}
SRC_BUNDLE=${SRC_BUNDLE:-/bundle}
CG=/sys/fs/cgroup
# The caller (pid 1's shell) sits in the root cgroup, so a container's cgroup
# is /berth/<id> (relative cgroupsPath nests under the caller's own cgroup).
CALLER_CG=$(sed -n 's/^0:://p' /proc/self/cgroup)
[ "$CALLER_CG" = / ] && CALLER_CG=
TEST_TIMEOUT=${TEST_TIMEOUT:-30}

ALL_TESTS="smoke-run smoke-detach cgroup-born memory-max memory-oom pids cpu-max cpu-usage cpuset
devices-deny devices-allow pause-resume update ps kill-all events-stats events-oom delete-paused
rootless-delegated apparmor"
# Only when asked for by name: "selinux" needs a kernel booted with
# security=selinux (run.sh's second boot), where AppArmor is off.

# ------------------------------------------------------------------ helpers
# (used inside a test; $T is the test's scratch dir, $R its berth --root)

# fail REASON: end the test.  The first reason wins (a fail inside $(...) only
# ends that subshell, and what follows then fails for a less useful reason).
fail() { [ -s "$T/reason" ] || echo "$*" > "$T/reason"; echo "FAIL: $*" >&2; exit 1; }
skip() { echo "$*" > "$T/reason"; exit 77; }
note() { echo "# $*"; }
b() { "$BERTH" --root "$R" "$@"; }
# need_cmd CMD: skip the test while berth has no such subcommand
need_cmd() { "$BERTH" help "$1" >/dev/null 2>&1 || skip "berth has no $1 yet"; }

cgdir() { echo "$CG$CALLER_CG/berth/$1"; }

# bundle NAME [sed-expr...]: a bundle dir whose config.json is the source
# bundle's, flattened to one line (still valid JSON), root.path made absolute,
# and edited by the given sed -E expressions.  Prints the bundle dir.
bundle() {
  local dir="$T/$1"; shift
  mkdir -p "$dir"
  tr -d '\n' < "$SRC_BUNDLE/config.json" \
    | sed -E 's#"path":[[:space:]]*"rootfs"#"path": "'"$SRC_BUNDLE"'/rootfs"#' > "$dir/config.json"
  local e
  for e in "$@"; do
    sed -E -i "$e" "$dir/config.json"
  done
  echo >> "$dir/config.json"
  echo "$dir"
}
# sed expressions for bundle():
res() {  # res '"memory": {"limit": 1}' : add to linux.resources
  if grep -q '"resources"' "$SRC_BUNDLE/config.json"; then
    echo 's#"resources":[[:space:]]*\{#"resources": {'"$1"', #'
  else
    echo 's#"linux":[[:space:]]*\{#"linux": {"resources": {'"$1"'}, #'
  fi
}
add_cap() { echo 's#"CAP_KILL"#"CAP_KILL", "'"$1"'"#g'; }
add_device_rule() { echo 's#("devices":[[:space:]]*\[[^]]*)\]#\1, '"$1"']#'; }
bind_mount() {  # bind_mount HOSTDIR CONTAINERDIR
  echo 's#"mounts":[[:space:]]*\[#"mounts": [{"destination": "'"$2"'", "type": "bind", "source": "'"$1"'", "options": ["rbind", "rw"]}, #'
}
no_cgroupns() {
  echo 's#,[[:space:]]*\{[[:space:]]*"type":[[:space:]]*"cgroup"[[:space:]]*\}##'
}

# state_status ID: the "status" of berth state
state_status() { b state "$1" 2>/dev/null | tr -d '\n' | sed -nE 's/.*"status":[[:space:]]*"([a-z]+)".*/\1/p'; }
state_pid() { b state "$1" 2>/dev/null | tr -d '\n' | sed -nE 's/.*"pid":[[:space:]]*([0-9]+).*/\1/p'; }
# wait_for SECONDS CMD...: retry CMD every 0.1 s
wait_for() {
  local n=$(( $1 * 10 )); shift
  while [ $n -gt 0 ]; do "$@" && return 0; sleep 0.1; n=$((n - 1)); done
  return 1
}
file_has() { [ -s "$1" ] && grep -q -- "$2" "$1"; }
is_status() { [ "$(state_status "$1")" = "$2" ]; }
nprocs() { wc -l < "$(cgdir "$1")/cgroup.procs" 2>/dev/null || echo 0; }
nprocs_ge() { [ "$(nprocs "$1")" -ge "$2" ]; }
readcg() {  # readcg ID FILE: a file of the container's cgroup (fails loudly)
  local f; f="$(cgdir "$1")/$2"
  [ -r "$f" ] || fail "no cgroup file $f (cgroup dir: $(ls -d "$(cgdir "$1")" 2>&1))"
  cat "$f"
}
uptime_cs() { sed -E 's/^([0-9]+)\.([0-9]+) .*/\1\2/' /proc/uptime; }  # centiseconds
# run_d ID BUNDLE CMD...: berth run -d, stdout/stderr of the container to $T/ID.out
run_d() {
  local id=$1 bdl=$2; shift 2
  b run -d -b "$bdl" "$id" "$@" > "$T/$id.out" 2>&1 </dev/null \
    || fail "berth run -d $id failed: $(cat "$T/$id.out")"
  [ "$(state_status "$id")" = running ] || fail "$id: state is '$(state_status "$id")', not running"
}

# ------------------------------------------------------------------ tests

# (a) lifecycle smoke: foreground run prints and exits with the code
t_smoke_run() {
  local bd out rc
  bd=$(bundle b)
  out=$(b run -b "$bd" vm-smoke sh -c 'echo hi' 2>&1 </dev/null); rc=$?
  [ $rc = 0 ] || fail "run exited $rc: $out"
  [ "$out" = hi ] || fail "run printed '$out', not 'hi'"
  b run -b "$bd" vm-smoke3 sh -c 'exit 3' </dev/null; rc=$?
  [ $rc = 3 ] || fail "run of 'exit 3' exited $rc"
  b state vm-smoke >/dev/null 2>&1 && fail "state of vm-smoke still exists after run"
  return 0
}

# (a) run -d, state running, delete --force
t_smoke_detach() {
  local bd
  bd=$(bundle b)
  run_d vm-det "$bd" sleep 60
  b delete --force vm-det || fail "delete --force failed"
  b state vm-det >/dev/null 2>&1 && fail "state still answers after delete"
  [ -d "$(cgdir vm-det)" ] && fail "cgroup $(cgdir vm-det) remains after delete"
  return 0
}

# (b) the container is born in its cgroup
t_cgroup_born() {
  local bd bd2 pid want got inside
  want="0::$CALLER_CG/berth/vm-born"
  bd=$(bundle b)
  # First thing the user process does: look at its own cgroup.  With a cgroup
  # namespace (default config) it must be the namespace root.
  inside=$(b run -b "$bd" vm-born cat /proc/self/cgroup 2>&1 </dev/null) || fail "run: $inside"
  [ "$inside" = "0::/" ] || fail "inside (cgroupns): /proc/self/cgroup = '$inside', want '0::/'"
  # Without a cgroup namespace the full path shows.
  bd2=$(bundle nons "$(no_cgroupns)")
  grep -qE '\{[[:space:]]*"type":[[:space:]]*"cgroup"[[:space:]]*\}' "$bd2/config.json" \
    && fail "test bug: cgroup namespace not removed"
  inside=$(b run -b "$bd2" vm-born cat /proc/self/cgroup 2>&1 </dev/null) || fail "run (no cgroupns): $inside"
  [ "$inside" = "$want" ] || fail "inside (no cgroupns): /proc/self/cgroup = '$inside', want '$want'"
  # From outside, the running container process.
  run_d vm-born "$bd" sleep 60
  pid=$(state_pid vm-born); [ -n "$pid" ] || fail "no pid in state"
  got=$(cat /proc/$pid/cgroup)
  [ "$got" = "$want" ] || fail "/proc/$pid/cgroup = '$got', want '$want'"
  grep -qx "$pid" "$(cgdir vm-born)/cgroup.procs" || fail "pid $pid not in $(cgdir vm-born)/cgroup.procs"
  return 0
}

# (c) memory.max is what the config asks for
t_memory_max() {
  local bd v
  bd=$(bundle b "$(res '"memory": {"limit": 33554432}')")
  run_d vm-memmax "$bd" sleep 60
  v=$(readcg vm-memmax memory.max)
  [ "$v" = 33554432 ] || fail "memory.max = '$v', want 33554432"
  return 0
}

# (c) a container limited to 32 MiB that tries to hold 64 MiB is OOM-killed.
# The hog is bounded: without a working limit it holds 64 MiB, prints
# "survived" and exits 0 (an unbounded hog would be killed by the VM's global
# OOM killer and fake a pass).
t_memory_oom() {
  local bd out rc
  bd=$(bundle b "$(res '"memory": {"limit": 33554432}')")
  out=$(b run -b "$bd" vm-oom sh -c 'x=$(yes | head -c 67108864); echo survived ${#x}' 2>&1 </dev/null); rc=$?
  [ $rc = 137 ] || fail "run exited $rc, want 137 (output: $out)"
  case "$out" in *survived*) fail "the hog survived: $out" ;; esac
  return 0
}

# (d) pids.limit 20: 50 background sleeps get fork failures, <= 20 tasks
t_pids() {
  local bd v cur n
  bd=$(bundle b "$(res '"pids": {"limit": 20}')")
  # The inner shell forks until it fails (ash exits on a failed fork); its
  # sleeps stay, reparented to the outer shell, which stays up to be measured.
  run_d vm-pids "$bd" sh -c '
    sh -c "i=0; while [ \$i -lt 50 ]; do sleep 300 & i=\$((i+1)); done; echo spawned-all \$i"
    echo spawner-exit $?; sleep 300'
  wait_for 20 file_has "$T/vm-pids.out" spawner-exit || fail "spawner did not finish: $(cat "$T/vm-pids.out")"
  v=$(readcg vm-pids pids.max)
  [ "$v" = 20 ] || fail "pids.max = '$v', want 20"
  cur=$(readcg vm-pids pids.current)
  n=$(wc -l < "$(cgdir vm-pids)/cgroup.procs")
  note "pids.current=$cur procs=$n events: $(cat "$(cgdir vm-pids)/pids.events")"
  grep -qiE "can't fork|resource temporarily unavailable" "$T/vm-pids.out" \
    || fail "no fork failure reported: $(cat "$T/vm-pids.out")"
  [ "$cur" -le 20 ] || fail "pids.current = $cur > 20"
  [ "$n" -le 20 ] || fail "$n processes in the cgroup > 20"
  [ "$cur" -ge 15 ] || fail "pids.current = $cur: the limit did not let the shell reach it"
  return 0
}

# (e) cpu quota 10 ms / 100 ms -> cpu.max
t_cpu_max() {
  local bd v
  bd=$(bundle b "$(res '"cpu": {"quota": 10000, "period": 100000}')")
  run_d vm-cpumax "$bd" sleep 60
  v=$(readcg vm-cpumax cpu.max)
  [ "$v" = "10000 100000" ] || fail "cpu.max = '$v', want '10000 100000'"
  return 0
}

# (e) a busy loop under that quota uses <= ~12% over 2 s (cgroup's own counter)
t_cpu_usage() {
  local bd u0 u1 t0 t1 used wall pct
  bd=$(bundle b "$(res '"cpu": {"quota": 10000, "period": 100000}')")
  run_d vm-cpu "$bd" sh -c 'while :; do :; done'
  sleep 0.5
  u0=$(readcg vm-cpu cpu.stat | sed -n 's/^usage_usec //p'); t0=$(uptime_cs)
  sleep 2
  u1=$(readcg vm-cpu cpu.stat | sed -n 's/^usage_usec //p'); t1=$(uptime_cs)
  used=$((u1 - u0)); wall=$(( (t1 - t0) * 10000 ))
  pct=$(( used * 1000 / wall ))   # per mille
  note "usage ${used}us over ${wall}us = ${pct} per mille; $(readcg vm-cpu cpu.stat | tr '\n' ' ')"
  [ "$pct" -le 120 ] || fail "busy loop used $pct per mille of a CPU (> 120) under a 10% quota"
  [ "$pct" -ge 30 ] || fail "busy loop used only $pct per mille: is it running?"
  grep -qE '^nr_throttled [1-9]' "$(cgdir vm-cpu)/cpu.stat" || fail "nr_throttled is 0"
  return 0
}

# (e) cpuset pins Cpus_allowed_list
t_cpuset() {
  local bd out v
  [ "$(nproc)" -ge 2 ] || skip "needs 2 CPUs"
  bd=$(bundle b "$(res '"cpu": {"cpus": "1"}')")
  out=$(b run -b "$bd" vm-cpuset sh -c 'grep Cpus_allowed_list /proc/self/status' 2>&1 </dev/null) \
    || fail "run: $out"
  v=$(echo "$out" | sed -nE 's/^Cpus_allowed_list:[[:space:]]*//p')
  [ "$v" = 1 ] || fail "Cpus_allowed_list = '$v' ($out), want 1"
  return 0
}

# (f) default device rules: mknod + open of a block device fails with EPERM,
# even with CAP_MKNOD (without it the capability check would fail first and
# prove nothing); the default devices still work.
t_devices_deny() {
  local bd out rc
  bd=$(bundle b "$(add_cap CAP_MKNOD)")
  out=$(b run -b "$bd" vm-devdeny sh -c '
    echo x > /dev/null || { echo "default /dev/null unusable"; exit 10; }
    [ "$(head -c 3 /dev/zero | wc -c)" = 3 ] || { echo "default /dev/zero unusable"; exit 11; }
    mknod /dev/loop0x b 7 0 && head -c1 /dev/loop0x >/dev/null' 2>&1 </dev/null); rc=$?
  note "rc=$rc output: $out"
  [ $rc = 10 ] || [ $rc = 11 ] && fail "$out"
  [ $rc != 0 ] || fail "mknod + open of b 7:0 succeeded under the default device rules"
  echo "$out" | grep -qi "not permitted" || fail "failed, but not with EPERM: $out"
  return 0
}

# (f) a rule allowing b 7:0 makes the same mknod + open succeed
t_devices_allow() {
  local bd out rc
  [ -e /dev/loop0 ] || note "no loop driver in the VM kernel; ENXIO would be acceptable"
  bd=$(bundle b "$(add_cap CAP_MKNOD)" \
    "$(add_device_rule '{"allow": true, "type": "b", "major": 7, "minor": 0, "access": "rwm"}')")
  grep -q '"major": 7' "$bd/config.json" || fail "test bug: device rule not added"
  out=$(b run -b "$bd" vm-devallow sh -c 'mknod /dev/loop0x b 7 0 && head -c1 /dev/loop0x >/dev/null && echo opened' \
    2>&1 </dev/null); rc=$?
  note "rc=$rc output: $out"
  echo "$out" | grep -qi "not permitted" && fail "allowed device refused: $out"
  [ $rc = 0 ] && [ "$out" = opened ] || fail "mknod/open failed (rc $rc): $out"
  return 0
}

# pause/resume: a counter stops advancing while paused, state says paused
t_pause_resume() {
  local bd a b2 c rc
  need_cmd pause; need_cmd resume
  bd=$(bundle b)
  run_d vm-pause "$bd" sh -c 'i=0; while :; do i=$((i+1)); echo $i; sleep 0.1; done'
  wait_for 10 file_has "$T/vm-pause.out" 3 || fail "counter not running: $(cat "$T/vm-pause.out")"
  b pause vm-pause || fail "pause failed"
  [ "$(state_status vm-pause)" = paused ] || fail "state after pause: '$(state_status vm-pause)'"
  grep -q '^frozen 1' "$(cgdir vm-pause)/cgroup.events" || fail "cgroup.events: $(cat "$(cgdir vm-pause)/cgroup.events")"
  sleep 0.3; a=$(wc -l < "$T/vm-pause.out")
  sleep 1.5; b2=$(wc -l < "$T/vm-pause.out")
  [ "$a" = "$b2" ] || fail "counter advanced while paused: $a -> $b2"
  if "$BERTH" help exec >/dev/null 2>&1; then
    timeout -s KILL 15 "$BERTH" --root "$R" exec vm-pause true </dev/null; rc=$?
    [ $rc = 0 ] && fail "exec into a paused container succeeded (runc refuses)"
    [ $rc = 137 ] && fail "exec into a paused container hung (runc refuses at once)"
  fi
  b resume vm-pause || fail "resume failed"
  [ "$(state_status vm-pause)" = running ] || fail "state after resume: '$(state_status vm-pause)'"
  sleep 1.5; c=$(wc -l < "$T/vm-pause.out")
  [ "$c" -gt "$b2" ] || fail "counter did not advance after resume: $b2 -> $c"
  return 0
}

# update: raise and lower memory and pids of a running container
t_update() {
  local bd sh
  need_cmd update
  sh=$T/shared; mkdir -p "$sh"
  bd=$(bundle b "$(res '"memory": {"limit": 33554432}, "pids": {"limit": 20}')" "$(bind_mount "$sh" /shared)")
  run_d vm-upd "$bd" sh -c '
    while [ ! -e /shared/go ]; do sleep 0.1; done
    sh -c "i=0; while [ \$i -lt 50 ]; do sleep 300 & i=\$((i+1)); done; echo spawned-all \$i"
    echo spawner-exit $?; sleep 300'
  b update --memory 67108864 --pids-limit 80 vm-upd || fail "update (raise) failed"
  [ "$(readcg vm-upd memory.max)" = 67108864 ] || fail "memory.max after raise: $(readcg vm-upd memory.max)"
  [ "$(readcg vm-upd pids.max)" = 80 ] || fail "pids.max after raise: $(readcg vm-upd pids.max)"
  touch "$sh/go"
  wait_for 20 file_has "$T/vm-upd.out" spawner-exit || fail "spawner did not finish: $(cat "$T/vm-upd.out")"
  grep -q 'spawned-all 50' "$T/vm-upd.out" || fail "raised pids limit not in effect: $(cat "$T/vm-upd.out")"
  b update --memory 50331648 --pids-limit 60 vm-upd || fail "update (lower) failed"
  [ "$(readcg vm-upd memory.max)" = 50331648 ] || fail "memory.max after lower: $(readcg vm-upd memory.max)"
  [ "$(readcg vm-upd pids.max)" = 60 ] || fail "pids.max after lower: $(readcg vm-upd pids.max)"
  echo '{"pids": {"limit": 70}}' | b update --resources - vm-upd || fail "update --resources - failed"
  [ "$(readcg vm-upd pids.max)" = 70 ] || fail "pids.max after --resources: $(readcg vm-upd pids.max)"
  return 0
}

# ps --format json lists exactly the container's pids
t_ps() {
  local bd got want
  need_cmd ps
  bd=$(bundle b)
  run_d vm-ps "$bd" sh -c 'sleep 300 & sleep 300 & sleep 300 & wait'
  wait_for 10 nprocs_ge vm-ps 4 || fail "not 4 processes in the cgroup: $(nprocs vm-ps)"
  got=$(b ps --format json vm-ps | tr -c '0-9' '\n' | grep . | sort -n | tr '\n' ' ')
  want=$(sort -n "$(cgdir vm-ps)/cgroup.procs" | tr '\n' ' ')
  note "ps: $got cgroup.procs: $want"
  [ -n "$want" ] && [ "$got" = "$want" ] || fail "ps --format json gave '$got', cgroup.procs has '$want'"
  return 0
}

# kill --all kills a container with several processes
t_kill_all() {
  local bd
  "$BERTH" help kill 2>&1 | grep -q -- '--all' || skip "berth kill has no --all yet"
  bd=$(bundle b)
  run_d vm-killall "$bd" sh -c 'sleep 300 & sleep 300 & sleep 300 & wait'
  wait_for 10 nprocs_ge vm-killall 4 || fail "not 4 processes in the cgroup: $(nprocs vm-killall)"
  b kill --all vm-killall KILL || fail "kill --all failed"
  wait_for 10 [ ! -s "$(cgdir vm-killall)/cgroup.procs" ] \
    || fail "processes left: $(cat "$(cgdir vm-killall)/cgroup.procs")"
  wait_for 5 is_status vm-killall stopped || fail "state after kill --all: $(state_status vm-killall)"
  b delete vm-killall || fail "delete of the stopped container failed"
  [ -d "$(cgdir vm-killall)" ] && fail "cgroup remains after delete"
  return 0
}

# events --stats: one runc-shaped JSON with the memory limit
t_events_stats() {
  local bd out
  need_cmd events
  bd=$(bundle b "$(res '"memory": {"limit": 33554432}, "pids": {"limit": 20}')")
  run_d vm-stats "$bd" sleep 60
  out=$(timeout -s KILL 15 "$BERTH" --root "$R" events --stats vm-stats 2>&1) || fail "events --stats: $out"
  note "$out"
  echo "$out" | grep -qE '"type":[[:space:]]*"stats"' || fail "no \"type\": \"stats\""
  echo "$out" | grep -qE '"limit":[[:space:]]*33554432' || fail "memory limit 33554432 not in stats"
  echo "$out" | grep -qE '"pids":' || fail "no pids in stats"
  return 0
}

# events: an OOM kill inside the container is reported as an "oom" event
t_events_oom() {
  local bd evpid out
  need_cmd events
  bd=$(bundle b "$(res '"memory": {"limit": 33554432}')")
  # The hog is a child: the OOM killer takes it, the container lives on.
  run_d vm-evoom "$bd" sh -c 'sleep 1; (x=$(yes | head -c 67108864); echo survived); sleep 300'
  timeout 20 "$BERTH" --root "$R" events --interval 1s vm-evoom > "$T/events" 2>&1 &
  evpid=$!
  wait_for 20 file_has "$T/events" '"oom"' || {
    note "memory.events: $(cat "$(cgdir vm-evoom)/memory.events" 2>&1)"
    fail "no oom event: $(cat "$T/events")"; }
  grep -q survived "$T/vm-evoom.out" && fail "the hog survived"
  grep -qE '^oom_kill [1-9]' "$(cgdir vm-evoom)/memory.events" || fail "memory.events oom_kill is 0"
  out=$(timeout -s KILL 15 "$BERTH" --root "$R" events --stats vm-evoom 2>&1) || fail "events --stats: $out"
  echo "$out" | grep -qE '"(oom_kill|failcnt)":[[:space:]]*[1-9]' \
    || fail "events --stats shows no oom_kill/failcnt after an OOM kill: $out"
  kill $evpid 2>/dev/null
  return 0
}

# delete --force of a paused container succeeds and removes the cgroup
t_delete_paused() {
  local bd
  need_cmd pause
  bd=$(bundle b)
  run_d vm-delp "$bd" sh -c 'sleep 300 & sleep 300'
  b pause vm-delp || fail "pause failed"
  timeout -s KILL 20 "$BERTH" --root "$R" delete --force vm-delp || fail "delete --force of a paused container failed"
  [ -d "$(cgdir vm-delp)" ] && fail "cgroup remains: $(ls "$(cgdir vm-delp)")"
  return 0
}

# Rootless with a delegated cgroup (issue 4): a non-root user who owns a
# cgroup subtree (as systemd's Delegate=yes gives one) runs `berth spec
# --rootless` and `berth run` with limits in an absolute cgroupsPath inside
# it; they are applied there, without writing anything above it.
RL_UID=1000
rl_cleanup() {
  local d
  for d in $(find "$CG/berth-rl" -mindepth 1 -depth -type d 2>/dev/null) "$CG/berth-rl"; do
    [ -d "$d" ] || continue
    echo 1 > "$d/cgroup.kill" 2>/dev/null
    rmdir "$d" 2>/dev/null || { sleep 0.5; rmdir "$d" 2>/dev/null; }
  done
}
# as_rl CMD: run CMD as the rootless user, from inside its delegated cgroup
as_rl() {
  sh -c 'echo $$ > "$1/cgroup.procs" && shift && exec su rl -s /bin/sh -c "$*"' \
    as_rl "$CG/berth-rl/shell" "cd $T/rl && HOME=$T/rl XDG_DATA_HOME=$T/rl/data $*"
}
t_rootless_delegated() {
  local dg=$CG/berth-rl home=$T/rl rb out pid v
  trap rl_cleanup EXIT
  grep -q '^rl:' /etc/passwd 2>/dev/null || echo "rl:x:$RL_UID:$RL_UID::$home:/bin/sh" >> /etc/passwd
  grep -q '^rl:' /etc/group 2>/dev/null || echo "rl:x:$RL_UID:" >> /etc/group
  chmod 755 "$T"; mkdir -p "$home/b" "$home/run"; chown -R $RL_UID:$RL_UID "$home"
  # The delegation: the root enables the controllers for the subtree and
  # hands the user its directory and the files a delegatee may write.
  echo "+memory +pids" > "$CG/cgroup.subtree_control" || fail "enable memory, pids at the root"
  mkdir -p "$dg/shell" || fail "mkdir $dg/shell"
  chown $RL_UID:$RL_UID "$dg" "$dg/cgroup.procs" "$dg/cgroup.threads" "$dg/cgroup.subtree_control" \
    "$dg/shell" "$dg/shell/cgroup.procs" || fail "chown the delegated cgroup"
  rb="$BERTH --root $T/rl/run"
  out=$(as_rl "cd b && $rb spec --rootless" 2>&1) || fail "spec --rootless as rl: $out"
  ln -s "$SRC_BUNDLE/rootfs" "$home/b/rootfs"
  tr -d '\n' < "$home/b/config.json" | sed -E \
    -e 's#"linux":[[:space:]]*\{#"linux": {"cgroupsPath": "/berth-rl/c1", "resources": {"memory": {"limit": 33554432}, "pids": {"limit": 20}}, #' \
    > "$home/b/config.new" && mv "$home/b/config.new" "$home/b/config.json"
  chown $RL_UID:$RL_UID "$home/b/config.json"
  # The container keeps its stdio: to a file, or $(...) would wait for it.
  as_rl "$rb run -d -b b c1 sleep 60 > $home/c1.out 2>&1 </dev/null" \
    || fail "rootless run -d: $(cat "$home/c1.out")"
  out=$(cat "$home/c1.out")
  echo "$out" | grep -q 'limits are not applied' && fail "berth says the limits are not applied: $out"
  [ "$(cat "$dg/c1/memory.max" 2>&1)" = 33554432 ] || fail "memory.max = '$(cat "$dg/c1/memory.max" 2>&1)'"
  [ "$(cat "$dg/c1/pids.max" 2>&1)" = 20 ] || fail "pids.max = '$(cat "$dg/c1/pids.max" 2>&1)'"
  pid=$(as_rl "$rb state c1" | sed -n 's/.*"pid":[[:space:]]*\([0-9]*\).*/\1/p')
  grep -qx "$pid" "$dg/c1/cgroup.procs" || fail "container pid '$pid' not in $dg/c1: $(cat "$dg/c1/cgroup.procs")"
  [ "$(sed -n 's/^Uid:[[:space:]]*\([0-9]*\).*/\1/p' /proc/$pid/status)" = $RL_UID ] \
    || fail "container process is not uid $RL_UID outside"
  # The limit holds inside: a fork loop stops at 20 tasks.
  as_rl "$rb exec c1 sh -c 'i=0; while [ \$i -lt 40 ]; do sleep 5 & i=\$((i+1)); done 2>/dev/null; echo started' > $home/exec.out 2>&1 </dev/null"
  out=$(cat "$home/exec.out")
  # ash gives up at the first failed fork: the loop stopped at the limit.
  v=$(cat "$dg/c1/pids.current")
  [ "$v" -le 20 ] || fail "pids.current $v > 20"
  [ "$v" -ge 15 ] || fail "pids.current $v: the fork loop did not run ($out)"
  note "exec with a fork loop: $out; pids.current $(cat "$dg/c1/pids.current")"
  out=$(as_rl "$rb delete --force c1" 2>&1) || fail "rootless delete --force: $out"
  [ -d "$dg/c1" ] && fail "cgroup $dg/c1 remains after delete"
  return 0
}

# process.apparmorProfile (and exec --apparmor) confine the process: the
# test profile (tests/vm/apparmor-profile, compiled on the host by
# mkinitramfs.sh) allows everything but writing /tmp/denied.
t_apparmor() {
  local aa=/sys/kernel/security/apparmor en bd bd2 bd3 out rc
  en=$(cat /sys/module/apparmor/parameters/enabled 2>&1)
  [ "$en" = Y ] || skip "AppArmor is not enabled in the VM kernel (/sys/module/apparmor/parameters/enabled: $en)"
  [ -e "$aa/.load" ] || skip "no $aa/.load (securityfs: $(grep securityfs /proc/mounts))"
  [ -s /tests/apparmor-policy.bin ] || skip "no compiled policy in the initramfs (no apparmor_parser on the host)"
  if ! grep -q '^berth-test ' "$aa/profiles" 2>/dev/null; then
    cat /tests/apparmor-policy.bin > "$aa/.load" || fail "loading /tests/apparmor-policy.bin into $aa/.load failed"
  fi
  grep -q '^berth-test (enforce)' "$aa/profiles" || fail "profile not loaded: $(cat "$aa/profiles" 2>&1)"
  b features | tr -d ' \n' | grep -q '"apparmor":{"enabled":true}' \
    || fail "features does not say apparmor enabled: $(b features | tr -d ' \n')"
  bd=$(bundle aa 's#"process":[[:space:]]*\{#"process": {"apparmorProfile": "berth-test", #')
  grep -q '"apparmorProfile": "berth-test"' "$bd/config.json" || fail "test bug: apparmorProfile not added"
  out=$(b run -b "$bd" vm-aa sh -c '
    echo "label=$(cat /proc/self/attr/current)"
    echo x > /tmp/ok && echo ok-written
    echo x > /tmp/denied && echo denied-written
    true' 2>&1 </dev/null); rc=$?
  note "rc=$rc output: $out"
  [ $rc = 0 ] || fail "run exited $rc: $out"
  echo "$out" | grep -qx 'label=berth-test (enforce)' || fail "not confined by berth-test: $out"
  echo "$out" | grep -qx ok-written || fail "writing /tmp/ok failed: $out"
  echo "$out" | grep -q denied-written && fail "writing /tmp/denied succeeded: $out"
  echo "$out" | grep -q 'Permission denied' || fail "writing /tmp/denied failed, but not with EACCES: $out"
  rm -f "$SRC_BUNDLE/rootfs/tmp/ok"
  # exec: the container's profile by default, --apparmor another (here: the
  # container has none, exec asks for one).
  bd2=$(bundle plain)
  run_d vm-aa-exec "$bd2" sleep 60
  out=$(b exec vm-aa-exec cat /proc/self/attr/current 2>&1 </dev/null) || fail "exec: $out"
  [ "$out" = unconfined ] || fail "exec without --apparmor: label '$out', want unconfined"
  out=$(b exec --apparmor berth-test vm-aa-exec sh -c 'cat /proc/self/attr/current; echo x > /tmp/denied && echo denied-written' 2>&1 </dev/null)
  note "exec --apparmor: $out"
  echo "$out" | grep -qx 'berth-test (enforce)' || fail "exec --apparmor: not confined: $out"
  echo "$out" | grep -q denied-written && fail "exec --apparmor: writing /tmp/denied succeeded: $out"
  # Without noNewPrivileges the filter is loaded while berth still holds
  # CAP_SYS_ADMIN, before the capabilities are dropped. The label must be set
  # before that: this filter refuses fstatfs, which berth's procfs check on
  # the attr file needs (it failed when the filter went first).
  bd3=$(bundle aa-scmp \
    's#"process":[[:space:]]*\{#"process": {"apparmorProfile": "berth-test", #' \
    's#"noNewPrivileges":[[:space:]]*true#"noNewPrivileges": false#' \
    's#"linux":[[:space:]]*\{#"linux": {"seccomp": {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["fstatfs", "statfs"], "action": "SCMP_ACT_ERRNO"}]}, #')
  grep -q '"noNewPrivileges": false' "$bd3/config.json" || fail "test bug: noNewPrivileges not cleared"
  out=$(b run -b "$bd3" vm-aa-scmp sh -c '
    echo "label=$(cat /proc/self/attr/current)"
    stat -f / >/dev/null 2>&1 && echo statfs-allowed
    true' 2>&1 </dev/null); rc=$?
  note "no_new_privs=false + seccomp: rc=$rc output: $out"
  [ $rc = 0 ] || fail "run without noNewPrivileges, with seccomp and a profile, exited $rc: $out"
  echo "$out" | grep -qx 'label=berth-test (enforce)' || fail "nnp=false + seccomp: not confined: $out"
  echo "$out" | grep -q statfs-allowed && fail "nnp=false: the seccomp filter is not applied: $out"
  # A profile the kernel does not have fails at exec, with its name.
  out=$(b run -b "$(bundle nope 's#"process":[[:space:]]*\{#"process": {"apparmorProfile": "berth-no-such-profile", #')" \
    vm-aa-nope true 2>&1 </dev/null); rc=$?
  note "missing profile: rc=$rc $out"
  [ $rc != 0 ] || fail "run with a missing profile succeeded"
  echo "$out" | grep -q 'berth-no-such-profile' || fail "error does not name the profile: $out"
  return 0
}

# process.selinuxLabel, linux.mountLabel and exec --process-label (the second
# boot, security=selinux; not in ALL_TESTS): the test policy
# (tests/vm/selinux-policy.conf, compiled on the host by mkinitramfs.sh) lets
# container_t read every file but those of secret_t, which kernel_t (the
# suite, berth) can read.
t_selinux() {
  local fs=/sys/fs/selinux ctx=system_u:system_r:container_t
  local flabel=system_u:object_r:container_file_t sec=$T/secret bd bd2 out rc
  grep -qw selinuxfs /proc/filesystems \
    || fail "SELinux is not enabled in the VM kernel (no selinuxfs; cmdline: $(cat /proc/cmdline))"
  grep -q " $fs selinuxfs " /proc/mounts || mount -t selinuxfs selinuxfs "$fs" || fail "mount selinuxfs on $fs"
  [ -s /tests/selinux-policy.bin ] || fail "no compiled policy in the initramfs (no checkpolicy on the host?)"
  # No policy yet: every process is "kernel", no label can be valid, and
  # berth says SELinux is not enabled.
  if [ "$(tr -d '\000' < /proc/self/attr/current)" = kernel ]; then
    b features | tr -d ' \n' | grep -q '"selinux":{"enabled":false}' \
      || fail "features without a policy does not say selinux disabled: $(b features | tr -d ' \n')"
    cat /tests/selinux-policy.bin > "$fs/load" || fail "loading /tests/selinux-policy.bin into $fs/load failed: $(dmesg | grep -i selinux | tail -5)"
  fi
  out=$(tr -d '\000' < /proc/self/attr/current)
  [ "$out" = system_u:system_r:kernel_t ] || fail "after the policy load the suite runs as '$out', not kernel_t"
  b features | tr -d ' \n' | grep -q '"selinux":{"enabled":true}' \
    || fail "features does not say selinux enabled: $(b features | tr -d ' \n')"
  # A secret_t file, read by the suite (kernel_t) under enforcing.
  mkdir -p "$sec"
  trap 'umount "$sec" 2>/dev/null' EXIT
  mount -t tmpfs -o "context=system_u:object_r:secret_t" tmpfs "$sec" || fail "mount a secret_t tmpfs on $sec"
  echo s3cret > "$sec/file"
  echo 1 > "$fs/enforce" || fail "echo 1 > $fs/enforce"
  [ "$(cat "$fs/enforce")" = 1 ] || fail "not enforcing: $(cat "$fs/enforce")"
  [ "$(cat "$sec/file")" = s3cret ] || fail "the suite (kernel_t) cannot read $sec/file"
  bd=$(bundle se \
    's#"process":[[:space:]]*\{#"process": {"selinuxLabel": "'"$ctx"'", #' \
    's#"linux":[[:space:]]*\{#"linux": {"mountLabel": "'"$flabel"'", #' \
    "$(bind_mount "$sec" /secret)")
  grep -q '"selinuxLabel": "'"$ctx"'"' "$bd/config.json" || fail "test bug: selinuxLabel not added"
  grep -q '"mountLabel": "'"$flabel"'"' "$bd/config.json" || fail "test bug: mountLabel not added"
  out=$(b run -b "$bd" vm-se sh -c '
    echo "label=$(tr -d "\000" < /proc/self/attr/current)"
    cat /secret/file && echo secret-read
    echo x > /dev/shm/x && cat /dev/shm/x >/dev/null && echo shm-ok
    grep -E " /dev(/pts|/shm)? " /proc/self/mountinfo
    true' 2>&1 </dev/null); rc=$?
  note "rc=$rc output: $out"
  [ $rc = 0 ] || fail "run exited $rc: $out"
  # (a) the label, (b) it confines: EACCES on secret_t under enforcing.
  echo "$out" | grep -qx "label=$ctx" || fail "container not in $ctx: $out"
  echo "$out" | grep -q secret-read && fail "container_t read the secret_t file: $out"
  echo "$out" | grep -q 'cat: can.t open ./secret/file.: Permission denied' \
    || fail "reading /secret/file failed, but not with EACCES: $out"
  echo "$out" | grep -qx shm-ok || fail "container cannot use its own /dev/shm: $out"
  # (c) the mount label: context= in the super options of /dev, /dev/pts, /dev/shm.
  for m in /dev /dev/pts /dev/shm; do
    echo "$out" | grep -E " $m " | grep -q "context=$flabel" \
      || fail "$m has no context=$flabel in mountinfo: $(echo "$out" | grep -E " $m ")"
  done
  # (d) exec: the container's label by default, --process-label another.
  run_d vm-se-exec "$bd" sleep 60
  out=$(b exec vm-se-exec sh -c 'tr -d "\000" < /proc/self/attr/current' 2>&1 </dev/null) || fail "exec: $out"
  [ "$out" = "$ctx" ] || fail "exec without --process-label: label '$out', want the container's $ctx"
  bd2=$(bundle plain "$(bind_mount "$sec" /secret)")
  run_d vm-se-plain "$bd2" sleep 60
  out=$(b exec vm-se-plain sh -c 'tr -d "\000" < /proc/self/attr/current; echo; cat /secret/file' 2>&1 </dev/null) || fail "exec: $out"
  # The control: unlabelled, the same root process reads the file, so the
  # EACCES above is SELinux's, not DAC's.
  [ "$out" = "system_u:system_r:kernel_t
s3cret" ] || fail "exec into an unlabelled container: '$out', want kernel_t and the secret"
  out=$(b exec --process-label "$ctx" vm-se-plain sh -c 'tr -d "\000" < /proc/self/attr/current; echo; cat /secret/file && echo secret-read' 2>&1 </dev/null)
  note "exec --process-label: $out"
  echo "$out" | grep -qx "$ctx" || fail "exec --process-label: not in $ctx: $out"
  echo "$out" | grep -q secret-read && fail "exec --process-label: read the secret_t file: $out"
  echo "$out" | grep -q 'Permission denied' || fail "exec --process-label: not EACCES: $out"
  dmesg | grep -q 'avc:  denied  { read } .*scontext=system_u:system_r:container_t tcontext=system_u:object_r:secret_t' \
    || fail "no SELinux denial of container_t reading secret_t in the kernel log: $(dmesg | grep avc | tail -3)"
  # A label the policy does not know fails at the attr write, naming the field.
  out=$(b run -b "$(bundle nope 's#"process":[[:space:]]*\{#"process": {"selinuxLabel": "system_u:system_r:nope_t", #')" \
    vm-se-nope true 2>&1 </dev/null); rc=$?
  note "unknown type: rc=$rc $out"
  [ $rc != 0 ] || fail "run with an unknown label succeeded"
  echo "$out" | grep -q 'process.selinuxLabel "system_u:system_r:nope_t"' || fail "error does not name the field and label: $out"
  echo 0 > "$fs/enforce"
  return 0
}

# (g) after everything: no cgroup named berth, no process outside the root
# cgroup, no leftover mounts or layers
t_leaks() {
  local left bad p c
  # The shared parent ($CALLER_CG/berth) stays, as runc's and podman's do;
  # nothing may be left below it, and no other berth-named cgroup at all.
  left=$(find "$CG" \( -path '*/berth/*' -o -name 'berth?*' \) -type d 2>/dev/null)
  [ -z "$left" ] || fail "cgroups left: $left"
  bad=
  for p in /proc/[0-9]*; do
    grep -q '^State:[[:space:]]*Z' "$p/status" 2>/dev/null && continue   # zombies
    c=$(cat "$p/cgroup" 2>/dev/null) || continue
    [ "$c" = "0::${CALLER_CG:-/}" ] || [ -z "$c" ] || bad="$bad ${p#/proc/}($(cat "$p/comm" 2>/dev/null):$c)"
  done
  [ -z "$bad" ] || fail "processes outside the caller's cgroup:$bad"
  left=$(grep -E 'berth|overlay' /proc/mounts)
  [ -z "$left" ] || fail "mounts left: $left"
  left=$(ls -A /var/lib/berth/layers 2>/dev/null)
  [ -z "$left" ] || fail "layers left in /var/lib/berth/layers: $left"
  return 0
}

# ------------------------------------------------------------------ runner

if [ "$1" = --one ]; then
  name=$2; T=/tmp/t-$name; R=/run/t-$name
  mkdir -p "$T" "$R"
  "t_$(echo "$name" | tr - _)"
  exit $?
fi

# Delete whatever a test left in its --root.
cleanup_root() {
  local r=$1 id
  for id in $(ls "$r" 2>/dev/null); do
    [ -d "$r/$id" ] || continue
    timeout -s KILL 20 "$BERTH" --root "$r" delete --force "$id" </dev/null \
      || echo "cleanup: berth delete --force $id failed"
  done
}
# pgroup_members PGID: pids in that process group
pgroup_members() {
  local p
  for p in /proc/[0-9]*; do
    set -- $(cat "$p/stat" 2>/dev/null | sed 's/^[0-9]* (.*) //')
    [ "${3:-}" = "$PGID" ] && echo "${p#/proc/}"
  done
}
# What every process of a hung test is blocked on (for the lead to read).
describe_hung() {
  local p
  for p in $(pgroup_members); do
    echo "hung: pid $p [$(tr '\0' ' ' < /proc/$p/cmdline 2>/dev/null)] wchan=$(cat /proc/$p/wchan 2>/dev/null)"
    ls -l /proc/$p/fd 2>/dev/null | sed -n 's/.* \([0-9]* -> .*\)/      fd \1/p'
  done
}
# After a timed-out test only: kill and remove the cgroups it left, so one hung
# test does not fail the leak check or starve the next ones.
sweep_cgroups() {
  local d
  for d in $(find "$CG$CALLER_CG/berth" -mindepth 1 -depth -type d 2>/dev/null) "$CG$CALLER_CG/berth"; do
    [ -d "$d" ] || continue
    echo 1 > "$d/cgroup.kill" 2>/dev/null
    echo 0 > "$d/cgroup.freeze" 2>/dev/null
    rmdir "$d" 2>/dev/null || { sleep 0.5; rmdir "$d" 2>/dev/null; } \
      || echo "sweep: cannot remove $d"
  done
}

# Time budget for the whole suite (kernel command line berth.budget=SECONDS,
# set by run.sh from its own timeout): a hung berth must not eat the VM's
# timeout; what does not fit is reported as FAIL "not run".
budget=$(sed -n 's/.*berth\.budget=\([0-9]*\).*/\1/p' /proc/cmdline)
deadline=$(( $(uptime_cs) + ${budget:-600} * 100 ))
# berth.verbose=1: print the log of passing tests too
grep -q 'berth\.verbose=1' /proc/cmdline && verbose=1 || verbose=

tests=${*:-$ALL_TESTS}
pass=0 nfail=0 nskip=0 smoke_failed= smoke_passed=
for name in $tests; do
  [ "$name" = leaks ] && continue
  T=/tmp/t-$name; R=/run/t-$name
  rm -rf "$T"; mkdir -p "$T"
  start=$(uptime_cs)
  limit=$(( (deadline - start) / 100 - 10 ))
  cap=$TEST_TIMEOUT
  # An OOM kill's reclaim is slow under TCG on a busy host, and this test
  # waits up to 20 s for the event and 15 s for the stats by itself.
  [ "$name" = events-oom ] && cap=$((TEST_TIMEOUT * 2))
  [ $limit -gt $cap ] && limit=$cap
  if [ $limit -lt 5 ]; then
    echo "BERTH-TEST FAIL $name: not run, the suite's time budget is used up"
    nfail=$((nfail + 1)); continue
  fi
  # When berth cannot run a container at all, the rest would only time out.
  if [ -n "$smoke_failed" ] && [ "$smoke_failed" != "$name" ]; then
    case $name in smoke-*) ;; *)
      echo "BERTH-TEST FAIL $name: not run, berth cannot run a container ($smoke_failed failed)"
      nfail=$((nfail + 1)); continue ;;
    esac
  fi
  # Own process group, so a hung test is killed with every berth it started.
  setsid sh "$0" --one "$name" > "$T.log" 2>&1 </dev/null &
  PGID=$!
  timed_out=
  while kill -0 $PGID 2>/dev/null; do
    if [ $(( $(uptime_cs) - start )) -ge $(( limit * 100 )) ]; then
      timed_out=1
      describe_hung >> "$T.log" 2>&1
      kill -KILL -$PGID 2>/dev/null
      break
    fi
    sleep 0.2
  done
  wait $PGID; rc=$?
  secs=$(( ($(uptime_cs) - start) / 100 ))
  cleanup_root "$R" >> "$T.log" 2>&1
  [ -n "$timed_out" ] && sweep_cgroups >> "$T.log" 2>&1
  reason=$(cat "$T/reason" 2>/dev/null)
  if [ -n "$timed_out" ]; then
    rc=1; reason="timed out after ${limit}s${reason:+ ($reason)}"
  fi
  case $rc in
    0) echo "BERTH-TEST PASS $name (${secs}s)"; pass=$((pass + 1))
       [ -n "$verbose" ] && sed 's/^/    | /' "$T.log"
       case $name in smoke-*) smoke_passed=1; smoke_failed= ;; esac ;;
    77) echo "BERTH-TEST SKIP $name: $reason"; nskip=$((nskip + 1)) ;;
    *)
      echo "BERTH-TEST FAIL $name: ${reason:-exit status $rc} (${secs}s)"
      tail -n 40 "$T.log" | sed 's/^/    | /'
      nfail=$((nfail + 1))
      case $name in smoke-*) [ -n "$smoke_passed" ] || smoke_failed="${smoke_failed:+$smoke_failed and }$name" ;; esac ;;
  esac
done
# The leak check always runs last, after every other test's cleanup.
T=/tmp/t-leaks; R=/run/t-leaks; rm -rf "$T"; mkdir -p "$T"
if sh "$0" --one leaks > "$T.log" 2>&1 </dev/null; then
  echo "BERTH-TEST PASS leaks"; pass=$((pass + 1))
else
  echo "BERTH-TEST FAIL leaks: $(cat "$T/reason" 2>/dev/null)"; sed 's/^/    | /' "$T.log"
  nfail=$((nfail + 1))
fi
echo "BERTH-TEST DONE pass=$pass fail=$nfail skip=$nskip"
