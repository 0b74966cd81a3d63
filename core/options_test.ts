import assert from "node:assert/strict";
import {
  formatOptionHelp,
  isHelpRequest,
  type OptionSpec,
  parseBool,
  parseKeyValueList,
  parseNumber,
  parseOptions,
  parseSignedSize,
  parseSize,
} from "./options.ts";
import { OptionError } from "./errors.ts";

const pairs = (text: string, impliedKey?: string) =>
  parseKeyValueList(text, { impliedKey }).map((i) => [i.key, i.value, i.bare]);

Deno.test("parseKeyValueList() splits key=value items in order", () => {
  assert.deepEqual(pairs("a=1,b=2,c=x"), [["a", "1", false], ["b", "2", false], ["c", "x", false]]);
});

Deno.test("parseKeyValueList() reads ,, as a literal comma", () => {
  assert.deepEqual(pairs("file=a,,b.img,if=virtio"), [["file", "a,b.img", false], [
    "if",
    "virtio",
    false,
  ]]);
  assert.deepEqual(pairs("file=a,,,,b"), [["file", "a,,b", false]]);
  assert.deepEqual(pairs("file=trailing,,"), [["file", "trailing,", false]]);
});

Deno.test("parseKeyValueList() gives a bare first item to the implied key", () => {
  assert.deepEqual(pairs("disk.img,if=ide", "file"), [["file", "disk.img", false], [
    "if",
    "ide",
    false,
  ]]);
  assert.deepEqual(pairs("nic,model=virtio", "type"), [["type", "nic", false], [
    "model",
    "virtio",
    false,
  ]]);
});

Deno.test("parseKeyValueList() keeps later bare items as flags", () => {
  assert.deepEqual(pairs("disk.img,readonly", "file"), [["file", "disk.img", false], [
    "readonly",
    "",
    true,
  ]]);
  assert.deepEqual(pairs("help"), [["help", "", true]]);
  assert.deepEqual(pairs("?", "file"), [["?", "", true]]);
});

Deno.test("parseKeyValueList() keeps = inside a value and dotted keys", () => {
  assert.deepEqual(pairs("append=console=ttyS0 quiet"), [["append", "console=ttyS0 quiet", false]]);
  assert.deepEqual(pairs("file.filename=x,encrypt.format=luks"), [
    ["file.filename", "x", false],
    ["encrypt.format", "luks", false],
  ]);
});

Deno.test("parseKeyValueList() accepts an empty string and a trailing comma", () => {
  assert.deepEqual(pairs(""), []);
  assert.deepEqual(pairs("a=1,"), [["a", "1", false]]);
});

Deno.test("parseKeyValueList() refuses an empty item and an empty key", () => {
  // ",," always escapes, so "a=1,,,b=2" is a="1," then b="2", never an empty item.
  assert.deepEqual(pairs("a=1,,,b=2"), [["a", "1,", false], ["b", "2", false]]);
  assert.throws(() => parseKeyValueList(",a=1"), /empty parameter/);
  assert.throws(() => parseKeyValueList("=x"), /empty name/);
});

Deno.test("isHelpRequest() finds help and ? alone or as an item", () => {
  assert.equal(isHelpRequest("help"), true);
  assert.equal(isHelpRequest("?"), true);
  assert.equal(isHelpRequest("cluster_size=4k,help"), true);
  assert.equal(isHelpRequest("helpful=1"), false);
});

Deno.test("parseSize() reads plain bytes and every binary suffix", () => {
  assert.equal(parseSize("0"), 0);
  assert.equal(parseSize("512"), 512);
  assert.equal(parseSize("512b"), 512);
  assert.equal(parseSize("1B"), 1);
  assert.equal(parseSize("4k"), 4096);
  assert.equal(parseSize("4K"), 4096);
  assert.equal(parseSize("8M"), 8 << 20);
  assert.equal(parseSize("8G"), 8 * 2 ** 30);
  assert.equal(parseSize("1T"), 2 ** 40);
  assert.equal(parseSize("2P"), 2 * 2 ** 50);
  assert.equal(parseSize("1E"), 2 ** 60);
});

Deno.test("parseSize() reads a decimal fraction with a suffix", () => {
  assert.equal(parseSize("1.5G"), 1.5 * 2 ** 30);
  assert.equal(parseSize("0.5k"), 512);
  assert.throws(() => parseSize("1.5"), /whole number of bytes/);
});

Deno.test("parseSize() uses the default suffix for a bare number", () => {
  assert.equal(parseSize("768", { defaultSuffix: "m" }), 768 << 20);
  assert.equal(parseSize("1G", { defaultSuffix: "m" }), 2 ** 30);
});

