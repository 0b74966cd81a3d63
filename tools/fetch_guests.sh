#!/usr/bin/env bash
# Fetches vmkit's Linux test guests from Debian: an i386 kernel and a busybox initramfs
#
# Usage: tools/fetch_guests.sh [DIR]
#
#   DIR defaults to ${VMKIT_GUESTS:-$HOME/.cache/vmkit-guests}. It ends up holding
#     vmlinuz-i386     the kernel of Debian's linux-image-686 (a bzImage)
#     initrd-i386.gz   a gzip'd newc initramfs: busybox-static:i386 and an /init that
#                      prints VMKIT-GUEST-READY on the console and powers off
#   plus debs/ (the downloaded packages) and apt/ (a private apt state).
#
# The host's dpkg architectures and apt lists are never changed: apt runs with its own
# state directory and APT::Architecture=i386, reading the host's sources. When both
# files exist and were built by this version of the script from the packages apt last
# resolved, nothing is fetched (no network). REFRESH=1 re-reads the package indexes.
set -euo pipefail

OUT=${1:-${VMKIT_GUESTS:-${HOME:-/root}/.cache/vmkit-guests}}
ARCH=i386
KERNEL_META=${KERNEL_META:-linux-image-686}
REFRESH=${REFRESH:-0}
export LC_ALL=C TZ=UTC
# A fixed timestamp keeps the initramfs byte-for-byte reproducible.
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-1686355200}

say() { printf 'fetch_guests: %s\n' "$*" >&2; }
die() {
  say "error: $*"
  exit 1
}

for tool in apt-get apt-cache dpkg-deb cpio gzip sha256sum; do
  command -v "$tool" >/dev/null || die "$tool is missing (this script needs a Debian or Ubuntu host)"
done

mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd -P)
SELF_SUM=$(sha256sum <"${BASH_SOURCE[0]}" | cut -d' ' -f1)
STAMP=$OUT/.fetch_guests.stamp

# Fast path: the outputs exist and match the stamp this script wrote.
if [[ $REFRESH != 1 && -s $OUT/vmlinuz-$ARCH && -s $OUT/initrd-$ARCH.gz && -f $STAMP ]] &&
  [[ $(head -n1 "$STAMP") == "$SELF_SUM" ]] &&
  (cd "$OUT" && tail -n +2 "$STAMP" | sha256sum --quiet -c - >/dev/null 2>&1); then
  say "up to date in $OUT (REFRESH=1 looks for newer packages)"
  exit 0
fi

if command -v flock >/dev/null; then
  exec 9>"$OUT/.lock"
  flock 9
fi

APT=$OUT/apt/$ARCH
DEBS=$OUT/debs
mkdir -p "$APT/lists/partial" "$APT/cache/archives/partial" "$DEBS"
: >>"$APT/status"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/vmkit-guests.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

# apt with a private state for $ARCH; the sources are the host's.
papt() {
  local tool=$1
  shift
  "$tool" -q \
    -o Dir::State="$APT" -o Dir::State::Lists="$APT/lists" -o Dir::State::status="$APT/status" \
    -o Dir::Cache="$APT/cache" -o Dir::Cache::archives="$APT/cache/archives" \
    -o Dir::Cache::pkgcache="" -o Dir::Cache::srcpkgcache="" \
    -o APT::Architecture="$ARCH" -o APT::Architectures::="$ARCH" \
    -o APT::Sandbox::User="$(id -un)" -o Acquire::Languages=none -o Acquire::Retries=3 \
    "$@"
}

if [[ $REFRESH == 1 ]] || ! compgen -G "$APT/lists/*_Packages*" >/dev/null; then
  say "apt-get update (private state for $ARCH in $APT)"
  papt apt-get update >"$WORK/update.log" 2>&1 ||
    say "apt-get update reported errors; continuing with what it fetched: $(grep -E '^(E|W):' "$WORK/update.log" | head -n3)"
fi

# field PKG NAME: a field of the candidate version's record.
field() {
  papt apt-cache show --no-all-versions "$1" 2>/dev/null |
    awk -v f="$2:" '$1 == f { sub(/^[^:]*: */, ""); print; exit }'
}

