import assert from "node:assert/strict";
import { connectNetClients, type NetClient, NetHub } from "../../../core/net.ts";
import { DEFAULT_MAC, formatMac, parseMac, VirtioNet } from "./net.ts";
import { TestDriver } from "./test_util.ts";

/** A peer that records what the NIC sends. */
function recorder(): NetClient & { frames: Uint8Array[] } {
  const frames: Uint8Array[] = [];
  return {
    id: "rec",
    model: "test",
    peer: null,
    frames,
    receive: (f) => frames.push(f.slice()) > 0,
  };
}

function frame(n: number, fill: number): Uint8Array {
  return new Uint8Array(n).fill(fill);
}

for (const mode of ["legacy", "modern"] as const) {
  Deno.test(`VirtioNet sends TX frames to its peer without the header (${mode})`, () => {
    const net = new VirtioNet("nic0", parseMac(DEFAULT_MAC)!);
    const d = new TestDriver(net, mode);
    const peer = recorder();
    connectNetClients(net, peer);
    d.init(2);
    // Legacy with MRG_RXBUF and modern both use the 12-byte header.
    d.submit(1, 0, [{ data: new Uint8Array(12) }, { data: frame(60, 0xaa) }]);
    d.notify(1);
    assert.deepEqual(d.takeUsed(1), [{ id: 0, len: 0 }]);
    assert.equal(peer.frames.length, 1);
    assert.deepEqual(peer.frames[0], frame(60, 0xaa));
    assert.equal(net.stats.txFrames, 1);
  });
}

Deno.test("VirtioNet without MRG_RXBUF on the legacy interface uses the 10-byte header", () => {
  const net = new VirtioNet("nic0", parseMac(DEFAULT_MAC)!);
  const d = new TestDriver(net, "legacy");
  const peer = recorder();
  connectNetClients(net, peer);
  const [lo] = d.deviceFeatures();
  d.init(2, [lo & ~(1 << 15), 0]);
  d.submit(1, 0, [{ data: new Uint8Array([...new Uint8Array(10), 1, 2, 3]) }]);
  d.notify(1);
  assert.deepEqual([...peer.frames[0]], [1, 2, 3]);
  // RX: one buffer must hold header and frame.
  const [buf] = d.submit(0, 0, [{ writeLength: 100 }]);
  assert.equal(net.receive(frame(50, 7)), true);
  assert.deepEqual(d.takeUsed(0), [{ id: 0, len: 60 }]);
  assert.equal(d.ram[buf + 10], 7);
});

Deno.test("VirtioNet spreads a received frame over mergeable buffers and sets num_buffers", () => {
  const net = new VirtioNet("nic0", parseMac(DEFAULT_MAC)!);
  const d = new TestDriver(net, "modern");
  d.init(2);
  const [a] = d.submit(0, 0, [{ writeLength: 64 }]);
  const [b] = d.submit(0, 1, [{ writeLength: 64 }]);
  assert.equal(net.receive(frame(100, 9)), true);
  assert.deepEqual(d.takeUsed(0), [{ id: 0, len: 64 }, { id: 1, len: 48 }]);
  assert.equal(d.ram[a + 10], 2, "num_buffers");
  assert.equal(d.ram[a + 12], 9);
  assert.equal(d.ram[b + 47], 9);
  assert.equal(d.readIsr() & 1, 1);
});

Deno.test("VirtioNet drops frames when it has no receive buffers or the driver is not ready", () => {
  const net = new VirtioNet("nic0", parseMac(DEFAULT_MAC)!);
  const d = new TestDriver(net, "modern");
  assert.equal(net.receive(frame(60, 1)), false);
  d.init(2);
  assert.equal(net.receive(frame(60, 1)), false);
  d.submit(0, 0, [{ writeLength: 20 }]);
  assert.equal(net.receive(frame(60, 1)), false, "too small");
  assert.equal(net.stats.rxDropped, 2);
  d.submit(0, 1, [{ writeLength: 100 }]);
  assert.equal(net.receive(frame(60, 1)), true, "the buffer that was put back and a new one");
});

