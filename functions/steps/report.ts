/**
 * Report: tell the platform what happened, on the product's event bus.
 *  - `ready`: ComputeEnvironmentReady with everything a Seqera compute environment needs.
 *  - `failed`: ComputeEnvironmentFailed with the error and what compensation did, and returns
 *    `{ error, cause }` for the Fail state (ErrorPath/CausePath), so the execution's own error says what
 *    failed and what could not be undone. It never loses the original error, even if PutEvents fails.
 */
import { logger, stepHandler } from "../lib/workflow/middleware.js";
import { DEFAULTS } from "../lib/domain/request.js";
import { HEAD_JOB_ERROR_NAMES } from "../lib/domain/errors.js";
import { EVENT_SOURCE, FAILED_DETAIL_TYPE, READY_DETAIL_TYPE } from "../lib/domain/product-events.js";
import { putProductEvent, type EventDeps } from "../lib/workflow/event-bus.js";
import { compensationOutcome } from "../lib/workflow/compensation.js";
import type { RerunContext, WorkflowState } from "../lib/workflow/workflow-state.js";
import type { EnvironmentStatus } from "../lib/workflow/environment-registry.js";
import { readableCause } from "../lib/workflow/execution-summary.js";
import { STEP_FUNCTIONS } from "./catalog.js";
import { ownedResourcesOf, recordRunOutcome, type OutcomeDeps } from "../lib/workflow/environment-outcome.js";

/** The event names live with their schemas in domain/product-events.ts. */
export { EVENT_SOURCE, FAILED_DETAIL_TYPE, READY_DETAIL_TYPE };

/** The steps that build the environment (the catalog's `apply` handlers) in run order, with where each stores its result (`$.<key>`). */
const BUILD_STEPS = STEP_FUNCTIONS.filter((entry) => entry.handler === "apply").map((entry) => ({
  state: entry.state,
  key: entry.resultKey as keyof WorkflowState,
}));
/** The step that launches the head job: its result exists once the Job was created, so its failures are named by the error. */
const HEAD_JOB_STEP = BUILD_STEPS.find((step) => step.key === "headJob")!.state;
const HEAD_JOB_ERRORS = new Set<string>(HEAD_JOB_ERROR_NAMES);
/** What comes after the build steps: a failure with every build result in place is the report's own. */
const REPORT_STEP = STEP_FUNCTIONS.find((entry) => entry.module === "report" && entry.handler === "ready")!.state;

export interface ReportDeps extends OutcomeDeps, EventDeps {}

export interface FailureSummary {
  /** The original error name (what the Fail state reports as its error) */
  error: string;
  /** What failed, what was undone, what could not be undone */
  cause: string;
}

function requestField<T>(state: WorkflowState, pick: (r: Record<string, unknown>) => unknown, fallback: T): T {
  const request = (state.request ?? {}) as unknown as Record<string, unknown>;
  const value = pick(request);
  return (value ?? fallback) as T;
}

/** Put one event about this run's cluster on the product's bus; returns the bus name. */
function putEvent(
  state: WorkflowState,
  detailType: typeof READY_DETAIL_TYPE | typeof FAILED_DETAIL_TYPE,
  detail: unknown,
  deps: ReportDeps,
): Promise<string> {
  return putProductEvent(detailType, detail, state.cluster?.arn ? [state.cluster.arn] : [], deps);
}

