// The monitor's network commands: `info usernet`, from what each user-mode backend reports

import type { CommandTable, MonitorContext } from "./monitor/commands.ts";
import { hubIdOf, machineNics, type NetClient } from "./net.ts";

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
 * `info network` as QEMU's hmp_info_network: the hubs, newest first, each with its
 * ports newest first and the client behind each port; then, in QEMU's net_clients order
 * (backends, then NICs as they were made), each NIC with its backend under ` \\ ` and
 * each client that has no peer. A client prints as `NAME: index=0,type=TYPE,INFO`
 * (print_net_client); a NIC's INFO is `model=...,macaddr=...`.
 */
export function networkText(ctx: MonitorContext): string {
  const nics = new Map(machineNics(ctx.machine).map((n) => [n.nic, n]));
  const line = (c: NetClient) => {
    const nic = nics.get(c);
    if (nic) {
      const mac = [...nic.mac()].map((b) => b.toString(16).padStart(2, "0")).join(":");
      return `${nic.name}: index=0,type=nic,model=${c.model},macaddr=${mac}\n`;
    }
    return `${c.id}: index=0,type=${c.model},${c.infoStr ?? ""}\n`;
  };
  const clients = [...ctx.machine.netClients, ...nics.keys()];
  const hubs = new Map<number, NetClient[]>();
  for (const c of clients) {
    const hub = hubIdOf(c);
    if (hub < 0) continue;
    if (!hubs.has(hub)) hubs.set(hub, []);
    hubs.get(hub)!.push(c);
  }
  let out = "";
  // vmkit makes hubs in the order of their ids' first use, as QEMU; QEMU lists them
  // and their ports newest first.
  for (const [id, ports] of [...hubs].reverse()) {
    out += `hub ${id}\n`;
    for (const p of [...ports].reverse()) {
      out += ` \\ ${p.id}` + (p.peer ? `: ${line(p.peer)}` : "\n");
    }
  }
  for (const c of clients) {
    // Hub ports and what hangs off them were listed with their hub.
    if (hubIdOf(c) >= 0 || hubIdOf(c.peer) >= 0) continue;
    const isNic = nics.has(c);
    if (!c.peer || isNic) out += line(c);
    if (c.peer && isNic) out += ` \\ ${line(c.peer)}`;
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
