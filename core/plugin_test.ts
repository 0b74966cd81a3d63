import assert from "node:assert/strict";
import {
  type CpuDescriptor,
  type CpuFamily,
  type DeviceDescriptor,
  type MachineDescriptor,
  Registry,
} from "./plugin.ts";
import { X86_CPU_FAMILY, x86CpuHelp } from "./x86_cpu_models.ts";

const device = (name: string, category: DeviceDescriptor["category"], extra = {}) =>
  ({
    kind: "device",
    name,
    summary: "",
    options: [],
    bus: "ISA",
    category,
    userCreatable: true,
    create: () => {
      throw new Error("not created in this test");
    },
    ...extra,
  }) as DeviceDescriptor;

Deno.test("Registry.add() refuses a second plugin with the same kind and name or alias", () => {
  const r = new Registry();
  r.add(device("isa-serial", "Input"));
  assert.throws(() => r.add(device("isa-serial", "Misc")), /already registered/);
  r.add(device("virtio-blk-pci", "Storage", { aliases: ["virtio-blk"] }));
  assert.throws(() => r.add(device("virtio-blk", "Storage")), /already registered/);
});

Deno.test("Registry.add() refuses a descriptor that does not fill the contract", () => {
  const r = new Registry();
  assert.throws(() => r.add({ kind: "gpu", name: "x" } as never), /Unknown plugin kind/);
  assert.throws(() => r.add({ ...device("bad name", "Misc") }), /Invalid plugin name/);
  assert.throws(() => r.add({ ...device("x", "Misc"), create: undefined } as never), /no create/);
});

Deno.test("Registry.get() finds a plugin by alias and require() gives QEMU's error", () => {
  const r = new Registry();
  r.add(device("virtio-blk-pci", "Storage", { aliases: ["virtio-blk"] }));
  assert.equal(r.get("device", "virtio-blk")?.name, "virtio-blk-pci");
  assert.throws(() => r.require("device", "foo"), /'foo' is not a valid device model name/);
  assert.throws(() => r.require("format", "foo"), /Unknown file format 'foo'/);
});

Deno.test("Registry.deviceHelp() groups devices by category in QEMU's order", () => {
  const r = new Registry();
  r.add(device("isa-debug-exit", "Misc"));
  r.add(device("virtio-blk-pci", "Storage", { aliases: ["virtio-blk"], bus: "PCI" }));
  r.add(device("isa-serial", "Input"));
  r.add(device("hidden-board-part", "Misc", { userCreatable: false }));
  assert.equal(
    r.deviceHelp(),
    [
      "Storage devices:",
      'name "virtio-blk-pci", bus PCI, alias "virtio-blk"',
      "",
      "Input devices:",
      'name "isa-serial", bus ISA',
      "",
      "Misc devices:",
      'name "isa-debug-exit", bus ISA',
    ].join("\n"),
  );
});

Deno.test("Registry.machineHelp() lists machines with aliases and the default", () => {
  const r = new Registry();
  const pc: MachineDescriptor = {
    kind: "machine",
    name: "pc-i440fx-7.2",
    aliases: ["pc"],
    summary: "Standard PC (i440FX + PIIX, 1996)",
    options: [],
    isDefault: true,
    create: () => {
      throw new Error("not created in this test");
    },
  };
  r.add(pc);
  assert.equal(
    r.machineHelp(),
    "Supported machines are:\n" +
      "pc                   Standard PC (i440FX + PIIX, 1996) (alias of pc-i440fx-7.2)\n" +
      "pc-i440fx-7.2        Standard PC (i440FX + PIIX, 1996) (default)",
  );
});

Deno.test("Registry.probeFormat() picks the highest score", () => {
  const r = new Registry();
  const fmt = (name: string, score: number) => ({
    kind: "format" as const,
    name,
    summary: "",
    options: [],
    probe: () => score,
    create: () => Promise.resolve(),
    open: () => Promise.reject(new Error("unused")),
  });
  r.addAll([fmt("raw", 1), fmt("qcow2", 100), fmt("vpc", 0)]);
  assert.equal(r.probeFormat(new Uint8Array(16), "x")?.name, "qcow2");
});

Deno.test("Registry.cpuHelp() prints the help of the machine's CPU family, from that family's plugin", () => {
  const cpu = (name: string, models: CpuDescriptor["models"], family?: CpuFamily) =>
    ({
      kind: "cpu",
      name,
      summary: "",
      options: [],
      accel: name,
      models,
      ...(family ? { family } : {}),
      create: () => {
        throw new Error("not created in this test");
      },
    }) as CpuDescriptor;
  const toy: CpuFamily = {
    name: "toy",
    help: (models) => `Toy CPUs: ${models.map((m) => m.name).join(" ")}\n`,
  };
  const r = new Registry();
  r.add(cpu("tcg", [{ name: "qemu32", description: "QEMU Virtual CPU version 2.5+" }]));
  r.add(cpu("toy-tcg", [{ name: "t1", description: "the first toy" }], toy));
  r.add(cpu("toy-kvm", [{ name: "t2", description: "the second toy" }], toy));
  assert.equal(r.cpuHelp("toy"), "Toy CPUs: t1 t2\n");
  // No backend names the x86 family yet (its text is not in core/plugin.ts): an empty list.
  assert.equal(r.cpuHelp(), "Available CPUs:\n");
  r.add(cpu("kvm", [{ name: "kvm64", description: "Common KVM processor" }], X86_CPU_FAMILY));
  // x86 backends that name no family are x86's: its help is QEMU's table, no toy model in it.
  assert.equal(r.cpuHelp(), x86CpuHelp());
  assert.equal(r.cpuHelp("x86"), x86CpuHelp());
  // A family no backend brings (a machine plugin loaded without its CPU plugin): an empty list.
  assert.equal(r.cpuHelp("riscv"), "Available CPUs:\n");
});
