// The region function's layout shared by the compiler and its emitters: the imported
// helpers' indices and the wasm locals that hold guest registers and lazy-flag operands

/** Imported helpers, by function index. */
export const IMP_RD = 0, IMP_WR = 1, IMP_COND = 2;

// Locals: 0 is the budget parameter.
export const L_BUDGET = 0, L_REG = 1, L_N = 9, L_NEXT = 10, L_EIP = 11, L_F = 12, L_M = 13;
export const L_OP = 14, L_SZ = 15, L_D = 16, L_S = 17, L_R = 18, L_LIN = 19, L_A = 20, L_B = 21;
export const L_V = 22, L_E = 23, L_ST = 24, L_TU = 25, L_T = 26, L_CNT = 27;
/** The i64 locals (a product, a dividend and quotient), after the i32 ones. */
export const L_P = 28, L_Q = 29;
/** One more i32 local, after the i64 ones (a shift count from CL). */
export const L_W = 30;