# The metapackage depends on the versioned image package that holds /boot/vmlinuz-*.
KERNEL_PKG=$(field "$KERNEL_META" Depends | tr ',' '\n' | sed 's/^ *//; s/ .*//' |
  grep -E '^linux-image-[0-9]' | head -n1) || true
[[ -n $KERNEL_PKG ]] || die "cannot resolve $KERNEL_META for $ARCH (is the Debian archive reachable?)"

# fetch PKG: prints the path of the verified .deb, downloading it when needed.
fetch() {
  local pkg=$1 version sha deb
  version=$(field "$pkg" Version)
  sha=$(field "$pkg" SHA256)
  [[ -n $version ]] || die "package $pkg not found for $ARCH"
  deb="$DEBS/${pkg}_${version//:/%3a}_$ARCH.deb"
  if [[ ! -s $deb || $(sha256sum <"$deb" | cut -d' ' -f1) != "$sha" ]]; then
    say "downloading $pkg=$version ($ARCH)"
    rm -f "$deb" "$DEBS"/"${pkg}"_*.deb
    (cd "$WORK" && papt apt-get download "$pkg=$version" >"$WORK/download.log" 2>&1) ||
      die "apt-get download $pkg=$version failed: $(tail -n3 "$WORK/download.log")"
    mv "$WORK/${pkg}_"*.deb "$deb"
  fi
  printf '%s\n' "$deb"
}

KERNEL_DEB=$(fetch "$KERNEL_PKG")
BUSYBOX_DEB=$(fetch busybox-static)

say "unpacking $(basename "$KERNEL_DEB")"
mkdir -p "$WORK/kernel"
dpkg-deb --fsys-tarfile "$KERNEL_DEB" | tar -x -C "$WORK/kernel" --wildcards './boot/vmlinuz-*'
VMLINUZ=$(compgen -G "$WORK/kernel/boot/vmlinuz-*" | head -n1) || die "no /boot/vmlinuz-* in $KERNEL_PKG"

say "building initrd-$ARCH.gz from $(basename "$BUSYBOX_DEB")"
ROOT=$WORK/root
mkdir -p "$ROOT"/{bin,sbin,dev,proc,sys,tmp,usr/bin,usr/sbin}
dpkg-deb --fsys-tarfile "$BUSYBOX_DEB" | tar -x -C "$WORK" ./bin/busybox
install -m 0755 "$WORK/bin/busybox" "$ROOT/bin/busybox"
ln -s busybox "$ROOT/bin/sh"
cat >"$ROOT/init" <<'EOF'
#!/bin/sh
# /init of vmkit's test initramfs (tools/fetch_guests.sh): report, then power off
/bin/busybox mount -t proc proc /proc
/bin/busybox mount -t devtmpfs devtmpfs /dev 2>/dev/null
echo
echo "VMKIT-GUEST-READY $(/bin/busybox uname -r) $(/bin/busybox uname -m)"
/bin/busybox poweroff -f
EOF
chmod 0755 "$ROOT/init"
find "$ROOT" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
(cd "$ROOT" && find . -mindepth 1 | sort | cpio -o -H newc -R 0:0 --reproducible --quiet) |
  gzip -n -9 >"$WORK/initrd.gz"

install -m 0644 "$VMLINUZ" "$OUT/vmlinuz-$ARCH"
install -m 0644 "$WORK/initrd.gz" "$OUT/initrd-$ARCH.gz"
# Drop packages an earlier run fetched that are no longer the candidates.
for deb in "$DEBS"/*.deb; do
  [[ $deb == "$KERNEL_DEB" || $deb == "$BUSYBOX_DEB" ]] || rm -f "$deb"
done
{
  echo "$SELF_SUM"
  (cd "$OUT" && sha256sum "vmlinuz-$ARCH" "initrd-$ARCH.gz")
} >"$STAMP"
say "done: $OUT/vmlinuz-$ARCH ($(basename "$VMLINUZ")), $OUT/initrd-$ARCH.gz ($(stat -c %s "$OUT/initrd-$ARCH.gz") bytes)"
