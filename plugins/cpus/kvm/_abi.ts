// KVM's userspace ABI on x86-64: ioctl numbers, exit reasons and struct offsets (linux/kvm.h)

// ioctl numbers are _IO/_IOR/_IOW/_IOWR(KVMIO = 0xAE, nr, struct): direction in bits
// 30..31 (1 write, 2 read), the struct size in bits 16..29, then KVMIO and nr.
/** `_IO(0xAE, nr)` with `size` bytes moving in `dir` (0 none, 1 to the kernel, 2 from it, 3 both). */
function kvmIoctl(dir: number, nr: number, size: number): number {
  return ((dir << 30) >>> 0) + (size << 16) + (0xae << 8) + nr;
}

export const KVM_GET_API_VERSION = kvmIoctl(0, 0x00, 0);
export const KVM_CREATE_VM = kvmIoctl(0, 0x01, 0);
export const KVM_GET_MSR_INDEX_LIST = kvmIoctl(3, 0x02, 4);
export const KVM_CHECK_EXTENSION = kvmIoctl(0, 0x03, 0);
export const KVM_GET_VCPU_MMAP_SIZE = kvmIoctl(0, 0x04, 0);
export const KVM_GET_SUPPORTED_CPUID = kvmIoctl(3, 0x05, 8);
export const KVM_CREATE_VCPU = kvmIoctl(0, 0x41, 0);
export const KVM_SET_USER_MEMORY_REGION = kvmIoctl(1, 0x46, 32);
export const KVM_SET_TSS_ADDR = kvmIoctl(0, 0x47, 0);
export const KVM_SET_IDENTITY_MAP_ADDR = kvmIoctl(1, 0x48, 8);
export const KVM_CREATE_IRQCHIP = kvmIoctl(0, 0x60, 0);
export const KVM_IRQ_LINE = kvmIoctl(1, 0x61, 8);
export const KVM_CREATE_PIT2 = kvmIoctl(1, 0x77, 64);
export const KVM_RUN = kvmIoctl(0, 0x80, 0);
export const KVM_GET_REGS = kvmIoctl(2, 0x81, 144);
export const KVM_SET_REGS = kvmIoctl(1, 0x82, 144);
export const KVM_GET_SREGS = kvmIoctl(2, 0x83, 312);
export const KVM_SET_SREGS = kvmIoctl(1, 0x84, 312);
export const KVM_INTERRUPT = kvmIoctl(1, 0x86, 4);
export const KVM_GET_MSRS = kvmIoctl(3, 0x88, 8);
export const KVM_SET_MSRS = kvmIoctl(1, 0x89, 8);
export const KVM_GET_FPU = kvmIoctl(2, 0x8c, 416);
export const KVM_SET_FPU = kvmIoctl(1, 0x8d, 416);
export const KVM_SET_CPUID2 = kvmIoctl(1, 0x90, 8);
export const KVM_GET_MP_STATE = kvmIoctl(2, 0x98, 4);
export const KVM_SET_MP_STATE = kvmIoctl(1, 0x99, 4);
export const KVM_NMI = kvmIoctl(0, 0x9a, 0);
export const KVM_ENABLE_CAP = kvmIoctl(1, 0xa3, 104);
export const KVM_SIGNAL_MSI = kvmIoctl(1, 0xa5, 32);
export const KVM_GET_DIRTY_LOG = kvmIoctl(1, 0x42, 16);
export const KVM_GET_VCPU_EVENTS = kvmIoctl(2, 0x9f, 64);
export const KVM_SET_VCPU_EVENTS = kvmIoctl(1, 0xa0, 64);

/** The KVM API version every kernel since 2.6.22 reports. */
export const KVM_API_VERSION = 12;

/** KVM_CHECK_EXTENSION capabilities vmkit asks about. */
export const KVM_CAP_IRQCHIP = 0;
export const KVM_CAP_USER_MEMORY = 3;
export const KVM_CAP_SET_TSS_ADDR = 4;
export const KVM_CAP_EXT_CPUID = 7;
export const KVM_CAP_NR_VCPUS = 9;
export const KVM_CAP_NR_MEMSLOTS = 10;
export const KVM_CAP_PIT2 = 33;
export const KVM_CAP_SET_IDENTITY_MAP_ADDR = 37;
export const KVM_CAP_MAX_VCPUS = 66;
export const KVM_CAP_READONLY_MEM = 81;
export const KVM_CAP_IMMEDIATE_EXIT = 136;
export const KVM_CAP_SPLIT_IRQCHIP = 121;
export const KVM_CAP_SIGNAL_MSI = 77;

/** `struct kvm_pit_config` flags: port 61h (gate and OUT of counter 2) answered in the kernel. */
export const KVM_PIT_SPEAKER_DUMMY = 1;
/** `struct kvm_mp_state` values. */
export const KVM_MP_STATE_RUNNABLE = 0;
export const KVM_MP_STATE_UNINITIALIZED = 1;

