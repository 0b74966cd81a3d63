// -monitor and -qmp end to end: vmkit on SeaBIOS driven over unix sockets by a Python
// standard-library client (tests/monitor/qmp_client.py), and the same sessions against
// real qemu-system-x86_64 7.2 to compare the shapes of what each prints

import { skipUnless } from "../skip.ts";
import assert from "node:assert/strict";
import * as path from "node:path";
import { MAIN, runCommand, tempDir } from "../test_util.ts";
import { CLIENT, hmpBody, parse, session, shape } from "./session_util.ts";

const QMP_SCRIPT = [
  '{"execute": "query-status"}',
  '{"execute": "qmp_capabilities", "id": 1}',
  '{"execute": "query-version"}',
  '{"execute": "query-name"}',
  '{"execute": "stop"}',
  '{"execute": "query-status"}',
  '{"execute": "human-monitor-command", "arguments": {"command-line": "info status"}}',
  '{"execute": "cont"}',
  '{"execute": "query-status"}',
  '{"execute": "no-such-command"}',
  '{"execute": "query-status", "arguments": {"x": 1}}',
  '{"execute": "human-monitor-command", "arguments": {"command-line": 5}}',
  "[1, 2]",
  "garbage",
  '{"execute": "query-commands"}',
  '{"execute": "system_reset"}',
  '{"execute": "quit"}',
];

Deno.test({
  name: "QMP over a unix socket: vmkit answers a real client as qemu-system-x86_64 7.2 does",
  ignore: skipUnless(import.meta, "python3", "qemu-system-x86_64"),
  async fn() {
    const { dir, cleanup } = await tempDir();
    try {
      const results: Record<string, ReturnType<typeof parse>> = {};
      for (const vm of ["vmkit", "qemu"] as const) {
        const sock = path.join(dir, `${vm}-qmp.sock`);
        const r = await session(
          vm,
          ["-name", "mon-test", "-qmp", `unix:${sock},server=on,wait=off`],
          ["qmp", sock, ...QMP_SCRIPT],
        );
        assert.equal(r.vmCode, 0, `${vm}: ${r.vmErr}`);
        results[vm] = parse(r.lines);
      }
      const v = results.vmkit, q = results.qemu;
      // The greeting and query-version have QEMU's structure.
      assert.deepEqual(shape(v.greeting), shape(q.greeting));
      assert.deepEqual((v.greeting.QMP as { capabilities: string[] }).capabilities, ["oob"]);
      assert.equal(v.replies.length, q.replies.length, JSON.stringify(v.replies));
      for (let i = 0; i < q.replies.length; i++) {
        const qe = q.replies[i].error as { class: string } | undefined;
        const ve = v.replies[i].error as { class: string } | undefined;
        // Same success or failure, same error class, request by request.
        assert.equal(ve?.class, qe?.class, `reply ${i}: ${JSON.stringify(v.replies[i])}`);
        if (i !== 14) assert.deepEqual(shape(v.replies[i]), shape(q.replies[i]), `reply ${i}`);
      }
      const r = v.replies;
      assert.equal(
        (r[0].error as { desc: string }).desc,
        "Expecting capabilities negotiation with 'qmp_capabilities'",
      );
      assert.equal(r[1].id, 1);
      assert.deepEqual(r[2].return, {
        qemu: { micro: 0, minor: 2, major: 7 },
        package: " (vmkit 0.1.0)",
      });
      assert.deepEqual(r[3].return, { name: "mon-test" });
      assert.deepEqual(r[5].return, { status: "paused", singlestep: false, running: false });
      assert.equal(r[6].return, "VM status: paused\r\n");
      assert.equal(r[6].return, q.replies[6].return);
      assert.deepEqual(r[8].return, { status: "running", singlestep: false, running: true });
      assert.equal(
        (r[9].error as { desc: string }).desc,
        "The command no-such-command has not been found",
      );
      assert.equal((r[10].error as { desc: string }).desc, "Parameter 'x' is unexpected");
      const names = (r[14].return as { name: string }[]).map((c) => c.name);
      for (
        const n of [
          "query-status",
          "query-version",
          "stop",
          "cont",
          "quit",
          "human-monitor-command",
        ]
      ) {
        assert.ok(names.includes(n), n);
      }
      // The events, in QEMU's order, and the reasons QEMU gives.
      assert.deepEqual(v.events, ["STOP", "RESUME", "RESET", "SHUTDOWN"]);
      assert.deepEqual(v.events, q.events);
      for (let i = 0; i < v.eventMsgs.length; i++) {
        assert.deepEqual(v.eventMsgs[i].data, q.eventMsgs[i].data);
        assert.deepEqual(shape(v.eventMsgs[i]), shape(q.eventMsgs[i]));
      }
    } finally {
      await cleanup();
    }
  },
});

