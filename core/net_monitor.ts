// The monitor's network commands: `info usernet`, from what each user-mode backend reports

import type { CommandTable, MonitorContext } from "./monitor/commands.ts";
import { hubIdOf } from "./net.ts";

/**
 * `info usernet`'s text: for each backend that reports a table
 * (`NetClient.usernetInfo` in core/net.ts), `Hub N (id):` (N is -1 off a hub) and its table.
 */
export function usernetText(ctx: MonitorContext): string {
  let out = "";
  for (const client of ctx.machine.netClients) {
    if (!client.usernetInfo) continue;
    out += `Hub ${hubIdOf(client.peer)} (${client.id}):\n${client.usernetInfo()}`;
  }
  return out;
}

/** Adds the network `info` commands to a monitor's table. */
export function addNetInfoCommands(table: CommandTable): void {
  table.addInfo({
    name: "usernet",
    params: "",
    help: "show user network stack connection states",
    run: (ctx) => usernetText(ctx),
  });
}
