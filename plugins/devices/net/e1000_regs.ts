// Register offsets and bits of the Intel 8254x family (82540EM, as QEMU's `e1000`), from
// Intel's PCI/PCI-X Family of Gigabit Ethernet Controllers Software Developer's Manual

export const E1000_VENDOR_ID = 0x8086;
/** 82540EM desktop, the device QEMU's `e1000` presents. */
export const E1000_DEV_ID_82540EM = 0x100e;
export const E1000_MMIO_BYTES = 0x20000;
export const E1000_IO_BYTES = 0x40;

// Registers (byte offsets in BAR 0).
export const CTRL = 0x0000;
export const STATUS = 0x0008;
export const EECD = 0x0010;
export const EERD = 0x0014;
export const CTRL_EXT = 0x0018;
export const MDIC = 0x0020;
export const ICR = 0x00c0;
export const ITR = 0x00c4;
export const ICS = 0x00c8;
export const IMS = 0x00d0;
export const IMC = 0x00d8;
export const RCTL = 0x0100;
export const TCTL = 0x0400;
export const RDBAL = 0x2800;
export const RDBAH = 0x2804;
export const RDLEN = 0x2808;
export const RDH = 0x2810;
export const RDT = 0x2818;
export const TDBAL = 0x3800;
export const TDBAH = 0x3804;
export const TDLEN = 0x3808;
export const TDH = 0x3810;
export const TDT = 0x3818;
/** Statistics: clear on read. */
export const STATS_START = 0x4000;
export const STATS_END = 0x4100;
export const GPRC = 0x4074;
export const GPTC = 0x4080;
export const GORCL = 0x4088;
export const GOTCL = 0x4090;
export const TPR = 0x40d0;
export const TPT = 0x40d4;
export const RAL0 = 0x5400;
export const RAH0 = 0x5404;

export const CTRL_SLU = 1 << 6;
export const CTRL_RST = 1 << 26;
export const CTRL_PHY_RST = 1 << 31;
export const STATUS_FD = 1 << 0;
export const STATUS_LU = 1 << 1;
export const STATUS_SPEED_1000 = 2 << 6;

export const EECD_SK = 1 << 0;
export const EECD_CS = 1 << 1;
export const EECD_DI = 1 << 2;
export const EECD_DO = 1 << 3;
export const EECD_REQ = 1 << 6;
export const EECD_GNT = 1 << 7;
export const EECD_PRES = 1 << 8;
/** Words in the 93C46 EEPROM of an 82540EM, and the sum they must have. */
export const EEPROM_WORDS = 64;
export const EEPROM_SUM = 0xbaba;
export const EERD_START = 1 << 0;
export const EERD_DONE = 1 << 4;

export const MDIC_OP_WRITE = 1 << 26;
export const MDIC_OP_READ = 2 << 26;
export const MDIC_READY = 1 << 28;
export const MDIC_ERROR = 1 << 30;

// Interrupt causes (ICR, ICS, IMS, IMC).
export const ICR_TXDW = 1 << 0;
export const ICR_TXQE = 1 << 1;
export const ICR_LSC = 1 << 2;
export const ICR_RXDMT0 = 1 << 4;
export const ICR_RXO = 1 << 6;
export const ICR_RXT0 = 1 << 7;

export const RCTL_EN = 1 << 1;
export const RCTL_UPE = 1 << 3;
export const RCTL_MPE = 1 << 4;
export const RCTL_BAM = 1 << 15;
export const RCTL_BSEX = 1 << 25;
export const RCTL_SECRC = 1 << 26;
export const TCTL_EN = 1 << 1;

// Transmit descriptors.
export const TXD_CMD_EOP = 0x01;
export const TXD_CMD_IC = 0x04;
export const TXD_CMD_RS = 0x08;
export const TXD_CMD_RPS = 0x10;
export const TXD_CMD_DEXT = 0x20;
export const TXD_CMD_TSE = 0x04;
export const TXD_DTYP_CONTEXT = 0x0;
export const TXD_DTYP_DATA = 0x1;
export const TXD_STAT_DD = 0x01;
export const TXD_POPTS_IXSM = 0x01;
export const TXD_POPTS_TXSM = 0x02;
export const TUCMD_IP = 0x02;
export const TUCMD_TCP = 0x01;

// Receive descriptor status.
export const RXD_STAT_DD = 0x01;
export const RXD_STAT_EOP = 0x02;
export const RXD_STAT_IXSM = 0x04;

// PHY (an M88E1011 at MDIO address 1).
export const PHY_ADDR = 1;
export const PHY_CTRL = 0;
export const PHY_STATUS = 1;
export const PHY_ID1 = 2;
export const PHY_ID2 = 3;
export const PHY_CTRL_RESET = 0x8000;
export const PHY_CTRL_RESTART_AN = 0x0200;
