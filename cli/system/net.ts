// -net, -nic and -netdev: network backends, hub 0 for the legacy forms, and the NICs the board adds

import { UsageError } from "../../core/errors.ts";
import type { NicConfig } from "../../core/machine.ts";
import {
  connectNetClients,
  type NetClient,
  type NetdevContext,
  type NetworkPlan,
} from "../../core/net.ts";
import {
  type OptionSpec,
  type ParsedOptions,
  parseKeyValueList,
  parseOptions,
} from "../../core/options.ts";
import type { Registry } from "../../core/plugin.ts";
import type { SystemOpt } from "./options.ts";

/** QEMU's default NIC model on `-M pc`. */
export const PC_DEFAULT_NIC_MODEL = "e1000";

/** What the network options build for the machine config. */
export interface NetworkSetup {
  /** The backends and hub ports, checked now and created with the machine's event loop. */
  plan: NetworkPlan;
  /** NICs for the board to create, in order. */
  nics: NicConfig[];
  /** QEMU's start-up warnings (`hub 0 is not connected to host network`...). */
  warnings: string[];
}

/** Backends QEMU 7.2 has that vmkit does not (yet): refused as unbuilt, not as unknown. */
const QEMU_NETDEV_TYPES = [
  "tap",
  "bridge",
  "socket",
  "stream",
  "dgram",
  "vde",
  "l2tpv3",
  "vhost-user",
  "vhost-vdpa",
];

/** Backend options that may be given several times (QEMU's lists: hostfwd, guestfwd, dnssearch). */
const REPEATABLE = ["hostfwd", "guestfwd", "dnssearch"];

/** `-net nic` options, as QEMU's NetLegacyNicOptions names them. */
const NIC_OPTIONS: readonly OptionSpec[] = [
  { name: "model", type: "string", help: "NIC model (e1000, virtio; help lists them)" },
  { name: "macaddr", type: "string", help: "MAC address" },
  { name: "netdev", type: "string", help: "netdev to link to (instead of hub 0)" },
  { name: "name", type: "string", help: "NIC name" },
  { name: "id", type: "string", help: "NIC id" },
  { name: "addr", type: "string", help: "PCI address (accepted)" },
  { name: "vectors", type: "number", help: "MSI-X vectors (accepted)" },
];

function split(text: string): { type: string; rest: string } {
  const items = parseKeyValueList(text, { impliedKey: "type" });
  const type = items.find((i) => i.key === "type")?.value ?? "";
  const rest = items.filter((i) => i.key !== "type")
    .map((i) => (i.bare ? i.key : `${i.key}=${i.value.replaceAll(",", ",,")}`)).join(",");
  return { type, rest };
}

/**
 * Builds the network of a command line: `-netdev TYPE,id=ID` backends; legacy
 * `-net nic` / `-net TYPE` clients all on hub 0 (QEMU 7.2 has no VLANs any more);
 * `-nic TYPE,model=M` as a backend plus a NIC. `deviceNetdevs` are the `netdev=` ids
 * of `-device` NICs, for the "has no peer" warnings.
 */
