/**
 * Policy documents compared by meaning, as IAM returns them (URL-encoded) against what the product wants
 * or what it recorded: key order and one-element arrays vs scalars do not matter.
 */

function canonical(value: unknown): unknown {
  if (Array.isArray(value)) {
    const items = value.map(canonical);
    return items.length === 1
      ? items[0]
      : items
          .map((i) => JSON.stringify(i))
          .sort()
          .map((i) => JSON.parse(i));
  }
  if (value && typeof value === "object") {
    return Object.fromEntries(
      Object.keys(value as Record<string, unknown>)
        .sort()
        .map((k) => [k, canonical((value as Record<string, unknown>)[k])]),
    );
  }
  return value;
}

/** IAM returns policy documents URL-encoded. */
function decodePolicy(document: string | undefined): unknown {
  if (!document) return undefined;
  try {
    return JSON.parse(decodeURIComponent(document));
  } catch {
    return undefined;
  }
}

export function samePolicy(current: string | undefined, desired: unknown): boolean {
  return JSON.stringify(canonical(decodePolicy(current))) === JSON.stringify(canonical(desired));
}

/** A document as IAM returned it, as plain JSON text (what the compensator writes back). */
export function policyText(document: string): string {
  try {
    return decodeURIComponent(document);
  } catch {
    return document;
  }
}

/** A recorded previous document compared with the current one, by meaning. */
export function sameAsRecorded(current: string | undefined, recorded: string): boolean {
  try {
    return samePolicy(current, JSON.parse(recorded));
  } catch {
    return current !== undefined && policyText(current) === recorded;
  }
}
