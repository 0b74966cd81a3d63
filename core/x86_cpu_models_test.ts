import assert from "node:assert/strict";
import { UsageError } from "./errors.ts";
import {
  cpuidLeaf,
  featureMask,
  findX86Model,
  flagNames,
  parseCpuOption,
  resolveX86Cpu,
  tcgFeatures,
  topologyWarnings,
  x86CpuHelp,
  x86ModelNames,
} from "./x86_cpu_models.ts";

const ONE = { sockets: 1, dies: 1, cores: 1, threads: 1 };

Deno.test("x86ModelNames() lists QEMU 7.2's 132 names with qemu64, qemu32, max and the versions", () => {
  const names = x86ModelNames();
  assert.equal(names.length, 132);
  for (const n of ["qemu64", "qemu32", "max", "base", "host", "Broadwell-IBRS", "EPYC-Milan-v1"]) {
    assert.ok(names.includes(n), n);
  }
});

Deno.test("findX86Model() follows an alias to its version", () => {
  assert.equal(findX86Model("Broadwell-IBRS")!.name, "Broadwell-v3");
  assert.equal(findX86Model("Haswell")!.name, "Haswell-v1");
  assert.equal(findX86Model("qemu64")!.family, 15);
  assert.equal(findX86Model("nosuch"), undefined);
});

Deno.test("parseCpuOption() answers an unknown model, flag or value in QEMU's words", () => {
  const fails = (text: string, message: string) =>
    assert.throws(() => parseCpuOption(text), (e: unknown) => {
      assert.ok(e instanceof UsageError);
      assert.equal(e.message, message);
      return true;
    });
  fails("foo", "unable to find CPU model 'foo'");
  fails("qemu64,+foo", "Property 'qemu64-x86_64-cpu.foo' not found");
  fails("qemu64,-foo", "Property 'qemu64-x86_64-cpu.foo' not found");
  fails("qemu64,+sse2=on", "Property 'qemu64-x86_64-cpu.sse2=on' not found");
  fails(
    "qemu64,foo=on",
    "can't apply global qemu64-x86_64-cpu.foo=on: Property 'qemu64-x86_64-cpu.foo' not found",
  );
  fails(
    "qemu64,sse2=maybe",
    "can't apply global qemu64-x86_64-cpu.sse2=maybe: Parameter 'sse2' expects 'on' or 'off'",
  );
  fails(
    "qemu64,level=x",
    "can't apply global qemu64-x86_64-cpu.level=x: Parameter 'level' expects uint64",
  );
  fails(
    "qemu64,family=x",
    "can't apply global qemu64-x86_64-cpu.family=x: Parameter 'family' expects int64",
  );
  fails(
    "qemu64,vendor=abc",
    "can't apply global qemu64-x86_64-cpu.vendor=abc: Property '.vendor' doesn't take value 'abc'",
  );
  assert.throws(
    () => parseCpuOption("qemu64,+foo", { target: "i386" }),
    { message: "Property 'qemu64-i386-cpu.foo' not found" },
  );
});

Deno.test("resolveX86Cpu() applies feat=on|off, then every +feat, then every -feat, as QEMU 7.2", () => {
  const ecx = (text: string) => resolveX86Cpu(text, { accel: "tcg" }).features["1_ECX"]! >>> 0;
  const SSSE3 = 1 << 9;
  assert.equal(ecx("qemu64,-ssse3,+ssse3") & SSSE3, 0, "- wins over + whatever the order");
  assert.equal(ecx("qemu64,+ssse3,ssse3=off") & SSSE3, SSSE3, "+ wins over =off");
  assert.equal(ecx("qemu64,ssse3=on") & SSSE3, SSSE3);
  assert.equal(ecx("qemu64,ssse3") & SSSE3, SSSE3, "a bare flag is =on");
  assert.equal(ecx("qemu64,+sse4_1") >>> 19 & 1, 1, "underscores spell hyphens");
  const mixed = resolveX86Cpu("qemu64,+sse2,sse2=off", { accel: "tcg" });
  assert.deepEqual(mixed.warnings, [
    `Ambiguous CPU model string. Don't mix both "+sse2" and "sse2=off"`,
    "Compatibility of ambiguous CPU model strings won't be kept on future QEMU versions",
  ]);
});

