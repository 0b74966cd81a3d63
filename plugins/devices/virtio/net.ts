// The virtio network device (virtio 1.2 §5.1): a receive and a transmit queue on a NetClient link

import type { DeviceState } from "../../../core/device.ts";
import type { NetClient } from "../../../core/net.ts";
import { VIRTIO_F_VERSION_1, VIRTIO_ID_NET } from "./constants.ts";
import type { VirtioDeviceModel, VirtioHost } from "./pci.ts";
import type { DescChain } from "./queue.ts";

/** Feature bits (virtio 1.2 §5.1.3). */
/** The driver takes frames with a partial checksum (NEEDS_CSUM). */
export const VIRTIO_NET_F_GUEST_CSUM = 1;
/** The driver takes TCP/IPv4 frames past the MTU (GSO_TCPV4): fewer, larger segments. */
export const VIRTIO_NET_F_GUEST_TSO4 = 7;
export const VIRTIO_NET_F_MAC = 5;
export const VIRTIO_NET_F_MRG_RXBUF = 15;
export const VIRTIO_NET_F_STATUS = 16;
/** virtio_net_hdr flags and gso_type (virtio 1.2 §5.1.6). */
const VIRTIO_NET_HDR_F_NEEDS_CSUM = 1;
const VIRTIO_NET_HDR_GSO_TCPV4 = 1;
/**
 * Whether `guest_tso4` is on when not given (QEMU's default is on too). The Linux network
 * boot test (tests/net/net_guest_test.ts) downloads and checks its file with it on.
 */
export const GUEST_TSO4_DEFAULT = true;
/** The longest frame without GSO: 1500 bytes of IP in Ethernet. */
const ETH_FRAME_BYTES = 1514;
/** config.status: the link is up. */
export const VIRTIO_NET_S_LINK_UP = 1;
/** The header in front of every frame: legacy without mergeable buffers, and otherwise. */
export const VIRTIO_NET_HDR_LEGACY_BYTES = 10;
export const VIRTIO_NET_HDR_BYTES = 12;
/** Queue indexes. */
export const VIRTIO_NET_RX = 0;
export const VIRTIO_NET_TX = 1;
/** QEMU's first default MAC address; every further NIC without one adds one to the last byte. */
export const DEFAULT_MAC = "52:54:00:12:34:56";
/** The largest frame taken from a TX chain (64 KiB of GSO-free Ethernet is plenty). */
const MAX_TX_BYTES = 65536 + VIRTIO_NET_HDR_BYTES;

/**
 * Fills the virtio_net_hdr at the start of `packet` for a large TCP/IPv4 `frame`: GSO_TCPV4
 * with the segment size a 1500-byte MTU gives, and NEEDS_CSUM pointing at the TCP checksum
 * (the frame's checksum is already complete, so the driver's view is right either way).
 * Anything else is left with a zero header.
 */
function gsoHeader(frame: Uint8Array, packet: Uint8Array): void {
  if (frame.length < 54 || frame[12] !== 0x08 || frame[13] !== 0x00) return;
  const ipHeader = (frame[14] & 0x0f) * 4;
  if (frame[14] >> 4 !== 4 || ipHeader < 20 || frame[23] !== 6) return;
  const tcpAt = 14 + ipHeader;
  if (tcpAt + 20 > frame.length) return;
  const tcpHeader = (frame[tcpAt + 12] >> 4) * 4;
  const headers = tcpAt + tcpHeader;
  const view = new DataView(packet.buffer, packet.byteOffset);
  packet[0] = VIRTIO_NET_HDR_F_NEEDS_CSUM;
  packet[1] = VIRTIO_NET_HDR_GSO_TCPV4;
  view.setUint16(2, headers, true); // hdr_len
  view.setUint16(4, 1500 - ipHeader - tcpHeader, true); // gso_size
  view.setUint16(6, tcpAt, true); // csum_start
  view.setUint16(8, 16, true); // csum_offset: the TCP checksum field
}

/** Reads `aa:bb:cc:dd:ee:ff`; null when it is not a MAC address. */
export function parseMac(text: string): Uint8Array | null {
  const parts = text.split(/[:-]/);
  if (parts.length !== 6 || parts.some((p) => !/^[0-9a-fA-F]{1,2}$/.test(p))) return null;
  return new Uint8Array(parts.map((p) => Number.parseInt(p, 16)));
}

/** Formats six bytes as `52:54:00:12:34:56`. */
export function formatMac(mac: Uint8Array): string {
  return [...mac].map((b) => b.toString(16).padStart(2, "0")).join(":");
}

/** Frame counters, for tests and the monitor. */
export interface VirtioNetStats {
  [key: string]: number;
  txFrames: number;
  rxFrames: number;
  /** Frames from the peer that found no (or too small) receive buffers. */
  rxDropped: number;
  /** TX chains too short for the header, or unreadable. */
  txErrors: number;
}

/**
 * virtio-net: the MAC and link status in config, mergeable receive buffers, and frames
 * to and from the peer NetClient (a hub port or a backend). No offloads: the guest
 * computes checksums and never sends GSO frames.
 */
export class VirtioNet implements VirtioDeviceModel, NetClient {
  readonly deviceType = VIRTIO_ID_NET;
  readonly classCode = 0x020000;
  readonly queueSizes = [256, 256];
  readonly featureBits: readonly number[];
  /** mac[6], status u16. */
  readonly config = new Uint8Array(8);
  readonly stats: VirtioNetStats = { txFrames: 0, rxFrames: 0, rxDropped: 0, txErrors: 0 };
  peer: NetClient | null = null;
  #mac: Uint8Array;
  #host!: VirtioHost;