/** `struct kvm_userspace_memory_region` flags. */
export const KVM_MEM_LOG_DIRTY_PAGES = 1 << 0;
export const KVM_MEM_READONLY = 1 << 1;

/** `kvm_run.exit_reason` values. */
export const KVM_EXIT_UNKNOWN = 0;
export const KVM_EXIT_EXCEPTION = 1;
export const KVM_EXIT_IO = 2;
export const KVM_EXIT_DEBUG = 4;
export const KVM_EXIT_HLT = 5;
export const KVM_EXIT_MMIO = 6;
export const KVM_EXIT_IRQ_WINDOW_OPEN = 7;
export const KVM_EXIT_SHUTDOWN = 8;
export const KVM_EXIT_FAIL_ENTRY = 9;
export const KVM_EXIT_INTR = 10;
export const KVM_EXIT_INTERNAL_ERROR = 17;
export const KVM_EXIT_SYSTEM_EVENT = 24;
export const KVM_EXIT_IO_OUT = 1;

/** Offsets in the vCPU's shared `struct kvm_run` page. */
export const RUN_REQUEST_INTERRUPT_WINDOW = 0; // u8
export const RUN_IMMEDIATE_EXIT = 1; // u8
export const RUN_EXIT_REASON = 8; // u32
export const RUN_READY_FOR_INTERRUPT_INJECTION = 12; // u8
export const RUN_IF_FLAG = 13; // u8
export const RUN_IO_DIRECTION = 32; // u8
export const RUN_IO_SIZE = 33; // u8
export const RUN_IO_PORT = 34; // u16
export const RUN_IO_COUNT = 36; // u32
export const RUN_IO_DATA_OFFSET = 40; // u64
export const RUN_MMIO_PHYS_ADDR = 32; // u64
export const RUN_MMIO_DATA = 40; // u8[8]
export const RUN_MMIO_LEN = 48; // u32
export const RUN_MMIO_IS_WRITE = 52; // u8
export const RUN_INTERNAL_SUBERROR = 32; // u32
export const RUN_FAIL_ENTRY_REASON = 32; // u64 hardware_entry_failure_reason

/** `struct kvm_regs` (144 bytes): rax rbx rcx rdx rsi rdi rsp rbp r8..r15 rip rflags. */
export const KVM_REGS_BYTES = 144;
/** The x86 register number (RAX=0 RCX=1 ... ModRM order) of each kvm_regs slot 0..15. */
export const KVM_REGS_GPR_ORDER = [0, 3, 1, 2, 6, 7, 4, 5, 8, 9, 10, 11, 12, 13, 14, 15];
export const KVM_REGS_RIP = 128;
export const KVM_REGS_RFLAGS = 136;

/** `struct kvm_sregs` (312 bytes). */
export const KVM_SREGS_BYTES = 312;
/** Offsets of cs ds es fs gs ss tr ldt (24-byte `struct kvm_segment` each). */
export const SREGS_CS = 0, SREGS_DS = 24, SREGS_ES = 48, SREGS_FS = 72, SREGS_GS = 96;
export const SREGS_SS = 120, SREGS_TR = 144, SREGS_LDT = 168;
export const SREGS_GDT = 192, SREGS_IDT = 208; // struct kvm_dtable: base u64, limit u16
export const SREGS_CR0 = 224, SREGS_CR2 = 232, SREGS_CR3 = 240, SREGS_CR4 = 248;
export const SREGS_CR8 = 256, SREGS_EFER = 264, SREGS_APIC_BASE = 272;
/** `struct kvm_segment` fields. */
export const SEG_BASE = 0, SEG_LIMIT = 8, SEG_SELECTOR = 12, SEG_TYPE = 14, SEG_PRESENT = 15;
export const SEG_DPL = 16, SEG_DB = 17, SEG_S = 18, SEG_L = 19, SEG_G = 20, SEG_AVL = 21;
export const SEG_UNUSABLE = 22;

/** `struct kvm_fpu` (416 bytes): FXSAVE-like. */
export const KVM_FPU_BYTES = 416;
export const FPU_FPR = 0, FPU_FCW = 128, FPU_FSW = 130, FPU_FTWX = 132, FPU_LAST_OPCODE = 134;
export const FPU_LAST_IP = 136, FPU_LAST_DP = 144, FPU_XMM = 152, FPU_MXCSR = 408;

/** `struct kvm_cpuid2` header (nent u32, padding u32) and 40-byte `kvm_cpuid_entry2`s. */
export const CPUID_ENTRY_BYTES = 40;
export const KVM_CPUID_FLAG_SIGNIFCANT_INDEX = 1;

/** `struct kvm_msrs` header (nmsrs u32, pad u32) then 16-byte entries (index u32, pad, data u64). */
export const MSR_ENTRY_BYTES = 16;
