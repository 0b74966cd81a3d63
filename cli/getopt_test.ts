import assert from "node:assert/strict";
import { getopt } from "./getopt.ts";

Deno.test("getopt() accepts options after positional arguments", () => {
  const r = getopt(["x.img", "1G", "-f", "qcow2"], "f:");
  assert.deepEqual(r.positional, ["x.img", "1G"]);
  assert.deepEqual(r.opts, [{ name: "f", value: "qcow2" }]);
});

Deno.test("getopt() reads grouped flags and an attached argument", () => {
  const r = getopt(["-qpfqcow2"], "qpf:");
  assert.deepEqual(r.opts.map((o) => [o.name, o.value]), [["q", ""], ["p", ""], ["f", "qcow2"]]);
});

Deno.test("getopt() stops at -- and keeps what follows as positional", () => {
  const r = getopt(["-q", "--", "-1G"], "q");
  assert.deepEqual(r.positional, ["-1G"]);
});

Deno.test("getopt() maps a long option to its short letter and accepts a unique prefix", () => {
  const long = [{ name: "force-share", hasArg: false, short: "U" }, {
    name: "output",
    hasArg: true,
  }];
  const r = getopt(["--force", "--output", "json"], "U", long);
  assert.deepEqual(r.opts, [{ name: "U", value: "" }, { name: "output", value: "json" }]);
});

Deno.test("getopt() reports unknown and incomplete options in qemu-img's words", () => {
  assert.throws(() => getopt(["-z"], "q"), /unrecognized option '-z'/);
  // A letter inside a cluster is named by the argument before it, as argv[optind - 1].
  assert.throws(() => getopt(["-f", "qcow2", "-zq"], "f:q"), /unrecognized option 'qcow2'/);
  assert.throws(() => getopt(["-f"], "f:"), /missing argument for option '-f'/);
  assert.throws(() => getopt(["--nope"], "q"), /unrecognized option '--nope'/);
  assert.throws(
    () => getopt(["--output"], "", [{ name: "output", hasArg: true }]),
    /missing argument for option '--output'/,
  );
});
