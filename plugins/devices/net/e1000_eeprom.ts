// The 82540EM's serial EEPROM (a Microwire 93C46 the driver bit-bangs through EECD, or
// reads a word at a time through EERD; the RTL8139's is the same part behind 9346CR) and
// the 82540EM's PHY registers behind MDIC

import {
  EECD_CS,
  EECD_DI,
  EECD_DO,
  EECD_SK,
  EEPROM_SUM,
  EEPROM_WORDS,
  PHY_CTRL,
  PHY_CTRL_RESET,
  PHY_CTRL_RESTART_AN,
  PHY_ID1,
  PHY_ID2,
  PHY_STATUS,
} from "./e1000_regs.ts";

/** The Microwire READ opcode with its start bit: 1, 10. */
const MICROWIRE_READ = 0b110;
const ADDRESS_BITS = 6;

/** EEPROM words for `mac`: the address in words 0..2, the 82540EM's IDs, the checksum last. */
export function eepromImage(mac: Uint8Array, deviceId: number, vendorId: number): Uint16Array {
  const words = new Uint16Array(EEPROM_WORDS);
  for (let i = 0; i < 3; i++) words[i] = mac[2 * i] | (mac[2 * i + 1] << 8);
  words[0x0a] = 0x6403; // initialization control 1: load subsystem IDs, 32-bit, no WoL
  words[0x0b] = deviceId; // subsystem ID
  words[0x0c] = vendorId; // subsystem vendor
  words[0x0d] = deviceId;
  words[0x0e] = vendorId;
  let sum = 0;
  for (let i = 0; i < EEPROM_WORDS - 1; i++) sum = (sum + words[i]) & 0xffff;
  words[EEPROM_WORDS - 1] = (EEPROM_SUM - sum) & 0xffff;
  return words;
}

/**
 * The EEPROM's serial side: bits clock in on SK's rising edge while CS is high; after
 * a READ opcode and a 6-bit address the words come out on DO, most significant bit
 * first, one bit per rising edge, rolling on to the next word.
 */
export class MicrowireEeprom {
  /** The register bits wired to the EEPROM's pins (the 8254x EECD's by default). */
  readonly pins: { cs: number; sk: number; di: number; do: number };
  #cs = false;
  #sk = false;
  #bitsIn = 0;
  #shift = 0;
  #reading = false;
  #address = 0;
  #outBit = 0;
  #do = 0;

  constructor(
    readonly words: Uint16Array,
    pins: { cs: number; sk: number; di: number; do: number } = {
      cs: EECD_CS,
      sk: EECD_SK,
      di: EECD_DI,
      do: EECD_DO,
    },
  ) {
    this.pins = pins;
  }

  /** The EECD bits the EEPROM drives (DO) merged into `value`. */
  read(value: number): number {
    return (value & ~this.pins.do) | (this.#do ? this.pins.do : 0);
  }

  /** The driver wrote EECD. */
  write(value: number): void {
    const cs = (value & this.pins.cs) !== 0;
    const sk = (value & this.pins.sk) !== 0;
    if (!cs) {
      this.#bitsIn = 0;
      this.#shift = 0;
      this.#reading = false;
      this.#do = 0;
    } else if (sk && !this.#sk) {
      if (this.#reading) {
        const word = this.words[this.#address % EEPROM_WORDS];
        this.#do = (word >> (15 - this.#outBit)) & 1;
        if (++this.#outBit === 16) {
          this.#outBit = 0;
          this.#address = (this.#address + 1) % EEPROM_WORDS;
        }
      } else if (this.#bitsIn < 3 + ADDRESS_BITS) {
        this.#shift = (this.#shift << 1) | (value & this.pins.di ? 1 : 0);
        this.#bitsIn++;
        if (this.#bitsIn === 3 + ADDRESS_BITS && this.#shift >> ADDRESS_BITS === MICROWIRE_READ) {
          this.#reading = true;
          this.#address = this.#shift & ((1 << ADDRESS_BITS) - 1);
          this.#outBit = 0;
          this.#do = 0;
        }
      }
    }
    this.#cs = cs;
    this.#sk = sk;
  }

  reset(): void {
    this.write(0);
  }

  get selected(): boolean {
    return this.#cs;
  }
}

/** The PHY's registers as Linux and iPXE read them: an M88E1011 with the link up at 1000/full. */
export class Phy {
  readonly regs = new Uint16Array(32);

  constructor() {
    this.reset();
  }

  reset(): void {
    this.regs.fill(0);
    this.regs[PHY_CTRL] = 0x1140; // autonegotiation on, full duplex, 1000 Mb/s
    this.regs[PHY_STATUS] = 0x796d; // capabilities, autonegotiation complete, link up
    this.regs[PHY_ID1] = 0x0141;
    this.regs[PHY_ID2] = 0x0c20;
    this.regs[4] = 0x0de1; // autonegotiation advertisement
    this.regs[5] = 0x45e1; // link partner ability
    this.regs[6] = 0x000f; // autonegotiation expansion
    this.regs[9] = 0x0e00; // 1000BASE-T control
    this.regs[10] = 0x3c00; // 1000BASE-T status: partner 1000 full/half, local and remote OK
    this.regs[0x10] = 0x0360; // M88 PHY specific control
    this.regs[0x11] = 0xac00; // M88 PHY specific status: 1000, full duplex, resolved, link
    this.regs[0x14] = 0x0c60; // M88 extended PHY specific control
  }

  read(reg: number): number {
    return this.regs[reg & 31];
  }

  write(reg: number, value: number): void {
    reg &= 31;
    if (reg === PHY_STATUS || reg === PHY_ID1 || reg === PHY_ID2 || reg === 0x11) return;
    if (reg === PHY_CTRL) {
      // Reset and restart-autonegotiation complete at once.
      this.regs[PHY_CTRL] = value & ~(PHY_CTRL_RESET | PHY_CTRL_RESTART_AN);
      return;
    }
    this.regs[reg] = value & 0xffff;
  }
}