Deno.test("VirtioNet config holds the MAC and LINK_UP; a legacy driver may change the MAC", () => {
  const net = new VirtioNet("nic0", parseMac("52:54:00:05:11:11")!);
  const d = new TestDriver(net, "legacy");
  assert.deepEqual([0, 1, 2, 3, 4, 5].map((i) => d.config(i, 1)), [0x52, 0x54, 0, 5, 0x11, 0x11]);
  assert.equal(d.config(6, 2), 1);
  d.init(2);
  d.writeConfig(5, 1, 0x22);
  assert.equal(formatMac(net.mac), "52:54:00:05:11:22");
  d.device.reset();
  assert.equal(formatMac(net.mac), "52:54:00:05:11:11");
});

Deno.test("NetHub carries frames between two virtio-net NICs", () => {
  const hub = new NetHub(0);
  const a = new VirtioNet("a", parseMac("52:54:00:00:00:01")!);
  const b = new VirtioNet("b", parseMac("52:54:00:00:00:02")!);
  const da = new TestDriver(a, "modern");
  const db = new TestDriver(b, "modern");
  connectNetClients(a, hub.addPort());
  connectNetClients(b, hub.addPort());
  da.init(2);
  db.init(2);
  const [rx] = db.submit(0, 0, [{ writeLength: 1514 }]);
  da.submit(1, 0, [{ data: new Uint8Array(12) }, { data: frame(64, 0x5a) }]);
  da.notify(1);
  assert.deepEqual(db.takeUsed(0), [{ id: 0, len: 76 }]);
  assert.equal(db.ram[rx + 12 + 63], 0x5a);
});

Deno.test("parseMac() reads colon-separated MACs and refuses anything else", () => {
  assert.deepEqual([...parseMac("52:54:00:12:34:56")!], [0x52, 0x54, 0, 0x12, 0x34, 0x56]);
  assert.equal(parseMac("52:54:00:12:34"), null);
  assert.equal(parseMac("zz:54:00:12:34:56"), null);
});

/** An Ethernet + IPv4 (20 bytes) + TCP (32 bytes) frame carrying `data` bytes. */
function tcpFrame(data: number): Uint8Array {
  const f = new Uint8Array(14 + 20 + 32 + data);
  f[12] = 0x08;
  f[14] = 0x45;
  f[23] = 6;
  f[14 + 20 + 12] = 8 << 4;
  return f;
}

Deno.test("VirtioNet with GUEST_TSO4 takes a 64 KiB TCP frame as one GSO_TCPV4 packet", () => {
  const net = new VirtioNet("nic0", parseMac(DEFAULT_MAC)!, { guestTso4: true });
  const d = new TestDriver(net, "modern");
  assert.equal(net.largeTcpReceive, false, "not before the driver is ready");
  d.init(2);
  assert.equal(net.largeTcpReceive, true);
  const [buf] = d.submit(0, 0, [{ writeLength: 65536 + 12 }]);
  assert.equal(net.receive(tcpFrame(44 * 1460)), true);
  const view = new DataView(d.ram.buffer, d.ram.byteOffset + buf);
  assert.deepEqual([d.ram[buf], d.ram[buf + 1]], [1, 1], "NEEDS_CSUM, GSO_TCPV4");
  assert.equal(view.getUint16(2, true), 66, "hdr_len");
  assert.equal(view.getUint16(4, true), 1448, "gso_size: 1500 less IP and TCP headers");
  assert.equal(view.getUint16(6, true), 34, "csum_start");
  assert.equal(view.getUint16(8, true), 16, "csum_offset");
  // A frame within the MTU keeps a zero header.
  const [small] = d.submit(0, 1, [{ writeLength: 2048 }]);
  assert.equal(net.receive(tcpFrame(1000)), true);
  assert.deepEqual([...d.ram.subarray(small, small + 10)], new Array(10).fill(0));
});

Deno.test("VirtioNet with guest_tso4=off never reports large receive", () => {
  const net = new VirtioNet("nic0", parseMac(DEFAULT_MAC)!, { guestTso4: false });
  const d = new TestDriver(net, "modern");
  d.init(2);
  assert.equal(net.largeTcpReceive, false);
});
