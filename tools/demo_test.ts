import assert from "node:assert/strict";
import type { MachineExit } from "../core/machine.ts";
import { main } from "../cli/main.ts";
import { describeGuestExit } from "./demo.ts";
import { DEMO_EXIT_CODE } from "./demo_guest.ts";

Deno.test("describeGuestExit() says the guest did not run when vmkit stopped before starting it", async () => {
  let exit: MachineExit | undefined;
  const dir = await Deno.makeTempDir();
  try {
    // No such firmware anywhere: the system face fails before a machine exists.
    const status = await main(
      ["system-x86_64", "-display", "none", "-bios", `${dir}/missing.bin`],
      { onGuestExit: (e) => (exit = e) },
    );
    assert.equal(status, 1);
    assert.equal(exit, undefined);
    assert.equal(
      describeGuestExit(exit, status, "3"),
      "the guest did not run: vmkit stopped with status 1 before starting it",
    );
  } finally {
    await Deno.remove(dir);
  }
});

Deno.test("describeGuestExit() tells the guest's isa-debug-exit value and other endings apart", () => {
  assert.match(
    describeGuestExit({ reason: "exit", exitCode: DEMO_EXIT_CODE }, DEMO_EXIT_CODE, "9"),
    /^the guest wrote 0x10 to isa-debug-exit after 9 ms: vmkit exits with status 33 /,
  );
  assert.match(
    describeGuestExit({ reason: "exit", exitCode: 5 }, 5, "9"),
    /wrote 0x2 .* the demo guest ends with status 33$/,
  );
  assert.equal(
    describeGuestExit({ reason: "shutdown", exitCode: 0 }, 0, "9"),
    "the guest's run ended (shutdown) after 9 ms with status 0, not through isa-debug-exit",
  );
});
