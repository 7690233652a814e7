/**
 * The invocation a call belongs to, for runners that can stop one: a real Lambda past its timeout is frozen and
 * makes no further call; the local Step Functions runner (local/sfn/runner.ts) cannot freeze a handler, so it runs
 * each in an invocation scope and aborts the scope's signal at the timeout. The product's AWS clients (clients.ts)
 * and Kubernetes clients (kube/kube-client.ts) then refuse to start another call for it (InvocationCutOff) and the
 * Kubernetes requests in flight are aborted. Outside a runner there is no scope and nothing changes.
 */
import { AsyncLocalStorage } from "node:async_hooks";

/** A call started by an invocation that its runner has stopped (a Lambda past its timeout). */
export class InvocationCutOff extends Error {
  constructor(message = "the invocation is past its timeout: no further call is made") {
    super(message);
    this.name = "InvocationCutOff";
  }
}

const scope = new AsyncLocalStorage<AbortSignal>();

/** Run `fn` (a handler) as one invocation that `signal` stops. */
export function runInInvocation<T>(signal: AbortSignal, fn: () => T): T {
  return scope.run(signal, fn);
}

/** The signal of the invocation the caller belongs to, if a runner gave one. */
export function invocationSignal(): AbortSignal | undefined {
  return scope.getStore();
}

/** Throws InvocationCutOff when the caller's invocation has been stopped. */
export function assertInvocationLive(): void {
  if (scope.getStore()?.aborted) throw new InvocationCutOff();
}
