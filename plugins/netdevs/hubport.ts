// The `hubport` network backend: a port on a hub (what QEMU's legacy -net options connect through)

import { UsageError } from "../../core/errors.ts";
import type { NetClient, NetdevContext } from "../../core/net.ts";
import type { ParsedOptions } from "../../core/options.ts";
import type { NetdevDescriptor } from "../../core/plugin.ts";

/** `-netdev hubport,id=ID,hubid=N`: a port on hub N; what one port gets, every other port sends on. */
export default {
  kind: "netdev",
  name: "hubport",
  summary: "port on a network hub (legacy -net options use hub 0)",
  options: [
    { name: "id", type: "string", help: "netdev id" },
    { name: "hubid", type: "number", help: "the hub to plug into" },
  ],
  create(opts: ParsedOptions, hubs: NetdevContext): NetClient {
    const id = opts.id as string | undefined;
    if (!id) throw new UsageError("Parameter 'id' is missing");
    if (opts.hubid === undefined) throw new UsageError("Parameter 'hubid' is missing");
    return hubs.hub(opts.hubid as number).addPort(id);
  },
} satisfies NetdevDescriptor;
