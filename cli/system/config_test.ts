import assert from "node:assert/strict";
import {
  checkImplemented,
  chosenAccel,
  parseBoot,
  parseRamSize,
  parseSmp,
  splitModules,
} from "./config.ts";
import { parseSystemArgs } from "./options.ts";

const opts = (...args: string[]) => parseSystemArgs(args).opts;

Deno.test("parseRamSize() reads a bare number as MiB and suffixes as QEMU does", () => {
  assert.equal(parseRamSize("768"), 768 << 20);
  assert.equal(parseRamSize("1G"), 1 << 30);
  assert.equal(parseRamSize("size=512M"), 512 << 20);
  assert.throws(() => parseRamSize("lots"), /Parameter 'size' expects/);
  assert.throws(() => parseRamSize("0"), /ram size too small/);
});

Deno.test("parseSmp() reads -smp N and the cpus= form, one socket of N cores as QEMU 7.2", () => {
  const topo = (sockets: number, cores: number, threads: number, dies = 1) => ({
    sockets,
    dies,
    cores,
    threads,
  });
  assert.deepEqual(parseSmp("2"), {
    cpus: 2,
    maxCpus: 2,
    topology: topo(1, 2, 1),
    warning: undefined,
  });
  assert.deepEqual(parseSmp("cpus=2,maxcpus=4").topology, topo(1, 4, 1));
  assert.equal(parseSmp("cpus=2,maxcpus=4").maxCpus, 4);
  assert.deepEqual(parseSmp("2,sockets=1,cores=2,threads=1").topology, topo(1, 2, 1));
  assert.deepEqual(parseSmp("4,sockets=2").topology, topo(2, 2, 1));
  assert.deepEqual(parseSmp("maxcpus=4"), {
    cpus: 4,
    maxCpus: 4,
    topology: topo(1, 4, 1),
    warning: undefined,
  });
  assert.deepEqual(parseSmp("2,dies=2").topology, topo(1, 1, 1, 2));
});

Deno.test("parseSmp() refuses what QEMU refuses, in QEMU's words", () => {
  assert.throws(
    () => parseSmp("3,sockets=2,cores=2"),
    /^UsageError: Invalid CPU topology: product of the hierarchy must match maxcpus: sockets \(2\) \* dies \(1\) \* cores \(2\) \* threads \(0\) != maxcpus \(3\)$/,
  );
  assert.throws(
    () => parseSmp("4,maxcpus=2"),
    /maxcpus must be equal to or greater than smp: sockets \(1\) \* dies \(1\) \* cores \(2\) \* threads \(1\) == maxcpus \(2\) < smp_cpus \(4\)/,
  );
  assert.throws(
    () => parseSmp("300"),
    /Invalid SMP CPUs 300. The max CPUs supported by machine 'pc-i440fx-7.2' is 255/,
  );
  assert.throws(() => parseSmp("2,foo=1"), /Parameter 'smp.foo' is unexpected/);
  assert.throws(() => parseSmp("abc"), /Parameter 'smp.cpus' expects integer/);
  // Zero is deprecated but accepted: one CPU and QEMU's warning.
  const zero = parseSmp("0");
  assert.equal(zero.cpus, 1);
  assert.match(zero.warning ?? "", /CPU topology parameters must be greater than zero/);
});

Deno.test("chosenAccel() follows -machine accel=, -accel and -enable-kvm, first of a list", () => {
  assert.equal(chosenAccel(opts()), "tcg");
  assert.equal(chosenAccel(opts("-machine", "accel=kvm")), "kvm");
  assert.equal(chosenAccel(opts("-M", "pc,accel=kvm:tcg")), "kvm");
  assert.equal(chosenAccel(opts("-accel", "tcg")), "tcg");
  assert.equal(chosenAccel(opts("-enable-kvm")), "kvm");
});

Deno.test("parseBoot() reads order letters, order= and menu=", () => {
  assert.deepEqual(parseBoot("d"), { bootOrder: "d" });
  assert.deepEqual(parseBoot("order=dc,menu=on,splash-time=500"), {
    bootOrder: "dc",
    bootMenu: true,
    bootSplashTimeMs: 500,
  });
  assert.throws(() => parseBoot("order=z9"), /Invalid boot device/);
  assert.throws(() => parseBoot("frob=1"), /Invalid parameter 'frob'/);
});

Deno.test("splitModules() splits -initrd on single commas and keeps ,, as a comma", () => {
  assert.deepEqual(splitModules("a.bin x=1,b.bin"), ["a.bin x=1", "b.bin"]);
  assert.deepEqual(splitModules("a,,b.bin"), ["a,b.bin"]);
});

Deno.test("checkImplemented() refuses what vmkit does not do yet instead of ignoring it", () => {
  checkImplemented(
    opts("-m", "128", "-nographic", "-vga", "none", "-display", "none", "-net", "none"),
  );
  checkImplemented(opts("-monitor", "stdio", "-qmp", "unix:/tmp/q,server=on,wait=off", "-S"));
  assert.throws(
    () => checkImplemented(opts("-incoming", "tcp:0:4444")),
    /-incoming: not supported by vmkit yet/,
  );
  checkImplemented(opts("-vga", "std", "-vga", "cirrus"));
  checkImplemented(opts("-parallel", "none"));
  assert.throws(
    () => checkImplemented(opts("-parallel", "file:/tmp/lp")),
    /-parallel: not supported by vmkit yet/,
  );
  assert.throws(
    () => checkImplemented(opts("-vga", "qxl")),
    /-vga qxl: not supported by vmkit yet/,
  );
  assert.throws(() => checkImplemented(opts("-vga", "foo")), /unknown vga type: foo/);
  checkImplemented(
    opts("-net", "user", "-netdev", "user,id=n0", "-nic", "none", "-balloon", "virtio"),
  );
});

Deno.test("a second stdio chardev is refused with QEMU's words, not a crash", async () => {
  const run = async (cmd: string, args: string[]) => {
    const out = await new Deno.Command(cmd, {
      args,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    })
      .output();
    return { code: out.code, stderr: new TextDecoder().decode(out.stderr) };
  };
  const main = new URL("../main.ts", import.meta.url).pathname;
  for (
    const line of [["-nographic", "-debugcon", "stdio"], ["-serial", "stdio", "-debugcon", "stdio"]]
  ) {
    const vmkit = await run(Deno.execPath(), [
      "run",
      "-A",
      main,
      "system-x86_64",
      "-display",
      "none",
      ...line,
    ]);
    assert.equal(vmkit.code, 1, vmkit.stderr);
    assert.match(vmkit.stderr, /cannot use stdio by multiple character devices/);
    assert.doesNotMatch(vmkit.stderr, /bug in vmkit/);
  }
});
