// The balloon and the power button as a Linux guest sees them, in vmkit and in real QEMU
// 7.2 on the same command line: `balloon` makes the guest's virtio_balloon driver give
// memory back (MemTotal drops, BALLOON_CHANGE and query-balloon say how much), and
// system_powerdown's ACPI power button reaches Linux's button driver, which the guest
// answers by powering off. Each boot takes minutes under the interpreter.

import { skipUnless } from "../skip.ts";
import assert from "node:assert/strict";
import * as path from "node:path";
import { haveProgram, runCommand, tempDir } from "../test_util.ts";
import {
  BOOT_TIMEOUT_MS,
  GUESTS,
  INITRD,
  KERNEL,
  missingFiles,
  SHELL_PROMPT,
} from "../boot/guest_util.ts";
import { QmpClient, shellGuestArgs, Vm } from "./vm_util.ts";

const DEBS = path.join(GUESTS, "debs");
const MIB = 2 ** 20;

function kernelDeb(): string | undefined {
  try {
    return [...Deno.readDirSync(DEBS)].map((e) => e.name)
      .find((n) => n.startsWith("linux-image-") && n.endsWith(".deb"));
  } catch {
    return undefined;
  }
}

const whyNot = missingFiles([KERNEL, INITRD]) ||
  (kernelDeb() ? "" : `no linux-image deb in ${DEBS}: run tools/fetch_guests.sh`) ||
  ["cpio", "dpkg-deb", "qemu-system-x86_64"].filter((p) => !haveProgram(p))
    .map((p) => `${p} is not installed`).join(", ");

/**
 * The test initramfs with the kernel's ACPI button and evdev modules appended as a
 * second cpio archive (Linux unpacks concatenated archives in order).
 */
async function initrdWithButton(dir: string): Promise<string> {
  const root = path.join(dir, "extra");
  const unpacked = path.join(dir, "deb");
  await Deno.mkdir(path.join(root, "lib", "modules"), { recursive: true });
  await Deno.mkdir(unpacked);
  const tar = await runCommand("sh", [
    "-c",
    `dpkg-deb --fsys-tarfile '${path.join(DEBS, kernelDeb()!)}' | tar -x -C '${unpacked}' ` +
    "--wildcards '*/drivers/acpi/button.ko' '*/drivers/input/evdev.ko'",
  ]);
  assert.equal(tar.code, 0, tar.stderr);
  const found = await runCommand("find", [unpacked, "-name", "*.ko"]);
  for (const ko of found.stdout.trim().split("\n")) {
    await Deno.copyFile(ko, path.join(root, "lib", "modules", path.basename(ko)));
  }
  const cpio = path.join(dir, "extra.cpio");
  const made = await runCommand("sh", [
    "-c",
    `cd '${root}' && find lib | cpio -o -H newc -R 0:0 --quiet > '${cpio}'`,
  ]);
  assert.equal(made.code, 0, made.stderr);
  const combined = path.join(dir, "initrd-button");
  const a = await Deno.readFile(INITRD), b = await Deno.readFile(cpio);
  // Linux finds a following uncompressed archive only at a 4-byte boundary; the zeros
  // before it are skipped as padding (init/initramfs.c).
  const at = Math.ceil(a.length / 4) * 4;
  const out = new Uint8Array(at + b.length);
  out.set(a);
  out.set(b, at);
  await Deno.writeFile(combined, out);
  return combined;
}

interface PowerRun {
  memTotalKb: number[];
  balloonActual: number[];
  infoBalloon: string;
  lastBalloonEvent: number[];
  events: string[];
  shutdown: unknown;
  code: number;
}

