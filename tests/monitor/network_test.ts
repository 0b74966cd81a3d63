// HMP `info network` and `info usernet` on the network set-ups QEMU's guide uses (legacy
// -net hubs, -netdev with -device, -nic, several NICs and hubs), vmkit against real
// qemu-system-x86_64 7.2 on the same command line

import { skipUnless } from "../skip.ts";
import assert from "node:assert/strict";
import { tempDir } from "../test_util.ts";
import { hmpBoth } from "./session_util.ts";

const CONFIGS = [
  ["-net", "nic", "-net", "user"],
  ["-netdev", "user,id=n0", "-device", "virtio-net-pci,netdev=n0,mac=52:54:00:12:34:99"],
  ["-net", "nic,model=e1000", "-net", "user", "-net", "nic,model=virtio"],
  ["-nic", "user,model=rtl8139"],
  [
    "-netdev",
    "user,id=u1,net=192.168.7.0/24,restrict=on",
    "-device",
    "e1000,netdev=u1,id=nic1",
    "-device",
    "virtio-net-pci",
    "-device",
    "e1000",
  ],
  [
    "-netdev",
    "hubport,id=p0,hubid=0",
    "-netdev",
    "hubport,id=p1,hubid=3",
    "-netdev",
    "hubport,id=p2,hubid=0",
    "-netdev",
    "user,id=lone",
    "-device",
    "rtl8139,netdev=p1",
  ],
];

// Words after a command that takes none: QEMU's two lines, for `info` and plain commands.
const COMMANDS = [
  "info network",
  "info usernet",
  "info network eth0",
  "info usernet 1",
  "stop x",
  "s 1",
  "system_reset now",
];

/**
 * A backend QEMU names itself (`#net` and a counter with two random digits) and the one
 * vmkit names (`user.0`, `__org.qemu.nic0`) read the same.
 */
function unnamed(line: string): string {
  return line.replace(/#net\d+|\buser\.\d+|__org\.qemu\.nic\d+/g, "<unnamed>");
}

Deno.test({
  name: "HMP info network and info usernet print QEMU 7.2's lines for the same network",
  ignore: skipUnless(import.meta, "python3", "qemu-system-x86_64"),
  async fn() {
    const { dir, cleanup } = await tempDir();
    try {
      for (const [i, config] of CONFIGS.entries()) {
        const got = await hmpBoth(dir, `net${i}`, ["-S", ...config], COMMANDS);
        const out = { vmkit: got.vmkit.map(unnamed), qemu: got.qemu.map(unnamed) };
        assert.deepEqual(out.vmkit, out.qemu, config.join(" "));
        if (i === 0) {
          // The legacy hub: QEMU's tree lines, the NIC's model and default MAC.
          assert.deepEqual(out.vmkit.slice(0, 3), [
            "hub 0",
            " \\ hub0port1: <unnamed>: index=0,type=user,net=10.0.2.0,restrict=off",
            " \\ hub0port0: e1000.0: index=0,type=nic,model=e1000,macaddr=52:54:00:12:34:56",
          ]);
        }
      }
    } finally {
      await cleanup();
    }
  },
});

Deno.test({
  name: "HMP info pci shows the e1000 of -net nic with QEMU 7.2's IDs, subsystem and BARs",
  ignore: skipUnless(import.meta, "python3", "qemu-system-x86_64"),
  async fn() {
    const { dir, cleanup } = await tempDir();
    try {
      const out = await hmpBoth(dir, "pci", [
        "-S",
        "-net",
        "nic",
        "-net",
        "user",
        "-vga",
        "none",
      ], ["info pci"]);
      assert.ok(out.vmkit.includes("      PCI subsystem 1af4:1100"));
      // vmkit's NICs have their ROM BAR only when they boot from the network.
      assert.deepEqual(out.vmkit, out.qemu.filter((l) => !l.includes("BAR6:")));
    } finally {
      await cleanup();
    }
  },
});

Deno.test({
  name: "HMP info usernet lists hostfwd listeners as QEMU 7.2 does (but the host's fd numbers)",
  ignore: skipUnless(import.meta, "python3", "qemu-system-x86_64"),
  async fn() {
    const { dir, cleanup } = await tempDir();
    try {
      // Loopback ports unlikely to be taken on a shared machine; the runs take turns.
      const port = 40000 + Math.floor(Math.random() * 20000);
      const out = await hmpBoth(dir, "fwd", [
        "-S",
        "-netdev",
        `user,id=u,hostfwd=tcp:127.0.0.1:${port}-:22,hostfwd=udp:127.0.0.1:${port + 1}-:53`,
        "-device",
        "e1000,netdev=u",
      ], ["info usernet"]);
      // The FD column is the host socket's descriptor: QEMU's number, -1 in vmkit (Deno
      // does not expose it).
      const fd = (l: string) => l.replace(/^( {2}\w+\[\w+\]) +-?\d+ /, "$1 FD ");
      assert.deepEqual(out.vmkit.map(fd), out.qemu.map(fd));
      assert.ok(out.vmkit.some((l) => l.includes(`127.0.0.1 ${port}       10.0.2.15    22`)));
    } finally {
      await cleanup();
    }
  },
});
