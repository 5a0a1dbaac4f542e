#!/bin/bash
# Build the initramfs that `make test-vm` boots: busybox, a static berth, the
# kernel's overlay (and loop) modules, the busybox test bundle, /init and the
# in-VM test script.  Output: $OUT/initrd.gz (cpio newc, gzip).
#
#   tests/vm/mkinitramfs.sh KERNEL_VERSION BERTH_BINARY BUNDLE_DIR OUT_DIR
#
# Everything is taken from the host: /bin/busybox (busybox-static),
# /lib/modules/KERNEL_VERSION/... (linux-image-amd64).
set -euo pipefail

kver=$1 berth=$2 bundle=$3 out=$4
here=$(cd "$(dirname "$0")" && pwd)
busybox=${HOST_BUSYBOX:-/bin/busybox}
moddir=/lib/modules/$kver

die() { echo "mkinitramfs: $*" >&2; exit 1; }
[ -x "$berth" ] || die "no berth binary at $berth"
[ -x "$busybox" ] || die "no $busybox (apt-get install busybox-static)"
[ -f "$bundle/config.json" ] || die "no $bundle/config.json"
[ -x "$bundle/rootfs/bin/sh" ] || die "no rootfs in $bundle (run 'make bundles')"

tree=$out/tree
rm -rf "$tree"; mkdir -p "$tree"
cd "$tree"
mkdir -p bin sbin usr/bin usr/sbin etc proc sys dev run tmp root var/lib lib/modules mnt bundle tests
chmod 1777 tmp

# busybox and its applet links (made here, not by --install at boot)
install -m 755 "$busybox" bin/busybox
for path in $(bin/busybox --list-full); do
  case "$path" in
    bin/busybox) ;;
    *) ln -sfn /bin/busybox "$path" ;;
  esac
done

install -m 755 "$berth" usr/bin/berth
install -m 755 "$here/init" init
install -m 755 "$here/cgroup-tests.sh" tests/cgroup-tests.sh
# AppArmor test policy, compiled here (the VM has no apparmor_parser): -Q
# skips the kernel load, -K the cache (which needs a host with AppArmor), -S
# writes the binary policy to stdout.  Without it the apparmor test skips.
if command -v apparmor_parser >/dev/null; then
  apparmor_parser -Q -K -S "$here/apparmor-profile" > tests/apparmor-policy.bin \
    || die "apparmor_parser -Q -S $here/apparmor-profile failed"
fi
# SELinux test policy for the second boot, compiled here (checkpolicy, Debian
# package checkpolicy): -U allow lets the kernel allow the classes and
# permissions the small policy does not declare.  Without it the selinux test fails.
if command -v checkpolicy >/dev/null; then
  checkpolicy -U allow -o tests/selinux-policy.bin "$here/selinux-policy.conf" >/dev/null \
    || die "checkpolicy $here/selinux-policy.conf failed"
fi
printf '%s\n' 'root:x:0:0:root:/root:/bin/sh' > etc/passwd
printf '%s\n' 'root:x:0:' > etc/group

# Kernel modules (built in on most distribution kernels, modules in Debian's).
# Compressed modules (.ko.xz / .ko.zst on newer kernels) are unpacked here.
copy_module() { # name relative-dir
  local base=$moddir/kernel/$2/$1.ko
  if   [ -f "$base" ];     then cp "$base" "lib/modules/$1.ko"
  elif [ -f "$base.xz" ];  then xz -dc "$base.xz" > "lib/modules/$1.ko"
  elif [ -f "$base.zst" ]; then zstd -qdc "$base.zst" > "lib/modules/$1.ko"
  elif [ -f "$base.gz" ];  then gzip -dc "$base.gz" > "lib/modules/$1.ko"
  elif grep -q "/$1.ko" "$moddir/modules.builtin" 2>/dev/null; then return 0
  else die "no module $1 in $moddir/kernel/$2"
  fi
}
copy_module overlay fs/overlayfs
copy_module loop drivers/block

# The busybox test bundle: its config.json as committed, its rootfs as built.
cp "$bundle/config.json" bundle/config.json
cp -a "$bundle/rootfs" bundle/rootfs

find . -mindepth 1 | LC_ALL=C sort | cpio --quiet -o -H newc -R 0:0 | gzip -1 > "$out/initrd.gz.tmp"
mv "$out/initrd.gz.tmp" "$out/initrd.gz"
cd "$out"; rm -rf "$tree"
echo "initramfs: $out/initrd.gz ($(du -k initrd.gz | cut -f1) KiB)"
