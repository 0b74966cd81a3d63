// The `user` network backend: QEMU's user-mode networking (slirp) written for vmkit

import { UsageError } from "../../../core/errors.ts";
import type { EventLoop, Timer } from "../../../core/event_loop.ts";
import type { NetClient, NetdevContext } from "../../../core/net.ts";
import type { ParsedOptions } from "../../../core/options.ts";
import type { NetdevDescriptor } from "../../../core/plugin.ts";
import { USER_OPTIONS, type UserNetConfig, userNetConfig } from "./config.ts";
import { HostSockets } from "./sockets.ts";
import { usernetTable, UserStack } from "./stack.ts";

/** Frames for the guest held while its NIC has no receive buffers. */
const RX_BACKLOG = 512;
/** How often a held frame is offered again (virtual time). */
const RX_RETRY_NS = 1e6;
/** A held frame older than this is dropped, as a wire would have lost it. */
const RX_HOLD_NS = 1e9;

/**
 * The `user` netdev: the NetClient a NIC or hub links to, around a {@linkcode UserStack}.
 * Frames for the guest are handed over between CPU slices and held (up to
 * {@linkcode RX_BACKLOG}) while the NIC has nowhere to put them.
 */
export class UserNetdev implements NetClient {
  readonly model = "user";
  peer: NetClient | null = null;
  readonly stack: UserStack;
  /** Resolves once the hostfwd listeners are open (rejects when one cannot be). */
  readonly ready: Promise<void>;
  /** QEMU's info_str: `net=10.0.2.0,restrict=off`. */
  readonly infoStr: string;
  #backlog: { frame: Uint8Array; sinceNs: number }[] = [];
  /** Frames for the guest its NIC never took. */
  framesDropped = 0;
  #retry: Timer;
  #loop: EventLoop;

  constructor(readonly id: string, config: UserNetConfig, loop: EventLoop) {
    this.#loop = loop;
    const net = config.network >>> 0;
    const dotted = [24, 16, 8, 0].map((s) => (net >>> s) & 0xff).join(".");
    this.infoStr = `net=${dotted},restrict=${config.restrict ? "on" : "off"}`;
    this.stack = new UserStack(
      config,
      loop,
      new HostSockets(loop),
      (f) => this.#toGuest(f),
      () => this.peer?.largeTcpReceive === true,
    );
    this.#retry = loop.createTimer(`user-rx ${id}`, () => this.#flush());
    this.ready = loop.track(this.stack.start());
    this.ready.catch((e: Error) => {
      console.error(`vmkit: -netdev user,id=${id}: ${e.message}: ${(e.cause as Error)?.message}`);
    });
  }

  #toGuest(frame: Uint8Array): void {
    if (this.#backlog.length >= RX_BACKLOG) return;
    this.#backlog.push({ frame, sinceNs: this.#loop.nowNs });
    if (this.#backlog.length === 1) this.#loop.defer(() => this.#flush());
  }

  #flush(): void {
    while (this.#backlog.length > 0) {
      const head = this.#backlog[0];
      if (!this.peer?.receive(head.frame)) {
        // The NIC has no room (or is not up): try again soon; drop what waited too long.
        const now = this.#loop.nowNs;
        while (this.#backlog.length > 0 && now - this.#backlog[0].sinceNs > RX_HOLD_NS) {
          this.#backlog.shift();
          this.framesDropped++;
        }
        if (this.#backlog.length > 0 && !this.#retry.armed) {
          this.#retry.arm(now + RX_RETRY_NS);
        }
        return;
      }
      this.#backlog.shift();
    }
  }

  /** `info usernet`: the hostfwd rules, TCP connections and UDP flows, in QEMU's table. */
  usernetInfo(): string {
    return usernetTable(this.stack.connections());
  }

  /** A frame from the guest. */
  receive(frame: Uint8Array): boolean {
    this.stack.input(frame);
    return true;
  }

  close(): void {
    this.stack.close();
    this.#loop.deleteTimer(this.#retry);
    this.#backlog = [];
  }
}

/** `-netdev user,id=ID,...`, `-net user` and `-nic user`. */
export default {
  kind: "netdev",
  name: "user",
  summary: "user-mode network stack (DHCP, DNS, TCP/UDP NAT to the host, hostfwd, TFTP)",
  options: USER_OPTIONS,
  create(opts: ParsedOptions, ctx: NetdevContext): UserNetdev {
    const id = opts.id as string | undefined;
    if (!id) throw new UsageError("Parameter 'id' is missing");
    return new UserNetdev(id, userNetConfig(opts), ctx.loop);
  },
} satisfies NetdevDescriptor;
