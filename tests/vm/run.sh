#!/bin/bash
# Boot Debian's kernel under qemu (TCG) with an initramfs holding a static
# berth and the cgroup suite, on a pure cgroup-v2 host; report its results.
# Called by `make test-vm` (which installs the packages, builds the static
# berth and the busybox bundle first).
#
#   tests/vm/run.sh                     build the initramfs, boot, check
#   tests/vm/run.sh pids cpu-max        only these tests (plus the leak check)
#   tests/vm/run.sh selinux             only the second (SELinux) boot
#   tests/vm/run.sh --parse FILE        only check an existing console log
#
# Environment: BERTH_STATIC (default target/x86_64-unknown-linux-gnu/release/berth),
# KERNEL_VERSION (default: the newest /lib/modules/<v> that has /boot/vmlinuz-<v>;
# not `uname -r`, the host runs another kernel), VM_TIMEOUT (qemu's, seconds, default
# 300), VM_BUDGET (the in-VM suite's, default 180),
# VM_OUT (default tests/vm/out), VM_VERBOSE=1 (print the logs of passing tests too).
#
# Two boots: the default one (AppArmor) runs the suite, a second one with
# security=selinux runs the selinux test (console-selinux.log).
# Exit status 0 only if every VM booted printed "BERTH-TEST DONE" with fail=0.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
out=${VM_OUT:-$here/out}
berth=${BERTH_STATIC:-$repo/target/x86_64-unknown-linux-gnu/release/berth}
bundle=${VM_BUNDLE:-$repo/bundles/busybox}
vm_timeout=${VM_TIMEOUT:-300}

die() { echo "test-vm: $*" >&2; exit 1; }

# parse LOG: print the verdict from a console log; the exit status is the verdict
parse() {
  local log=$1 done_line fails skips
  # Serial output has \r\n line ends and terminal escapes before the first line.
  tr -d '\r' < "$log" | sed 's/^.*\(BERTH-\(TEST\|VM\) \)/\1/' > "$log.txt"
  grep '^BERTH-VM ' "$log.txt" | sed 's/^BERTH-VM /test-vm: /' || true
  grep -E '^BERTH-TEST (PASS|FAIL|SKIP) ' "$log.txt" | sed 's/^BERTH-TEST /  /' || true
  skips=$(grep -c '^BERTH-TEST SKIP ' "$log.txt" || true)
  fails=$(awk '/^BERTH-TEST FAIL /{p=1; print; next} /^BERTH-TEST /{p=0} p && /^    \| /{print}' "$log.txt")
  done_line=$(grep -E '^BERTH-TEST DONE ' "$log.txt" | tail -1 || true)
  if [ "$skips" -gt 0 ]; then
    echo "test-vm: warning: $skips test(s) skipped:"
    grep '^BERTH-TEST SKIP ' "$log.txt" | sed 's/^BERTH-TEST SKIP /  /'
  fi
  if [ -n "$fails" ]; then
    echo "test-vm: failures (full console: $log):"
    echo "$fails"
  fi
  if [ -z "$done_line" ]; then
    echo "test-vm: FAILED: the VM never printed BERTH-TEST DONE (crash, panic or timeout). Last console lines:"
    tail -n 30 "$log.txt" | sed 's/^/  | /'
    return 1
  fi
  echo "test-vm: ${done_line#BERTH-TEST }"
  case "$done_line" in
    *" fail=0"*) [ -z "$fails" ] ;;
    *) echo "test-vm: FAILED"; return 1 ;;
  esac
}

if [ "${1:-}" = --parse ]; then
  parse "$2"; exit
fi

# The Debian kernel, by what is installed, not by what the host runs.
kver=${KERNEL_VERSION:-}
if [ -z "$kver" ]; then
  for d in $(ls -d /lib/modules/*/ 2>/dev/null | sort -V); do
    v=$(basename "$d")
    [ -f "/boot/vmlinuz-$v" ] && kver=$v
  done
fi
[ -n "$kver" ] || die "no kernel with both /lib/modules/<v> and /boot/vmlinuz-<v> (apt-get install linux-image-amd64)"
kernel=/boot/vmlinuz-$kver
[ -r "$kernel" ] || die "cannot read $kernel"
command -v qemu-system-x86_64 >/dev/null || die "no qemu-system-x86_64 (apt-get install qemu-system-x86)"

# berth must be static: the initramfs has no shared libraries.
[ -x "$berth" ] || die "no static berth at $berth (make test-vm builds it)"
berth=$(realpath "$berth"); bundle=$(realpath "$bundle"); out=$(realpath -m "$out")
case "$(file -b "$berth" 2>/dev/null || true)" in
  *static-pie*|*"statically linked"*) ;;
  *) ldd "$berth" 2>&1 | grep -qE 'not a dynamic executable|statically linked' \
       || die "$berth is not static: $(ldd "$berth" 2>&1 | head -3)" ;;
esac

mkdir -p "$out"
"$here/mkinitramfs.sh" "$kver" "$berth" "$bundle" "$out"

# berth.budget: the suite's own time limit (a healthy run needs ~30 s), so a
# hanging berth still ends well inside qemu's timeout and `make test-vm` well
# inside 5 minutes; tests that do not fit are reported as "not run".
budget=${VM_BUDGET:-180}
[ "$budget" -gt $(( vm_timeout - 45 )) ] && budget=$(( vm_timeout - 45 ))

# boot NAME EXTRA_APPEND [TEST...]: boot the initramfs once, console in
# $out/console[-NAME].log, and check its verdict.
boot() {
  local name=$1 extra=$2 log start rc=0 append
  shift 2
  append="console=ttyS0 quiet panic=-1 berth.budget=$budget${extra:+ $extra}"
  [ $# -gt 0 ] && append="$append berth.tests=$(IFS=,; echo "$*")"
  [ -n "${VM_VERBOSE:-}" ] && append="$append berth.verbose=1"
  log=$out/console${name:+-$name}.log
  echo "test-vm: booting $kernel${extra:+ ($extra)} under qemu (TCG), console in $log"
  start=$(date +%s)
  # stdin from /dev/null: -nographic must not take over the terminal.
  timeout --kill-after=10 "$vm_timeout" qemu-system-x86_64 \
    -accel tcg -cpu max -m 1024 -smp 2 -nographic -no-reboot \
    -kernel "$kernel" -initrd "$out/initrd.gz" -append "$append" \
    </dev/null > "$log" 2>&1 || rc=$?
  echo "test-vm: VM ran $(( $(date +%s) - start )) s"
  [ $rc = 124 ] && echo "test-vm: qemu timed out after ${vm_timeout}s"
  [ $rc = 0 ] || [ $rc = 124 ] || echo "test-vm: qemu exited $rc"
  parse "$log"
}

# The first boot is the kernel's default (AppArmor) and runs every test but
# selinux; the second boots with SELinux as the major LSM instead (the
# Debian kernel has it built in; security= picks it over AppArmor, and it
# starts permissive until the test loads its policy and enforces) and runs
# only the selinux test.  Named tests run in the boot they need.
main=() selinux=
for t in "$@"; do
  if [ "$t" = selinux ]; then selinux=1; else main+=("$t"); fi
done
[ $# -eq 0 ] && selinux=1
verdict=0
if [ $# -eq 0 ] || [ ${#main[@]} -gt 0 ]; then
  boot "" "" "${main[@]}" || verdict=1
fi
if [ -n "$selinux" ]; then
  boot selinux "security=selinux" selinux || verdict=1
fi
exit $verdict
