import assert from "node:assert/strict";
import { Machine } from "./machine.ts";
import type { NetClient, NetdevContext } from "./net.ts";

function machineWith(create: (ctx: NetdevContext) => NetClient[]): Machine {
  return new Machine({
    ramBytes: 1 << 20,
    smp: 1,
    drives: [],
    serial: [],
    nographic: true,
    network: { create },
    createCpu: () => {
      throw new Error("no CPU in this test");
    },
  });
}

Deno.test("Machine creates the network plan's backends with its own event loop and closes them", async () => {
  let seenLoop: unknown;
  let closed = 0;
  const fired: number[] = [];
  const m = machineWith((ctx) => {
    seenLoop = ctx.loop;
    // A backend that answers the guest later, from a timer of the machine's clock.
    const timer = ctx.loop.createTimer("backend-reply", (now) => fired.push(now));
    timer.armIn(1000);
    return [{
      id: "n0",
      model: "test",
      peer: null,
      receive: () => true,
      close: () => {
        closed++;
        ctx.loop.deleteTimer(timer);
      },
    }];
  });
  assert.equal(seenLoop, m.loop);
  assert.equal(m.netClient("n0")?.model, "test");
  m.loop.advanceBy(2000);
  assert.deepEqual(fired, [1000]);
  await m.close();
  await m.close();
  assert.equal(closed, 1, "closed once even when close() is called twice");
});

Deno.test("Machine's network plan links a backend and a NIC through a hub of its own", () => {
  const got: string[] = [];
  const m = machineWith((ctx) => {
    const backend: NetClient = { id: "b", model: "test", peer: null, receive: () => true };
    const port0 = ctx.hub(0).addPort();
    const port1 = ctx.hub(0).addPort();
    backend.peer = port0;
    port0.peer = backend;
    port1.peer = { id: "nic", model: "nic", peer: port1, receive: () => got.push("nic") > 0 };
    return [backend, port0, port1];
  });
  m.netClient("b")!.peer!.receive(new Uint8Array(60));
  assert.deepEqual(got, ["nic"]);
});
