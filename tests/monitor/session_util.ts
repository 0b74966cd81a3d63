// Sessions of the monitor tests: vmkit or real QEMU driven by tests/monitor/qmp_client.py,
// and what their transcripts hold

import assert from "node:assert/strict";
import * as path from "node:path";
import { haveProgram, MAIN, ROOT, runCommand } from "../test_util.ts";

export const CLIENT = path.join(ROOT, "tests", "monitor", "qmp_client.py");
export const HAVE_PYTHON = haveProgram("python3");
export const HAVE_QEMU = haveProgram("qemu-system-x86_64");

/** Starts a VM (vmkit or QEMU), runs the client on `socket`, returns what the client printed. */
export async function session(
  vm: "vmkit" | "qemu",
  vmArgs: string[],
  client: string[],
): Promise<{ lines: string[]; vmCode: number; vmErr: string }> {
  const [program, pre] = vm === "vmkit"
    ? [Deno.execPath(), ["run", "-A", "--quiet", MAIN, "system-x86_64"]]
    : ["qemu-system-x86_64", []];
  const child = new Deno.Command(program, {
    args: [...pre, "-display", "none", ...vmArgs],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  try {
    const r = await runCommand("timeout", ["120", "python3", CLIENT, ...client]);
    assert.equal(r.code, 0, r.stderr);
    const out = await child.output();
    return {
      lines: r.stdout.split("\n").map((l) => l.replace(/\r$/, "")),
      vmCode: out.code,
      vmErr: new TextDecoder().decode(out.stderr),
    };
  } catch (e) {
    try {
      child.kill("SIGKILL");
    } catch {
      // gone
    }
    await child.output();
    throw e;
  }
}

/** The messages of a QMP transcript, events apart. */
export function parse(lines: string[]) {
  const msgs = lines.filter((l) => l).map((l) => JSON.parse(l) as Record<string, unknown>);
  return {
    greeting: msgs[0],
    replies: msgs.slice(1).filter((m) => !("event" in m)),
    events: msgs.filter((m) => "event" in m).map((m) => m.event as string),
    eventMsgs: msgs.filter((m) => "event" in m),
  };
}

/** The JSON structure of a value: keys and types, not the values. */
export function shape(v: unknown): unknown {
  if (Array.isArray(v)) return v.length ? [shape(v[0])] : [];
  if (v && typeof v === "object") {
    return Object.fromEntries(Object.keys(v).sort().map((k) => [k, shape((v as never)[k])]));
  }
  return typeof v;
}

/** HMP lines of a session, without the banner, prompts and QEMU's echo escapes. */
export function hmpBody(lines: string[]): string[] {
  return lines.map((l) => l.split(`${String.fromCharCode(27)}[K`).at(-1)!)
    .slice(1).map((l) => l.replace(/^(\(qemu\) ?)+/, "")).filter((l) => l);
}

/**
 * Runs the same HMP lines on vmkit and on real QEMU started with `vmArgs` (and an HMP
 * socket `name`-vm.sock under `dir`), then `quit`; each one's lines without the banner.
 */
export async function hmpBoth(
  dir: string,
  name: string,
  vmArgs: string[],
  commands: string[],
): Promise<Record<"vmkit" | "qemu", string[]>> {
  const out = { vmkit: [] as string[], qemu: [] as string[] };
  for (const vm of ["vmkit", "qemu"] as const) {
    const sock = path.join(dir, `${name}-${vm}.sock`);
    const r = await session(vm, [...vmArgs, "-monitor", `unix:${sock},server=on,wait=off`], [
      "hmp",
      sock,
      ...commands,
      "quit",
    ]);
    assert.equal(r.vmCode, 0, `${vm}: ${r.vmErr}`);
    out[vm] = hmpBody(r.lines).filter((l) => !l.startsWith("QEMU"));
  }
  return out;
}
