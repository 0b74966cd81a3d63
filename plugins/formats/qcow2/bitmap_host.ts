// The persistent dirty bitmaps a qcow2 node shows its users: listed, added, removed, their code loaded with the first one

import type { DirtyBitmapHost } from "../../../core/block/dirty_bitmap.ts";
import type { Qcow2Bitmaps } from "./bitmaps_store.ts";
import type { Qcow2Image } from "./image.ts";

/** Where a node keeps its bitmaps: loaded with the image when it has some, else on the first add. */
export interface BitmapSlot {
  readonly img: Qcow2Image;
  bitmaps: Qcow2Bitmaps | undefined;
}

/**
 * The node's {@linkcode DirtyBitmapHost}. bitmaps_store.ts (the directory, tables and
 * merge code) is imported only when the first bitmap is added to an image without any,
 * so opening a qcow2 without bitmaps never loads it.
 */
export function bitmapHost(slot: BitmapSlot): DirtyBitmapHost {
  let name: string | undefined;
  return {
    get supported() {
      return slot.img.header.version >= 3;
    },
    get nodeName() {
      // QEMU's automatic node name: `#block`, a counter and two random digits.
      return slot.bitmaps?.nodeName ?? (name ??= `#block${100 + Math.floor(Math.random() * 100)}`);
    },
    bitmaps: () => slot.bitmaps?.bitmaps() ?? [],
    addBitmap: async (bitmap, granularity, options) => {
      if (!slot.bitmaps) {
        const { Qcow2Bitmaps } = await import("./bitmaps_store.ts");
        slot.bitmaps = Qcow2Bitmaps.load(slot.img, undefined, name);
      }
      await slot.bitmaps.addBitmap(bitmap, granularity, options);
    },
    removeBitmap: async (bitmap) => {
      await slot.bitmaps?.removeBitmap(bitmap);
    },
  };
}
