// ModRM-extended opcode groups: 80..83, shifts C0/C1/D0..D3, F6/F7, FE/FF

import { arith, dec, div64, idiv64, imul32, inc, mul32, neg, setMulFlags, shift } from "./alu.ts";
import {
  decodeModrm,
  decodeModrmByte,
  probeE,
  readE16,
  readE32,
  readE8,
  readM16,
  readM32,
  readM8,
  setReg16,
  writeE16,
  writeE32,
  writeE8,
} from "./decode.ts";
import { callFar, jmpFar } from "./far.ts";
import { fetch16, fetch32, fetch8, read16, read32 } from "./memory.ts";
import { jumpNear } from "./ops_control.ts";
import { push16, push32 } from "./stack.ts";
import { type CpuCore, CS, EAX, EDX, EXC_DE, EXC_GP, fault, type OpHandler, ud } from "./state.ts";

const HI = new Int32Array(1);
const QR = new Float64Array(2);

/** Installs the group opcodes. */
export function installGroups(t16: OpHandler[], t32: OpHandler[]): void {
  // Group 1.
  t16[0x80] =
    t32[0x80] =
    t16[0x82] =
    t32[0x82] =
      (c) => {
        decodeModrm(c);
        const op = c.modReg;
        const a = op !== 7 ? readM8(c) : readE8(c);
        const r = arith(c, op, a, fetch8(c), 8);
        if (op !== 7) writeE8(c, r);
      };
  t16[0x81] = (c) => {
    decodeModrm(c);
    const op = c.modReg;
    const a = op !== 7 ? readM16(c) : readE16(c);
    const r = arith(c, op, a, fetch16(c), 16);
    if (op !== 7) writeE16(c, r);
  };
  t32[0x81] = (c) => {
    const m = fetch8(c);
    const op = (m >> 3) & 7;
    if (m >= 0xc0) {
      const regs = c.regs;
      const r = arith(c, op, regs[m & 7], fetch32(c), 32);
      if (op !== 7) regs[m & 7] = r;
      return;
    }
    decodeModrmByte(c, m);
    const a = op !== 7 ? readM32(c) : readE32(c);
    const r = arith(c, op, a, fetch32(c), 32);
    if (op !== 7) writeE32(c, r);
  };
  t16[0x83] = (c) => {
    decodeModrm(c);
    const op = c.modReg;
    const a = op !== 7 ? readM16(c) : readE16(c);
    const r = arith(c, op, a, ((fetch8(c) << 24) >> 24) & 0xffff, 16);
    if (op !== 7) writeE16(c, r);
  };
  t32[0x83] = (c) => {
    const m = fetch8(c);
    const op = (m >> 3) & 7;
    if (m >= 0xc0) {
      const regs = c.regs;
      const r = arith(c, op, regs[m & 7], (fetch8(c) << 24) >> 24, 32);
      if (op !== 7) regs[m & 7] = r;
      return;
    }
    decodeModrmByte(c, m);
    const a = op !== 7 ? readM32(c) : readE32(c);
    const r = arith(c, op, a, (fetch8(c) << 24) >> 24, 32);
    if (op !== 7) writeE32(c, r);
  };
  // Group 2: count source 0 = imm8, 1 = 1, 2 = CL.
  const count = (c: CpuCore, src: number) =>
    (src === 0 ? fetch8(c) : src === 1 ? 1 : c.regs[1]) & 31;
  for (const [op8, src] of [[0xc0, 0], [0xd0, 1], [0xd2, 2]]) {
    t16[op8] = t32[op8] = (c) => {
      decodeModrm(c);
      const a = readE8(c);
      const n = count(c, src);
      if (n !== 0) {
        probeE(c, 1);
        writeE8(c, shift(c, c.modReg, a, n, 8));
      }
    };
    t16[op8 + 1] = (c) => {
      decodeModrm(c);
      const a = readE16(c);
      const n = count(c, src);
      if (n !== 0) {
        probeE(c, 2);
        writeE16(c, shift(c, c.modReg, a, n, 16));
      }
    };
    t32[op8 + 1] = (c) => {
      decodeModrm(c);
      const a = readE32(c);
      const n = count(c, src);
      if (n !== 0) {
        probeE(c, 4);
        writeE32(c, shift(c, c.modReg, a, n, 32));
      }
    };
  }
  // Group 3.
  t16[0xf6] = t32[0xf6] = (c) => {
    decodeModrm(c);
    const r = c.regs;
    switch (c.modReg) {
      case 0:
      case 1:
        arith(c, 4, readE8(c), fetch8(c), 8);
        break;
      case 2:
        writeE8(c, ~readE8(c));
        break;
      case 3:
        writeE8(c, neg(c, readM8(c), 8));
        break;
      case 4: {
        const p = (r[EAX] & 0xff) * readE8(c);
        setReg16(c, EAX, p);
        setMulFlags(c, p > 0xff, p, 8);
        break;
      }
      case 5: {
        const p = ((r[EAX] << 24) >> 24) * ((readE8(c) << 24) >> 24);
        setReg16(c, EAX, p);
        setMulFlags(c, p !== ((p << 24) >> 24), p, 8);
        break;
      }
      case 6: {
        const d = readE8(c);
        const n = r[EAX] & 0xffff;
        if (d === 0) fault(c, EXC_DE);
        const q = Math.floor(n / d);
        if (q > 0xff) fault(c, EXC_DE);
        setReg16(c, EAX, ((n % d) << 8) | q);
        break;
      }
      default: {
        const d = (readE8(c) << 24) >> 24;
        const n = (r[EAX] << 16) >> 16;
        if (d === 0) fault(c, EXC_DE);
        const q = Math.trunc(n / d);
        if (q > 127 || q < -128 || (c.model.family <= 2 && q === -128)) fault(c, EXC_DE);
        setReg16(c, EAX, (((n % d) & 0xff) << 8) | (q & 0xff));
      }
    }
  };
  t16[0xf7] = (c) => {
    decodeModrm(c);
    const r = c.regs;
    switch (c.modReg) {
      case 0:
      case 1:
        arith(c, 4, readE16(c), fetch16(c), 16);
        break;
      case 2:
        writeE16(c, ~readE16(c));
        break;
      case 3:
        writeE16(c, neg(c, readM16(c), 16));
        break;
      case 4: {
        const p = (r[EAX] & 0xffff) * readE16(c);
        setReg16(c, EAX, p);
        setReg16(c, EDX, p >>> 16);
        setMulFlags(c, p > 0xffff, p, 16);
        break;
      }
      case 5: {
        const p = ((r[EAX] << 16) >> 16) * ((readE16(c) << 16) >> 16);
        setReg16(c, EAX, p);
        setReg16(c, EDX, p >> 16);
        setMulFlags(c, p !== ((p << 16) >> 16), p, 16);
        break;
      }
      case 6: {
        const d = readE16(c);
        const n = ((r[EDX] & 0xffff) * 65536) + (r[EAX] & 0xffff);
        if (d === 0) fault(c, EXC_DE);
        const q = Math.floor(n / d);
        if (q > 0xffff) fault(c, EXC_DE);
        setReg16(c, EAX, q);
        setReg16(c, EDX, n % d);
        break;
      }
      default: {
        const d = (readE16(c) << 16) >> 16;
        const n = ((r[EDX] & 0xffff) << 16) | (r[EAX] & 0xffff);
        if (d === 0) fault(c, EXC_DE);
        const q = Math.trunc(n / d);
        if (q > 32767 || q < -32768 || (c.model.family <= 2 && q === -32768)) fault(c, EXC_DE);
        setReg16(c, EAX, q);
        setReg16(c, EDX, n % d);
      }
    }
  };
  t32[0xf7] = (c) => {
    decodeModrm(c);
    const r = c.regs;
    switch (c.modReg) {
      case 0:
      case 1:
        arith(c, 4, readE32(c), fetch32(c), 32);
        break;
      case 2:
        writeE32(c, ~readE32(c));
        break;
      case 3:
        writeE32(c, neg(c, readM32(c), 32));
        break;
      case 4: {
        const lo = mul32(r[EAX], readE32(c), HI);
        r[EAX] = lo;
        r[EDX] = HI[0];
        setMulFlags(c, HI[0] !== 0, lo, 32);
        break;
      }
      case 5: {
        const lo = imul32(r[EAX], readE32(c), HI);
        r[EAX] = lo;
        r[EDX] = HI[0];
        setMulFlags(c, HI[0] !== (lo >> 31), lo, 32);
        break;
      }
      case 6: {
        const d = readE32(c);
        div64(c, r[EDX], r[EAX], d, QR);
        r[EAX] = QR[0];
        r[EDX] = QR[1];
        break;
      }
      default: {
        const d = readE32(c);
        idiv64(c, r[EDX], r[EAX], d, QR);
        r[EAX] = QR[0];
        r[EDX] = QR[1];
      }
    }
  };
  // Group 4 and 5.
  t16[0xfe] = t32[0xfe] = (c) => {
    decodeModrm(c);
    if (c.modReg === 0) writeE8(c, inc(c, readM8(c), 8));
    else if (c.modReg === 1) writeE8(c, dec(c, readM8(c), 8));
    else ud(c);
  };
  t16[0xff] = (c) => {
    decodeModrm(c);
    switch (c.modReg) {
      case 0:
        writeE16(c, inc(c, readM16(c), 16));
        break;
      case 1:
        writeE16(c, dec(c, readM16(c), 16));
        break;
      case 2: {
        const t = readE16(c);
        if (t > c.segLimit[CS]) fault(c, EXC_GP, 0);
        push16(c, c.eip);
        c.eip = t;
        break;
      }
      case 3: {
        if (c.modMod === 3) ud(c);
        const off = read16(c, c.eaSeg, c.eaOff);
        const sel = read16(c, c.eaSeg, (c.eaOff + 2) & (c.addr32 ? -1 : 0xffff));
        callFar(c, sel, off, false);
        break;
      }
      case 4:
        jumpNear(c, readE16(c));
        break;
      case 5: {
        if (c.modMod === 3) ud(c);
        const off = read16(c, c.eaSeg, c.eaOff);
        const sel = read16(c, c.eaSeg, (c.eaOff + 2) & (c.addr32 ? -1 : 0xffff));
        jmpFar(c, sel, off);
        break;
      }
      case 6:
        push16(c, readE16(c));
        break;
      default:
        ud(c);
    }
  };
  t32[0xff] = (c) => {
    decodeModrm(c);
    switch (c.modReg) {
      case 0:
        writeE32(c, inc(c, readM32(c), 32));
        break;
      case 1:
        writeE32(c, dec(c, readM32(c), 32));
        break;
      case 2: {
        const t = readE32(c);
        if ((t >>> 0) > c.segLimit[CS]) fault(c, EXC_GP, 0);
        push32(c, c.eip);
        c.eip = t;
        break;
      }
      case 3: {
        if (c.modMod === 3) ud(c);
        const off = read32(c, c.eaSeg, c.eaOff);
        const sel = read16(c, c.eaSeg, ((c.eaOff + 4) & (c.addr32 ? -1 : 0xffff)) >>> 0);
        callFar(c, sel, off, true);
        break;
      }
      case 4:
        jumpNear(c, readE32(c));
        break;
      case 5: {
        if (c.modMod === 3) ud(c);
        const off = read32(c, c.eaSeg, c.eaOff);
        const sel = read16(c, c.eaSeg, ((c.eaOff + 4) & (c.addr32 ? -1 : 0xffff)) >>> 0);
        jmpFar(c, sel, off);
        break;
      }
      case 6:
        push32(c, readE32(c));
        break;
      default:
        ud(c);
    }
  };
  // IMUL r, r/m, imm.
  const imul16 = (c: CpuCore, a: number, b: number) => {
    const p = ((a << 16) >> 16) * ((b << 16) >> 16);
    setReg16(c, c.modReg, p);
    setMulFlags(c, p !== ((p << 16) >> 16), p, 16);
  };
  const imul32r = (c: CpuCore, a: number, b: number) => {
    const lo = imul32(a, b, HI);
    c.regs[c.modReg] = lo;
    setMulFlags(c, HI[0] !== (lo >> 31), lo, 32);
  };
  t16[0x69] = (c) => {
    decodeModrm(c);
    const a = readE16(c);
    imul16(c, a, fetch16(c));
  };
  t32[0x69] = (c) => {
    decodeModrm(c);
    const a = readE32(c);
    imul32r(c, a, fetch32(c));
  };
  t16[0x6b] = (c) => {
    decodeModrm(c);
    const a = readE16(c);
    imul16(c, a, (fetch8(c) << 24) >> 24);
  };
  t32[0x6b] = (c) => {
    decodeModrm(c);
    const a = readE32(c);
    imul32r(c, a, (fetch8(c) << 24) >> 24);
  };
  t16[0x1af] = (c) => {
    decodeModrm(c);
    imul16(c, c.regs[c.modReg], readE16(c));
  };
  t32[0x1af] = (c) => {
    decodeModrm(c);
    imul32r(c, c.regs[c.modReg], readE32(c));
  };
}
