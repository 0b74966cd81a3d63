// The netdev contract: network clients and hubs (how a NIC and a `-netdev` backend exchange
// Ethernet frames), the context a backend is created with, and its close at exit

import type { EventLoop } from "./event_loop.ts";

/**
 * One end of a network link, as QEMU's NetClientState: a NIC model or a backend. Frames
 * a client sends go to its peer's {@linkcode NetClient.receive}.
 */
export interface NetClient {
  /** The id a user names it by (`-netdev user,id=n0`), or a generated one (`hub0port1`). */
  readonly id: string;
  /** What the client is (`user`, `hubport`, `virtio-net-pci`). */
  readonly model: string;
  /** The other end of the link, set by {@linkcode connectNetClients}. */
  peer: NetClient | null;
  /**
   * Takes one frame from the peer. Returns false when the client cannot take it now
   * (a NIC with no receive buffers); the frame is then dropped, as a real wire would.
   */
  receive(frame: Uint8Array): boolean;
  /**
   * True while the client takes IPv4 TCP frames longer than the Ethernet MTU (up to
   * 64 KiB), as a virtio-net whose driver accepted GUEST_TSO4 does: a backend may then
   * send the guest fewer, larger segments. Absent means no.
   */
  readonly largeTcpReceive?: boolean;
  /**
   * A user-mode backend's table of forwarded ports and connections, printed by the
   * monitor's `info usernet` under a `Hub N (id):` line (lines end in `\n`).
   */
  usernetInfo?(): string;
  /**
   * QEMU's `info_str` of a backend: what `info network` prints after its type
   * (`net=10.0.2.0,restrict=off` for `user`). NICs get theirs from {@linkcode registerNic}.
   */
  readonly infoStr?: string;
  /**
   * Releases what the client holds on the host (sockets, timers, host sources); the
   * machine calls it once at exit. After it, `receive` is not called again.
   */
  close?(): void | Promise<void>;
}

/**
 * Links two clients as peers; a client already linked is refused (one peer each).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { connectNetClients, type NetClient } from "./net.ts";
 *
 * const got: number[] = [];
 * const a: NetClient = { id: "a", model: "test", peer: null, receive: () => true };
 * const b: NetClient = { id: "b", model: "test", peer: null, receive: (f) => got.push(f.length) > 0 };
 * connectNetClients(a, b);
 * a.peer?.receive(new Uint8Array(60));
 * assert.deepEqual(got, [60]);
 * ```
 */
export function connectNetClients(a: NetClient, b: NetClient): void {
  if (a.peer && a.peer !== b) throw new RangeError(`Network client '${a.id}' already has a peer`);
  if (b.peer && b.peer !== a) throw new RangeError(`Network client '${b.id}' already has a peer`);
  a.peer = b;
  b.peer = a;
}

const hubOfPort = new WeakMap<NetClient, number>();

/** The id of the hub `client` is a port of, or -1 when it is not a hub port (QEMU's `Hub -1`). */
export function hubIdOf(client: NetClient | null): number {
  return (client && hubOfPort.get(client)) ?? -1;
}

/**
 * A hub, as QEMU's legacy `-net` options build one: every frame that enters one port
 * leaves through all the others (to each port's peer).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { connectNetClients, NetHub, type NetClient } from "./net.ts";
 *
 * const hub = new NetHub(0);
 * const seen: string[] = [];
 * const nic = (id: string): NetClient => ({
 *   id, model: "test", peer: null, receive: () => seen.push(id) > 0,
 * });
 * const a = nic("a");
 * const b = nic("b");
 * connectNetClients(a, hub.addPort());
 * connectNetClients(b, hub.addPort());
 * a.peer!.receive(new Uint8Array(64));
 * assert.deepEqual(seen, ["b"]);
 * ```
 */
export class NetHub {
  /** The ports in creation order. */
  readonly ports: NetClient[] = [];

  constructor(readonly hubId: number) {}

  /** Adds a port named `hub<id>port<n>` (or `id` when given); link it to a client. */
  addPort(id?: string): NetClient {
    const port = this.#makePort(id);
    hubOfPort.set(port, this.hubId);
    return port;
  }

  #makePort(id?: string): NetClient {
    const ports = this.ports;
    const port: NetClient = {
      id: id ?? `hub${this.hubId}port${this.ports.length}`,
      model: "hubport",
      peer: null,
      // Large frames only when every other port's client takes them.
      get largeTcpReceive(): boolean {
        const others = ports.filter((p) => p !== port);
        return others.length > 0 && others.every((p) => p.peer?.largeTcpReceive === true);
      },
      receive: (frame: Uint8Array): boolean => {
        let taken = false;
        for (const other of this.ports) {
          if (other !== port && other.peer?.receive(frame)) taken = true;
        }
        return taken;
      },
    };
    this.ports.push(port);
    return port;
  }
}

