/**
 * Policy documents compared by meaning, as IAM returns them (URL-encoded) against what the product wants
 * or what it recorded: key order and one-element arrays vs scalars do not matter.
 */
import { canonicalPolicy as canonical, decodePolicy } from "../../lib/domain/policies.js";

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
