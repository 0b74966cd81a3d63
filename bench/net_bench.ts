// Guest-to-host TCP throughput over the user network: the test Linux guest downloads
// 64 MiB from a server on the host's loopback through 10.0.2.2, vmkit vs QEMU TCG
// (`-netdev user` both), timed on the server from the request to the guest's next one

import * as path from "node:path";
import { INITRD, KERNEL, missingFiles } from "../tests/boot/guest_util.ts";
import { have, printTable, ROOT, type Row, SHORT } from "./bench_util.ts";

const MAIN = path.join(ROOT, "cli", "main.ts");
const BIG_BYTES = (SHORT ? 16 : 64) * 1024 * 1024;
const TIMEOUT_MS = Number(Deno.env.get("VMKIT_NET_BENCH_TIMEOUT_MS") ?? 60 * 60_000);

/** Boots `program ARGS` with guest.netbig=1 and returns the download's MiB/s. */
async function downloadRate(program: string, args: string[]): Promise<number> {
  const chunk = new Uint8Array(1024 * 1024).fill(0x5a);
  let started = NaN;
  let seconds = NaN;
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, (req) => {
    const url = new URL(req.url);
    if (url.pathname === "/big") {
      started = performance.now();
      let sent = 0;
      const body = new ReadableStream<Uint8Array>({
        pull(c) {
          if (sent >= BIG_BYTES) return c.close();
          c.enqueue(chunk);
          sent += chunk.length;
        },
      });
      return new Response(body, { headers: { "content-length": String(BIG_BYTES) } });
    }
    if (url.pathname === "/big-done") {
      seconds = (performance.now() - started) / 1000;
      return new Response("ok");
    }
    if (url.pathname === "/file") return new Response("x");
    return new Response("not found", { status: 404 });
  });
  const child = new Deno.Command(program, {
    args: [
      ...args,
      "-append",
      `console=ttyS0 panic=-1 guest.net=${server.addr.port} guest.netbig=1`,
    ],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const errors = new Response(child.stderr).text();
  const timer = setTimeout(() => child.kill("SIGKILL"), TIMEOUT_MS);
  let text = "";
  const decoder = new TextDecoder();
  try {
    for await (const c of child.stdout) {
      text += decoder.decode(c, { stream: true });
      if (/VMKIT-GUEST-DONE/.test(text)) break;
    }
  } finally {
    clearTimeout(timer);
    try {
      child.kill("SIGKILL");
    } catch {
      // already exited
    }
    await child.status;
    await server.shutdown();
  }
  if (!/net-big: ok/.test(text) || Number.isNaN(seconds)) {
    throw new Error(
      `${program}: the guest's download did not finish: ${text.slice(-800)}\n${
        (await errors).slice(-400)
      }`,
    );
  }
  return BIG_BYTES / (1024 * 1024) / seconds;
}

function commonArgs(nic: string): string[] {
  return [
    "-M",
    "pc",
    "-accel",
    "tcg",
    "-m",
    "256",
    "-nographic",
    "-no-reboot",
    "-kernel",
    KERNEL,
    "-initrd",
    INITRD,
    "-netdev",
    "user,id=n0",
    "-device",
    `${nic},netdev=n0`,
  ];
}

/** One row per NIC: MiB/s of the guest's download, vmkit and qemu-system-x86_64. */
export async function netRows(): Promise<Row[]> {
  const missing = missingFiles([KERNEL, INITRD]);
  if (missing) {
    console.log(`network benchmark skipped: ${missing}`);
    return [];
  }
  const rows: Row[] = [];
  // --nic=MODEL measures one NIC only.
  const only = Deno.args.find((a) => a.startsWith("--nic="))?.slice(6);
  for (const nic of ["virtio-net-pci", "e1000"].filter((n) => !only || n === only)) {
    const args = commonArgs(nic);
    try {
      const vmkit = await downloadRate(Deno.execPath(), [
        "run",
        "-A",
        "--quiet",
        MAIN,
        "system-x86_64",
        ...args,
      ]);
      const qemu = have("qemu-system-x86_64")
        ? await downloadRate("qemu-system-x86_64", args)
        : undefined;
      rows.push({
        name: `guest downloads ${BIG_BYTES >> 20} MiB over -netdev user (${nic})`,
        unit: "MiB/s",
        qemu,
        vmkit,
        higherIsBetter: true,
      });
    } catch (e) {
      console.log(`network benchmark (${nic}): ${(e as Error).message}`);
    }
  }
  return rows;
}

if (import.meta.main) {
  printTable("User-mode networking: guest TCP download, vmkit vs QEMU TCG", await netRows());
}
