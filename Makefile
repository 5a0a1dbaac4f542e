# berth — build, demo, test.  GNU make, run as root on Debian.
#
#   make run     build berth and the busybox bundle, run a demo container
#   make test    install test deps, lint, build, run every test
#
# Nothing here needs more than the Rust toolchain and apt-get.

SHELL        := /bin/bash
.SHELLFLAGS  := -eu -o pipefail -c
.DEFAULT_GOAL := build

CARGO        ?= cargo
APT_GET      ?= apt-get
PREFIX       ?= /usr/local
# .cargo/config.toml builds for an explicit target (a static binary), so the
# artifacts are under target/<triple>/.
TARGET_TRIPLE := x86_64-unknown-linux-gnu
BIN          := $(or $(CARGO_TARGET_DIR),target)/$(TARGET_TRIPLE)/release/berth

# Debian packages the build, the bundles and the tests need.  Other targets
# (test-vm, test-clients) add their own lists below and call $(call apt_install,...).
# libseccomp-dev: the libseccomp crate links libseccomp.a into the static
# berth (.cargo/config.toml). strace: a test reads the order of berth's
# first system calls (the sealed re-exec comes before glibc's start-up).
DEPS         := busybox-static libseccomp-dev pkg-config gcc libc6-dev strace

# Host busybox (busybox-static) that becomes the bundle's only binary.
HOST_BUSYBOX := /bin/busybox
BUSYBOX_BUNDLE := bundles/busybox
ROOTFS       := $(BUSYBOX_BUNDLE)/rootfs

.PHONY: all build deps bundles run test lint install clean

all: build

# ---------------------------------------------------------------- build

build: deps
	$(CARGO) build --release
	@echo "built $(BIN)"

# ---------------------------------------------------------------- deps

# apt_install: install the named packages that are not installed yet, quietly.
# Idempotent: when everything is present it runs no apt command at all.
define apt_install
	@missing=""; \
	for p in $(1); do \
	  case "$$(dpkg -s "$$p" 2>/dev/null)" in \
	    *"Status: install ok installed"*) ;; \
	    *) missing="$$missing $$p" ;; \
	  esac; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  export DEBIAN_FRONTEND=noninteractive; \
	  $(APT_GET) update -qq; \
	  $(APT_GET) install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi
endef

deps:
	$(call apt_install,$(DEPS))

# ---------------------------------------------------------------- bundles

bundles: $(ROOTFS)

