import { skipUnless } from "../../tests/skip.ts";
import assert from "node:assert/strict";
import { BlockGraph } from "../../core/block/graph.ts";
import type { PciFunction } from "../../core/device.ts";
import { errorChainMessage } from "../../core/errors.ts";
import { findFirmware } from "../../core/firmware.ts";
import type { Machine } from "../../core/machine.ts";
import type { VirtioNet, VirtioPciDevice } from "../../plugins/devices/virtio/mod.ts";
import { formatMac } from "../../plugins/devices/virtio/mod.ts";
import { buildRegistry } from "../registry.ts";
import { buildSystemSetup } from "./config.ts";
import { buildNetwork } from "./net.ts";
import { parseSystemArgs } from "./options.ts";

const registry = await buildRegistry();
const opts = (...args: string[]) => parseSystemArgs(args).opts;

/** Builds the machine a command line describes (with a stand-in BIOS) and its warnings. */
async function boot(
  ...args: string[]
): Promise<{ machine: Machine; warnings: string[]; close: () => Promise<unknown> }> {
  const warnings: string[] = [];
  const setup = await buildSystemSetup(opts("-nodefaults", ...args), undefined, {
    registry,
    graph: new BlockGraph(registry),
    stdio: {},
    warn: (w) => warnings.push(w),
  });
  const config = { ...setup.config, firmware: new Uint8Array(256 * 1024) };
  const machine = registry.require("machine", "pc").create(config) as Machine;
  for (const d of setup.devices) machine.createDevice(d.model, d.opts);
  return { machine, warnings, close: () => Promise.all(setup.backends.map((b) => b.close())) };
}

/** Vendor:device of every PCI function by slot. */
function lspci(machine: Machine): string[] {
  const bus = machine.findService<{ functions: (PciFunction | undefined)[] }>("pci")!;
  const out: string[] = [];
  bus.functions.forEach((fn, devfn) => {
    if (!fn) return;
    const id = fn.configRead(0, 4);
    const hex = (n: number) => n.toString(16).padStart(4, "0");
    out.push(`${hex(devfn >> 3).slice(2)}.${devfn & 7} ${hex(id & 0xffff)}:${hex(id >>> 16)}`);
  });
  return out;
}

function nicMacs(machine: Machine): string[] {
  return machine.devices.filter((d) => d.model === "virtio-net-pci")
    .map((d) => formatMac(((d as VirtioPciDevice).device as VirtioNet).mac));
}

Deno.test("-net nic,model=virtio,macaddr=... -net user puts a virtio-net-pci and user on hub 0", async () => {
  const { machine, warnings } = await boot(
    "-net",
    "nic,model=virtio,macaddr=52:54:00:05:11:11",
    "-net",
    "user",
  );
  assert.deepEqual(lspci(machine).slice(4), ["02.0 1af4:1000"]);
  assert.deepEqual(nicMacs(machine), ["52:54:00:05:11:11"]);
  assert.deepEqual(warnings, []);
  const user = machine.netClients.find((n) => n.model === "user")!;
  assert.equal(user.id, "user.0");
  assert.equal(user.peer?.model, "hubport");
});

Deno.test("-netdev user,id=n0 -device virtio-net-pci,netdev=n0,mac=... links the two directly", async () => {
  const { machine } = await boot(
    "-netdev",
    "user,id=n0",
    "-device",
    "virtio-net-pci,netdev=n0,mac=52:54:00:aa:bb:cc",
  );
  const n0 = machine.netClients.find((n) => n.id === "n0")!;
  assert.equal(n0.peer?.model, "virtio-net-pci");
  assert.deepEqual(nicMacs(machine), ["52:54:00:aa:bb:cc"]);
});

Deno.test("-nic user,model=virtio twice gives QEMU's default MACs 52:54:00:12:34:56 and :57", async () => {
  const { machine } = await boot("-nic", "user,model=virtio", "-nic", "user,model=virtio");
  assert.deepEqual(nicMacs(machine), ["52:54:00:12:34:56", "52:54:00:12:34:57"]);
  assert.deepEqual(
    machine.netClients.map((n) => n.id),
    ["__org.qemu.nic0", "__org.qemu.nic1"],
  );
});

Deno.test("-net none, or nothing under -nodefaults, gives no NIC", async () => {
  assert.equal(nicMacs((await boot("-net", "none")).machine).length, 0);
  assert.equal(nicMacs((await boot()).machine).length, 0);
});

Deno.test("buildNetwork() gives QEMU's default e1000 on the user network only when no -net, -nic or -netdev is given", () => {
  const defaults = buildNetwork(opts(), registry);
  assert.deepEqual(defaults.nics.map((n) => [n.model, n.netdev]), [["e1000", "hub0port0"]]);
  assert.deepEqual(defaults.warnings, []);
  assert.deepEqual(buildNetwork(opts("-device", "e1000"), registry).nics.length, 1);
  for (
    const args of [["-nodefaults"], ["-net", "none"], ["-netdev", "user,id=n0"], ["-nic", "none"]]
  ) {
    assert.deepEqual(buildNetwork(opts(...args), registry).nics, [], args.join(" "));
  }
});