export function buildNetwork(
  opts: readonly SystemOpt[],
  registry: Registry,
  deviceNetdevs: readonly string[] = [],
): NetworkSetup {
  // QEMU's default network: with no -net, -nic or -netdev (and no -nodefaults), `pc`
  // gets `-net nic -net user`, an e1000 on hub 0 with the user backend.
  if (!opts.some((o) => ["net", "nic", "netdev", "nodefaults"].includes(o.name))) {
    opts = [...opts, { name: "net", value: "nic" }, { name: "net", value: "user" }];
  }
  // Everything is checked here, before the machine exists; `steps` replay it in
  // plan.create() once the machine's loop does. The shape (ports, peers) is recorded as
  // it will be, for the warnings QEMU prints at start-up.
  const steps: ((ctx: NetdevContext, out: NetClient[]) => NetClient | void)[] = [];
  const ids = new Set<string>();
  const ports: { hubId: number; id: string; hasPeer: boolean; nicPort: boolean }[] = [];
  const backends: { id: string; type: string; hasPeer: boolean }[] = [];
  const nics: NicConfig[] = [];
  const byType = new Map<string, number>();
  let lastClient: NetClient | undefined;

  const addPort = (hubId: number, nicPort: boolean, hasPeer: boolean): string => {
    const id = `hub${hubId}port${ports.filter((p) => p.hubId === hubId).length}`;
    ports.push({ hubId, id, hasPeer, nicPort });
    steps.push((ctx, out) => {
      const port = ctx.hub(hubId).addPort();
      out.push(port);
      return port;
    });
    return id;
  };

  const createBackend = (where: string, type: string, rest: string, id?: string) => {
    const descriptor = registry.get("netdev", type);
    if (!descriptor && QEMU_NETDEV_TYPES.includes(type)) {
      throw new UsageError(`${where}: network backend '${type}' is not supported by vmkit yet`);
    }
    if (!descriptor || (type === "hubport" && !where.startsWith("-netdev "))) {
      throw new UsageError(`${where}: Parameter 'type' does not accept value '${type}'`);
    }
    let parsed: ParsedOptions;
    try {
      parsed = parseOptions(rest, descriptor.options);
      // hostfwd=, guestfwd= and dnssearch= may come several times: the backend gets
      // them all, one a line.
      const repeated = new Map<string, string[]>();
      for (const item of parseKeyValueList(rest)) {
        if (!REPEATABLE.includes(item.key) || item.bare) continue;
        repeated.set(item.key, [...(repeated.get(item.key) ?? []), item.value]);
      }
      for (const [key, values] of repeated) parsed[key] = values.join("\n");
    } catch (e) {
      throw new UsageError(`${where}: ${(e as Error).message}`);
    }
    if (id !== undefined) parsed.id = id;
    const clientId = parsed.id as string | undefined;
    if (clientId !== undefined && ids.has(clientId)) {
      throw new UsageError(`${where}: Duplicate ID '${clientId}' for netdev`);
    }
    if (clientId !== undefined) ids.add(clientId);
    if (type === "hubport" && clientId !== undefined && typeof parsed.hubid === "number") {
      ports.push({ hubId: parsed.hubid, id: clientId, hasPeer: false, nicPort: false });
    } else {
      backends.push({ id: clientId ?? "", type, hasPeer: false });
    }
    steps.push((ctx, out) => {
      let client: NetClient;
      try {
        client = descriptor.create(parsed, ctx);
      } catch (e) {
        throw new UsageError(where, { cause: e });
      }
      out.push(client);
      lastClient = client;
      return client;
    });
  };

  let nicIndex = 0;
  for (const o of opts) {
    const where = `-${o.name} ${o.value}`;
    if (o.name === "netdev") {
      const { type, rest } = split(o.value);
      createBackend(where, type, rest);
    } else if (o.name === "net") {
      const { type, rest } = split(o.value);
      if (type === "none") continue;
      if (type === "nic") {
        let p: ParsedOptions;
        try {
          p = parseOptions(rest, NIC_OPTIONS);
        } catch (e) {
          throw new UsageError(`${where}: ${(e as Error).message}`);
        }
        let netdev = p.netdev as string | undefined;
        if (netdev === undefined) netdev = addPort(0, true, false);
        nics.push({
          model: (p.model as string | undefined) ?? PC_DEFAULT_NIC_MODEL,
          mac: p.macaddr as string | undefined,
          netdev,
          id: (p.id ?? p.name) as string | undefined,
        });
        continue;
      }
      // A legacy backend: named TYPE.N unless id= or name= says otherwise, on hub 0.
      const items = parseKeyValueList(rest);
      const named = items.find((i) => i.key === "id" || i.key === "name")?.value;
      const restNoName = items.filter((i) => i.key !== "name" && i.key !== "id")
        .map((i) => (i.bare ? i.key : `${i.key}=${i.value.replaceAll(",", ",,")}`)).join(",");
      const n = byType.get(type) ?? 0;
      byType.set(type, n + 1);
      createBackend(where, type, restNoName, named ?? `${type}.${n}`);
      backends[backends.length - 1].hasPeer = true;
      addPort(0, false, true);
      // The port made just now links to the backend made just before it.
      const linkStep = steps.pop()!;
      steps.push((ctx, out) => {
        const client = lastClient!;
        const port = linkStep(ctx, out) as NetClient;
        connectNetClients(client, port);
      });
    } else if (o.name === "nic") {
      const { type, rest } = split(o.value);
      if (type === "none") continue;
      const items = parseKeyValueList(rest);
      const get = (k: string) => items.find((i) => i.key === k)?.value;
      const backendRest = items.filter((i) => !["model", "mac", "id"].includes(i.key))
        .map((i) => (i.bare ? i.key : `${i.key}=${i.value.replaceAll(",", ",,")}`)).join(",");
      const id = `__org.qemu.nic${nicIndex++}`;
      createBackend(where, type, backendRest, id);
      nics.push({ model: get("model") ?? PC_DEFAULT_NIC_MODEL, mac: get("mac"), netdev: id });
    }
  }

  const warnings: string[] = [];
  const linked = new Set([...nics.map((n) => n.netdev), ...deviceNetdevs]);
  for (const hubId of new Set(ports.map((p) => p.hubId))) {
    const on = ports.filter((p) => p.hubId === hubId);
    const hasNic = on.some((p) => p.nicPort || linked.has(p.id));
    const hasHost = on.some((p) => p.hasPeer);
    if (hasHost && !hasNic) warnings.push(`hub ${hubId} with no nics`);
    if (hasNic && !hasHost) warnings.push(`hub ${hubId} is not connected to host network`);
  }
  for (const b of backends) {
    if (!b.hasPeer && !linked.has(b.id)) warnings.push(`netdev ${b.id} has no peer`);
  }
  const plan: NetworkPlan = {
    create(ctx: NetdevContext): NetClient[] {
      const out: NetClient[] = [];
      for (const step of steps) step(ctx, out);
      return out;
    },
  };
  return { plan, nics, warnings };
}

/**
 * `-net nic,model=help` and `-nic user,model=help`: the NIC models, as QEMU lists them;
 * undefined when the option does not ask.
 */
export function nicModelHelp(name: string, value: string, registry: Registry): string | undefined {
  if (name !== "net" && name !== "nic") return undefined;
  const items = parseKeyValueList(value, { impliedKey: "type" });
  if (name === "net" && items.find((i) => i.key === "type")?.value !== "nic") return undefined;
  const model = items.find((i) => i.key === "model")?.value;
  if (model !== "help" && model !== "?") return undefined;
  const names = registry.list("device")
    .filter((d) => d.kind === "device" && d.category === "Network")
    .map((d) => d.name)
    .sort();
  return `Supported NIC models:\n${names.join("\n")}\n`;
}