# The rootfs is built under target/ (ignored by git) and renamed into place, so it
# is either complete or absent; the directory itself is the stamp.  Applet
# links are made on the host (the bundle must not depend on running busybox
# --install inside it) as relative links, so the tree works from any path.
$(ROOTFS): Makefile | deps
	@echo "building $@ from $(HOST_BUSYBOX)"
	@tmp="target/bundles/$(notdir $(BUSYBOX_BUNDLE)).rootfs.tmp"; rm -rf "$$tmp"; \
	mkdir -p "$$tmp"; \
	cd "$$tmp"; \
	mkdir -p bin sbin usr/bin usr/sbin etc proc sys dev tmp root var run; \
	chmod 1777 tmp; chmod 700 root; \
	install -m 755 $(HOST_BUSYBOX) bin/busybox; \
	for path in $$(bin/busybox --list-full); do \
	  case "$$path" in \
	    bin/busybox) continue ;; \
	    bin/*)              target=busybox ;; \
	    sbin/*)             target=../bin/busybox ;; \
	    usr/bin/*|usr/sbin/*) target=../../bin/busybox ;; \
	    *) continue ;; \
	  esac; \
	  ln -sfn "$$target" "$$path"; \
	done; \
	printf '%s\n' \
	  'root:x:0:0:root:/root:/bin/sh' \
	  'nobody:x:65534:65534:nobody:/nonexistent:/bin/false' > etc/passwd; \
	printf '%s\n' \
	  'root:x:0:' 'tty:x:5:' 'nogroup:x:65534:' > etc/group; \
	echo berth > etc/hostname; \
	printf '%s\n' '127.0.0.1 localhost' '::1 localhost' > etc/hosts; \
	cd - >/dev/null; \
	touch "$$tmp"; \
	rm -rf "$@"; mv "$$tmp" "$@"
	@test -x $@/bin/sh

# ---------------------------------------------------------------- run

# What the demo container prints about itself (sh -c inside the container).
DEMO_SCRIPT := \
  echo "hello from inside berth"; \
  echo "hostname: $$(hostname)"; \
  echo "my pid:   $$$$ (pid 1 of a new pid namespace)"; \
  echo "processes I can see:"; ps -o pid,comm; \
  echo "my root mount:"; grep " / / " /proc/self/mountinfo; \
  echo "my cgroups:"; cat /proc/self/cgroup

run: deps build bundles
	$(BIN) run -b $(BUSYBOX_BUNDLE) demo-$$$$ sh -c '$(DEMO_SCRIPT)'
	@echo
	@echo "Now break a container and see that the bundle does not care:"
	@echo "  $(BIN) run --keep -b $(BUSYBOX_BUNDLE) d1 sh -c 'rm -rf /bin; echo gone'"
	@echo "  $(BIN) diff d1        # D /bin"
	@echo "  $(BIN) delete d1"
	@echo "  $(BIN) run -b $(BUSYBOX_BUNDLE) d2 ls /bin | head -3   # /bin is back"

# ---------------------------------------------------------------- test

lint:
	$(CARGO) fmt --check
	$(CARGO) clippy --all-targets -- -D warnings

# Unit tests and the integration tests in tests/*.rs (which run the real
# binary as root, found through CARGO_BIN_EXE_berth).
test: deps lint build bundles test-vm test-clients
	$(CARGO) test --release

# ---------------------------------------------------------------- more tests
# test-vm (pure cgroup-v2 host under qemu) and test-clients (podman,
# containerd) go here; each installs its own packages with
# $(call apt_install,...) and is added to .PHONY.

# test-vm: berth's cgroup suite (tests/vm/cgroup-tests.sh) on a pure cgroup-v2
# kernel: Debian's kernel booted under qemu (TCG: nested KVM hangs here) with
# an initramfs holding a static berth, busybox, overlay.ko and the busybox
# bundle.  tests/vm/run.sh builds the initramfs, boots, and fails unless the VM
# reports fail=0.  Console log: tests/vm/out/console.log.  A second boot with
# security=selinux (AppArmor off) runs only the selinux test, with a small
# policy compiled by checkpolicy (console: tests/vm/out/console-selinux.log).
# Only some tests: `make test-vm VM_TESTS="pids cpu-max"` (the selinux boot
# runs when VM_TESTS is empty or names selinux).  Takes 1-3 minutes.
VM_DEPS      := qemu-system-x86 linux-image-amd64 cpio busybox-static file apparmor checkpolicy
VM_TESTS     ?=

.PHONY: test-vm
test-vm: bundles
	$(call apt_install,$(VM_DEPS))
	$(call apt_install,$(DEPS))
	$(CARGO) build --release
	BERTH_STATIC=$(abspath $(BIN)) tests/vm/run.sh $(VM_TESTS)

# test-clients: real orchestrators drive berth (issue 6): podman 4.3.1 + conmon
# and containerd 1.6.20 + its runc v2 shim, from Debian's packages, with
# private storage, config and sockets under a temp dir (tests/clients/run.py
# says what each case checks). The suite runs against berth and then, as its
# own control, against runc: a case that fails only for berth is berth's.
# Only some cases: `make test-clients CLIENTS_CASES="1 6"`; another berth:
# `make test-clients CLIENTS_RUNTIME=/abs/path/berth`. Takes well under a minute.
CLIENTS_DEPS    := podman conmon containerd runc busybox-static
CLIENTS_RUNTIME ?= $(abspath $(BIN))
CLIENTS_CONTROL ?= /usr/sbin/runc
CLIENTS_CASES   ?=

.PHONY: test-clients
test-clients: build bundles
	$(call apt_install,$(CLIENTS_DEPS))
	@rc=0; \
	RUNTIME=$(CLIENTS_RUNTIME) tests/clients/run.py $(CLIENTS_CASES) || rc=1; \
	RUNTIME=$(CLIENTS_CONTROL) tests/clients/run.py $(CLIENTS_CASES) || rc=1; \
	exit $$rc

# ---------------------------------------------------------------- bench

# bench: berth against runc and crun (issue 7); NOT part of `make test`.
# tests/bench/bench.py runs every runtime in one run, interleaved, warm-up
# first: run /bin/true (and the floor, `unshare -mpfiun chroot`), lifecycle
# steps, exec, scale (100 running, list with 100/1000, create+delete at
# N=10/100/1000), peak RSS and binary size, run with a Docker-sized seccomp
# profile.  It prints a table of medians and ratios and rewrites README.md
# between <!-- bench:start --> and <!-- bench:end -->; raw numbers go to
# $(BENCH_OUT)/results.json.  Takes 10-20 minutes.  A smoke run:
# `make bench BENCH_ARGS=--quick`.  crun runs (as berth's "ns" rows do) in a
# private mount namespace with /sys/fs/cgroup re-mounted as pure cgroup2.
BENCH_DEPS   := hyperfine runc crun time python3 binutils
BENCH_BIN    := $(BIN)
BENCH_OUT    := $(or $(CARGO_TARGET_DIR),target)/bench
BENCH_ARGS   ?=

.PHONY: bench
bench: bundles
	$(call apt_install,$(BENCH_DEPS))
	$(CARGO) build --release
	python3 tests/bench/bench.py --berth $(BENCH_BIN) --rootfs $(ROOTFS) \
	  --readme README.md --out $(BENCH_OUT) $(BENCH_ARGS)

# ---------------------------------------------------------------- install

install: build
	install -D -m 755 $(BIN) $(DESTDIR)$(PREFIX)/bin/berth

clean:
	$(CARGO) clean
	rm -rf $(ROOTFS)
