/**
 * Fault injection for the emulators, per operation. Operation names:
 *   AWS:  "<service>:<Action>"   e.g. "iam:CreateRole", "sts:GetCallerIdentity", "eks:CreateAccessEntry", "events:PutEvents"
 *   Kube: "kube:<VERB> <resource>" e.g. "kube:PUT configmaps", "kube:POST jobs", "kube:GET pods"
 * A rule matches an operation exactly, or with "*" as a wildcard ("iam:*", "kube:* configmaps").
 */

export type FaultKind =
  | "throttle" // AWS: Throttling / ThrottlingException (HTTP 400/429); kube: 429 TooManyRequests
  | "5xx" // AWS: ServiceUnavailable / InternalFailure (HTTP 500/503); kube: 503
  | "conflict" // kube: 409 Conflict (stale resourceVersion); AWS: ConcurrentModification / ResourceInUseException
  | "latency" // delay the answer by `ms`, then answer normally
  | "permanent"; // a permanent error: AWS AccessDenied (403); kube 403 Forbidden

export interface FaultRule {
  operation: string;
  kind: FaultKind;
  /** how many matching calls fail (default: every one) */
  times?: number;
  /** latency in milliseconds (kind "latency") */
  ms?: number;
  /** skip this many matching calls before the fault starts (default 0) */
  after?: number;
}

export interface FaultDecision {
  kind: FaultKind;
  ms?: number;
}

export class FaultInjector {
  private rules: Array<FaultRule & { seen: number; fired: number }> = [];
  /** every fault that fired, in order, for tests to assert on */
  readonly fired: Array<{ operation: string; kind: FaultKind }> = [];

  inject(rule: FaultRule): this {
    this.rules.push({ ...rule, seen: 0, fired: 0 });
    return this;
  }

  clear(): void {
    this.rules = [];
    this.fired.length = 0;
  }

  /** Called by an emulator for each operation; returns the fault to apply, if any. */
  check(operation: string): FaultDecision | undefined {
    for (const rule of this.rules) {
      if (!matches(rule.operation, operation)) continue;
      rule.seen++;
      if (rule.seen <= (rule.after ?? 0)) continue;
      if (rule.times !== undefined && rule.fired >= rule.times) continue;
      rule.fired++;
      this.fired.push({ operation, kind: rule.kind });
      return { kind: rule.kind, ms: rule.ms };
    }
    return undefined;
  }
}

function matches(pattern: string, operation: string): boolean {
  if (pattern === operation) return true;
  const re = new RegExp(
    `^${pattern
      .split("*")
      .map((s) => s.replace(/[.+?^${}()|[\]\\]/g, "\\$&"))
      .join(".*")}$`,
  );
  return re.test(operation);
}

/** Parse a CLI flag value: "iam:CreateRole=throttle*2", "kube:PUT configmaps=conflict", "eks:*=latency:200". */
export function parseFaultFlag(value: string): FaultRule {
  const eq = value.lastIndexOf("=");
  if (eq <= 0) throw new Error(`fault "${value}" must look like <operation>=<kind>[:ms][*times]`);
  const operation = value.slice(0, eq);
  const m = /^(throttle|5xx|conflict|latency|permanent)(?::(\d+))?(?:\*(\d+))?$/.exec(value.slice(eq + 1));
  if (!m) throw new Error(`fault "${value}": kind must be throttle, 5xx, conflict, latency[:ms] or permanent, optionally *times`);
  return { operation, kind: m[1] as FaultKind, ms: m[2] ? Number(m[2]) : undefined, times: m[3] ? Number(m[3]) : undefined };
}
