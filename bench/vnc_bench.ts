// The VNC server under load and at rest: a guest repaints a 1024x768x32 screen without
// pause while one client takes every update it can (frames per second, raw and ZRLE), and
// the CPU an emulator spends with a client connected to a still screen; vmkit vs QEMU TCG
// with the same guest and the same client, in the same run

import * as path from "node:path";
import { Assembler, AX, CX, DI, DX, EAX, EBP, EBX, ES, SI } from "../plugins/machines/x86_asm.ts";
import { TestRfbClient } from "../cli/system/display/test_client.ts";
import { RfbServer } from "../cli/system/display/rfb_server.ts";
import { DisplayRegistry, DisplaySurface } from "../core/display.ts";
import { AddressSpace } from "../core/memory/address_space.ts";
import { PortIoSpace } from "../core/memory/port_io.ts";
import { PCI_COMMAND, PCI_COMMAND_MEMORY } from "../core/pci.ts";
import { StdVga } from "../plugins/devices/vga/mod.ts";
import { bootSectorDisk } from "../tests/display/vnc_util.ts";
import { have, printTable, ROOT, type Row, scratch, SHORT } from "./bench_util.ts";

const MAIN = path.join(ROOT, "cli", "main.ts");
const SECONDS = SHORT ? 3 : 8;

/** Writes Bochs VBE DISPI register `index` (ports 0x1ce/0x1cf) with a value or register. */
function dispiWrite(a: Assembler, index: number, value: number | typeof SI): void {
  a.mov(DX, 0x1ce);
  a.mov(AX, index);
  a.out(DX, AX);
  a.mov(DX, 0x1cf);
  a.mov(AX, value);
  a.out(DX, AX);
}

/**
 * A boot sector that paints three 1024x768x32 pages of Bochs VBE memory once (through
 * the 64 KiB bank window, while the screen is 800 pixels wide), widens the screen to
 * 1024 (the client's start signal: a DesktopSize), then flips between the pages (VBE
 * Y offset 0, 768, 1536) without pause: each flip changes every pixel for the price of
 * one port write, so the update rate measures the display path, not the CPU model.
 * The pages hold runs of 8 pixels of one colour, the colour (n >> 3)^2 of the pixel
 * number n: no solid tiles, no palette, a little for zlib.
 */
export function flipDisk(): Uint8Array {
  const a = new Assembler({ bits: 16, origin: 0x7c00 });
  const dispi = (index: number, value: number | typeof SI) => dispiWrite(a, index, value);
  dispi(4, 0);
  dispi(1, 800);
  dispi(2, 768);
  dispi(3, 32);
  dispi(4, 1);
  dispi(6, 1024); // virtual width: lines of 4096 bytes
  a.mov(AX, 0xa000);
  a.mov(ES, AX);
  a.xor(SI, SI);
  a.xor(EBP, EBP);
  a.label("bank");
  dispi(5, SI); // the bank
  a.xor(DI, DI);
  a.mov(CX, 16384);
  a.label("store");
  a.mov(EAX, EBP);
  a.shr(EAX, 3);
  a.imul(EAX, EAX);
  a.stosd();
  a.inc(EBP);
  a.loop("store");
  a.inc(SI);
  a.cmp(SI, 3 * 48);
  a.jcc("nz", "bank");
  dispi(1, 1024);
  a.label("flip");
  dispi(9, 768);
  dispi(9, 1536);
  dispi(9, 0);
  a.jmp("flip");
  return bootSectorDisk(a.assemble());
}

/**
 * A boot sector that sets Bochs VBE 1024x768x32 (banked, through the DISPI ports) and
 * fills the 48 64-KiB banks with a colour that changes every frame; `still` paints one
 * frame, then halts with interrupts on.
 */
export function bootDisk(still: boolean): Uint8Array {
  const a = new Assembler({ bits: 16, origin: 0x7c00 });
  const dispi = (index: number, value: number | typeof SI) => dispiWrite(a, index, value);
  dispi(4, 0); // disable while changing the mode
  dispi(1, 1024);
  dispi(2, 768);
  dispi(3, 32);
  dispi(4, 1); // enable, banked
  a.mov(AX, 0xa000);
  a.mov(ES, AX);
  a.xor(EBX, EBX);
  a.label("frame");
  a.xor(SI, SI);
  a.label("bank");
  dispi(5, SI); // the bank
  a.mov(EAX, EBX);
  a.shl(EAX, 10);
  a.add(AX, SI);
  a.xor(DI, DI);
  a.mov(CX, 16384);
  // A loop, not rep stosd: each store is one instruction to every CPU model.
  a.label("store");
  a.stosd();
  a.loop("store");
  a.inc(SI);
  a.cmp(SI, 48);
  a.jcc("nz", "bank");
  a.inc(EBX);
  if (still) {
    a.label("idle");
    a.sti();
    a.hlt();
    a.jmp("idle");
  } else {
    a.jmp("frame");
  }
  return bootSectorDisk(a.assemble());
}