  constructor(
    readonly id: string,
    mac: Uint8Array,
    options: { mrgRxbuf?: boolean; guestTso4?: boolean } = {},
  ) {
    this.#mac = mac.slice();
    const bits = [VIRTIO_NET_F_MAC, VIRTIO_NET_F_STATUS];
    if (options.mrgRxbuf ?? true) bits.push(VIRTIO_NET_F_MRG_RXBUF);
    if (options.guestTso4 ?? GUEST_TSO4_DEFAULT) {
      bits.push(VIRTIO_NET_F_GUEST_CSUM, VIRTIO_NET_F_GUEST_TSO4);
    }
    this.featureBits = bits;
    this.#fillConfig();
  }

  /** The model name a NetClient reports. */
  get model(): string {
    return "virtio-net-pci";
  }

  /** The MAC address in config (as configured, or as a legacy driver set it). */
  get mac(): Uint8Array {
    return this.config.slice(0, 6);
  }

  /** True while the driver takes large TCP/IPv4 frames (GUEST_TSO4 with GUEST_CSUM). */
  get largeTcpReceive(): boolean {
    const host = this.#host;
    return host !== undefined && host.driverOk &&
      host.negotiated(VIRTIO_NET_F_GUEST_TSO4) && host.negotiated(VIRTIO_NET_F_GUEST_CSUM);
  }

  attach(host: VirtioHost): void {
    this.#host = host;
  }

  #fillConfig(): void {
    this.config.set(this.#mac, 0);
    this.config[6] = VIRTIO_NET_S_LINK_UP;
    this.config[7] = 0;
  }

  #headerBytes(): number {
    return this.#host.negotiated(VIRTIO_F_VERSION_1) ||
        this.#host.negotiated(VIRTIO_NET_F_MRG_RXBUF)
      ? VIRTIO_NET_HDR_BYTES
      : VIRTIO_NET_HDR_LEGACY_BYTES;
  }

  configWrite(offset: number, size: number, value: number): void {
    // A legacy driver may set the MAC through config (as QEMU allows without VERSION_1).
    if (this.#host.negotiated(VIRTIO_F_VERSION_1)) return;
    for (let i = 0; i < size; i++) {
      const at = offset + i;
      if (at < 6) this.config[at] = (value >>> (8 * i)) & 0xff;
    }
  }

  queueNotify(index: number): void {
    // New receive buffers need no action: frames are delivered when they arrive.
    if (index === VIRTIO_NET_TX) this.#transmit();
  }

  #transmit(): void {
    const q = this.#host.queue(VIRTIO_NET_TX);
    const header = this.#headerBytes();
    let pushed = false;
    for (;;) {
      const chain = q.pop();
      if (!chain) break;
      let frame: Uint8Array | null = null;
      if (chain.readableBytes >= header && chain.readableBytes <= MAX_TX_BYTES) {
        const bytes = new Uint8Array(chain.readableBytes);
        try {
          q.readFrom(chain, 0, bytes);
          frame = bytes.subarray(header);
        } catch {
          frame = null;
        }
      }
      q.push(chain.head, 0);
      pushed = true;
      if (!frame) {
        this.stats.txErrors++;
        continue;
      }
      this.stats.txFrames++;
      this.peer?.receive(frame);
    }
    if (pushed) this.#host.notifyQueue(VIRTIO_NET_TX);
  }

  /** A frame from the peer: into receive buffers, or dropped when there are none. */
  receive(frame: Uint8Array): boolean {
    const host = this.#host;
    if (!host?.driverOk) return false;
    const q = host.queue(VIRTIO_NET_RX);
    if (!q.s.ready) return false;
    try {
      return this.#deliver(frame);
    } catch (e) {
      host.fail(e);
      return false;
    }
  }

  #deliver(frame: Uint8Array): boolean {
    const q = this.#host.queue(VIRTIO_NET_RX);
    const headerBytes = this.#headerBytes();
    const mergeable = this.#host.negotiated(VIRTIO_NET_F_MRG_RXBUF);
    const packet = new Uint8Array(headerBytes + frame.length);
    packet.set(frame, headerBytes);
    // virtio_net_hdr: flags 0, gso_type NONE, lengths 0; num_buffers filled below. A TCP/IPv4
    // frame past the MTU (only sent while largeTcpReceive) goes as one GSO_TCPV4 packet.
    if (frame.length > ETH_FRAME_BYTES) gsoHeader(frame, packet);
    const chains: DescChain[] = [];
    let room = 0;
    while (room < packet.length) {
      const chain = q.pop();
      if (!chain) break;
      chains.push(chain);
      room += chain.writableBytes;
      if (!mergeable) break;
    }
    if (room < packet.length) {
      for (let i = 0; i < chains.length; i++) q.unpop();
      this.stats.rxDropped++;
      return false;
    }
    if (headerBytes === VIRTIO_NET_HDR_BYTES) {
      packet[10] = chains.length & 0xff;
      packet[11] = chains.length >> 8;
    }
    let done = 0;
    const lens: number[] = [];
    for (const chain of chains) {
      const n = Math.min(chain.writableBytes, packet.length - done);
      try {
        q.writeTo(chain, 0, packet.subarray(done, done + n));
      } catch {
        lens.push(0);
        done += n;
        continue;
      }
      lens.push(n);
      done += n;
    }
    chains.forEach((chain, i) => q.push(chain.head, lens[i]));
    this.stats.rxFrames++;
    this.#host.notifyQueue(VIRTIO_NET_RX);
    return true;
  }

  reset(): void {
    this.#fillConfig();
  }

  saveState(): DeviceState {
    return { config: this.config.slice() };
  }

  loadState(state: DeviceState): void {
    this.config.set(state.config as Uint8Array);
  }
}