/**
 * What a netdev plugin's `create(opts, ctx)` receives: the machine's event loop and its hubs.
 *
 * A backend that talks to the host does it through the loop, so the guest sees its
 * answers at the right virtual time and the loop keeps running while they are pending:
 * - `ctx.loop.createTimer(name, cb)` for retransmits and timeouts (virtual ns);
 * - `ctx.loop.track(promise)` around every host operation (a socket read, a DNS lookup);
 *   the loop then waits for it instead of declaring the guest idle;
 * - `ctx.loop.addHostSource()` while a listener may deliver frames at any time (returns
 *   the function that removes it), and `ctx.loop.wake()` when a frame arrives;
 * - frames for the guest go to `this.peer?.receive(frame)`, called from a timer, a
 *   deferred function (`ctx.loop.defer`) or a tracked promise's continuation.
 * Whatever it opens, the backend releases in {@linkcode NetClient.close}.
 */
export interface NetdevContext {
  /** The machine's virtual clock: timers, deferred work and host I/O tracking. */
  readonly loop: EventLoop;
  /** The hub with `hubId`, created on first use. */
  hub(hubId: number): NetHub;
}

/**
 * The network of a command line, made once the machine's event loop exists: the CLI
 * checks every option first, and the machine calls `create` in its constructor.
 */
export interface NetworkPlan {
  /** Creates the backends and hub ports, in command-line order. */
  create(context: NetdevContext): NetClient[];
}

/** A fresh set of hubs for one machine (legacy `-net` options all use hub 0). */
export function netHubs(): { hub(hubId: number): NetHub; readonly hubs: Map<number, NetHub> } {
  const hubs = new Map<number, NetHub>();
  return {
    hubs,
    hub(hubId: number): NetHub {
      let hub = hubs.get(hubId);
      if (!hub) hubs.set(hubId, hub = new NetHub(hubId));
      return hub;
    },
  };
}

/** A NIC as `info network` shows it. */
export interface NicInfo {
  readonly nic: NetClient;
  /** QEMU's name for its net client: the `id=` the user gave, else `MODEL.N`. */
  readonly name: string;
  /** Its MAC address now (a legacy virtio driver may change it). */
  mac(): Uint8Array;
}

const nicsOf = new WeakMap<object, NicInfo[]>();

/**
 * Records `nic` as a NIC of `machine` for `info network`, in creation order (QEMU's
 * net_clients list). Its name is `userId` when the user gave one, else QEMU's
 * `MODEL.N` (assign_name), N counting the machine's earlier NICs of that model.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { machineNics, type NetClient, registerNic } from "./net.ts";
 *
 * const machine = {};
 * const nic = (model: string): NetClient => ({ id: model, model, peer: null, receive: () => true });
 * const mac = () => new Uint8Array(6);
 * registerNic(machine, nic("e1000"), "lan", mac);
 * registerNic(machine, nic("e1000"), undefined, mac);
 * registerNic(machine, nic("rtl8139"), undefined, mac);
 * assert.deepEqual(machineNics(machine).map((n) => n.name), ["lan", "e1000.1", "rtl8139.0"]);
 * ```
 */
export function registerNic(
  machine: object,
  nic: NetClient,
  userId: string | undefined,
  mac: () => Uint8Array,
): void {
  let nics = nicsOf.get(machine);
  if (!nics) nicsOf.set(machine, nics = []);
  const same = nics.filter((n) => n.nic.model === nic.model).length;
  nics.push({ nic, name: userId ?? `${nic.model}.${same}`, mac });
}

/** The NICs {@linkcode registerNic} recorded for `machine`, oldest first. */
export function machineNics(machine: object): readonly NicInfo[] {
  return nicsOf.get(machine) ?? [];
}

/** The default-MAC last bytes in use, per machine (QEMU's mac_table is one for all NICs). */
const macsInUse = new WeakMap<object, Set<number>>();

/**
 * A NIC's MAC address as QEMU's qemu_macaddr_default_if_unset() gives it: `mac` when set,
 * else the first 52:54:00:12:34:xx from 0x56 that no NIC of `machine` (any model) holds.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { nicMacAddress } from "./net.ts";
 *
 * const machine = {};
 * assert.deepEqual([...nicMacAddress(machine)], [0x52, 0x54, 0, 0x12, 0x34, 0x56]);
 * assert.equal(nicMacAddress(machine)[5], 0x57);
 * ```
 */
export function nicMacAddress(machine: object, mac?: Uint8Array): Uint8Array {
  let used = macsInUse.get(machine);
  if (!used) macsInUse.set(machine, used = new Set());
  const base = [0x52, 0x54, 0x00, 0x12, 0x34];
  let out: Uint8Array;
  if (mac) {
    out = mac.slice(0, 6);
  } else {
    let last = 0x56;
    while (used.has(last) && last < 0xff) last++;
    out = new Uint8Array([...base, last]);
  }
  if (base.every((b, i) => out[i] === b)) used.add(out[5]);
  return out;
}
