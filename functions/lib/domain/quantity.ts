/**
 * Kubernetes resource quantities as numbers, to compare a head job's requests with a namespace's quota
 * ("2Gi" ≤ "8Gi", "500m" ≤ "1"). The grammar is checked by the request schema; this only reads it.
 */
const SUFFIX: Record<string, number> = {
  "": 1,
  n: 1e-9,
  u: 1e-6,
  m: 1e-3,
  k: 1e3,
  M: 1e6,
  G: 1e9,
  T: 1e12,
  P: 1e15,
  E: 1e18,
  Ki: 2 ** 10,
  Mi: 2 ** 20,
  Gi: 2 ** 30,
  Ti: 2 ** 40,
  Pi: 2 ** 50,
  Ei: 2 ** 60,
};

/** The quantity's value (bytes, cores, ...), or NaN when it is not one. */
export function quantityValue(quantity: string): number {
  const m = /^([+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+))(?:[eE]([+-]?[0-9]+)|(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E))?$/.exec(quantity);
  if (!m) return Number.NaN;
  const [, number, exponent, suffix] = m;
  return Number(number) * (exponent !== undefined ? 10 ** Number(exponent) : SUFFIX[suffix ?? ""]!);
}
