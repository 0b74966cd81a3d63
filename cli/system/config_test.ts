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

Deno.test("parseSmp() reads -smp N and the cpus= form", () => {
  assert.deepEqual(parseSmp("2"), { cpus: 2, maxCpus: 2 });
  assert.deepEqual(parseSmp("cpus=2,maxcpus=4"), { cpus: 2, maxCpus: 4 });
  assert.throws(() => parseSmp("0"), /Invalid SMP CPUs/);
});

Deno.test("chosenAccel() follows -machine accel=, -accel and -enable-kvm, preferring tcg in a list", () => {
  assert.equal(chosenAccel(opts()), "tcg");
  assert.equal(chosenAccel(opts("-machine", "accel=kvm")), "kvm");
  assert.equal(chosenAccel(opts("-M", "pc,accel=kvm:tcg")), "tcg");
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
  assert.throws(
    () => checkImplemented(opts("-monitor", "stdio")),
    /-monitor: not supported by vmkit yet/,
  );
  assert.throws(() => checkImplemented(opts("-vga", "cirrus")), /VGA adapters are not supported/);
  assert.throws(() => checkImplemented(opts("-net", "user")), /network devices are not supported/);
});
