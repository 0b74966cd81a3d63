// The APIC bus: routes IPIs, IOAPIC redirections and MSI writes to the local APICs they name

/** Delivery modes of an interrupt message (SDM vol. 3 §10.6.1, ICR bits 10:8). */
import { type ServiceKey, serviceKey } from "../../core/device.ts";

export const APIC_DM_FIXED = 0;
export const APIC_DM_LOWPRI = 1;
export const APIC_DM_SMI = 2;
export const APIC_DM_NMI = 4;
export const APIC_DM_INIT = 5;
export const APIC_DM_STARTUP = 6;
export const APIC_DM_EXTINT = 7;

/** ICR destination shorthands (bits 19:18). */
const SHORTHAND_NONE = 0;
const SHORTHAND_SELF = 1;
const SHORTHAND_ALL = 2;
const SHORTHAND_OTHERS = 3;

/** ICR bits. */
const ICR_DEST_LOGICAL = 1 << 11;
const ICR_LEVEL_ASSERT = 1 << 14;
const ICR_TRIGGER_LEVEL = 1 << 15;

/** xAPIC broadcast destination, physical and logical alike. */
const APIC_BROADCAST = 0xff;

/** An interrupt message on the APIC bus (from an ICR, an IOAPIC entry or an MSI). */
export interface ApicMessage {
  vector: number;
  /** One of the `APIC_DM_*` delivery modes. */
  deliveryMode: number;
  /** An APIC ID (physical mode) or a message destination address (logical mode). */
  destination: number;
  /** Logical destination mode (flat or cluster, by each APIC's DFR). */
  logical: boolean;
  /** Level-triggered: the target's EOI is broadcast back to the IOAPIC. */
  level: boolean;
}

/** What the bus needs of a local APIC to match destinations and hand messages over. */
export interface BusApic {
  /** The APIC ID register (bits 31:24 of the ID register). */
  readonly apicId: number;
  /** The logical APIC ID (LDR bits 31:24). */
  readonly logicalId: number;
  /** The destination format model (DFR bits 31:28): 0xf flat, 0x0 cluster. */
  readonly destinationModel: number;
  /** The arbitration priority used for lowest-priority delivery (lower wins). */
  readonly arbitrationPriority: number;
  /** Accepts a message addressed to this APIC. */
  receive(message: ApicMessage): void;
}

/** True when `apic` is one of the destinations of a message to `destination`. */
export function apicMatches(apic: BusApic, destination: number, logical: boolean): boolean {
  if (destination === APIC_BROADCAST) return true;
  if (!logical) return apic.apicId === destination;
  const ldr = apic.logicalId;
  if (apic.destinationModel === 0xf) return (ldr & destination) !== 0; // flat: a bit per APIC
  // Cluster: the high nibble names the cluster (15 = all), the low one the members.
  const cluster = destination >> 4;
  return (cluster === 0xf || cluster === ldr >> 4) && (ldr & destination & 0x0f) !== 0;
}

/** Decodes an MSI write (PCI MSI address 0xfeeXXXXX and data) into a bus message. */
export function msiMessage(addressOffset: number, data: number): ApicMessage {
  return {
    vector: data & 0xff,
    deliveryMode: (data >> 8) & 7,
    destination: (addressOffset >> 12) & 0xff,
    logical: (addressOffset & 4) !== 0,
    level: (data & 0x8000) !== 0,
  };
}

/**
 * The bus between the local APICs and the IOAPIC: finds the APICs a message names
 * (physical, logical flat or cluster, broadcast, lowest priority) and delivers it.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { ApicBus, type ApicMessage, type BusApic } from "./apic_bus.ts";
 *
 * const got: number[] = [];
 * const apic = (id: number): BusApic => ({
 *   apicId: id, logicalId: 1 << id, destinationModel: 0xf, arbitrationPriority: 0,
 *   receive: (m: ApicMessage) => void got.push(id, m.vector),
 * });
 * const bus = new ApicBus([apic(0), apic(1)]);
 * bus.deliver({ vector: 0x31, deliveryMode: 0, destination: 2, logical: true, level: false });
 * assert.deepEqual(got, [1, 0x31]); // logical 2 names the APIC whose LDR bit is 2
 * ```
 */
export class ApicBus {
  readonly #apics: BusApic[];
  readonly #targets: BusApic[] = [];

  constructor(apics: BusApic[]) {
    this.#apics = apics;
  }

  /** The APICs on the bus, by CPU index. */
  get apics(): readonly BusApic[] {
    return this.#apics;
  }

  /** Delivers a message from the IOAPIC or an MSI write to the APICs it names. */
  deliver(message: ApicMessage): void {
    const targets = this.#targets;
    targets.length = 0;
    for (const a of this.#apics) {
      if (apicMatches(a, message.destination, message.logical)) targets.push(a);
    }
    this.#send(message, targets);
  }

  /**
   * Sends the IPI an ICR write describes (`low` is ICR bits 31:0, `high` bits 63:32)
   * from the APIC `from`.
   */
  sendIpi(from: BusApic, low: number, high: number): void {
    const deliveryMode = (low >> 8) & 7;
    const level = (low & ICR_TRIGGER_LEVEL) !== 0;
    // INIT level de-assert only synchronises arbitration IDs (SDM §10.6.1); nothing
    // reaches a CPU. Pentium 4 and later no longer send it at all.
    if (deliveryMode === APIC_DM_INIT && level && (low & ICR_LEVEL_ASSERT) === 0) return;
    const message: ApicMessage = {
      vector: low & 0xff,
      deliveryMode,
      destination: high >>> 24,
      logical: (low & ICR_DEST_LOGICAL) !== 0,
      level,
    };
    const targets = this.#targets;
    targets.length = 0;
    switch ((low >> 18) & 3) {
      case SHORTHAND_NONE:
        for (const a of this.#apics) {
          if (apicMatches(a, message.destination, message.logical)) targets.push(a);
        }
        break;
      case SHORTHAND_SELF:
        targets.push(from);
        break;
      case SHORTHAND_ALL:
        targets.push(...this.#apics);
        break;
      case SHORTHAND_OTHERS:
        for (const a of this.#apics) if (a !== from) targets.push(a);
        break;
    }
    this.#send(message, targets);
  }

  #send(message: ApicMessage, targets: BusApic[]): void {
    if (targets.length === 0) return;
    if (message.deliveryMode === APIC_DM_LOWPRI) {
      // The APIC with the lowest arbitration priority takes it; ties go to the lowest
      // index (QEMU picks by its own order too; no guest depends on the choice).
      let best = targets[0];
      for (const a of targets) if (a.arbitrationPriority < best.arbitrationPriority) best = a;
      best.receive(message);
      return;
    }
    // Copy: a receiver (INIT of the running CPU) may deliver again through this bus.
    for (const a of targets.slice()) a.receive(message);
  }
}

/** The local APICs as the IOAPIC reaches them: message delivery, and the EOIs it listens to. */
export interface LocalApicBus {
  deliver(message: ApicMessage): void;
  setEoiListener(listener: (vector: number) => void): void;
}

/** The local APICs of the machine (published by the `apic` device). */
export const LAPIC: ServiceKey<LocalApicBus> = serviceKey("lapic");
