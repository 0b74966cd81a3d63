import assert from "node:assert/strict";
import { BlockScheduler } from "./scheduler.ts";

const tick = (ms = 1) => new Promise<void>((r) => setTimeout(r, ms));

Deno.test("BlockScheduler.submit() runs reads to the same cluster at once", async () => {
  const s = new BlockScheduler({ clusterSize: 65536 });
  let running = 0;
  let most = 0;
  const read = () =>
    s.submit("read", 0, 4096, async () => {
      running++;
      most = Math.max(most, running);
      await tick();
      running--;
    });
  await Promise.all([read(), read(), read()]);
  assert.equal(most, 3);
  assert.equal(s.stats.reads, 3);
  assert.equal(s.stats.bytesRead, 3 * 4096);
});

Deno.test("BlockScheduler.submit() serialises writes that touch the same cluster", async () => {
  const s = new BlockScheduler({ clusterSize: 65536 });
  const events: string[] = [];
  const write = (name: string, offset: number) =>
    s.submit("write", offset, 512, async () => {
      events.push(`${name}+`);
      await tick(2);
      events.push(`${name}-`);
    });
  await Promise.all([write("a", 0), write("b", 60000), write("c", 70000)]);
  // a and b share cluster 0 and never overlap; c (cluster 1) runs beside a.
  assert.ok(events.indexOf("b+") > events.indexOf("a-"));
  assert.ok(events.indexOf("c+") < events.indexOf("a-"));
  assert.equal(s.stats.serialised, 1);
});

Deno.test("BlockScheduler.submit() starts a flush only after every earlier request", async () => {
  const s = new BlockScheduler({ clusterSize: 512 });
  const events: string[] = [];
  const w = s.submit("write", 0, 512, async () => {
    await tick(3);
    events.push("write");
  });
  const f = s.submit("flush", 0, 0, () => {
    events.push("flush");
    return Promise.resolve();
  });
  await Promise.all([w, f]);
  assert.deepEqual(events, ["write", "flush"]);
});

Deno.test("BlockScheduler.submit() keeps at most maxQueueDepth requests in flight", async () => {
  const s = new BlockScheduler({ clusterSize: 512 }, { maxQueueDepth: 2 });
  const jobs = Array.from({ length: 6 }, (_, i) => s.submit("read", i * 512, 512, () => tick()));
  await Promise.all(jobs);
  assert.equal(s.stats.maxInFlight, 2);
  assert.ok(s.stats.queued >= 1);
});

Deno.test("BlockScheduler.submit() counts a failed request and passes its error on", async () => {
  const s = new BlockScheduler({});
  await assert.rejects(
    s.submit("write", 0, 512, () => Promise.reject(new Error("ENOSPC"))),
    /ENOSPC/,
  );
  assert.equal(s.stats.failed, 1);
  assert.equal(s.inFlight, 0);
});
