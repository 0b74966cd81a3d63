// The shapes of the x86 CPU model tables

import type { FeatureWord } from "./features.ts";

/** One name `-cpu help` lists: a concrete model (with its facts) or an alias of one. */
export interface ModelRecord {
  readonly name: string;
  /** The text `-cpu help` prints beside the name. */
  readonly description: string;
  /** The model this name stands for (`Broadwell-IBRS` is `Broadwell-v3`). */
  readonly aliasOf?: string;
  /** `GenuineIntel`, `AuthenticAMD`, `HygonGenuine`, `CentaurHauls`... (absent for `host`). */
  readonly vendor?: string;
  readonly family?: number;
  readonly model?: number;
  readonly stepping?: number;
  /** Highest basic leaf, highest 0x8000xxxx leaf, highest 0xC000xxxx leaf (0: none). */
  readonly level?: number;
  readonly xlevel?: number;
  readonly xlevel2?: number;
  /** The brand string of leaves 0x80000002..4. */
  readonly modelId?: string;
  /** The feature words the model asks for, before any accelerator filtering. */
  readonly features?: Partial<Record<FeatureWord, number>>;
  /** The model's own cache description (caches.ts); absent: QEMU's legacy caches. */
  readonly caches?: string;
}
