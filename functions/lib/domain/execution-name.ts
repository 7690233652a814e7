/**
 * Step Functions execution names. With an idempotency key the name is derived from tenant + key, so a
 * repeated request maps to the same execution (Step Functions refuses a second execution of one name
 * for 90 days); without one it is unique per call.
 *
 * Names keep to [A-Za-z0-9_-] and at most 80 characters: Step Functions' rules, and the subset that
 * CloudWatch logging and X-Ray also accept.
 */
import { createHash, randomBytes } from "node:crypto";

export const MAX_EXECUTION_NAME_LENGTH = 80;
/** Hex characters of the hash that replaces the end of an over-long name. */
const HASH_LENGTH = 12;

/** Anything outside letters, digits, '_' and '-' becomes '-'. */
export function sanitiseExecutionName(raw: string): string {
  const cleaned = raw.replace(/[^A-Za-z0-9_-]/g, "-");
  if (cleaned.length <= MAX_EXECUTION_NAME_LENGTH && cleaned === raw) return cleaned;
  // Shortened or rewritten names carry a hash of the raw value, so two different inputs stay two names.
  const hash = createHash("sha256").update(raw).digest("hex").slice(0, HASH_LENGTH);
  return `${cleaned.slice(0, MAX_EXECUTION_NAME_LENGTH - HASH_LENGTH - 1)}-${hash}`;
}

/** 2025-01-31T12:34:56.789Z → 20250131T123456Z */
function compactTimestamp(now: Date): string {
  return now
    .toISOString()
    .replace(/\.\d+Z$/, "Z")
    .replace(/[-:]/g, "");
}

export interface ExecutionNameOptions {
  now?: Date;
  /** 8 random hex characters by default */
  random?: () => string;
}

/**
 * `<tenant>_<key>` when the request carries an idempotency key, else `<tenant>-<timestamp>-<random>`.
 * The tenant is a DNS label (no '_'), so '_' splits tenant from key unambiguously: tenant "a-b" with key
 * "c" and tenant "a" with key "b-c" get different names, and keyed names never collide with unkeyed ones.
 */
export function executionNameFor(request: { tenant: string; idempotencyKey?: string }, options: ExecutionNameOptions = {}): string {
  if (request.idempotencyKey) return sanitiseExecutionName(`${request.tenant}_${request.idempotencyKey}`);
  const random = options.random?.() ?? randomBytes(4).toString("hex");
  return sanitiseExecutionName(`${request.tenant}-${compactTimestamp(options.now ?? new Date())}-${random}`);
}

/** A tenant as request.ts accepts it: a DNS-1123 label of at most 40 characters (never a '_'). */
const TENANT = "[a-z0-9](?:[-a-z0-9]{0,38}[a-z0-9])?";
const KEYED_NAME = new RegExp(`^(${TENANT})_`);
const UNKEYED_NAME = new RegExp(`^(${TENANT})-\\d{8}T\\d{6}Z-[0-9a-f]{8}$`);

/**
 * The tenant an execution name of `executionNameFor` belongs to, or undefined for a name it cannot have
 * made (a console run, another tool's). Unambiguous for both forms: a keyed name's tenant is everything
 * before its first '_' (tenants have none, and shortening keeps the first 67 characters); an unkeyed
 * name never contains '_' and ends in exactly `-<yyyymmdd>T<hhmmss>Z-<8 hex>`, which is stripped whole.
 */
export function tenantOfExecutionName(name: string): string | undefined {
  if (name.includes("_")) return KEYED_NAME.exec(name)?.[1];
  return UNKEYED_NAME.exec(name)?.[1];
}

/** arn:aws:states:<region>:<account>:stateMachine:<machine> + name → the execution's ARN. */
export function executionArnFor(stateMachineArn: string, executionName: string): string {
  const marker = ":stateMachine:";
  const at = stateMachineArn.indexOf(marker);
  if (at < 0) throw new Error(`not a state machine ARN: ${stateMachineArn}`);
  return `${stateMachineArn.slice(0, at)}:execution:${stateMachineArn.slice(at + marker.length)}:${executionName}`;
}
