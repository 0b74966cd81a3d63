// The `user` network backend: for now a link only; frames the guest sends are counted and dropped

import { UsageError } from "../../core/errors.ts";
import type { NetClient } from "../../core/net.ts";
import type { ParsedOptions } from "../../core/options.ts";
import type { NetdevDescriptor } from "../../core/plugin.ts";

/**
 * User-mode networking as far as vmkit has it: the guest's NIC sees a link that is up,
 * and every frame it sends is taken and dropped. The SLIRP part (ARP, DHCP, DNS and
 * TCP/UDP NAT to the host) is not written yet, so the guest gets no address and no
 * traffic back.
 */
export class UserNetdev implements NetClient {
  readonly model = "user";
  peer: NetClient | null = null;
  /** Frames the guest sent (and vmkit dropped). */
  framesDropped = 0;
  bytesDropped = 0;

  constructor(readonly id: string) {}

  receive(frame: Uint8Array): boolean {
    this.framesDropped++;
    this.bytesDropped += frame.length;
    return true;
  }
}

/** Options QEMU's `user` backend takes that only shape SLIRP's answers; vmkit accepts them. */
const ACCEPTED = ["net", "host", "dhcpstart", "dns", "hostname", "domainname", "ipv4", "ipv6"];

/** `-netdev user,id=ID` and `-net user`. */
export default {
  kind: "netdev",
  name: "user",
  summary: "user-mode network stack (link only for now: no SLIRP, guest frames are dropped)",
  options: [
    { name: "id", type: "string", help: "netdev id" },
    { name: "restrict", type: "bool", help: "isolate the guest from the host (accepted)" },
    ...ACCEPTED.map((name) => ({
      name,
      type: "string" as const,
      help: `${name} (accepted; no SLIRP yet)`,
    })),
    { name: "hostfwd", type: "string", help: "forward a host port to the guest (not yet)" },
    { name: "guestfwd", type: "string", help: "forward a guest port to the host (not yet)" },
  ],
  create(opts: ParsedOptions): UserNetdev {
    for (const key of ["hostfwd", "guestfwd"]) {
      if (opts[key] !== undefined) {
        throw new UsageError(`${key} is not supported by vmkit's user networking yet`);
      }
    }
    const id = opts.id as string | undefined;
    if (!id) throw new UsageError("Parameter 'id' is missing");
    return new UserNetdev(id);
  },
} satisfies NetdevDescriptor;
