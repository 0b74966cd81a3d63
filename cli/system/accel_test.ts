import assert from "node:assert/strict";
import { Registry } from "../../core/plugin.ts";
import type { CpuDescriptor } from "../../core/plugin.ts";
import { accelChoices, chooseCpuPlugin } from "./accel.ts";
import { parseSystemArgs } from "./options.ts";
import { haveProgram, MAIN } from "../../tests/test_util.ts";

const opts = (...args: string[]) => parseSystemArgs(args).opts;

function cpu(accel: string, probe?: () => void): CpuDescriptor {
  return {
    kind: "cpu",
    name: accel,
    summary: accel,
    accel,
    models: [],
    options: [],
    create: () => {
      throw new Error("the accelerator-choice tests build no CPU");
    },
    probe,
  };
}

/** A registry whose kvm plugin fails as QEMU's kvm_init does without /dev/kvm. */
function registry(kvmWorks: boolean): Registry {
  const r = new Registry();
  r.add(cpu("tcg"));
  r.add(cpu("kvm", () => {
    if (kvmWorks) return;
    throw Object.assign(new Error("No such file or directory"), {
      preface: "Could not access KVM kernel module: No such file or directory",
    });
  }));
  return r;
}

Deno.test("accelChoices() reads -accel options in order, else -machine accel= lists, else tcg", () => {
  assert.deepEqual(accelChoices(opts()), [{ name: "tcg" }]);
  assert.deepEqual(accelChoices(opts("-M", "pc,accel=kvm:tcg")), [{ name: "kvm" }, {
    name: "tcg",
  }]);
  assert.deepEqual(accelChoices(opts("-enable-kvm")), [{ name: "kvm" }]);
  assert.deepEqual(accelChoices(opts("-accel", "kvm", "-accel", "tcg")), [
    { name: "kvm", location: "-accel kvm" },
    { name: "tcg", location: "-accel tcg" },
  ]);
  assert.throws(
    () => accelChoices(opts("-accel", "kvm", "-machine", "accel=tcg")),
    /The -accel and "-machine accel=" options are incompatible/,
  );
});

Deno.test("chooseCpuPlugin() falls back past a KVM that cannot start with QEMU's lines", () => {
  const lines: string[] = [];
  const chosen = chooseCpuPlugin(
    opts("-accel", "kvm", "-accel", "tcg"),
    registry(false),
    (l) => lines.push(l),
  );
  assert.equal(chosen.accel, "tcg");
  assert.deepEqual(lines, [
    "Could not access KVM kernel module: No such file or directory",
    "qemu-system-x86_64: -accel kvm: failed to initialize kvm: No such file or directory",
    "qemu-system-x86_64: falling back to tcg",
  ]);
});

Deno.test("chooseCpuPlugin() throws the last failure and takes a working KVM first", () => {
  const lines: string[] = [];
  assert.throws(
    () => chooseCpuPlugin(opts("-machine", "accel=kvm"), registry(false), (l) => lines.push(l)),
    /^UsageError: failed to initialize kvm: No such file or directory$/,
  );
  assert.deepEqual(lines, ["Could not access KVM kernel module: No such file or directory"]);
  assert.equal(chooseCpuPlugin(opts("-M", "accel=kvm:tcg"), registry(true), () => {}).accel, "kvm");
  assert.throws(
    () => chooseCpuPlugin(opts("-accel", "hax"), registry(true), () => {}),
    /-accel hax: invalid accelerator hax/,
  );
});

/** True when this process may make a mount namespace (root with unshare available). */
const CAN_UNSHARE = haveProgram("unshare") && Deno.uid?.() === 0 &&
  new Deno.Command("unshare", { args: ["-m", "true"], stderr: "null" }).outputSync().success;

Deno.test({
  name: "vmkit prints QEMU's lines when /dev/kvm is missing or is not KVM, in a mount namespace" +
    (CAN_UNSHARE && haveProgram("qemu-system-x86_64")
      ? ""
      : " (ignored: needs root, unshare and qemu-system-x86_64)"),
  ignore: !CAN_UNSHARE || !haveProgram("qemu-system-x86_64"),
  fn() {
    const cases: [string, string[]][] = [
      // /dev/null in its place: open works, KVM_GET_API_VERSION fails (ENOTTY).
      ["mount --bind /dev/null /dev/kvm", ["-accel", "kvm"]],
      // An empty /dev: open fails with ENOENT.
      ["mount -t tmpfs none /dev", ["-enable-kvm"]],
      ["mount -t tmpfs none /dev", ["-machine", "accel=kvm"]],
    ];
    for (const [hide, args] of cases) {
      const run = (program: string) => {
        const cmd = `${hide} && exec timeout 60 ${program} ${
          args.join(" ")
        } -nodefaults -display none`;
        const out = new Deno.Command("timeout", {
          args: ["90", "unshare", "-m", "sh", "-c", cmd],
          stdin: "null",
        }).outputSync();
        return { code: out.code, stderr: new TextDecoder().decode(out.stderr) };
      };
      const qemu = run("qemu-system-x86_64");
      const vmkit = run(`${Deno.execPath()} run -A --quiet ${MAIN} system-x86_64`);
      assert.equal(qemu.code, 1, qemu.stderr);
      assert.equal(vmkit.code, qemu.code, vmkit.stderr);
      assert.equal(vmkit.stderr, qemu.stderr.replaceAll("qemu-system-x86_64:", "vmkit:"));
    }
  },
});
