// Guest-to-host TCP throughput over the user network: the test Linux guest downloads
// 64 MiB from a server on the host's loopback through 10.0.2.2, vmkit vs QEMU TCG
// (`-netdev user` both), timed on the server from the request to the guest's next one

import * as path from "node:path";
import { INITRD, KERNEL, missingFiles } from "../tests/boot/guest_util.ts";
import { guestTcp, harness, HOST_IP, readFrame } from "../plugins/netdevs/user/test_util.ts";
import { TCP_ACK, TCP_FIN, TCP_SYN } from "../plugins/netdevs/user/tcp.ts";
import { have, printTable, ROOT, type Row, SHORT } from "./bench_util.ts";

const MAIN = path.join(ROOT, "cli", "main.ts");
const BIG_BYTES = (SHORT ? 16 : 64) * 1024 * 1024;
const TIMEOUT_MS = Number(Deno.env.get("VMKIT_NET_BENCH_TIMEOUT_MS") ?? 60 * 60_000);

/** Boots `program ARGS` with guest.netbig=1 and returns the download's MiB/s. */
export async function downloadRate(program: string, args: string[]): Promise<number> {
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

export function commonArgs(nic: string): string[] {
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

/**
 * The user stack alone, in this process: a loopback server sends `bytes` to a guest
 * played by this function, which takes every in-order segment and acknowledges each
 * batch with a 64 KiB window. No CPU or NIC is involved, so this is the ceiling the stack
 * puts on a guest's download; the guest rows below show how far under it the CPU keeps it.
 *
 * @returns MiB/s and frames/s to the guest
 */
export async function stackRate(bytes: number): Promise<{ mibPerS: number; framesPerS: number }> {
  const chunk = new Uint8Array(1024 * 1024).fill(0x5a);
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const serving = (async () => {
    const conn = await listener.accept();
    for (let sent = 0; sent < bytes; sent += chunk.length) {
      let at = 0;
      while (at < chunk.length) at += await conn.write(chunk.subarray(at));
    }
    conn.close();
  })();
  const h = harness();
  const g = { srcPort: 41000, dstPort: (listener.addr as Deno.NetAddr).port };
  const window = 65535;
  h.stack.input(guestTcp(HOST_IP, { ...g, seq: 100, flags: TCP_SYN, mss: 1460, window }));
  await h.settle(() => h.out.length > 0);
  let rcv = (readFrame(h.out.shift()!).tcp!.seq + 1) >>> 0;
  const ack = () =>
    h.stack.input(guestTcp(HOST_IP, { ...g, seq: 101, ack: rcv, flags: TCP_ACK, window }));
  ack();
  let got = 0;
  let frames = 0;
  let fin = false;
  const started = performance.now();
  while (!fin) {
    let fresh = 0;
    for (const f of h.out.splice(0)) {
      frames++;
      const t = readFrame(f).tcp!;
      if (t.seq !== rcv) continue;
      got += t.payload.length;
      fresh += t.payload.length;
      rcv = (rcv + t.payload.length + (t.flags & TCP_FIN ? 1 : 0)) >>> 0;
      if (t.flags & TCP_FIN) fin = true;
    }
    if (fresh > 0) ack();
    h.loop.advanceBy(1e5);
    if (!fin && h.out.length === 0) await new Promise((r) => setTimeout(r, 0));
  }
  const seconds = (performance.now() - started) / 1000;
  h.close();
  listener.close();
  await serving;
  if (got !== bytes) throw new Error(`the stack delivered ${got} of ${bytes} bytes`);
  return { mibPerS: got / (1024 * 1024) / seconds, framesPerS: frames / seconds };
}

/** One row per NIC: MiB/s of the guest's download, vmkit and qemu-system-x86_64. */
export async function netRows(): Promise<Row[]> {
  const missing = missingFiles([KERNEL, INITRD]);
  if (missing) {
    console.log(`network benchmark skipped: ${missing}`);
    return [];
  }
  const rows: Row[] = [];
  const stack = await stackRate(BIG_BYTES);
  console.log(
    `user stack alone (in process, no guest CPU): ${stack.mibPerS.toFixed(1)} MiB/s, ` +
      `${Math.round(stack.framesPerS)} frames/s`,
  );
  rows.push({
    name: `user stack alone carries ${BIG_BYTES >> 20} MiB to a scripted guest (no CPU)`,
    unit: "MiB/s",
    qemu: undefined,
    vmkit: stack.mibPerS,
    higherIsBetter: true,
  });
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
