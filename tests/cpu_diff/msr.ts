// The MSR probe: a 32-bit test kernel that reads, writes and reads back each MSR QEMU 7.2
// implements for an x86-64 target (and a few it does not), for QEMU and vmkit to compare

import { pm32Source } from "./image_pm32.ts";
import { DATA_BASE, DATA_BYTES, hex } from "./layout.ts";

/** [MSR index, value written (hi, lo)]; the write is skipped when `write` is null. */
export const MSR_PROBES: [string, number, [number, number] | null][] = [
  ["EFER", 0xc0000080, [0, 0x800]], // NXE
  ["EFER.SCE", 0xc0000080, [0, 0x801]],
  ["EFER.LME", 0xc0000080, [0, 0x901]],
  ["EFER.LMA", 0xc0000080, [0, 0x400]],
  ["EFER reserved", 0xc0000080, [0, 0x2]],
  ["STAR", 0xc0000081, [0x00230010, 0x12345678]],
  ["LSTAR", 0xc0000082, [0xffffffff, 0x81000000]],
  ["CSTAR", 0xc0000083, [0xffffffff, 0x82000000]],
  ["SFMASK", 0xc0000084, [0, 0x47700]],
  ["FS base", 0xc0000100, [0, 0x1000]],
  ["GS base", 0xc0000101, [0, 0x2000]],
  ["KernelGS base", 0xc0000102, [0xffff8000, 0x3000]],
  ["TSC_AUX", 0xc0000103, [0, 0x5]],
  ["PAT", 0x277, [0x00070406, 0x00070106]],
  ["MISC_ENABLE", 0x1a0, [0, 0x1]],
  ["APIC base", 0x1b, [0, 0xfee00900]],
  ["SYSENTER_CS", 0x174, [0, 0x10]],
  ["SYSENTER_ESP", 0x175, [0, 0x7000]],
  ["SYSENTER_EIP", 0x176, [0, 0x100000]],
  ["MTRRcap", 0xfe, null],
  ["MTRRdefType", 0x2ff, [0, 0xc06]],
  ["MTRRphysBase0", 0x200, [0, 0x6]],
  ["MCG_CAP", 0x179, null],
  ["MCG_STATUS", 0x17a, [0, 0]],
  ["UCODE_REV", 0x8b, null],
  ["FEATURE_CONTROL", 0x3a, [0, 0]],
  ["PLATFORM_ID", 0x17, null],
  ["unknown 0x12345", 0x12345, [0, 1]],
  ["unknown 0xc0000200", 0xc0000200, [0, 1]],
  ["unknown 0x40000000", 0x40000000, null],
];

/**
 * The probe kernel's source: per probe, RDMSR, WRMSR of its value, RDMSR again; the two
 * reads go to 16 bytes of the data area (a faulting access leaves zeros there and an `E`
 * line in the dump). FS base is written last but one before GS: the dump uses neither.
 */
export function msrProbeSource(): string {
  const body: string[] = [];
  const resume: string[] = [];
  MSR_PROBES.forEach(([, index, write], k) => {
    const at = DATA_BASE + 16 * k;
    const fault = (insn: string, tag: string) => {
      body.push(`P${k}${tag}f:`, `  ${insn}`, `P${k}${tag}r:`);
      resume.push(`dd P${k}${tag}f, P${k}${tag}r`);
    };
    body.push(`  mov ecx, ${hex(index)}`, "  xor eax, eax", "  xor edx, edx");
    fault("rdmsr", "a");
    body.push(`  mov [${hex(at)}], eax`, `  mov [${hex(at + 4)}], edx`);
    if (write) {
      body.push(`  mov edx, ${hex(write[0])}`, `  mov eax, ${hex(write[1])}`);
      fault("wrmsr", "b");
      body.push("  xor eax, eax", "  xor edx, edx");
      fault("rdmsr", "c");
      body.push(`  mov [${hex(at + 8)}], eax`, `  mov [${hex(at + 12)}], edx`);
    }
  });
  return pm32Source({
    init: ["mov eax, 0"],
    flags: 2,
    data: new Array(DATA_BYTES).fill(0),
    body,
    resume,
    passes: 1,
  });
}