/** CPU seconds (user + system) a process has used, from /proc. */
async function cpuSeconds(pid: number): Promise<number> {
  const stat = await Deno.readTextFile(`/proc/${pid}/stat`);
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) / 100; // utime, stime in clock ticks
}

async function connect(port: number): Promise<TestRfbClient> {
  const deadline = Date.now() + 120_000;
  for (;;) {
    try {
      const client = new TestRfbClient(await Deno.connect({ hostname: "127.0.0.1", port }));
      await client.handshake();
      return client;
    } catch (error) {
      if (Date.now() > deadline) throw error;
      await new Promise((r) => setTimeout(r, 250));
    }
  }
}

/** Runs an emulator on the disk with `-vnc`, measures with `fn`, stops it. */
async function withEmulator<T>(
  program: string,
  prefix: string[],
  disk: string,
  fn: (client: TestRfbClient, pid: number) => Promise<T>,
): Promise<T> {
  const display = 60 + Math.floor(Math.random() * 30);
  const child = new Deno.Command(program, {
    args: [
      ...prefix,
      "-nodefaults",
      "-m",
      "64",
      "-vga",
      "std",
      "-display",
      "none",
      "-vnc",
      `127.0.0.1:${display}`,
      "-drive",
      `file=${disk},format=raw,if=ide`,
    ],
    stdin: "null",
    stdout: "null",
    stderr: "null",
  }).spawn();
  try {
    const client = await connect(5900 + display);
    try {
      return await fn(client, child.pid);
    } finally {
      try {
        client.conn.close();
      } catch {
        // the measure closed it
      }
    }
  } finally {
    child.kill("SIGKILL");
    await child.status;
  }
}

/**
 * Waits for the guest's 1024x768 mode, then counts in SECONDS the updates received and
 * those that brought the whole screen (every pixel of 1024x768 in their rectangles).
 */
async function framesPerSecond(
  client: TestRfbClient,
  encoding: number,
): Promise<{ updates: number; full: number }> {
  await client.setEncodings([encoding, -223]);
  await client.request(false);
  const deadline = Date.now() + 240_000;
  while (client.frame.width !== 1024 && Date.now() < deadline) {
    await client.update();
    await client.request(true);
  }
  if (client.frame.width !== 1024) throw new Error("the guest did not set 1024x768");
  await client.update();
  let updates = 0;
  let full = 0;
  const start = performance.now();
  while (performance.now() - start < SECONDS * 1000) {
    await client.request(true);
    await client.update();
    updates++;
    if (client.lastUpdatePixels >= 1024 * 768) full++;
  }
  const seconds = (performance.now() - start) / 1000;
  return { updates: updates / seconds, full: full / seconds };
}

/** The CPU share (percent of one core) a process uses over SECONDS from now. */
async function cpuShare(pid: number): Promise<number> {
  const before = await cpuSeconds(pid);
  const start = performance.now();
  await new Promise((r) => setTimeout(r, SECONDS * 1000));
  const used = (await cpuSeconds(pid)) - before;
  return (used / ((performance.now() - start) / 1000)) * 100;
}

/**
 * The CPU share (percent of one core) the emulator uses on a still screen with a client
 * connected, then once the client has gone (the guest's own idle cost): their difference
 * is what the client costs.
 */
async function idleCpu(
  client: TestRfbClient,
  pid: number,
): Promise<{ connected: number; alone: number }> {
  await client.setEncodings([16, -223]);
  await client.request(false);
  while (client.frame.width !== 1024) {
    await client.update();
    await client.request(false);
  }
  await new Promise((r) => setTimeout(r, 2000)); // let start-up work settle
  // The client keeps one incremental request waiting, as a viewer does.
  await client.request(true);
  const connected = await cpuShare(pid);
  client.conn.close();
  await new Promise((r) => setTimeout(r, 2000));
  return { connected, alone: await cpuShare(pid) };
}

/**
 * The server alone, no guest: a 1024x768 surface whose every pixel changes before each
 * request, served in-process to the same client over loopback (the encoder's ceiling).
 */
async function serverOnlyFps(encoding: number): Promise<number> {
  const surface = new DisplaySurface(1024, 768);
  const registry = new DisplayRegistry();
  registry.addConsole({ id: "vga0", update: () => surface });
  const server = new RfbServer(registry, { name: "QEMU", refreshMs: 1 });
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const accepting = server.accept(listener);
  const client = new TestRfbClient(
    await Deno.connect({ hostname: "127.0.0.1", port: listener.addr.port }),
  );
  try {
    await client.handshake();
    await client.setEncodings([encoding]);
    let frames = 0;
    const start = performance.now();
    while (performance.now() - start < SECONDS * 1000) {
      // A gradient that moves: every pixel changes, neighbours differ (no solid tiles).
      const shift = frames * 7;
      for (let i = 0; i < surface.pixels.length; i++) {
        surface.pixels[i] = (i + shift) * 2654435 & 0xffffff;
      }
      surface.markDirty(0, 0, 1024, 768);
      await client.request(frames > 0);
      await client.update();
      frames++;
    }
    return frames / ((performance.now() - start) / 1000);
  } finally {
    client.conn.close();
    listener.close();
    server.close();
    await accepting;
  }
}

