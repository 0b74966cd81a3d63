import assert from "node:assert/strict";
import type { MonitorContext } from "./monitor/commands.ts";
import { CommandTable } from "./monitor/commands.ts";
import { connectNetClients, type NetClient, NetHub } from "./net.ts";
import { addNetInfoCommands } from "./net_monitor.ts";

function user(id: string): NetClient {
  return {
    id,
    model: "user",
    peer: null,
    receive: () => true,
    usernetInfo: () =>
      "  Protocol[State]    FD  Source Address  Port   Dest. Address  Port RecvQ SendQ\n",
  };
}

Deno.test("info usernet prints each user backend under Hub N (id), N -1 when it is on no hub", async () => {
  const table = new CommandTable();
  addNetInfoCommands(table);
  const onHub = user("user.0");
  connectNetClients(onHub, new NetHub(0).addPort());
  const direct = user("n0");
  const other: NetClient = { id: "e1000.0", model: "e1000", peer: null, receive: () => true };
  const ctx = { machine: { netClients: [onHub, other, direct] } } as unknown as MonitorContext;
  const text = await table.info("usernet")!.run(ctx, []);
  assert.deepEqual(text.split("\n").filter((l) => l.startsWith("Hub")), [
    "Hub 0 (user.0):",
    "Hub -1 (n0):",
  ]);
  assert.equal(text.split("\n").length, 5);
});
