import assert from "node:assert/strict";
import { EventLoop } from "../../../core/event_loop.ts";
import type { NetClient } from "../../../core/net.ts";
import { userNetConfig } from "./config.ts";
import { DHCPDISCOVER } from "./dhcp.ts";
import { UserNetdev } from "./mod.ts";
import { dhcpMessage } from "./test_util.ts";

function nic(accept: () => boolean): NetClient & { got: number } {
  const n = {
    id: "nic",
    model: "test",
    peer: null,
    got: 0,
    receive: () => accept() && ++n.got > 0,
  };
  return n;
}

Deno.test("UserNetdev holds frames while the NIC has no room and hands them over later", async () => {
  const loop = new EventLoop();
  const user = new UserNetdev("n0", userNetConfig({}), loop);
  await user.ready;
  let room = false;
  const peer = nic(() => room);
  user.peer = peer;
  user.receive(dhcpMessage(DHCPDISCOVER, 1));
  loop.advanceBy(5e6);
  assert.equal(peer.got, 0);
  room = true;
  loop.advanceBy(2e6);
  assert.equal(peer.got, 1, "delivered on a retry");
  user.close();
});

Deno.test("UserNetdev drops a frame its NIC never takes after a second", async () => {
  const loop = new EventLoop();
  const user = new UserNetdev("n0", userNetConfig({}), loop);
  await user.ready;
  const peer = nic(() => false);
  user.peer = peer;
  user.receive(dhcpMessage(DHCPDISCOVER, 1));
  loop.advanceBy(1.5e9);
  assert.equal(user.framesDropped, 1);
  assert.equal(loop.nextDeadlineNs(), Infinity, "no retry timer left armed");
  user.close();
});

Deno.test({
  name: "UserNetdev.usernetInfo() lists hostfwd rules and flows in QEMU's info usernet columns",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const loop = new EventLoop();
    const user = new UserNetdev(
      "n0",
      userNetConfig({ hostfwd: "tcp:127.0.0.1:0-:22\nudp::0-10.0.2.16:53" }),
      loop,
    );
    await user.ready;
    const [tcpPort, udpPort] = user.stack.forwardedPorts;
    const lines = user.usernetInfo().split("\n");
    // QEMU 7.2 prints the same header and columns (its FD column holds a host fd).
    assert.equal(
      lines[0],
      "  Protocol[State]    FD  Source Address  Port   Dest. Address  Port RecvQ SendQ",
    );
    assert.equal(
      lines[1],
      `  TCP[HOST_FORWARD]  -1       127.0.0.1 ${String(tcpPort).padStart(5)} ` +
        "      10.0.2.15    22     0     0",
    );
    assert.equal(
      lines[2],
      `  UDP[HOST_FORWARD]  -1               * ${String(udpPort).padStart(5)} ` +
        "      10.0.2.16    53     0     0",
    );
    assert.equal(lines.length, 4);
    user.close();
  },
});