async function powerRun(program: "vmkit" | "qemu", dir: string, initrd: string): Promise<PowerRun> {
  const qmpPath = path.join(dir, `${program}-qmp.sock`);
  const vm = new Vm(
    shellGuestArgs({
      memMiB: 256,
      initrd,
      devices: ["-device", "virtio-balloon"],
      qmp: qmpPath,
    }),
    path.join(dir, `${program}-hmp.sock`),
    program,
  );
  let qmp: QmpClient | undefined;
  try {
    qmp = await QmpClient.connect(qmpPath);
    await vm.waitFor(SHELL_PROMPT, BOOT_TIMEOUT_MS);
    const memTotal = async (tag: string) => {
      const from = vm.text.length;
      await vm.type(`echo ${tag}-$(grep MemTotal /proc/meminfo | tr -s ' ' | cut -d' ' -f2)\n`);
      return Number((await vm.waitFor(new RegExp(`${tag}-(\\d+)\\r?\\n`), 120_000, from))[1]);
    };
    // Waits until the guest's driver reported `mib` (the event comes at most once a
    // second; the last one carries the final size).
    const settled = async (mib: number) => {
      for (let i = 0; i < 1800; i++) {
        const r = await qmp!.execute("query-balloon");
        if ((r.return as { actual: number }).actual === mib * MIB) {
          const last = qmp!.events.filter((e) => e.event === "BALLOON_CHANGE").at(-1);
          if ((last?.data as { actual?: number } | undefined)?.actual === mib * MIB) return;
        }
        await new Promise((r) => setTimeout(r, 200));
      }
      throw new Error(`the balloon did not reach ${mib} MiB`);
    };
    const before = await memTotal("MEM0");
    assert.deepEqual(await qmp.execute("balloon", { value: 192 * MIB }), { return: {} });
    await settled(192);
    const inflated = await memTotal("MEM1");
    const [infoBalloon] = await vm.hmp("info balloon");
    const actual1 = ((await qmp.execute("query-balloon")).return as { actual: number }).actual;
    const last1 = qmp.events.filter((e) => e.event === "BALLOON_CHANGE").at(-1)!;
    const [hmpOut] = await vm.hmp("balloon 256");
    assert.equal(hmpOut, "");
    await settled(256);
    const deflated = await memTotal("MEM2");
    const last2 = qmp.events.filter((e) => e.event === "BALLOON_CHANGE").at(-1)!;

    // The power button: the reader holds the input device open before it says ARMED, so
    // the press cannot come before anyone listens.
    await vm.type(
      "insmod /lib/modules/evdev.ko; insmod /lib/modules/button.ko; " +
        "for e in /sys/class/input/event*; do grep -q 'Power Button' $e/device/name && " +
        "ev=/dev/input/${e##*/}; done; " +
        "(exec 3<$ev; echo BUTTON-ARMED-$ev; dd bs=16 count=1 <&3 >/dev/null 2>&1; " +
        "echo POWER-BUTTON-PRESSED; poweroff -f) &\n",
    );
    await vm.waitFor(/BUTTON-ARMED-\/dev\/input\/event\d+/, 120_000);
    assert.deepEqual(await qmp.execute("system_powerdown"), { return: {} });
    await vm.waitFor(/POWER-BUTTON-PRESSED/, 300_000);
    const r = await vm.end();
    // Events after the guest powered off reach the client before the socket closes.
    for (let i = 0; i < 50 && !qmp.events.some((e) => e.event === "SHUTDOWN"); i++) {
      await new Promise((r) => setTimeout(r, 100));
    }
    return {
      memTotalKb: [before, inflated, deflated],
      balloonActual: [actual1],
      infoBalloon,
      lastBalloonEvent: [last1, last2].map((e) => (e.data as { actual: number }).actual),
      events: qmp.events.map((e) => e.event as string)
        .filter((e, i, all) => e !== "BALLOON_CHANGE" || all[i - 1] !== e),
      shutdown: qmp.events.find((e) => e.event === "SHUTDOWN")?.data,
      code: r.code,
    };
  } finally {
    qmp?.close();
    vm.kill();
  }
}

Deno.test({
  name:
    "a Linux guest gives memory to the balloon and powers off on system_powerdown, as under QEMU 7.2",
  ignore: skipUnless(import.meta, { ok: whyNot === "", missing: whyNot }),
  async fn() {
    if (whyNot) return;
    const { dir, cleanup } = await tempDir();
    try {
      const initrd = await initrdWithButton(dir);
      const runs: Record<string, PowerRun> = {};
      for (const program of ["qemu", "vmkit"] as const) {
        runs[program] = await powerRun(program, dir, initrd);
      }
      const v = runs.vmkit, q = runs.qemu;
      for (const r of [v, q]) {
        assert.equal(r.code, 0);
        // 64 MiB in the balloon: MemTotal drops by 65536 kB and comes back.
        assert.equal(r.memTotalKb[0] - r.memTotalKb[1], 64 * 1024, String(r.memTotalKb));
        assert.equal(r.memTotalKb[2], r.memTotalKb[0], String(r.memTotalKb));
      }
      assert.deepEqual(v.balloonActual, [192 * MIB]);
      assert.deepEqual(v.lastBalloonEvent, [192 * MIB, 256 * MIB]);
      assert.equal(v.infoBalloon, "balloon: actual=192\n");
      assert.deepEqual(v.balloonActual, q.balloonActual);
      assert.deepEqual(v.lastBalloonEvent, q.lastBalloonEvent);
      assert.equal(v.infoBalloon, q.infoBalloon);
      assert.deepEqual(v.events, ["BALLOON_CHANGE", "POWERDOWN", "SHUTDOWN"]);
      assert.deepEqual(v.events, q.events);
      assert.deepEqual(v.shutdown, { guest: true, reason: "guest-shutdown" });
      assert.deepEqual(v.shutdown, q.shutdown);
    } finally {
      await cleanup();
    }
  },
});