Deno.test("-balloon none adds nothing; -balloon virtio and -device virtio-balloon add the balloon", async () => {
  const balloons = async (...args: string[]) =>
    (await boot(...args)).machine.devices.filter((d) => d.model === "virtio-balloon-pci").length;
  assert.equal(await balloons("-balloon", "none"), 0);
  assert.equal(await balloons("-balloon", "virtio"), 1);
  assert.equal(await balloons("-device", "virtio-balloon"), 1);
  assert.equal(await balloons("-device", "virtio-balloon-pci,id=b0,addr=0x9"), 1);
});

Deno.test("-device virtio-blk-pci,drive=ID, -drive if=virtio and -balloon virtio take PCI slots in QEMU's order", async () => {
  const file = await Deno.makeTempFile({ suffix: ".raw" });
  try {
    await Deno.writeFile(file, new Uint8Array(1 << 20));
    const { machine, close } = await boot(
      "-drive",
      `file=${file},format=raw,if=virtio`,
      "-drive",
      `file=${file},format=raw,if=none,id=d1,readonly=on`,
      "-device",
      "virtio-blk-pci,drive=d1",
      "-balloon",
      "virtio",
    );
    // -device ones first, then the balloon (a -device too), then if=virtio drives.
    assert.deepEqual(lspci(machine).slice(4), [
      "02.0 1af4:1001",
      "03.0 1af4:1002",
      "04.0 1af4:1001",
    ]);
    assert.deepEqual(
      machine.config.drives.map((d) => d.id),
      ["virtio0", "d1"],
    );
    await close();
  } finally {
    await Deno.remove(file);
  }
});