Deno.test("resolveX86Cpu() drops what TCG lacks with QEMU's warning, and max drops nothing", () => {
  const haswell = resolveX86Cpu("Haswell", { accel: "tcg" });
  assert.deepEqual(haswell.warnings, [
    "TCG doesn't support requested feature: CPUID.01H:ECX.pcid [bit 17]",
    "TCG doesn't support requested feature: CPUID.01H:ECX.x2apic [bit 21]",
    "TCG doesn't support requested feature: CPUID.01H:ECX.tsc-deadline [bit 24]",
    "TCG doesn't support requested feature: CPUID.07H:EBX.hle [bit 4]",
    "TCG doesn't support requested feature: CPUID.07H:EBX.invpcid [bit 10]",
    "TCG doesn't support requested feature: CPUID.07H:EBX.rtm [bit 11]",
  ]);
  assert.deepEqual(resolveX86Cpu("max", { accel: "tcg" }).warnings, []);
  assert.deepEqual(resolveX86Cpu("max", { accel: "tcg" }).features, tcgFeatures());
  assert.throws(() => resolveX86Cpu("host", { accel: "tcg" }), /requires KVM or HVF/);
  assert.throws(
    () => resolveX86Cpu("qemu64,enforce,+avx512f", { accel: "tcg" }),
    /^UsageError: TCG doesn't support requested features: CPUID.07H:EBX.avx512f \[bit 16\]$/,
  );
  assert.equal(resolveX86Cpu("qemu64,enforce,check=off", { accel: "tcg" }).warnings.length, 0);
  const kvm = {
    accel: "kvm" as const,
    supported: featureMask(["fpu", "sse2"]),
    hostVendor: "HygonGenuine",
  };
  const host = resolveX86Cpu("host", kvm);
  assert.deepEqual(flagNames(host.features), ["fpu", "sse2"], "host under KVM: what KVM has");
  assert.equal(host.vendor, "HygonGenuine");
  assert.deepEqual(flagNames(resolveX86Cpu("max", kvm).features), ["fpu", "sse2"]);
});

Deno.test("resolveX86Cpu() with a smaller supported mask presents only that mask", () => {
  const interp = featureMask(["fpu", "tsc", "cx8", "cmov", "mmx", "fxsr", "sse", "sse2", "lm"]);
  const cpu = resolveX86Cpu("qemu64", { accel: "tcg", supported: interp });
  assert.deepEqual(flagNames(cpu.features), [
    "fpu",
    "tsc",
    "cx8",
    "cmov",
    "mmx",
    "fxsr",
    "sse",
    "sse2",
    "lm",
  ]);
  assert.ok(
    cpu.warnings.includes("TCG doesn't support requested feature: CPUID.01H:ECX.pni [bit 0]"),
  );
  const max = resolveX86Cpu("max", { accel: "tcg", supported: interp });
  assert.deepEqual(max.warnings, [], "max asks for whatever there is");
  assert.throws(() => featureMask(["sse9"]), RangeError);
});

Deno.test("resolveX86Cpu() raises the levels for flags that need higher leaves", () => {
  assert.equal(resolveX86Cpu("qemu32", { accel: "tcg" }).level, 4);
  assert.equal(resolveX86Cpu("qemu32,+avx2", { accel: "tcg" }).level, 7);
  assert.equal(resolveX86Cpu("qemu32,+svm", { accel: "tcg" }).xlevel, 0x8000000a);
  assert.equal(resolveX86Cpu("qemu32,+avx2,level=5", { accel: "tcg" }).level, 5, "level= wins");
});

