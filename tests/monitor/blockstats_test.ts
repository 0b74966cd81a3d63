// query-blockstats and `info blockstats` after a guest's own requests: a boot sector
// SeaBIOS loads from a virtio disk writes one sector through INT 13h and halts; vmkit and
// real qemu-system-x86_64 7.2 count the same requests and bytes, and time them

import { skipUnless } from "../skip.ts";
import assert from "node:assert/strict";
import * as path from "node:path";
import { MAIN, tempDir } from "../test_util.ts";
import { QmpClient } from "./vm_util.ts";

/** Writes its own sector to LBA 1 (INT 13h AH=03h, CHS 0/0/2), then halts. */
function bootSector(): Uint8Array {
  const code = [
    [0x31, 0xc0], // xor ax, ax
    [0x8e, 0xd8], // mov ds, ax
    [0x8e, 0xc0], // mov es, ax
    [0xb8, 0x01, 0x03], // mov ax, 0x0301
    [0xb9, 0x02, 0x00], // mov cx, 0x0002
    [0xb6, 0x00], // mov dh, 0
    [0xb2, 0x80], // mov dl, 0x80
    [0xbb, 0x00, 0x7c], // mov bx, 0x7c00
    [0xcd, 0x13], // int 0x13
    [0xfa], // cli
    [0xf4], // hlt
    [0xeb, 0xfd], // jmp (to hlt)
  ].flat();
  const sector = new Uint8Array(512);
  sector.set(code);
  sector[510] = 0x55;
  sector[511] = 0xaa;
  return sector;
}

type Stats = Record<string, number>;

async function run(vm: "vmkit" | "qemu", disk: string, sock: string) {
  const args = [
    "-display",
    "none",
    "-net",
    "none",
    "-drive",
    `file=${disk},if=virtio,format=raw`,
    "-qmp",
    `unix:${sock},server=on,wait=off`,
  ];
  const child = new Deno.Command(vm === "qemu" ? "qemu-system-x86_64" : Deno.execPath(), {
    args: vm === "qemu" ? args : ["run", "-A", "--quiet", MAIN, "system-x86_64", ...args],
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  const qmp = await QmpClient.connect(sock);
  try {
    let stats: Stats = {};
    for (let i = 0; i < 600; i++) {
      const r = await qmp.execute("query-blockstats");
      const list = r.return as { device: string; stats: Stats }[];
      stats = list.find((e) => e.device === "virtio0")!.stats;
      if (stats.wr_operations >= 1) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    // The boot sector halts after its write: nothing more comes.
    await new Promise((r) => setTimeout(r, 300));
    const last = (await qmp.execute("query-blockstats")).return as { stats: Stats }[];
    const hmp = await qmp.execute("human-monitor-command", {
      "command-line": "info blockstats",
    });
    await qmp.execute("quit");
    return { stats: last[0].stats, first: stats, hmp: hmp.return as string };
  } finally {
    qmp.close();
    const out = await child.output();
    assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
  }
}

Deno.test({
  name: "query-blockstats counts and times a guest's reads and writes as qemu-system-x86_64 7.2",
  ignore: skipUnless(import.meta, "qemu-system-x86_64"),
  async fn() {
    const { dir, cleanup } = await tempDir();
    try {
      const got: Record<string, Awaited<ReturnType<typeof run>>> = {};
      for (const vm of ["vmkit", "qemu"] as const) {
        const disk = path.join(dir, `${vm}.img`);
        const image = new Uint8Array(1 << 20);
        image.set(bootSector());
        await Deno.writeFile(disk, image);
        got[vm] = await run(vm, disk, path.join(dir, `${vm}.sock`));
        const written = await Deno.readFile(disk);
        assert.deepEqual(written.subarray(512, 1024), bootSector(), `${vm}: LBA 1`);
      }
      const v = got.vmkit.stats, q = got.qemu.stats;
      // What the guest asked for: the same in both.
      const counts = [
        "rd_bytes",
        "wr_bytes",
        "rd_operations",
        "wr_operations",
        "flush_operations",
        "unmap_operations",
        "unmap_bytes",
        "failed_rd_operations",
        "failed_wr_operations",
        "failed_flush_operations",
        "wr_highest_offset",
      ];
      for (const k of counts) assert.equal(v[k], q[k], k);
      assert.equal(v.wr_operations, 1);
      assert.equal(v.wr_bytes, 512);
      assert.equal(v.wr_highest_offset, 1024);
      // Times: measured, so only their presence is compared.
      for (const s of [v, q]) {
        assert.ok(s.rd_total_time_ns > 0, "rd_total_time_ns");
        assert.ok(s.wr_total_time_ns > 0, "wr_total_time_ns");
        assert.equal(s.flush_total_time_ns, 0);
        assert.ok(s.idle_time_ns > 0, "idle_time_ns");
      }
      assert.deepEqual(Object.keys(v).sort(), Object.keys(q).sort());
      // info blockstats: QEMU's line with the same counts, times apart.
      const masked = (t: string) =>
        t.split("\r\n").find((l) => l.startsWith("virtio0:"))!.replace(
          /(_time_ns)=\d+/g,
          "$1=T",
        );
      assert.equal(masked(got.vmkit.hmp), masked(got.qemu.hmp));
      assert.match(got.vmkit.hmp, / wr_total_time_ns=[1-9]\d* /);
      assert.match(got.vmkit.hmp, / idle_time_ns=[1-9]\d*\r\n/);
    } finally {
      await cleanup();
    }
  },
});
