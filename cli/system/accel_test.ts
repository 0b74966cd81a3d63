import { skipUnless } from "../../tests/skip.ts";
import assert from "node:assert/strict";
import { Registry } from "../../core/plugin.ts";
import type { CpuDescriptor } from "../../core/plugin.ts";
import { accelChoices, accelProperties, chooseCpuPlugin } from "./accel.ts";
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
  ignore: skipUnless(
    import.meta,
    { ok: CAN_UNSHARE, missing: "a mount namespace needs root and unshare(1)" },
    "qemu-system-x86_64",
  ),
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

Deno.test("accelProperties() reads kernel-irqchip from -machine and -accel as QEMU 7.2 does", () => {
  const props = (...args: string[]) => {
    const o = opts(...args);
    const warnings: string[] = [];
    const out = accelProperties(o, accelChoices(o)[0], (w) => warnings.push(w));
    return { out, warnings };
  };
  assert.deepEqual(props("-accel", "kvm").out, { "kernel-irqchip": "on" });
  assert.deepEqual(props("-M", "pc,accel=kvm,kernel_irqchip=split").out, {
    "kernel-irqchip": "split",
  });
  // The -accel property wins over the -machine sugar; the last -machine value wins.
  assert.deepEqual(
    props("-M", "kernel-irqchip=off", "-M", "kernel-irqchip=split", "-accel", "kvm").out,
    { "kernel-irqchip": "split" },
  );
  assert.deepEqual(props("-M", "kernel-irqchip=off", "-accel", "kvm,kernel-irqchip=on").out, {
    "kernel-irqchip": "on",
  });
  assert.deepEqual(props("-enable-kvm", "-M", "kernel-irqchip=off").warnings, [
    "Userspace local APIC is deprecated for KVM.",
    "Do not use kernel-irqchip except for the -M isapc machine type.",
  ]);
  // tcg ignores the -machine sugar, and refuses the -accel property.
  assert.deepEqual(props("-M", "kernel-irqchip=bogus").out, {});
  assert.deepEqual(props("-accel", "tcg,thread=single").out, {});
  assert.throws(
    () => props("-accel", "tcg,kernel-irqchip=on"),
    /^UsageError: -accel tcg,kernel-irqchip=on: Property 'tcg-accel.kernel-irqchip' not found$/,
  );
  assert.throws(
    () => props("-accel", "kvm,kernel_irqchip=on"),
    /^UsageError: -accel kvm,kernel_irqchip=on: Property 'kvm-accel.kernel_irqchip' not found$/,
  );
  assert.throws(
    () => props("-accel", "kvm,kernel-irqchip=foo"),
    /^UsageError: -accel kvm,kernel-irqchip=foo: Parameter 'kernel-irqchip' does not accept value 'foo'$/,
  );
  assert.throws(
    () => props("-M", "kernel-irqchip=foo", "-accel", "kvm"),
    /^UsageError: -accel kvm: can't apply global kvm-accel.kernel-irqchip=foo: Parameter 'kernel-irqchip' does not accept value 'foo'$/,
  );
  assert.throws(
    () => props("-machine", "accel=kvm,kernel-irqchip=foo"),
    /^UsageError: can't apply global kvm-accel.kernel-irqchip=foo: Parameter 'kernel-irqchip' does not accept value 'foo'$/,
  );
});

/**
 * `info kvm` and `query-kvm` from `program` (`-S`: no guest code runs) under `accel`:
 * the monitor's output up to the answer, then the program is ended.
 */
function askKvm(program: string[], accel: string): Promise<[string, string]> {
  const run = async (monitor: string, input: string, answer: RegExp) => {
    const child = new Deno.Command("timeout", {
      args: [
        "60",
        ...program,
        "-accel",
        accel,
        "-S",
        "-nodefaults",
        "-display",
        "none",
        monitor,
        "stdio",
      ],
      stdin: "piped",
      stdout: "piped",
      stderr: "null",
    }).spawn();
    const writer = child.stdin.getWriter();
    await writer.write(new TextEncoder().encode(input));
    let text = "";
    const decoder = new TextDecoder();
    for await (const chunk of child.stdout) {
      text += decoder.decode(chunk, { stream: true });
      if (answer.test(text)) break;
    }
    try {
      child.kill();
    } catch {
      // It ended by itself (the timeout, or it failed): the assertions say what came.
    }
    await writer.close().catch(() => {});
    await child.status;
    return text;
  };
  return Promise.all([
    run("-monitor", "info kvm\n", /kvm support: \w+\r?\n/),
    run("-qmp", '{"execute":"qmp_capabilities"}\n{"execute":"query-kvm"}\n', /"present": \w+\}\}/),
  ]);
}

const KVM_OPENS = (() => {
  try {
    Deno.openSync("/dev/kvm", { read: true, write: true }).close();
    return true;
  } catch {
    return false;
  }
})();

for (const accel of ["kvm", "tcg"]) {
  const skip = accel === "kvm" && !KVM_OPENS;
  Deno.test({
    name: `info kvm and query-kvm under -accel ${accel} answer as QEMU 7.2 does${
      skip ? " (ignored: /dev/kvm cannot be opened)" : ""
    }`,
    ignore: skipUnless(import.meta, { ok: !skip, missing: "/dev/kvm cannot be opened" }),
    async fn() {
      const enabled = accel === "kvm";
      const line = `kvm support: ${enabled ? "enabled" : "disabled"}`;
      const reply = `{"return": {"enabled": ${enabled}, "present": true}}`;
      const vmkit = [Deno.execPath(), "run", "-A", "--quiet", MAIN, "system-x86_64"];
      const [hmp, qmp] = await askKvm(vmkit, accel);
      assert.ok(hmp.includes(`${line}\r\n`), hmp);
      assert.ok(qmp.includes(reply), qmp);
      if (haveProgram("qemu-system-x86_64")) {
        const [qemuHmp, qemuQmp] = await askKvm(["qemu-system-x86_64"], accel);
        assert.ok(qemuHmp.includes(`${line}\r\n`), qemuHmp);
        assert.ok(qemuQmp.includes(reply), qemuQmp);
      }
    },
  });
}