Deno.test("the CLI refuses bad network and virtio options with one clear line", async () => {
  const cases: [string[], RegExp][] = [
    [["-netdev", "user"], /Parameter 'id' is missing/],
    [["-netdev", "tap,id=t0"], /network backend 'tap' is not supported by vmkit yet/],
    [["-netdev", "frob,id=t0"], /Parameter 'type' does not accept value 'frob'/],
    [["-netdev", "user,id=n0", "-netdev", "user,id=n0"], /Duplicate ID 'n0' for netdev/],
    [
      ["-device", "virtio-net-pci,netdev=nope"],
      /Property 'virtio-net-pci.netdev' can't find value 'nope'/,
    ],
    [["-device", "virtio-net-pci,mac=zz"], /Property 'virtio-net-pci.mac' doesn't take value 'zz'/],
    [["-net", "nic,model=ne2k_pci"], /NIC model 'ne2k_pci' is not supported by vmkit yet/],
    [["-nic", "user,model=virtio-blk-pci"], /NIC model 'virtio-blk-pci' is not supported/],
    [["-device", "e1000,netdev=nope"], /Property 'e1000.netdev' can't find value 'nope'/],
    [["-device", "virtio-blk-pci"], /drive property not set/],
    [["-device", "virtio-blk-pci,drive=x"], /can't find value 'x'/],
    [["-device", "virtio-balloon,addr=0x40"], /doesn't take value '0x40'/],
    [["-balloon", "frob"], /unknown balloon device 'frob'/],
    [["-netdev", "user,id=n0,hostfwd=tcp::99999-:22"], /Invalid forwarding rule .* bad port/],
    [["-netdev", "user,id=n0,hostfwd=tcp::2222-:22,hostfwd=sctp::1-:2"], /Bad protocol name/],
    [["-netdev", "user,id=n0,net=10.0.2.0/24,host=10.9.9.9"], /not in net/],
    [["-netdev", "user,id=n0,guestfwd=tcp:10.0.2.9:80-cmd:cat"], /not supported by vmkit/],
  ];
  for (const [args, error] of cases) {
    await assert.rejects(
      () => boot(...args),
      (e: unknown) => error.test(errorChainMessage(e)),
      args.join(" "),
    );
  }
});

Deno.test("-netdev hubport,hubid=0 puts a -device NIC on the hub the legacy -net user is on", async () => {
  const { machine, warnings } = await boot(
    "-netdev",
    "hubport,id=h0,hubid=0",
    "-device",
    "virtio-net-pci,netdev=h0",
    "-net",
    "user",
  );
  assert.deepEqual(warnings, []);
  const h0 = machine.netClients.find((n) => n.id === "h0")!;
  assert.equal(h0.peer?.model, "virtio-net-pci");
  const user = machine.netClients.find((n) => n.model === "user") as unknown as {
    stack: { stats: { framesIn: number } };
  };
  // A frame the NIC sends crosses the hub to the user backend.
  h0.receive(new Uint8Array(60));
  assert.equal(user.stack.stats.framesIn, 1);
});

Deno.test("-nic user without a model gives pc's default NIC, an e1000 (8086:100e), on the user network", async () => {
  const { machine } = await boot(
    "-nic",
    "user",
    "-net",
    "nic,model=e1000,macaddr=52:54:00:00:00:09",
  );
  assert.deepEqual(lspci(machine).slice(4), ["02.0 8086:100e", "03.0 8086:100e"]);
  const nic = machine.netClients.find((n) => n.id === "__org.qemu.nic0")!;
  assert.equal(nic.peer?.model, "e1000");
});

Deno.test("-netdev user takes several hostfwd= rules and QEMU's address options", async () => {
  const { machine } = await boot(
    "-netdev",
    "user,id=n0,net=192.168.76.0/24,dhcpstart=192.168.76.9,hostname=g,dnssearch=a.test," +
      "dnssearch=b.test,hostfwd=tcp:127.0.0.1:0-:22,hostfwd=udp:127.0.0.1:0-:53,restrict=on",
    "-device",
    "e1000,netdev=n0",
  );
  const n0 = machine.netClients.find((n) => n.id === "n0") as unknown as {
    stack: { config: { hostfwd: unknown[]; dnssearch: string[]; restrict: boolean } };
    ready: Promise<void>;
    close(): void;
  };
  await n0.ready;
  assert.equal(n0.stack.config.hostfwd.length, 2);
  assert.deepEqual(n0.stack.config.dnssearch, ["a.test", "b.test"]);
  assert.equal(n0.stack.config.restrict, true);
  n0.close();
});

Deno.test("buildNetwork() warns as QEMU does about unlinked hubs and netdevs", () => {
  const warn = (...args: string[]) => buildNetwork(opts(...args), registry).warnings;
  assert.deepEqual(warn("-net", "nic,model=virtio"), ["hub 0 is not connected to host network"]);
  assert.deepEqual(warn("-net", "user"), ["hub 0 with no nics"]);
  assert.deepEqual(warn("-netdev", "user,id=n0"), ["netdev n0 has no peer"]);
  assert.deepEqual(buildNetwork(opts("-netdev", "user,id=n0"), registry, ["n0"]).warnings, []);
});

/** The size the expansion ROM BAR of the function in `slot` decodes (0: none). */
function romBarSize(machine: Machine, slot: number): number {
  const fn = machine.findService<{ functions: (PciFunction | undefined)[] }>("pci")!
    .functions[slot << 3]!;
  fn.configWrite(0x30, 4, 0xfffff800);
  const mask = fn.configRead(0x30, 4) & 0xfffff800;
  return mask === 0 ? 0 : (~mask + 1) >>> 0;
}

Deno.test({
  name: "NICs carry QEMU's iPXE option ROMs in their ROM BAR; romfile= empty gives none, " +
    "a missing romfile= fails with QEMU's message",
  ignore: skipUnless(
    import.meta,
    ...["efi-e1000.rom", "efi-virtio.rom", "efi-rtl8139.rom"].map((r) => ({
      ok: findFirmware(r).path !== null,
      missing: `${r} is not found (apt-get install ipxe-qemu)`,
    })),
  ),
  fn: async () => {
    // The default ROMs come with a network boot (vmkit's CPU cannot run iPXE yet).
    assert.equal(romBarSize((await boot("-device", "e1000,addr=3")).machine, 3), 0);
    const { machine } = await boot(
      "-boot",
      "n",
      "-device",
      "e1000,addr=3",
      "-device",
      "virtio-net-pci,addr=4",
      "-device",
      "rtl8139,addr=5",
      "-device",
      "e1000,addr=6,romfile=",
    );
    // efi-*.rom are 240-245 KiB: the BAR decodes the next power of two.
    assert.deepEqual([3, 4, 5, 6].map((s) => romBarSize(machine, s)), [
      256 * 1024,
      256 * 1024,
      256 * 1024,
      0,
    ]);
    await assert.rejects(
      () => boot("-device", "e1000,romfile=no-such.rom"),
      /failed to find romfile "no-such.rom"/,
    );
  },
});

Deno.test("NICs of different models share QEMU's default MAC table (52:54:00:12:34:56, then :57)", async () => {
  const { machine } = await boot(
    "-device",
    "e1000",
    "-device",
    "virtio-net-pci",
    "-device",
    "rtl8139",
  );
  const macs = machine.devices.map((d) => {
    const mac = (d as { mac?: Uint8Array }).mac ??
      ((d as { device?: { mac?: Uint8Array } }).device?.mac);
    return mac ? formatMac(mac) : undefined;
  }).filter((m) => m !== undefined);
  assert.deepEqual(macs, ["52:54:00:12:34:56", "52:54:00:12:34:57", "52:54:00:12:34:58"]);
});
