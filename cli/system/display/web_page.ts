// The browser console's page: a canvas and a small RFB client (raw, CopyRect, DesktopSize) over a WebSocket, with keyboard and mouse input

/** The page `-display web` serves; `__TITLE__` is replaced by the desktop name. */
export const WEB_PAGE = `<!doctype html>
<html><head><meta charset="utf-8"><title>__TITLE__</title>
<style>html,body{margin:0;background:#222;color:#ccc;font:13px sans-serif}
#screen{display:block;image-rendering:pixelated;outline:none}
#status{position:fixed;right:4px;bottom:2px;opacity:.7}</style></head>
<body><canvas id="screen" width="640" height="480" tabindex="0"></canvas><div id="status">connecting</div>
<script>
"use strict";
const canvas = document.getElementById("screen");
const ctx = canvas.getContext("2d", { alpha: false });
const status = document.getElementById("status");
const ws = new WebSocket((location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/websockify");
ws.binaryType = "arraybuffer";
let chunks = [], have = 0, waiter = null;
window.vmkitUpdates = 0;
ws.onmessage = (e) => { chunks.push(new Uint8Array(e.data)); have += e.data.byteLength; if (waiter) waiter(); };
ws.onclose = () => { status.textContent = "disconnected"; if (waiter) waiter(); };
async function need(n) {
  while (have < n) {
    if (ws.readyState > 1) throw new Error("closed");
    await new Promise((r) => (waiter = r));
    waiter = null;
  }
  const out = new Uint8Array(n);
  let at = 0;
  while (at < n) {
    const c = chunks[0], k = Math.min(c.length, n - at);
    out.set(c.subarray(0, k), at);
    at += k;
    if (k === c.length) chunks.shift(); else chunks[0] = c.subarray(k);
  }
  have -= n;
  return out;
}
const u16 = (b, i) => (b[i] << 8) | b[i + 1];
const u32 = (b, i) => ((b[i] << 24) | (b[i + 1] << 16) | (b[i + 2] << 8) | b[i + 3]) >>> 0;
function send(bytes) { if (ws.readyState === 1) ws.send(new Uint8Array(bytes)); }
function request(incremental) {
  send([3, incremental ? 1 : 0, 0, 0, 0, 0, canvas.width >> 8, canvas.width & 255, canvas.height >> 8, canvas.height & 255]);
}
async function run() {
  await new Promise((r) => (ws.onopen = r));
  await need(12);
  ws.send(new TextEncoder().encode("RFB 003.008\\n"));
  const types = await need((await need(1))[0]);
  if (!types.includes(1)) { status.textContent = "this server asks for a password: use a VNC client"; ws.close(); return; }
  send([1]);
  if (u32(await need(4), 0) !== 0) { status.textContent = "refused"; return; }
  send([1]); // shared
  const init = await need(24);
  canvas.width = u16(init, 0); canvas.height = u16(init, 2);
  const name = new TextDecoder().decode(await need(u32(init, 20)));
  document.title = name;
  // raw, CopyRect, DesktopSize
  send([2, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0, 1, 0xff, 0xff, 0xff, 0x21]);
  request(false);
  status.textContent = name;
  for (;;) {
    const type = (await need(1))[0];
    if (type === 2) continue; // bell
    if (type === 1) { const h = await need(5); await need(u16(h, 3) * 6); continue; }
    if (type === 3) { await need(3); await need(u32(await need(4), 0)); continue; }
    const count = u16(await need(3), 1);
    for (let i = 0; i < count; i++) {
      const r = await need(12);
      const x = u16(r, 0), y = u16(r, 2), w = u16(r, 4), h = u16(r, 6);
      const enc = (r[8] << 24) | (r[9] << 16) | (r[10] << 8) | r[11];
      if (enc === -223) { canvas.width = w; canvas.height = h; continue; }
      if (enc === 1) {
        const s = await need(4);
        if (w && h) ctx.putImageData(ctx.getImageData(u16(s, 0), u16(s, 2), w, h), x, y);
        continue;
      }
      if (enc !== 0) throw new Error("encoding " + enc);
      const px = await need(w * h * 4);
      if (!w || !h) continue;
      const img = ctx.createImageData(w, h), d = img.data;
      for (let p = 0; p < px.length; p += 4) { d[p] = px[p + 2]; d[p + 1] = px[p + 1]; d[p + 2] = px[p]; d[p + 3] = 255; }
      ctx.putImageData(img, x, y);
    }
    window.vmkitUpdates++;
    request(true);
  }
}
run().catch((e) => { status.textContent = "error: " + e.message; });
const NAMED = { Backspace: 0xff08, Tab: 0xff09, Enter: 0xff0d, Escape: 0xff1b, Delete: 0xffff,
  Home: 0xff50, ArrowLeft: 0xff51, ArrowUp: 0xff52, ArrowRight: 0xff53, ArrowDown: 0xff54,
  PageUp: 0xff55, PageDown: 0xff56, End: 0xff57, Insert: 0xff63, CapsLock: 0xffe5,
  NumLock: 0xff7f, ScrollLock: 0xff14, Pause: 0xff13, PrintScreen: 0xff61, ContextMenu: 0xff67 };
function keysym(e) {
  if (e.key.length === 1) { const c = e.key.codePointAt(0); return c < 0x100 ? c : 0x1000000 + c; }
  if (/^F([1-9]|1[0-2])$/.test(e.key)) return 0xffbd + Number(e.key.slice(1));
  const right = e.location === 2;
  if (e.key === "Shift") return right ? 0xffe2 : 0xffe1;
  if (e.key === "Control") return right ? 0xffe4 : 0xffe3;
  if (e.key === "Alt" || e.key === "AltGraph") return right || e.key === "AltGraph" ? 0xffea : 0xffe9;
  if (e.key === "Meta") return right ? 0xffec : 0xffeb;
  return NAMED[e.key];
}
function key(e, down) {
  const sym = keysym(e);
  if (sym === undefined) return;
  e.preventDefault();
  send([4, down ? 1 : 0, 0, 0, sym >>> 24, (sym >> 16) & 255, (sym >> 8) & 255, sym & 255]);
}
canvas.addEventListener("keydown", (e) => key(e, true));
canvas.addEventListener("keyup", (e) => key(e, false));
let buttons = 0;
function pointer(e) {
  const rect = canvas.getBoundingClientRect();
  const x = Math.max(0, Math.min(canvas.width - 1, Math.round(e.clientX - rect.left)));
  const y = Math.max(0, Math.min(canvas.height - 1, Math.round(e.clientY - rect.top)));
  // DOM buttons: 1 left, 2 right, 4 middle; RFB: 1 left, 2 middle, 4 right
  buttons = (e.buttons & 1) | ((e.buttons & 4) >> 1) | ((e.buttons & 2) << 1);
  send([5, buttons, x >> 8, x & 255, y >> 8, y & 255]);
}
for (const t of ["mousemove", "mousedown", "mouseup"]) canvas.addEventListener(t, pointer);
canvas.addEventListener("contextmenu", (e) => e.preventDefault());
canvas.addEventListener("wheel", (e) => {
  e.preventDefault();
  const bit = e.deltaY < 0 ? 8 : 16;
  const rect = canvas.getBoundingClientRect();
  const x = Math.round(e.clientX - rect.left), y = Math.round(e.clientY - rect.top);
  send([5, buttons | bit, x >> 8, x & 255, y >> 8, y & 255]);
  send([5, buttons, x >> 8, x & 255, y >> 8, y & 255]);
});
canvas.focus();
</script></body></html>
`;