const HMP_SCRIPT = [
  "info status",
  "info name",
  "info chardev",
  "stop",
  "info status",
  "cont",
  "info status",
  "foo",
  "info foo",
  "quit",
];

Deno.test({
  name: "HMP over a unix socket: banner, prompt and command output as qemu-system-x86_64 7.2",
  ignore: skipUnless(import.meta, "python3", "qemu-system-x86_64"),
  async fn() {
    const { dir, cleanup } = await tempDir();
    try {
      const out: Record<string, string[]> = {};
      for (const vm of ["vmkit", "qemu"] as const) {
        const sock = path.join(dir, `${vm}-hmp.sock`);
        const r = await session(
          vm,
          ["-name", "mon-test", "-monitor", `unix:${sock},server=on,wait=off`],
          ["hmp", sock, ...HMP_SCRIPT],
        );
        assert.equal(r.vmCode, 0, `${vm}: ${r.vmErr}`);
        // QEMU echoes the typed line with terminal escapes (each step ends in ESC [K);
        // keep what follows the last of them.
        out[vm] = r.lines.map((l) => l.split(`${String.fromCharCode(27)}[K`).at(-1)!);
      }
      const v = out.vmkit;
      assert.match(v[0], /^QEMU 7\.2\.\d+ monitor - type 'help' for more information$/);
      assert.match(out.qemu[0], /^QEMU 7\.2\.\d+ monitor - type 'help' for more information$/);
      const body = (lines: string[]) =>
        lines.slice(1).map((l) => l.replace(/^(\(qemu\) ?)+/, "")).filter((l) => l);
      assert.deepEqual(body(v), [
        "VM status: running",
        "mon-test",
        `compat_monitor0: filename=unix:${path.join(dir, "vmkit-hmp.sock")},server=on`,
        "VM status: paused",
        "VM status: running",
        "unknown command: 'foo'",
        "unknown command: 'info foo'",
      ]);
      const qemuBody = body(out.qemu).filter((l) => !/^(parallel|serial)0: filename=vc$/.test(l))
        .map((l) => l.replace("qemu-hmp.sock", "vmkit-hmp.sock"));
      assert.deepEqual(body(v), qemuBody);
    } finally {
      await cleanup();
    }
  },
});

