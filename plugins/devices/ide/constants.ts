// ATA/ATAPI register bits, command codes and SCSI/MMC sense codes the IDE models use

/** Status register bits (ATA/ATAPI-6 §7.15). */
export const ATA_SR_ERR = 0x01;
export const ATA_SR_DRQ = 0x08;
/** Device seek complete (obsolete in ATA-6, still set by QEMU and old drives). */
export const ATA_SR_DSC = 0x10;
export const ATA_SR_DF = 0x20;
export const ATA_SR_DRDY = 0x40;
export const ATA_SR_BSY = 0x80;

/** Error register bits (ATA/ATAPI-6 §7.9). */
export const ATA_ER_ABRT = 0x04;
export const ATA_ER_IDNF = 0x10;
export const ATA_ER_UNC = 0x40;

/** Device control register bits (ATA/ATAPI-6 §7.8). */
export const ATA_DC_NIEN = 0x02;
export const ATA_DC_SRST = 0x04;
export const ATA_DC_HOB = 0x80;

/** Device register bits. */
export const ATA_DEV_LBA = 0x40;
export const ATA_DEV_DEV = 0x10;

/** ATAPI interrupt reason bits in the sector count register (ATA/ATAPI-6 §7.18). */
export const ATAPI_INT_REASON_CD = 0x01;
export const ATAPI_INT_REASON_IO = 0x02;

/** ATA command codes (ATA/ATAPI-6 table 2 and ACS-2 table B.2). */
export const ATA_CMD_DEVICE_RESET = 0x08;
export const ATA_CMD_RECALIBRATE = 0x10;
export const ATA_CMD_READ_SECTORS = 0x20;
export const ATA_CMD_READ_SECTORS_NORETRY = 0x21;
export const ATA_CMD_READ_SECTORS_EXT = 0x24;
export const ATA_CMD_READ_DMA_EXT = 0x25;
export const ATA_CMD_READ_NATIVE_MAX_ADDRESS_EXT = 0x27;
export const ATA_CMD_READ_MULTIPLE_EXT = 0x29;
export const ATA_CMD_WRITE_SECTORS = 0x30;
export const ATA_CMD_WRITE_SECTORS_NORETRY = 0x31;
export const ATA_CMD_WRITE_SECTORS_EXT = 0x34;
export const ATA_CMD_WRITE_DMA_EXT = 0x35;
export const ATA_CMD_WRITE_MULTIPLE_EXT = 0x39;
export const ATA_CMD_READ_VERIFY_SECTORS = 0x40;
export const ATA_CMD_READ_VERIFY_SECTORS_NORETRY = 0x41;
export const ATA_CMD_READ_VERIFY_SECTORS_EXT = 0x42;
export const ATA_CMD_SEEK = 0x70;
export const ATA_CMD_EXECUTE_DEVICE_DIAGNOSTIC = 0x90;
export const ATA_CMD_INITIALIZE_DEVICE_PARAMETERS = 0x91;
export const ATA_CMD_STANDBY_IMMEDIATE_OLD = 0x94;
export const ATA_CMD_IDLE_IMMEDIATE_OLD = 0x95;
export const ATA_CMD_STANDBY_OLD = 0x96;
export const ATA_CMD_IDLE_OLD = 0x97;
export const ATA_CMD_CHECK_POWER_MODE_OLD = 0x98;
export const ATA_CMD_SLEEP_OLD = 0x99;
export const ATA_CMD_PACKET = 0xa0;
export const ATA_CMD_IDENTIFY_PACKET_DEVICE = 0xa1;
export const ATA_CMD_READ_MULTIPLE = 0xc4;
export const ATA_CMD_WRITE_MULTIPLE = 0xc5;
export const ATA_CMD_SET_MULTIPLE_MODE = 0xc6;
export const ATA_CMD_READ_DMA = 0xc8;
export const ATA_CMD_READ_DMA_NORETRY = 0xc9;
export const ATA_CMD_WRITE_DMA = 0xca;
export const ATA_CMD_WRITE_DMA_NORETRY = 0xcb;
export const ATA_CMD_STANDBY_IMMEDIATE = 0xe0;
export const ATA_CMD_IDLE_IMMEDIATE = 0xe1;
export const ATA_CMD_STANDBY = 0xe2;
export const ATA_CMD_IDLE = 0xe3;
export const ATA_CMD_CHECK_POWER_MODE = 0xe5;
export const ATA_CMD_SLEEP = 0xe6;
export const ATA_CMD_FLUSH_CACHE = 0xe7;
export const ATA_CMD_FLUSH_CACHE_EXT = 0xea;
export const ATA_CMD_IDENTIFY_DEVICE = 0xec;
export const ATA_CMD_SET_FEATURES = 0xef;
export const ATA_CMD_READ_NATIVE_MAX_ADDRESS = 0xf8;

