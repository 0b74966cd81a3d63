#!/usr/bin/env bash
# What `deno task test` needs on a Debian 12 machine: the reference QEMU, SeaBIOS, nasm and
# the test guests. Run by the test task before the tests; a quick no-op once all is there.
#
#   As root: installs the missing Debian packages (apt-get) and builds the guest ladder
#   (tools/fetch_guests.sh, cached in ~/.cache/vmkit-guests).
#   Not root: prints the one apt-get line to run, builds the guests if it can, and goes on;
#   tests that need what is missing skip and say why.
#   VMKIT_TEST_SETUP=0 skips all of it. The exit status is always 0: the tests decide.
set -uo pipefail
cd "$(dirname "$0")/.."

[[ ${VMKIT_TEST_SETUP:-1} == 0 ]] && exit 0

# qemu-utils: qemu-img and qemu-io; qemu-system-x86 and qemu-system-data: qemu-system-* and
# linuxboot_dma.bin; seabios: the BIOS and VGA BIOSes; ipxe-qemu: the NIC ROMs QEMU loads
# for -net nic; ipxe: the iPXE CD the network tests boot; nasm: the CPU tests' assembler; cpio
# and xorriso: the guest initramfs and ISO; vncsnapshot and libjpeg-turbo-progs (djpeg): a real VNC
# client for the display tests; chromium: the real browser the -display web test drives headless;
# novnc: noVNC, the HTML5 VNC client the display tests run in that browser (DesktopSize).
PACKAGES=(qemu-utils qemu-system-x86 qemu-system-data seabios ipxe-qemu ipxe nasm cpio xorriso vncsnapshot libjpeg-turbo-progs chromium novnc)

say() { printf 'test setup: %s\n' "$*" >&2; }

if ! command -v dpkg-query >/dev/null || ! command -v apt-get >/dev/null; then
  say "not a Debian host: install QEMU 7.2 (qemu-img, qemu-io, qemu-system-x86_64), SeaBIOS," \
    "nasm, cpio and xorriso yourself; tests that need them are skipped"
  exit 0
fi

missing=()
installed=$(dpkg-query -W -f='${Package} ${db:Status-Abbrev}\n' "${PACKAGES[@]}" 2>/dev/null)
for p in "${PACKAGES[@]}"; do
  grep -q "^$p ii" <<<"$installed" || missing+=("$p")
done

if ((${#missing[@]} > 0)); then
  if [[ $(id -u) == 0 ]]; then
    say "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    install() { apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; }
    # A fresh machine (or container) may have no package lists yet: update, then retry.
    install || { apt-get update -qq >/dev/null && install; } ||
      say "apt-get install ${missing[*]} failed; tests that need them are skipped"
  else
    say "run: sudo apt-get install -y --no-install-recommends ${missing[*]}"
  fi
fi

# The guest ladder: fetch_guests.sh answers "up to date" at once when it is. Both
# architectures: the i386 guests, then the amd64 ones (issue 14: Debian's amd64 kernel, the
# amd64 CD, the Debian installer's netboot and memtest86+x64; a cold build adds about 75 s and
# 206 MB of downloads). VMKIT_TEST_GUEST_ARCH=i386 builds the i386 guests only; the amd64
# boot tests then skip and say how to build them.
if command -v cpio >/dev/null; then
  bash tools/fetch_guests.sh --arch="${VMKIT_TEST_GUEST_ARCH:-all}" \
    2> >(grep -v '^fetch_guests: up to date' >&2) ||
    say "building the test guests failed: boot tests that need them are skipped"
fi
exit 0