/**
 * The renderer alone: a std VGA at 1024x768x32 behind its linear framebuffer, where
 * the CPU's stores (through the address space, as the interpreter makes them) change
 * `pages` 4 KiB pages between refreshes; milliseconds per `console.update()`.
 */
export function renderMs(pages: number): number {
  const memory = new AddressSpace();
  const io = new PortIoSpace();
  let fn: { configWrite(o: number, s: 1 | 2 | 4, v: number): void } | null = null;
  const vga = new StdVga("vga0", {
    memory,
    io,
    pci: {
      plug(f) {
        fn = f;
        return 0x10;
      },
      intx: () => {
        throw new Error("no interrupts");
      },
    },
  });
  fn!.configWrite(0x10, 4, 0xfd000000);
  fn!.configWrite(PCI_COMMAND, 2, PCI_COMMAND_MEMORY);
  for (const [index, value] of [[1, 1024], [2, 768], [3, 32], [4, 0x41]]) {
    io.out(0x1ce, 2, index);
    io.out(0x1cf, 2, value);
  }
  vga.console.update();
  const frames = SHORT ? 100 : 400;
  let value = 1;
  const start = performance.now();
  for (let f = 0; f < frames; f++) {
    for (let p = 0; p < pages; p++) {
      // A store in each changed page, spread over the screen (768 pages of it).
      const page = (f * 7 + p * 131) % 768;
      memory.write32(0xfd000000 + page * 4096 + ((f * 64) & 4095), value++);
    }
    vga.console.update().takeDirty();
  }
  return (performance.now() - start) / frames;
}

/** The rows: fps for raw and ZRLE, idle CPU; QEMU first, vmkit second, same guest and client. */
export async function vncRows(): Promise<Row[]> {
  const { dir, cleanup } = await scratch();
  const rows: Row[] = [];
  try {
    const moving = path.join(dir, "moving.img");
    const still = path.join(dir, "still.img");
    await Deno.writeFile(moving, flipDisk());
    await Deno.writeFile(still, bootDisk(true));
    const vmkitPrefix = ["run", "-A", "--quiet", MAIN, "system-x86_64"];
    const haveQemu = have("qemu-system-x86_64");
    // Short mode (CI) measures ZRLE only: each emulator start costs seconds.
    const encodings = SHORT ? [["ZRLE", 16]] as const : [["raw", 0], ["ZRLE", 16]] as const;
    for (const [label, encoding] of encodings) {
      const qemu = haveQemu
        ? await withEmulator("qemu-system-x86_64", [], moving, (c) => framesPerSecond(c, encoding))
        : undefined;
      const vmkit = await withEmulator(
        Deno.execPath(),
        vmkitPrefix,
        moving,
        (c) => framesPerSecond(c, encoding),
      );
      rows.push({
        name: `full-screen updates 1024x768x32, page flips (${label})`,
        unit: "frames/s",
        qemu: qemu?.full,
        vmkit: vmkit.full,
        higherIsBetter: true,
      });
      rows.push({
        name: `  of which updates of any size (${label})`,
        unit: "updates/s",
        qemu: qemu?.updates,
        vmkit: vmkit.updates,
        higherIsBetter: true,
      });
    }
    for (const [label, encoding] of encodings) {
      rows.push({
        name: `server alone, 1024x768 all changed (${label})`,
        unit: "frames/s",
        qemu: undefined,
        vmkit: await serverOnlyFps(encoding),
        higherIsBetter: true,
      });
    }
    for (const pages of [1, 768]) {
      rows.push({
        name: `render 1024x768x32 with ${pages === 768 ? "every" : "one"} 4 KiB page written`,
        unit: "ms/frame",
        qemu: undefined,
        vmkit: renderMs(pages),
        higherIsBetter: false,
      });
    }
    const qemuIdle = haveQemu
      ? await withEmulator("qemu-system-x86_64", [], still, idleCpu)
      : undefined;
    const vmkitIdle = await withEmulator(Deno.execPath(), vmkitPrefix, still, idleCpu);
    rows.push({
      name: "CPU with a client on a still 1024x768 screen",
      unit: "% of a core",
      qemu: qemuIdle?.connected,
      vmkit: vmkitIdle.connected,
      higherIsBetter: false,
    });
    rows.push({
      name: "  the same screen once the client has gone",
      unit: "% of a core",
      qemu: qemuIdle?.alone,
      vmkit: vmkitIdle.alone,
      higherIsBetter: false,
    });
  } finally {
    await cleanup();
  }
  return rows;
}

if (import.meta.main) {
  printTable(
    "VNC server: full-screen update rate and idle cost, vmkit vs QEMU TCG",
    await vncRows(),
  );
}
