/**
 * The problems a refused provisioning request is reported with (safeParseRequest), for the tests that pin their
 * words: the parser's own (request-refusal-messages.test.ts) and the 400 answer of POST /provision
 * (provision-bad-request.test.ts). The smallest valid request they start from is fixtures.ts's REQUEST.
 */
import { expect } from "vitest";
import type { Problem } from "../../functions/lib/domain/errors.js";
import { LAUNCHER_TRUST_REQUIRED, safeParseRequest } from "../../functions/lib/domain/request.js";

/** Issue #9: a created launcher says whom it trusts (REQUEST: the account, explicitly); one that does not is told so. */
export const LAUNCHER_TRUST = { path: "launcher", message: LAUNCHER_TRUST_REQUIRED };

/** The problems the parser reports for `input` (fails the test when it accepts it). */
export function problemsFor(input: unknown): Problem[] {
  const result = safeParseRequest(input);
  expect(result.ok, "the request is refused").toBe(false);
  return result.ok ? [] : result.problems;
}
