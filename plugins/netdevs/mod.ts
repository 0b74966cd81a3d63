// The built-in network backends, for plugins/mod.ts

import type { NetdevDescriptor } from "../../core/plugin.ts";
import hubport from "./hubport.ts";
import user from "./user/mod.ts";

/** Every built-in netdev descriptor. */
export const NETDEV_PLUGINS: readonly NetdevDescriptor[] = [user, hubport];