/** The detail of ComputeEnvironmentReady: what a Seqera compute environment is configured with. */
function readyDetail(state: WorkflowState): Record<string, unknown> {
  const tenant = requestField(state, (r) => r.tenant, "");
  const namespace = state.rbac?.namespace ?? requestField(state, (r) => r.namespace, DEFAULTS.namespace);
  const serviceAccount = state.rbac?.serviceAccount ?? requestField(state, (r) => r.serviceAccount, DEFAULTS.serviceAccount);
  const computeServiceAccount = state.rbac?.computeServiceAccount;
  return {
    tenant,
    cluster: state.cluster
      ? { name: state.cluster.name, region: state.cluster.region, arn: state.cluster.arn, endpoint: state.cluster.endpoint }
      : requestField(state, (r) => r.cluster, {}),
    namespace,
    serviceAccounts: { head: serviceAccount, ...(computeServiceAccount ? { compute: computeServiceAccount } : {}) },
    roleArns: {
      launcher: state.iam?.launcherArn,
      ...(state.iam?.workloadRoleArn ? { workload: state.iam.workloadRoleArn } : {}),
    },
    clusterAccess: state.access ? { method: state.access.method, username: state.access.username, groups: state.access.groups } : undefined,
    storage: state.storage
      ? {
          type: state.storage.type,
          ...(state.storage.mountPath ? { mountPath: state.storage.mountPath } : {}),
          configMap: state.storage.configMap,
        }
      : undefined,
    claim: state.storage?.claimName,
    nextflowConfig: state.storage?.nextflowConfig,
    headJob: state.headJob ? { jobName: state.headJob.jobName, phase: state.headJob.phase, podName: state.headJob.podName } : undefined,
    execution: state.execution,
  };
}

export async function reportReady(
  state: WorkflowState,
  deps: ReportDeps = {},
): Promise<{ eventBusName: string; detail: Record<string, unknown> }> {
  const detail = readyDetail(state);
  // The registry first: a failure here is retried by the Task, and the event only goes out once the record says ready.
  await recordRunOutcome(state, "ready", { ...ownedResourcesOf(state) }, deps);
  const bus = await putEvent(state, READY_DETAIL_TYPE, detail, deps);
  logger.info("compute environment ready", { eventBusName: bus });
  return { eventBusName: bus, detail };
}

/** The Cause as a sentence (Lambda's `{"errorType","errorMessage","trace"}` JSON reduced to its message). */
export function causeMessage(cause: string | undefined): string {
  return readableCause(cause) ?? "no cause given";
}

/** Which step failed: the one the state machine recorded, else the first one (in run order) whose result is missing. */
export function failedStepOf(state: WorkflowState): string {
  // A failed Parallel branch records its Task's name (a Pass in the branch sets $.failedStep): say that one.
  if (state.failedStep) return state.failedStep;
  // The head job's result exists once it was launched, so its failures are named by the error instead.
  if (HEAD_JOB_ERRORS.has(state.error?.Error ?? "")) return HEAD_JOB_STEP;
  const wantsHeadJob = requestField(state, (r) => r.headJob, undefined) !== undefined;
  for (const step of BUILD_STEPS) {
    if (step.key === "headJob" && !wantsHeadJob) continue;
    // The removals run in update runs only.
    if ((step.key === "removed" || step.key === "removedIdentities") && !state.update) continue;
    if (state[step.key] === undefined) return step.state;
  }
  return REPORT_STEP;
}

/** The failure as reported: the Fail state's summary and the parts it was built from. */
interface Failure {
  summary: FailureSummary;
  failedStep: string;
  message: string;
  outcome: ReturnType<typeof compensationOutcome>;
}

function failureOf(state: WorkflowState): Failure {
  const error = state.error?.Error ?? "ProvisioningFailed";
  const outcome = compensationOutcome(state);
  const { undone, kept, couldNotUndo } = outcome;
  const failedStep = failedStepOf(state);
  const message = causeMessage(state.error?.Cause);
  const parts = [`Step ${failedStep} failed: ${error}: ${message}.`];
  parts.push(undone.length ? `Undone: ${undone.join(", ")}.` : "Undone: nothing (nothing had been created).");
  if (kept.length) parts.push(`Left in place: ${kept.join(", ")}.`);
  if (couldNotUndo.length) parts.push(`Could not undo: ${couldNotUndo.join("; ")}.`);
  if (state.update) {
    const back = `The update to generation ${state.update.generation} was rolled back: generation ${state.update.previous.generation} is the desired spec again`;
    parts.push(couldNotUndo.length ? `${back}, but not everything could be restored (status failed).` : `${back} (status ready).`);
  } else if (state.rerun) {
    const { generation } = state.rerun.previous;
    const kept = `Only this run's own work was undone: the environment is still generation ${generation} as recorded`;
    parts.push(
      couldNotUndo.length
        ? `${kept}, but not everything could be undone (status failed).`
        : `${kept} (status ${restoredStatus(state.rerun)}).`,
    );
  }
  return { summary: { error, cause: parts.join(" ") }, failedStep, message, outcome };
}

