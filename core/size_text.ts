// Sizes and numbers as QEMU prints them: C's %g, size_to_str (`196 KiB`)

/**
 * Formats a number as C's `printf("%.Ng")`: N significant digits, trailing zeros
 * dropped, exponent form `1e+03` when the exponent is >= N or < -4.
 */
export function formatG(value: number, precision: number): string {
  if (value === 0) return "0";
  // The exponent after rounding to `precision` digits decides the form, as in C.
  const [mantissa, e] = value.toExponential(precision - 1).split("e");
  const exponent = Number(e);
  if (exponent < -4 || exponent >= precision) {
    const m = mantissa.includes(".") ? mantissa.replace(/\.?0+$/, "") : mantissa;
    const digits = String(Math.abs(exponent)).padStart(2, "0");
    return `${m}e${exponent < 0 ? "-" : "+"}${digits}`;
  }
  const text = value.toFixed(Math.max(0, precision - 1 - exponent));
  return text.includes(".") ? text.replace(/\.?0+$/, "") : text;
}

const SIZE_SUFFIXES = ["", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"];

/**
 * QEMU's `size_to_str`: `196 KiB`, `1 GiB`, `0.977 MiB`, three significant digits.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { sizeToStr } from "./size_text.ts";
 *
 * assert.equal(sizeToStr(1073741824), "1 GiB");
 * assert.equal(sizeToStr(200704), "196 KiB");
 * assert.equal(sizeToStr(0), "0 B");
 * assert.equal(sizeToStr(1024000), "0.977 MiB");
 * ```
 */
export function sizeToStr(bytes: number): string {
  if (bytes <= 0) return `${formatG(bytes, 3)} B`;
  // frexp(bytes / (1000/1024)): the binary exponent e with value = m * 2^e, 0.5 <= m < 1.
  const x = bytes / (1000 / 1024);
  let e = Math.floor(Math.log2(x)) + 1;
  if (2 ** (e - 1) > x) e--;
  else if (2 ** e <= x) e++;
  const i = Math.max(0, Math.min(SIZE_SUFFIXES.length - 1, Math.floor((e - 1) / 10)));
  const div = 2 ** (i * 10);
  return `${formatG(bytes / div, 3)} ${SIZE_SUFFIXES[i]}B`;
}
