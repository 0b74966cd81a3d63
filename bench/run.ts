// Runs every side-by-side benchmark and prints the ratio tables (`--short` for CI)

import { printTable, SHORT } from "./bench_util.ts";
import { barRemapRows } from "./bar_remap_bench.ts";
import { bootRows } from "./boot_bench.ts";
import { convertRows } from "./convert_bench.ts";
import { convertFormatRows, convertFormatsTitle } from "./convert_formats_bench.ts";
import { emulationLoopRows } from "./emulation_loop_bench.ts";
import { kvmRows } from "./kvm_bench.ts";
import { qcow2L2CacheRows } from "./qcow2_l2_cache_bench.ts";
import { qmpLatencyRows } from "./qmp_latency_bench.ts";
import { savevmRows } from "./savevm_bench.ts";
import { vncRows } from "./vnc_bench.ts";
import { printStartup } from "./startup_bench.ts";

console.log(
  `vmkit benchmarks${SHORT ? " (short mode)" : ""}; ratio > 1 means vmkit is faster than QEMU`,
);
await printStartup();
printTable(
  "qcow2 L2 cache: 4 KiB reads (8 GiB image, metadata preallocated)",
  await qcow2L2CacheRows(),
);
printTable(
  `img convert throughput (${SHORT ? "256 MiB" : "1 GiB"} of mixed data and zero extents)`,
  await convertRows(),
);
printTable(convertFormatsTitle(), await convertFormatRows());
printTable(
  "PCI BAR / PAM remap through 0xcf8/0xcfc (guest config writes; QEMU via qtest)",
  await barRemapRows(),
);
printTable(
  "Emulation loops: Multiboot guests, vmkit (interpreter + block translator) vs qemu-system-i386 -accel tcg",
  await emulationLoopRows(),
);
printTable(
  "accel=kvm: exits per second (port I/O, MMIO) and time to the SeaBIOS banner, vmkit vs qemu-system-x86_64 -accel kvm",
  await kvmRows(),
);
printTable(
  "savevm/loadvm into qcow2 through HMP, 768 MiB guest at SeaBIOS's boot prompt",
  await savevmRows(),
);
printTable(
  "VNC: full-screen update rate, render cost and idle CPU at 1024x768x32, vmkit vs QEMU TCG",
  await vncRows(),
);
printTable(
  "QMP: a command's round trip while the guest is busy (Linux booting), vmkit vs QEMU TCG",
  await qmpLatencyRows(),
);
// Last: minutes of vmkit boot; the tables above are printed even if CI's timeout stops it.
printTable(
  "Linux boot: i386 and amd64 kernels + initramfs to the shell prompt, vmkit vs QEMU TCG (s)",
  await bootRows(),
);
