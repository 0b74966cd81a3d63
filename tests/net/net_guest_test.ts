// Boot test: a Linux guest on vmkit's user network (virtio-net, e1000, rtl8139). One boot does
// DHCP, a ping of the gateway, an HTTP download from a server this test runs on the
// host's loopback, a DNS lookup through 10.0.2.3 answered by a resolver this test runs
// on 127.0.0.1, and serves HTTP that the test fetches through hostfwd. Every address the
// test opens is on the loopback.

import { skipUnless } from "../skip.ts";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import * as dgram from "node:dgram";
import * as path from "node:path";
import {
  BOOT_TIMEOUT_MS,
  bootVmkit,
  DONE,
  GUESTS,
  INITRD,
  KERNEL,
  logTimes,
  missingFiles,
  READY,
  tail,
} from "../boot/guest_util.ts";
import { ROOT } from "../test_util.ts";

/**
 * Why the cached guests cannot run this test: missing, or built by an older
 * tools/fetch_guests.sh whose /init has no network mode (its stamp names the script's hash).
 */
function whyNoNetGuest(): string {
  const missing = missingFiles([KERNEL, INITRD]);
  if (missing) return missing;
  try {
    const stamp = Deno.readTextFileSync(path.join(GUESTS, ".fetch_guests.stamp")).split("\n")[0];
    const script = Deno.readFileSync(path.join(ROOT, "tools", "fetch_guests.sh"));
    const hex = [...new Uint8Array(createHash("sha256").update(script).digest())]
      .map((b) => b.toString(16).padStart(2, "0")).join("");
    if (stamp !== hex) {
      return `the guests in ${GUESTS} are older than tools/fetch_guests.sh: run it`;
    }
  } catch {
    return `no build stamp in ${GUESTS}: run tools/fetch_guests.sh`;
  }
  return "";
}

const whyNoGuest = whyNoNetGuest();
/** The address the test's resolver gives vmkit.test (TEST-NET-1: never contacted). */
const DNS_ANSWER = "192.0.2.44";

/** A free TCP port on 127.0.0.1 (listened on and released). */
function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

/** Answers every A query with {@linkcode DNS_ANSWER}, on 127.0.0.1. */
async function startResolver(): Promise<{ port: number; queries: string[]; close(): void }> {
  const socket = dgram.createSocket("udp4");
  const queries: string[] = [];
  socket.on("message", (msg: Uint8Array, rinfo: { address: string; port: number }) => {
    if (msg.length < 12) return;
    // The question: labels up to the zero byte, then type and class.
    let at = 12;
    const labels: string[] = [];
    while (at < msg.length && msg[at] !== 0) {
      labels.push(new TextDecoder().decode(msg.subarray(at + 1, at + 1 + msg[at])));
      at += 1 + msg[at];
    }
    const qEnd = at + 5;
    const qtype = (msg[at + 1] << 8) | msg[at + 2];
    queries.push(`${labels.join(".")}/${qtype}`);
    const question = msg.subarray(12, qEnd);
    const answer = qtype === 1 && labels.join(".") === "vmkit.test"
      ? [0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, ...DNS_ANSWER.split(".").map(Number)]
      : [];
    const out = new Uint8Array([
      msg[0],
      msg[1],
      0x81,
      0x80,
      0,
      1,
      0,
      answer.length ? 1 : 0,
      0,
      0,
      0,
      0,
      ...question,
      ...answer,
    ]);
    socket.send(out, rinfo.port, rinfo.address);
  });
  await new Promise<void>((resolve) => socket.bind(0, "127.0.0.1", resolve));
  return { port: socket.address().port, queries, close: () => socket.close() };
}

async function sha256(bytes: Uint8Array): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", bytes as Uint8Array<ArrayBuffer>);
  return [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, "0")).join("");
}

async function networkBoot(nic: "virtio-net-pci" | "e1000" | "rtl8139"): Promise<void> {
  // 256 KiB of a fixed pseudo-random pattern: the guest downloads it and prints its hash.
  const file = new Uint8Array(256 * 1024);
  let x = 0x12345678;
  for (let i = 0; i < file.length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    file[i] = x & 0xff;
  }
  const fileHash = await sha256(file);
  const fwdPort = freePort();
  let hostfwdBody = "";
  let hostfwdFetch: Promise<void> | undefined;
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, (req) => {
    const url = new URL(req.url);
    if (url.pathname === "/file") return new Response(file);
    if (url.pathname === "/done") {
      // The guest polls once its httpd runs: the first poll starts a fetch of its page
      // through the hostfwd, and the guest is told "hostfwd-ok" once that has it (its
      // polls time out quickly, so they never wait on the fetch).
      if (hostfwdBody.includes("VMKIT-GUEST-HTTPD")) return new Response("hostfwd-ok");
      hostfwdFetch ??= fetch(`http://127.0.0.1:${fwdPort}/`)
        .then((r) => r.text())
        .then((text) => void (hostfwdBody = text))
        .catch((e) => void (hostfwdBody = `error ${(e as Error).message}`))
        .finally(() => (hostfwdFetch = undefined));
      return new Response("not yet", { status: 503 });
    }
    return new Response("not found", { status: 404 });
  });
  const resolver = await startResolver();
  try {
    const result = await bootVmkit([
      "system-x86_64",
      "-M",
      "pc",
      "-m",
      "256",
      "-nographic",
      "-no-reboot",
      "-kernel",
      KERNEL,
      "-initrd",
      INITRD,
      "-append",
      `console=ttyS0 panic=-1 guest.net=${server.addr.port}`,
      "-netdev",
      `user,id=n0,hostfwd=tcp:127.0.0.1:${fwdPort}-:80,hostname=vmkitguest,` +
      `domainname=vmkit.test,x-resolver=127.0.0.1:${resolver.port}`,
      "-device",
      `${nic},netdev=n0`,
    ], { marker: READY, stopAt: DONE, timeoutMs: BOOT_TIMEOUT_MS });
    logTimes(`Linux on ${nic} with -netdev user`, result);
    const text = result.text.replaceAll("\r", "");
    const line = (name: string) => text.match(new RegExp(`^net-${name}: (.*)$`, "m"))?.[1];
    assert.match(
      line("dhcp") ?? "",
      /^10\.0\.2\.15 255\.255\.255\.0 router=10\.0\.2\.2 dns=10\.0\.2\.3 host=vmkitguest domain=vmkit\.test$/,
      tail(result),
    );
    assert.equal(line("ping"), "ok", tail(result));
    assert.equal(line("http"), fileHash, tail(result));
    assert.equal(line("dns"), DNS_ANSWER, tail(result));
    assert.ok(resolver.queries.includes("vmkit.test/1"), `queries: ${resolver.queries}`);
    assert.equal(line("done"), "hostfwd-ok", `${hostfwdBody}${tail(result)}`);
    assert.match(text, DONE, tail(result));
  } finally {
    resolver.close();
    await server.shutdown();
  }
}

for (const nic of ["virtio-net-pci", "e1000", "rtl8139"] as const) {
  Deno.test({
    name: `Linux on ${nic} gets 10.0.2.15 by DHCP, pings 10.0.2.2, downloads over HTTP, ` +
      `resolves through 10.0.2.3 and serves through hostfwd` +
      (whyNoGuest ? ` (skipped: ${whyNoGuest})` : ""),
    ignore: skipUnless(import.meta, { ok: whyNoGuest === "", missing: whyNoGuest }),
    sanitizeResources: false,
    sanitizeOps: false,
    fn: () => networkBoot(nic),
  });
}