Deno.test("parseSize() refuses junk, negatives and values past 2^63", () => {
  for (const bad of ["", "x", "-1", "1Q", "1GG", "8G8", "0x10", "1,5G", "16E"]) {
    assert.throws(() => parseSize(bad), OptionError, bad);
  }
  assert.throws(() => parseSize("12Q", { what: "size" }), /Parameter 'size' expects/);
});

Deno.test("parseSignedSize() reads resize's relative sizes", () => {
  assert.deepEqual(parseSignedSize("+2G"), { relative: true, bytes: 2 * 2 ** 30 });
  assert.deepEqual(parseSignedSize("-1G"), { relative: true, bytes: -(2 ** 30) });
  assert.deepEqual(parseSignedSize("10G"), { relative: false, bytes: 10 * 2 ** 30 });
  assert.throws(() => parseSignedSize("+x"), OptionError);
});

Deno.test("parseBool() reads every spelling QEMU accepts", () => {
  for (const t of ["on", "yes", "true", "y"]) assert.equal(parseBool(t, "x"), true);
  for (const f of ["off", "no", "false", "n"]) assert.equal(parseBool(f, "x"), false);
  assert.throws(
    () => parseBool("maybe", "lazy_refcounts"),
    /'lazy_refcounts' expects 'on' or 'off'/,
  );
  assert.throws(() => parseBool("ON", "x"), OptionError);
});

Deno.test("parseNumber() reads decimal and hex integers", () => {
  assert.equal(parseNumber("16", "refcount_bits"), 16);
  assert.equal(parseNumber("0xf4", "iobase"), 0xf4);
  assert.throws(() => parseNumber("1.5", "refcount_bits"), /expects a number/);
});

const SPECS: readonly OptionSpec[] = [
  { name: "cluster_size", type: "size", help: "qcow2 cluster size", default: 65536 },
  { name: "lazy_refcounts", type: "bool", help: "Postpone refcount updates" },
  { name: "refcount_bits", type: "number", help: "Width of a reference count entry in bits" },
  { name: "compat", type: "string", help: "Compatibility level (v2 [0.10] or v3 [1.1])" },
  {
    name: "preallocation",
    type: "enum",
    values: ["off", "metadata", "falloc", "full"],
    help: "Preallocation mode (allowed values: off, metadata, falloc, full)",
  },
];

Deno.test("parseOptions() types every value by its spec", () => {
  assert.deepEqual(
    parseOptions(
      "cluster_size=4k,lazy_refcounts=on,refcount_bits=8,compat=0.10,preallocation=metadata",
      SPECS,
    ),
    {
      cluster_size: 4096,
      lazy_refcounts: true,
      refcount_bits: 8,
      compat: "0.10",
      preallocation: "metadata",
    },
  );
});

Deno.test("parseOptions() names an unknown option in its error", () => {
  assert.throws(() => parseOptions("clustr_size=4k", SPECS), {
    name: "OptionError",
    message: "Invalid parameter 'clustr_size'",
  });
});

Deno.test("parseOptions() refuses a bad enum value listing the allowed ones", () => {
  assert.throws(
    () => parseOptions("preallocation=lots", SPECS),
    /does not accept value 'lots' \(allowed values: off, metadata, falloc, full\)/,
  );
});

Deno.test("parseOptions() reads a bare boolean option as on, and refuses other bare options", () => {
  assert.deepEqual(parseOptions("lazy_refcounts", SPECS), { lazy_refcounts: true });
  assert.throws(() => parseOptions("cluster_size", SPECS), /missing a value/);
});

Deno.test("parseOptions() lets a later value override an earlier one and extends `into`", () => {
  const into = parseOptions("cluster_size=4k", SPECS);
  assert.deepEqual(parseOptions("cluster_size=8k,compat=1.1", SPECS, { into }), {
    cluster_size: 8192,
    compat: "1.1",
  });
});

Deno.test("parseOptions() keeps unknown keys only when asked", () => {
  assert.deepEqual(parseOptions("x=1", SPECS, { allowUnknown: true }), { x: "1" });
});

Deno.test("formatOptionHelp() prints QEMU's layout sorted by name", () => {
  assert.equal(
    formatOptionHelp(SPECS),
    [
      "  cluster_size=<size>    - qcow2 cluster size",
      "  compat=<str>           - Compatibility level (v2 [0.10] or v3 [1.1])",
      "  lazy_refcounts=<bool (on/off)> - Postpone refcount updates",
      "  preallocation=<str>    - Preallocation mode (allowed values: off, metadata, falloc, full)",
      "  refcount_bits=<num>    - Width of a reference count entry in bits",
    ].join("\n"),
  );
});