/** SET FEATURES subcommands (ATA/ATAPI-6 §8.46). */
export const SETFEATURES_WC_ON = 0x02;
export const SETFEATURES_XFER = 0x03;
export const SETFEATURES_WC_OFF = 0x82;

/** SCSI/MMC operation codes (SPC-3, MMC-3) an ATAPI CD-ROM answers. */
export const GPCMD_TEST_UNIT_READY = 0x00;
export const GPCMD_REQUEST_SENSE = 0x03;
export const GPCMD_INQUIRY = 0x12;
export const GPCMD_MODE_SENSE_6 = 0x1a;
export const GPCMD_START_STOP_UNIT = 0x1b;
export const GPCMD_PREVENT_ALLOW_MEDIUM_REMOVAL = 0x1e;
export const GPCMD_READ_FORMAT_CAPACITIES = 0x23;
export const GPCMD_READ_CDVD_CAPACITY = 0x25;
export const GPCMD_READ_10 = 0x28;
export const GPCMD_SEEK = 0x2b;
export const GPCMD_READ_TOC_PMA_ATIP = 0x43;
export const GPCMD_GET_CONFIGURATION = 0x46;
export const GPCMD_GET_EVENT_STATUS_NOTIFICATION = 0x4a;
export const GPCMD_READ_DISC_INFO = 0x51;
export const GPCMD_MODE_SENSE_10 = 0x5a;
export const GPCMD_READ_12 = 0xa8;
export const GPCMD_SET_SPEED = 0xbb;
export const GPCMD_MECHANISM_STATUS = 0xbd;

/** Sense keys (SPC-3 table 27). */
export const SENSE_NONE = 0x00;
export const SENSE_NOT_READY = 0x02;
export const SENSE_MEDIUM_ERROR = 0x03;
export const SENSE_ILLEGAL_REQUEST = 0x05;
export const SENSE_UNIT_ATTENTION = 0x06;

/** Additional sense codes (SPC-3 annex D). */
export const ASC_ILLEGAL_OPCODE = 0x20;
export const ASC_LOGICAL_BLOCK_OOR = 0x21;
export const ASC_INV_FIELD_IN_CMD_PACKET = 0x24;
export const ASC_MEDIUM_MAY_HAVE_CHANGED = 0x28;
export const ASC_SAVING_PARAMETERS_NOT_SUPPORTED = 0x39;
export const ASC_MEDIUM_NOT_PRESENT = 0x3a;
export const ASC_MEDIA_REMOVAL_PREVENTED = 0x53;

/** Bytes in an ATA sector and in a CD-ROM (mode 1) sector. */
export const ATA_SECTOR_SIZE = 512;
export const CD_SECTOR_SIZE = 2048;
/** Sectors a READ/WRITE MULTIPLE block may hold (IDENTIFY word 47). */
export const MAX_MULT_SECTORS = 16;

/** What a PIO data transfer is doing, so the end of a DRQ block knows what follows. */
export const Xfer = {
  None: 0,
  /** Device-to-host data already in the buffer (IDENTIFY); then the command completes. */
  BufferIn: 1,
  AtaRead: 2,
  AtaWrite: 3,
  /** Receiving the 12-byte ATAPI command packet. */
  Packet: 4,
  /** ATAPI data-in from the buffer (a reply), DRQ block by DRQ block. */
  AtapiBuffer: 5,
  /** ATAPI data-in read from the medium, DRQ block by DRQ block. */
  AtapiRead: 6,
} as const;

/** DMA work waiting for the bus master. */
export const DmaKind = { None: 0, AtaRead: 1, AtaWrite: 2, AtapiRead: 3, AtapiBuffer: 4 } as const;
