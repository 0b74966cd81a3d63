// The 82078's registers and status bits as QEMU 7.2's isa-fdc has them (82078 data sheet)

/** Status register 0 bits (82078 data sheet, "Status Register 0"). */
export const SR0_HEAD = 0x04;
export const SR0_SEEK = 0x20;
export const SR0_ABNTERM = 0x40;
export const SR0_INVCMD = 0x80;
export const SR0_RDYCHG = 0xc0;
/** Status register 1: end of cylinder, not writable, missing address mark. */
export const SR1_EC = 0x80;
export const SR1_NW = 0x02;
export const SR1_MA = 0x01;
/** Status register 2: scan equal hit (QEMU reports it for every SCAN). */
export const SR2_SEH = 0x08;

export const SRA_NDRV2 = 0x40;
export const SRA_INTPEND = 0x80;
export const SRB_MTR0 = 0x01;
export const SRB_MTR1 = 0x02;
export const SRB_DR0 = 0x20;

export const DOR_SELMASK = 0x01;
export const DOR_NRESET = 0x04;
export const DOR_DMAEN = 0x08;
export const DOR_MOTEN0 = 0x10;
export const DOR_MOTEN1 = 0x20;

export const DSR_DRATEMASK = 0x03;
export const DSR_PWRDOWN = 0x40;
export const DSR_SWRESET = 0x80;

export const MSR_CMDBUSY = 0x10;
export const MSR_NONDMA = 0x20;
export const MSR_DIO = 0x40;
export const MSR_RQM = 0x80;

/** CONFIGURE's byte at power-on: EIS and EFIFO (bits 6 and 5) set, as QEMU's realize sets it. */
export const CONFIG_DEFAULT = 0x60;

/** Sense-interrupt answers a reset owes the four drive slots. */
export const RESET_SENSEI_COUNT = 4;
/** The 82078's answer to VERSION. */
export const FDC_VERSION = 0x90;

/**
 * What a data command's execution phase does: READ to the host, WRITE to the medium, the
 * SCANs compare memory with the medium, VERIFY reads the medium and moves nothing.
 */
export const DIR_READ = 1, DIR_WRITE = 2, DIR_SCANE = 3, DIR_SCANL = 4, DIR_SCANH = 5;
export const DIR_VERIFY = 6;

/** How long QEMU's READ ID takes (its result timer: a fiftieth of a second). */
export const READ_ID_NS = 20_000_000;