/** The Fail state's cause: a sentence an operator can act on. */
export function failureSummary(state: WorkflowState): FailureSummary {
  return failureOf(state).summary;
}

/** The status a failed re-run puts back: the record's own when it was settled (ready, failed), else failed. */
function restoredStatus(rerun: RerunContext): EnvironmentStatus {
  return rerun.previous.status === "ready" ? "ready" : "failed";
}

/**
 * The failure in the registry. A create, compensated, owns nothing there (except what could not be undone): `failed`.
 * A failed update put the previous generation back: that generation is desired again, with what it owned, `ready` when
 * everything was restored and `failed` when something could not be; the failure stays on the record (`lastFailure`).
 * A failed re-run (or reconcile) undid only its own work: the record as it was goes back the same way (its status, spec,
 * generation and owned list), with this run as the last execution and its failure in `lastFailure`.
 */
async function recordFailure(state: WorkflowState, summary: FailureSummary, couldNotUndo: string[], deps: ReportDeps): Promise<void> {
  const leftovers = couldNotUndo.length ? { couldNotUndo } : {};
  const previous = state.update?.previous ?? state.rerun?.previous;
  if (!previous) {
    await recordRunOutcome(state, "failed", leftovers, deps);
    return;
  }
  const settled = state.rerun ? restoredStatus(state.rerun) : "ready";
  // The generation the failed run was to reach: an update's new one; a re-run's lease counted one more.
  const generation = state.update?.generation ?? previous.generation + 1;
  const failure = { error: summary.error, cause: summary.cause, at: new Date().toISOString(), generation };
  await recordRunOutcome(state, couldNotUndo.length ? "failed" : settled, { ...previous.owned, ...leftovers }, deps, {
    spec: previous.spec,
    generation: previous.generation,
    failure,
  });
}

export async function reportFailed(state: WorkflowState, deps: ReportDeps = {}): Promise<FailureSummary> {
  const { summary, failedStep, message, outcome } = failureOf(state);
  const detail = {
    tenant: requestField(state, (r) => r.tenant, ""),
    cluster: state.cluster
      ? { name: state.cluster.name, region: state.cluster.region, arn: state.cluster.arn }
      : requestField(state, (r) => r.cluster, {}),
    failedStep,
    error: { name: summary.error, message },
    compensation: state.compensation ?? {},
    undone: outcome.undone,
    couldNotUndo: outcome.couldNotUndo,
    summary: summary.cause,
    execution: state.execution,
  };
  try {
    await recordFailure(state, summary, outcome.couldNotUndo, deps);
    await putEvent(state, FAILED_DETAIL_TYPE, detail, deps);
  } catch (problem) {
    // The run's own error matters more than the notification: keep it, say the event was not sent.
    const reason = problem instanceof Error ? `${problem.name}: ${problem.message}` : String(problem);
    logger.error("could not send ComputeEnvironmentFailed", { error: problem as Error });
    return { error: summary.error, cause: `${summary.cause} (The ${FAILED_DETAIL_TYPE} event could not be sent: ${reason}.)` };
  }
  logger.info("compute environment failed", { failedStep: detail.failedStep, errorName: summary.error });
  return summary;
}

/** The step's handlers, with the EventBridge client and bus given (tests) or taken per call from the environment. */
export function createReportStep(deps: ReportDeps = {}) {
  return {
    ready: stepHandler<WorkflowState, { eventBusName: string; detail: Record<string, unknown> }>("Report", (state) =>
      reportReady(state, deps),
    ),
    failed: stepHandler<WorkflowState, FailureSummary>("ReportFailure", (state) => reportFailed(state, deps)),
  };
}

export const { ready, failed } = createReportStep();
