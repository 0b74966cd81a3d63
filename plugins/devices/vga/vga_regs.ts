// VGA register indexes, register bits and port numbers (names as in Linux video/vga.h)

/** Sequencer registers (IBM VGA technical reference, "Sequencer Registers"). */
export const VGA_SEQ_RESET = 0x00;
export const VGA_SEQ_CLOCK_MODE = 0x01;
export const VGA_SEQ_PLANE_WRITE = 0x02;
export const VGA_SEQ_CHARACTER_MAP = 0x03;
export const VGA_SEQ_MEMORY_MODE = 0x04;
/** SR04 bits: odd/even host writes disabled (bit 2) and chain-4 (bit 3). */
export const VGA_SR04_SEQ_MODE = 0x04;
export const VGA_SR04_CHN_4M = 0x08;

/** Graphics controller registers. */
export const VGA_GFX_SR_VALUE = 0x00;
export const VGA_GFX_SR_ENABLE = 0x01;
export const VGA_GFX_COMPARE_VALUE = 0x02;
export const VGA_GFX_DATA_ROTATE = 0x03;
export const VGA_GFX_PLANE_READ = 0x04;
export const VGA_GFX_MODE = 0x05;
export const VGA_GFX_MISC = 0x06;
export const VGA_GFX_COMPARE_MASK = 0x07;
export const VGA_GFX_BIT_MASK = 0x08;
/** GR05 bits: read mode 1 (bit 3) and host odd/even reads (bit 4). */
export const VGA_GR05_READ_MODE_1 = 0x08;
export const VGA_GR05_HOST_ODD_EVEN = 0x10;

/** CRT controller registers the adapters read or program. */
export const VGA_CRTC_H_DISP = 0x01;
export const VGA_CRTC_OVERFLOW = 0x07;
export const VGA_CRTC_MAX_SCAN = 0x09;
export const VGA_CRTC_START_HI = 0x0c;
export const VGA_CRTC_START_LO = 0x0d;
export const VGA_CRTC_V_SYNC_END = 0x11;
export const VGA_CRTC_V_DISP_END = 0x12;
export const VGA_CRTC_OFFSET = 0x13;
export const VGA_CRTC_MODE = 0x17;
export const VGA_CRTC_LINE_COMPARE = 0x18;

/** Attribute controller registers past the 16 palette entries. */
export const VGA_ATC_MODE = 0x10;
export const VGA_ATC_PLANE_ENABLE = 0x12;
export const VGA_ATC_PEL = 0x13;
export const VGA_ATC_COLOR_PAGE = 0x14;
export const VGA_ATC_COUNT = 0x15;

/** Ports of the VGA (names from Linux's include/video/vga.h). */
export const VGA_CRT_IM = 0x3b4;
export const VGA_CRT_DM = 0x3b5;
export const VGA_IS1_RM = 0x3ba;
export const VGA_ATT_W = 0x3c0;
export const VGA_ATT_R = 0x3c1;
export const VGA_MIS_W = 0x3c2;
export const VGA_IS0_R = 0x3c2;
export const VGA_ENABLE = 0x3c3;
export const VGA_SEQ_I = 0x3c4;
export const VGA_SEQ_D = 0x3c5;
export const VGA_PEL_MSK = 0x3c6;
export const VGA_PEL_IR = 0x3c7;
export const VGA_PEL_IW = 0x3c8;
export const VGA_PEL_D = 0x3c9;
export const VGA_FTC_R = 0x3ca;
export const VGA_MIS_R = 0x3cc;
export const VGA_GFX_I = 0x3ce;
export const VGA_GFX_D = 0x3cf;
export const VGA_CRT_IC = 0x3d4;
export const VGA_CRT_DC = 0x3d5;
export const VGA_IS1_RC = 0x3da;

/** Misc output bit 0: CRTC and input status 1 at 0x3dx (colour) instead of 0x3bx (mono). */
export const VGA_MIS_COLOR = 0x01;
/** Input status 1: display disabled (blanking) and vertical retrace. */
export const VGA_IS1_DE = 0x01;
export const VGA_IS1_VR = 0x08;