Deno.test({
  name: "HMP info registers, info pci and xp on a paused SeaBIOS machine keep QEMU's layout",
  ignore: skipUnless(import.meta, "python3"),
  async fn() {
    const { dir, cleanup } = await tempDir();
    try {
      const sock = path.join(dir, "hmp.sock");
      const r = await session(
        "vmkit",
        ["-S", "-monitor", `unix:${sock},server=on,wait=off`],
        [
          "hmp",
          sock,
          "info status",
          "info registers",
          "info registers",
          "info pci",
          "xp /8xb 0xffff0",
          "quit",
        ],
      );
      assert.equal(r.vmCode, 0, r.vmErr);
      // Past the echo of each typed line (which ends in ESC [K).
      const text = r.lines.map((l) => l.split(`${String.fromCharCode(27)}[K`).at(-1)).join("\n");
      assert.match(text, /VM status: paused \(prelaunch\)/);
      // QEMU starts each CPU's dump with an empty line.
      assert.match(text, /^\nCPU#0\nEAX=/m);
      // -S: the CPU has not run a single instruction; it sits at the reset vector.
      assert.match(text, /EIP=0000fff0 EFL=00000002 \[-------\] CPL=0 II=0 A20=1 SMM=0 HLT=0/);
      assert.match(text, /^CS =f000 ffff0000 0000ffff /m);
      assert.match(text, /^GDT= {5}00000000 0000ffff$/m);
      assert.match(text, /^DR6=00000000ffff0ff0 DR7=0000000000000400$/m);
      assert.match(
        text,
        /^(\(qemu\) )? {2}Bus {2}0, device {3}0, function 0:\n {4}Host bridge: PCI device 8086:1237$/m,
      );
      assert.match(text, /^ {4}IDE controller: PCI device 8086:7010$/m);
      // The first bytes of SeaBIOS's reset vector: a far jump (ea).
      assert.match(text, /^(\(qemu\) )?00000000000ffff0: 0xea 0x5b 0xe0 0x00 0xf0/m);
    } finally {
      await cleanup();
    }
  },
});

/** Runs a VM with `-nographic` on piped stdio: sends each step once `waitFor` shows in its output. */
async function nographic(
  program: string,
  pre: string[],
  steps: { send: string; waitFor?: string }[],
): Promise<{ code: number; out: string }> {
  const child = new Deno.Command(program, {
    args: [...pre, "-nographic"],
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const writer = child.stdin.getWriter();
  const reader = child.stdout.getReader();
  let out = "";
  const decoder = new TextDecoder();
  const killer = setTimeout(() => child.kill("SIGKILL"), 120_000);
  try {
    for (const step of steps) {
      while (step.waitFor && !out.includes(step.waitFor)) {
        const { value, done } = await reader.read();
        if (done) break;
        out += decoder.decode(value, { stream: true });
      }
      await writer.write(new TextEncoder().encode(step.send));
    }
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      out += decoder.decode(value, { stream: true });
    }
    await writer.close().catch(() => {});
    const status = await child.status;
    await child.stderr.cancel();
    return { code: status.code, out };
  } finally {
    clearTimeout(killer);
  }
}

Deno.test({
  name: "-nographic: Ctrl-A h lists the keys, Ctrl-A c switches to the monitor, Ctrl-A x quits",
  ignore: skipUnless(import.meta, "qemu-system-x86_64"),
  async fn() {
    const steps = (booted: string) => [
      { send: "\x01h", waitFor: booted },
      { send: "\x01c", waitFor: "C-a C-a  sends C-a\n\r" },
      { send: "info status\n", waitFor: "(qemu) " },
      { send: "stop\n", waitFor: "VM status: running\r\n(qemu) " },
      { send: "info status\n" },
      { send: "\x01x", waitFor: "VM status: paused\r\n(qemu) " },
    ];
    const v = await nographic(
      Deno.execPath(),
      ["run", "-A", "--quiet", MAIN, "system-x86_64", "-net", "none"],
      steps("No bootable device."),
    );
    const q = await nographic("qemu-system-x86_64", ["-net", "none"], steps("No bootable device."));
    for (const r of [v, q]) {
      assert.equal(r.code, 0, r.out);
      const help = r.out.indexOf("\n\rC-a h    print this help\n\rC-a x    exit emulator\n\r");
      const banner = r.out.search(
        /QEMU 7\.2\.\d+ monitor - type 'help' for more information\r\n\(qemu\) /,
      );
      assert.ok(help >= 0 && banner > help, JSON.stringify(r.out.slice(-800)));
      assert.ok(r.out.includes("C-a c    switch between console and monitor\n\r"));
      assert.ok(r.out.indexOf("VM status: paused\r\n") > r.out.indexOf("VM status: running\r\n"));
    }
  },
});

Deno.test({
  name:
    "QMP on tcp with wait=on: the guest starts once the client connected, and quits on its word",
  ignore: skipUnless(import.meta, "python3"),
  async fn() {
    const probe = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const port = (probe.addr as Deno.NetAddr).port;
    probe.close();
    const r = await session(
      "vmkit",
      ["-qmp", `tcp:127.0.0.1:${port},server=on`],
      [
        "qmp",
        `tcp:127.0.0.1:${port}`,
        '{"execute": "qmp_capabilities"}',
        '{"execute": "query-status"}',
        '{"execute": "quit"}',
      ],
    );
    assert.equal(r.vmCode, 0, r.vmErr);
    const msgs = r.lines.filter((l) => l).map((l) => JSON.parse(l));
    assert.deepEqual(msgs[2], { return: { status: "running", singlestep: false, running: true } });
    assert.equal(msgs.at(-2).event, "SHUTDOWN");
  },
});

Deno.test({
  name: "QMP system_powerdown presses the ACPI power button and sends POWERDOWN as QEMU 7.2 does",
  ignore: skipUnless(import.meta, "python3", "qemu-system-x86_64"),
  async fn() {
    const { dir, cleanup } = await tempDir();
    try {
      const script = [
        '{"execute": "qmp_capabilities"}',
        '{"execute": "system_powerdown"}',
        '{"execute": "human-monitor-command", "arguments": {"command-line": "system_powerdown"}}',
        '{"execute": "quit"}',
      ];
      const results: Record<string, ReturnType<typeof parse>> = {};
      for (const vm of ["vmkit", "qemu"] as const) {
        const sock = path.join(dir, `${vm}-pd.sock`);
        const r = await session(vm, ["-qmp", `unix:${sock},server=on,wait=off`], [
          "qmp",
          sock,
          ...script,
        ]);
        assert.equal(r.vmCode, 0, `${vm}: ${r.vmErr}`);
        results[vm] = parse(r.lines);
      }
      assert.deepEqual(results.vmkit.replies, results.qemu.replies);
      assert.deepEqual(results.vmkit.events, ["POWERDOWN", "POWERDOWN", "SHUTDOWN"]);
      assert.deepEqual(results.vmkit.events, results.qemu.events);
    } finally {
      await cleanup();
    }
  },
});

Deno.test({
  name: "QMP eject and blockdev-change-medium move the CD-ROM tray with QEMU 7.2's events",
  ignore: skipUnless(import.meta, "python3", "qemu-system-x86_64"),
  async fn() {
    const { dir, cleanup } = await tempDir();
    try {
      const iso1 = path.join(dir, "one.img");
      const iso2 = path.join(dir, "two.img");
      await Deno.writeFile(iso1, new Uint8Array(1 << 20).fill(0x31));
      await Deno.writeFile(iso2, new Uint8Array(1 << 20).fill(0x32));
      const hmp = (line: string) =>
        JSON.stringify({ execute: "human-monitor-command", arguments: { "command-line": line } });
      const script = [
        '{"execute": "qmp_capabilities"}',
        '{"execute": "eject", "arguments": {"device": "ide1-cd0"}}',
        '{"execute": "eject", "arguments": {"device": "ide1-cd0"}}',
        JSON.stringify({
          execute: "blockdev-change-medium",
          arguments: { device: "ide1-cd0", filename: iso2, format: "raw" },
        }),
        '{"execute": "eject", "arguments": {"device": "nosuch"}}',
        '{"execute": "eject", "arguments": {"device": "ide1-cd0", "force": "yes"}}',
        hmp("eject -f ide1-cd0"),
        hmp(`change ide1-cd0 ${iso1} raw`),
        hmp(`change ide1-cd0 ${iso2} raw`),
        hmp("eject nosuch"),
        hmp(`change ide1-cd0 ${path.join(dir, "missing.iso")}`),
        '{"execute": "eject", "arguments": {"device": "ide1-cd0"}}',
        hmp("info block"),
        '{"execute": "quit"}',
      ];
      const results: Record<string, ReturnType<typeof parse>> = {};
      for (const vm of ["vmkit", "qemu"] as const) {
        const sock = path.join(dir, `${vm}-cd.sock`);
        // -S: with the guest running, SeaBIOS's ATAPI polling can move QEMU's tray between
        // two commands (CI once saw an extra tray-open event); stopped, the events follow
        // the commands alone in both programs.
        const r = await session(vm, [
          "-S",
          "-net",
          "none",
          "-drive",
          `file=${iso1},media=cdrom,format=raw,if=ide,index=2`,
          "-qmp",
          `unix:${sock},server=on,wait=off`,
        ], ["qmp", sock, ...script]);
        assert.equal(r.vmCode, 0, `${vm}: ${r.vmErr}`);
        results[vm] = parse(r.lines);
      }
      const v = results.vmkit, q = results.qemu;
      // info block: QEMU adds "Attached to:" lines and its floppy and SD drives.
      const info = v.replies.length - 2;
      assert.deepEqual(v.replies.toSpliced(info, 1), q.replies.toSpliced(info, 1));
      for (const r of [v, q]) {
        assert.match(
          r.replies[info].return as string,
          /ide1-cd0: \[not inserted\]\r\n( {4}Attached to: .*\r\n)? {4}Removable device: not locked, tray open/,
        );
      }
      assert.equal(
        (v.replies[4].error as { desc: string }).desc,
        "Device 'nosuch' not found",
      );
      const trays = (p: ReturnType<typeof parse>) =>
        p.eventMsgs.map((m) => {
          const data = m.data as Record<string, unknown> | undefined;
          return `${m.event} ${data?.device ?? ""} ${data?.["tray-open"] ?? ""}`;
        });
      assert.deepEqual(trays(v), trays(q));
      // The id names the drive's device: QEMU's QOM path of it (a -cdrom drive's device
      // has no id), vmkit's path of it.
      for (const p of [v, q]) {
        for (const m of p.eventMsgs.filter((m) => m.event === "DEVICE_TRAY_MOVED")) {
          assert.match((m.data as { id: string }).id, /^\/machine\/unattached\/\S+$/);
        }
      }
      assert.deepEqual(trays(v).slice(0, 2), [
        "DEVICE_TRAY_MOVED ide1-cd0 true",
        "DEVICE_TRAY_MOVED ide1-cd0 false",
      ]);
    } finally {
      await cleanup();
    }
  },
});

Deno.test({
  name: "HMP line editing: echo, Backspace, arrows, Delete, Ctrl-A/E and history as QEMU 7.2",
  ignore: skipUnless(import.meta, "python3", "qemu-system-x86_64"),
  async fn() {
    const { dir, cleanup } = await tempDir();
    try {
      const esc = "\x1b";
      const keys = [
        "info statsu\x7f\x7fus", // Backspace
        `${esc}[A`, // Up: the last line again
        `xinfo name\x01${esc}[3~`, // Ctrl-A, Delete
        `info ${esc}[D${esc}[D${esc}[Cx\x05 version`, // Left, Right, insert, Ctrl-E
        `${esc}[A${esc}[A${esc}[A${esc}[B`, // Up thrice, Down once
        "quit",
      ];
      const out: Record<string, string> = {};
      for (const vm of ["vmkit", "qemu"] as const) {
        const sock = path.join(dir, `${vm}-rl.sock`);
        const r = await session(
          vm,
          ["-name", "rl", "-monitor", `unix:${sock},server=on,wait=off`],
          ["hmp", sock, ...keys],
        );
        assert.equal(r.vmCode, 0, `${vm}: ${r.vmErr}`);
        // Past the banner (the version differs); the rest byte for byte.
        out[vm] = r.lines.slice(1).join("\n").replace(
          /\d+\.\d+\.\d+ \(vmkit[^)]*\)|7\.2\.\d+/g,
          "V",
        );
      }
      assert.equal(out.vmkit, out.qemu);
      assert.match(out.vmkit, /VM status: running\r?\n.*VM status: running/s);
    } finally {
      await cleanup();
    }
  },
});

Deno.test({
  name: "-chardev socket with -mon mode=control and mode=readline serve QMP and HMP as QEMU 7.2",
  ignore: skipUnless(import.meta, "python3", "qemu-system-x86_64"),
  async fn() {
    const { dir, cleanup } = await tempDir();
    try {
      const out: Record<string, { qmp: ReturnType<typeof parse>; hmp: string[] }> = {};
      for (const vm of ["vmkit", "qemu"] as const) {
        const q = path.join(dir, `${vm}-c.sock`);
        const h = path.join(dir, `${vm}-h.sock`);
        const args = [
          "-net",
          "none",
          "-chardev",
          `socket,id=qmpmon,path=${q},server=on,wait=off`,
          "-mon",
          "chardev=qmpmon,mode=control",
          "-chardev",
          `socket,id=hmpmon,path=${h},server=on,wait=off`,
          "-mon",
          "chardev=hmpmon,mode=readline",
        ];
        const child = new Deno.Command(
          vm === "vmkit" ? Deno.execPath() : "qemu-system-x86_64",
          {
            args: [
              ...(vm === "vmkit" ? ["run", "-A", "--quiet", MAIN, "system-x86_64"] : []),
              "-display",
              "none",
              ...args,
            ],
            stdin: "null",
            stdout: "piped",
            stderr: "piped",
          },
        ).spawn();
        try {
          const hr = await runCommand("timeout", [
            "60",
            "python3",
            CLIENT,
            "hmp",
            h,
            "info status",
            "info chardev",
          ]);
          const qr = await runCommand("timeout", ["60", "python3", CLIENT, "qmp", q, ...[
            '{"execute": "qmp_capabilities"}',
            '{"execute": "query-status"}',
            '{"execute": "quit"}',
          ]]);
          assert.equal(qr.code, 0, qr.stderr);
          const status = await child.output();
          assert.equal(status.code, 0, new TextDecoder().decode(status.stderr));
          out[vm] = {
            qmp: parse(qr.stdout.split("\n")),
            hmp: hmpBody(hr.stdout.split("\n").map((l) => l.replace(/\r$/, "")))
              // (QEMU says "disconnected:" of the QMP socket nobody has opened yet.)
              .filter((l) => !/^((parallel|serial)0: filename=vc|qmpmon: .*)$/.test(l))
              .map((l) => l.replace(`${vm}-h.sock`, "X-h.sock")),
          };
        } finally {
          try {
            child.kill("SIGKILL");
          } catch {
            // exited
          }
        }
      }
      assert.deepEqual(out.vmkit.qmp.replies, out.qemu.qmp.replies);
      assert.deepEqual(out.vmkit.hmp, out.qemu.hmp);
      assert.equal(out.vmkit.hmp[0], "VM status: running");
      assert.ok(
        out.vmkit.hmp.includes(`hmpmon: filename=unix:${path.join(dir, "X-h.sock")},server=on`),
      );
    } finally {
      await cleanup();
    }
  },
});
