// Headless chromium for the display tests: the browser's name, a free port, and a Chrome DevTools Protocol session

import { onPath } from "./vnc_util.ts";

/** The chromium on PATH, if any. */
export const BROWSER: string | undefined = ["chromium", "chromium-browser", "google-chrome"].find(
  onPath,
);

/** Starts headless chromium on `url` with DevTools on `debugPort`, its profile in `profileDir`. */
export function startBrowser(
  url: string,
  debugPort: number,
  profileDir: string,
): Deno.ChildProcess {
  return new Deno.Command(BROWSER!, {
    args: [
      "--headless=new",
      "--no-sandbox",
      "--disable-gpu",
      "--no-first-run",
      "--force-device-scale-factor=1",
      `--user-data-dir=${profileDir}`,
      `--remote-debugging-port=${debugPort}`,
      "--window-size=800,600",
      url,
    ],
    stdin: "null",
    stdout: "null",
    stderr: "null",
  }).spawn();
}

/** A free TCP port on loopback. */
export function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = l.addr.port;
  l.close();
  return port;
}

/** A Chrome DevTools Protocol session with the page's target. */
export class DevTools {
  #ws: WebSocket;
  #id = 0;
  #pending = new Map<number, (reply: Record<string, unknown>) => void>();

  private constructor(ws: WebSocket) {
    this.#ws = ws;
    ws.onmessage = (e) => {
      const msg = JSON.parse(e.data as string);
      this.#pending.get(msg.id)?.(msg);
      this.#pending.delete(msg.id);
    };
  }

  static async open(port: number): Promise<DevTools> {
    const deadline = Date.now() + 60_000;
    for (;;) {
      try {
        const list = await (await fetch(`http://127.0.0.1:${port}/json/list`)).json();
        const page = list.find((t: { type: string; url: string }) => t.type === "page");
        if (page?.webSocketDebuggerUrl) {
          const ws = new WebSocket(page.webSocketDebuggerUrl);
          await new Promise((resolve, reject) => {
            ws.onopen = resolve;
            ws.onerror = reject;
          });
          return new DevTools(ws);
        }
      } catch (error) {
        if (Date.now() > deadline) throw error;
      }
      await new Promise((r) => setTimeout(r, 250));
    }
  }

  call(method: string, params: Record<string, unknown> = {}): Promise<Record<string, unknown>> {
    const id = ++this.#id;
    this.#ws.send(JSON.stringify({ id, method, params }));
    return new Promise((resolve) => this.#pending.set(id, resolve));
  }

  /** Evaluates `expression` in the page; its value. */
  async eval(expression: string): Promise<unknown> {
    const reply = await this.call("Runtime.evaluate", {
      expression,
      awaitPromise: true,
      returnByValue: true,
    });
    const result = reply.result as { result?: { value?: unknown } } | undefined;
    return result?.result?.value;
  }

  close(): void {
    this.#ws.close();
  }
}
