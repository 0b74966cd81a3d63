// savevm and loadvm of a 768 MiB guest (SeaBIOS, idle at its boot prompt) into a qcow2
// disk through HMP: the time of each command, the VM state size and the qcow2 file's
// size after savevm, vmkit vs QEMU

import * as path from "node:path";
import { have, printTable, ROOT, type Row, run, scratch } from "./bench_util.ts";
import { INITRD, KERNEL, missingFiles, SHELL_PROMPT } from "../tests/boot/guest_util.ts";
import { HmpClient, shellGuestArgs, Vm } from "../tests/monitor/vm_util.ts";

const MAIN = path.join(ROOT, "cli", "main.ts");

async function measure(
  program: string,
  pre: string[],
  dir: string,
): Promise<{ save: number; load: number; bytes: number; fileBytes: number }> {
  const disk = path.join(dir, `${program.replaceAll("/", "_")}.qcow2`);
  await run("qemu-img", ["create", "-q", "-f", "qcow2", disk, "1G"]);
  const socket = path.join(dir, "bench.sock");
  const child = new Deno.Command(program, {
    args: [
      ...pre,
      "-display",
      "none",
      "-m",
      "768",
      "-net",
      "none",
      "-drive",
      `file=${disk},format=qcow2`,
      "-monitor",
      `unix:${socket},server=on,wait=off`,
    ],
    stdin: "null",
    stdout: "null",
    stderr: "null",
  }).spawn();
  try {
    const hmp = await HmpClient.connect(socket, 600);
    await new Promise((r) => setTimeout(r, 5000)); // SeaBIOS reaches its boot prompt
    let t0 = performance.now();
    const saved = await hmp.command("savevm bench");
    const save = (performance.now() - t0) / 1000;
    t0 = performance.now();
    const loaded = await hmp.command("loadvm bench");
    const load = (performance.now() - t0) / 1000;
    if (/Error/.test(saved + loaded)) throw new Error(`${program}: ${saved} ${loaded}`);
    await hmp.command("quit").catch(() => "");
    hmp.close();
    await child.status;
    const info = JSON.parse(await run("qemu-img", ["info", "--output=json", disk]));
    return {
      save,
      load,
      bytes: info.snapshots[0]["vm-state-size"],
      fileBytes: (await Deno.stat(disk)).size,
    };
  } finally {
    try {
      child.kill("SIGKILL");
    } catch {
      // exited
    }
  }
}

/** Rows: savevm and loadvm seconds, and the VM state size in MiB. */
export async function savevmRows(): Promise<Row[]> {
  if (!have("qemu-img")) {
    console.log("savevm benchmark skipped: qemu-img is not installed");
    return [];
  }
  const { dir, cleanup } = await scratch();
  try {
    const v = await measure(Deno.execPath(), ["run", "-A", "--quiet", MAIN, "system-x86_64"], dir);
    const q = have("qemu-system-x86_64")
      ? await measure("qemu-system-x86_64", ["-accel", "tcg"], dir)
      : undefined;
    return [
      {
        name: "savevm, 768 MiB guest",
        unit: "s",
        qemu: q?.save,
        vmkit: v.save,
        higherIsBetter: false,
      },
      {
        name: "loadvm, 768 MiB guest",
        unit: "s",
        qemu: q?.load,
        vmkit: v.load,
        higherIsBetter: false,
      },
      {
        name: "VM state size, 768 MiB guest",
        unit: "MiB",
        qemu: q === undefined ? undefined : q.bytes / 2 ** 20,
        vmkit: v.bytes / 2 ** 20,
        higherIsBetter: false,
      },
      {
        name: "qcow2 file after savevm, 768 MiB guest",
        unit: "MiB",
        qemu: q === undefined ? undefined : q.fileBytes / 2 ** 20,
        vmkit: v.fileBytes / 2 ** 20,
        higherIsBetter: false,
      },
    ];
  } finally {
    await cleanup();
  }
}

/** MiB of non-zero data the Linux guest writes to its RAM (tmpfs) before savevm. */
const LINUX_FILL_MIB = 64;

