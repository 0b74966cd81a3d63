// The monitor's network commands: `info usernet`, from what each user-mode backend reports

import type { CommandTable, MonitorContext } from "./monitor/commands.ts";
import { hubIdOf, type NetClient } from "./net.ts";

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

/**
 * `info network`: each hub and its ports with the client behind each port, then the
 * clients linked directly, in QEMU's layout. vmkit's clients carry no QEMU info string
 * (index, net, macaddr...): the line says `type=` the client's model only.
 */
export function networkText(ctx: MonitorContext): string {
  const clients = ctx.machine.netClients;
  const describe = (c: NetClient | null) => (c ? `${c.id}: type=${c.model}` : "(none)");
  const hubs = new Map<number, NetClient[]>();
  const shown = new Set<NetClient>();
  for (const c of clients) {
    const hub = hubIdOf(c);
    if (hub >= 0) {
      if (!hubs.has(hub)) hubs.set(hub, []);
      hubs.get(hub)!.push(c);
      shown.add(c);
    }
  }
  let out = "";
  for (const [id, ports] of [...hubs].sort((a, b) => a[0] - b[0])) {
    out += `hub ${id}\n`;
    // QEMU lists a hub's ports newest first.
    for (const p of [...ports].reverse()) {
      out += ` \\ ${p.id}: ${describe(p.peer)}\n`;
      if (p.peer) shown.add(p.peer);
    }
  }
  for (const c of clients) {
    if (shown.has(c)) continue;
    out += `${describe(c)}\n`;
    shown.add(c);
    if (c.peer && !shown.has(c.peer)) {
      out += ` \\ ${describe(c.peer)}\n`;
      shown.add(c.peer);
    }
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
  table.addInfo({
    name: "network",
    params: "",
    help: "show the network state",
    run: (ctx) => networkText(ctx),
  });
}