Deno.test("cpuidLeaf() gives each CPU of -smp its own APIC ID and the package's logical count", () => {
  const cpu = resolveX86Cpu("qemu64", { accel: "tcg" });
  const topology = { sockets: 1, dies: 1, cores: 2, threads: 1 };
  const leaf1 = cpuidLeaf(cpu, { apicId: 1, topology }, 1, 0);
  assert.equal(leaf1[1] >>> 24, 1);
  assert.equal(leaf1[1] >>> 16 & 0xff, 2);
  assert.equal(leaf1[3] >>> 28 & 1, 1, "HTT");
  assert.equal(cpuidLeaf(cpu, { apicId: 1, topology }, 0xb, 0)[3], 1, "x2APIC ID");
  assert.equal(cpuidLeaf(cpu, { apicId: 0, topology: ONE }, 1, 0)[3] >>> 28 & 1, 0);
});

Deno.test("cpuidLeaf() follows CR4.OSXSAVE, XCR0 and the APIC enable as a guest changes them", () => {
  const cpu = resolveX86Cpu("Haswell", { accel: "tcg" });
  const base = { apicId: 0, topology: ONE };
  assert.equal(cpuidLeaf(cpu, base, 1, 0)[2] >>> 27 & 1, 0);
  assert.equal(cpuidLeaf(cpu, { ...base, cr4: 1 << 18 }, 1, 0)[2] >>> 27 & 1, 1);
  assert.equal(cpuidLeaf(cpu, { ...base, xcr0: 7 }, 0xd, 0)[1], 0x340, "x87+SSE+AVX area");
  assert.equal(cpuidLeaf(cpu, { ...base, apicEnabled: false }, 1, 0)[3] >>> 9 & 1, 0);
});

Deno.test("cpuidLeaf() reads the brand string and vendor of the model", () => {
  const cpu = resolveX86Cpu("qemu64,model-id=Hello,vendor=GenuineIntel", { accel: "tcg" });
  const b = cpuidLeaf(cpu, { apicId: 0, topology: ONE }, 0x80000002, 0);
  assert.equal(new TextDecoder().decode(new Uint32Array(b)).replace(/\0+$/, ""), "Hello");
  const v = cpuidLeaf(cpu, { apicId: 0, topology: ONE }, 0, 0);
  assert.equal(new TextDecoder().decode(new Uint32Array([v[1], v[3], v[2]])), "GenuineIntel");
});

Deno.test("topologyWarnings() warns for threads on an AMD model without TOPOEXT, as QEMU", () => {
  const cpu = resolveX86Cpu("qemu64", { accel: "tcg" });
  assert.deepEqual(topologyWarnings(cpu, { sockets: 1, dies: 1, cores: 1, threads: 2 }), [
    "This family of AMD CPU doesn't support hyperthreading(2)\n" +
    "Please configure -smp options properly or try enabling topoext feature.",
  ]);
  assert.deepEqual(topologyWarnings(cpu, ONE), []);
});

Deno.test("x86CpuHelp() lists every model, then the flags wrapped at 75 columns", () => {
  const help = x86CpuHelp();
  assert.ok(
    help.startsWith(
      "Available CPUs:\nx86 486                   (alias configured by machine type)\n",
    ),
  );
  assert.ok(help.includes("\nx86 Broadwell-IBRS        (alias of Broadwell-v3)\n"));
  assert.ok(help.endsWith("xsaveerptr xsaveopt xsaves xstore xstore-en xtpr\n\n"));
  const flags = help.slice(help.indexOf("Recognized CPUID flags:\n")).split("\n").slice(1, -2);
  assert.ok(flags.every((l) => l.startsWith("  ") && l.length <= 75));
  const withExtra = x86CpuHelp([{ name: "Zen9", description: "a plugin's model" }]);
  assert.ok(
    withExtra.includes(
      "x86 Westmere-v2           Westmere E56xx/L56xx/X56xx (IBRS update)\nx86 Zen9 ",
    ),
  );
});