/**
 * The same on a 768 MiB Linux guest at its shell after it filled LINUX_FILL_MIB MiB of
 * tmpfs with non-zero bytes: save and load times and the sizes, for `program` ("vmkit"
 * or "qemu").
 */
async function measureLinux(program: "vmkit" | "qemu", dir: string) {
  const disk = path.join(dir, `linux-${program}.qcow2`);
  await run("qemu-img", ["create", "-q", "-f", "qcow2", disk, "1G"]);
  const vm = new Vm(
    [
      ...(program === "qemu" ? ["-accel", "tcg"] : []),
      ...shellGuestArgs({
        memMiB: 768,
        quiet: true,
        devices: ["-drive", `file=${disk},if=virtio,format=qcow2`],
      }),
    ],
    path.join(dir, `linux-${program}.sock`),
    program,
  );
  try {
    await vm.waitFor(SHELL_PROMPT, 30 * 60_000);
    const from = vm.text.length;
    await vm.type(
      `head -c ${LINUX_FILL_MIB * 1048576} /dev/zero | tr '\\0' x > /tmp/fill; ` +
        `echo FILL-$(($(wc -c < /tmp/fill) / 1048576))\n`,
    );
    const filled = await vm.waitFor(/FILL-(\d+)\r?\n/, 30 * 60_000, from);
    if (Number(filled[1]) !== LINUX_FILL_MIB) {
      throw new Error(`${program}: filled ${filled[1]} MiB:\n${vm.text.slice(from)}`);
    }
    let t0 = performance.now();
    const saved = await vm.hmp("savevm bench");
    const save = (performance.now() - t0) / 1000;
    t0 = performance.now();
    const loaded = await vm.hmp("loadvm bench");
    const load = (performance.now() - t0) / 1000;
    if (/Error/.test(saved.join("") + loaded.join(""))) {
      throw new Error(`${program}: ${saved} ${loaded}`);
    }
    await vm.hmp("quit").catch(() => []);
    await vm.end();
    const info = JSON.parse(await run("qemu-img", ["info", "--output=json", disk]));
    return {
      save,
      load,
      bytes: info.snapshots[0]["vm-state-size"] as number,
      fileBytes: (await Deno.stat(disk)).size,
    };
  } finally {
    vm.kill();
  }
}

/** Rows of the Linux guest: vmkit against QEMU in the same run. */
export async function savevmLinuxRows(): Promise<Row[]> {
  const missing = missingFiles([KERNEL, INITRD]);
  if (missing || !have("qemu-img") || !have("qemu-system-x86_64")) {
    console.log(`savevm Linux benchmark skipped: ${missing || "QEMU is not installed"}`);
    return [];
  }
  const { dir, cleanup } = await scratch();
  try {
    const q = await measureLinux("qemu", dir);
    const v = await measureLinux("vmkit", dir);
    const mib = (n: number) => n / 2 ** 20;
    const what = `768 MiB Linux guest, ${LINUX_FILL_MIB} MiB filled`;
    return [
      { name: `savevm, ${what}`, unit: "s", qemu: q.save, vmkit: v.save, higherIsBetter: false },
      { name: `loadvm, ${what}`, unit: "s", qemu: q.load, vmkit: v.load, higherIsBetter: false },
      {
        name: `VM state size, ${what}`,
        unit: "MiB",
        qemu: mib(q.bytes),
        vmkit: mib(v.bytes),
        higherIsBetter: false,
      },
      {
        name: `qcow2 file after savevm, ${what}`,
        unit: "MiB",
        qemu: mib(q.fileBytes),
        vmkit: mib(v.fileBytes),
        higherIsBetter: false,
      },
    ];
  } finally {
    await cleanup();
  }
}

if (import.meta.main) {
  printTable(
    "savevm/loadvm into qcow2, 768 MiB guest at SeaBIOS's boot prompt",
    await savevmRows(),
  );
  // --linux: also a booted Linux guest (minutes: vmkit boots it first).
  if (Deno.args.includes("--linux")) {
    printTable("savevm/loadvm into qcow2, 768 MiB Linux guest", await savevmLinuxRows());
  }
}
