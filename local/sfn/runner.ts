/**
 * The local Step Functions: runs `statemachines/*.asl.json` with aws-local-stepfunctions, every Task bound
 * to the same handler code Lambda runs (functions/steps, found through catalog.ts), called the way Lambda
 * calls it (a JSON copy of the input, a Lambda-like context, the error's name as the Step Functions error).
 * Each execution is recorded with its status and its history in GetExecutionHistory's shape, so the SDK
 * (through service.ts), the status route and the CLI read a local run exactly as they read one in AWS.
 *
 * Fast mode (`timeScale`, time-scale.ts) scales Waits and retry intervals per nominal second, so backoff, jitter,
 * MaxDelaySeconds and SecondsPath keep their meaning; the older `waitMs` / `retryIntervalMs` replace them with one
 * fixed duration. The deployed definition itself is never edited.
 */
import { randomUUID } from "node:crypto";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { basename, dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { StateMachine } from "aws-local-stepfunctions";
import {
  ExecutionAlreadyExists,
  ExecutionDoesNotExist,
  InvalidArn,
  InvalidExecutionInput,
  InvalidName,
  InvalidToken,
  StateMachineDoesNotExist,
  ValidationException,
  type DescribeExecutionOutput,
  type DescribeStateMachineOutput,
  type ExecutionListItem,
  type ExecutionStatus,
  type GetExecutionHistoryInput,
  type GetExecutionHistoryOutput,
  type HistoryEvent,
  type ListExecutionsInput,
  type ListExecutionsOutput,
  type ListStateMachinesOutput,
  type StartExecutionInput,
  type StartExecutionOutput,
  type StopExecutionInput,
  type StopExecutionOutput,
} from "@aws-sdk/client-sfn";
import type { Context } from "aws-lambda";
import { parseArn } from "../../functions/lib/domain/arn.js";
import { lambdaContext } from "../../functions/lib/workflow/lambda-context.js";
import { LAMBDA_TIMEOUT_ERROR } from "../../functions/lib/domain/errors.js";
import { signedWith, type Signer } from "../../functions/lib/aws/clients.js";
import { ALL_STEP_FUNCTIONS, type StepFunctionEntry } from "../../functions/steps/catalog.js";
import { STEP_SIZING } from "../../functions/steps/step-sizing.js";
import { runInInvocation } from "../../functions/lib/aws/invocation.js";
import { decodePageToken, encodePageToken, page } from "../paging.js";
import {
  asLibraryDefinition,
  lambdaArn,
  substitutePlaceholders,
  walkStates,
  type AslDefinition,
  type StateInfo,
  type SubstitutionOptions,
} from "./definition.js";
import { HistoryBuilder, InvocationLog, json, type Invocation, type TerminalOutcome } from "./history.js";
import { DataLimitExceeded, PAYLOAD_LIMIT_BYTES, withPayloadQuota } from "./payload-quota.js";
import { scaleDefinition, scaledSecondsPathWait, withResultAt, type TimeScale } from "./time-scale.js";
import type { AslState } from "./definition.js";

/** A Lambda handler as the runner calls it: `(event, context)`. */
export type LambdaHandler = (event: any, context: Context) => unknown;

export interface LocalStepFunctionsOptions {
  region?: string;
  accountId?: string;
  /** Where `*.asl.json` are read from (default: the repository's statemachines/). Ignored when `stateMachines` is given. */
  definitionsDir?: string;
  /** State machines by name: a file path or a parsed definition (with its `${Placeholders}`). */
  stateMachines?: Record<string, string | object>;
  /** Handlers that replace the catalog's, keyed by placeholder (`ResolveClusterFunctionArn`), its `<Name>`, or the function name. */
  functions?: Record<string, LambdaHandler>;
  /** Lambda function names are `<prefix><Name>` for `${<Name>FunctionArn}` (default `nf-eks-`). */
  functionNamePrefix?: string;
  /** Values for placeholders other than `${...FunctionArn}`. */
  substitutions?: Record<string, string>;
  /** Fast mode: every nominal second of a Wait or a retry interval lasts this many milliseconds (time-scale.ts). */
  timeScale?: TimeScale;
  /** Every Wait state pauses this many milliseconds instead of its Seconds (replaces, where timeScale scales). */
  waitMs?: number;
  /** Every retrier waits this many milliseconds between attempts instead of its backoff (replaces, where timeScale scales). */
  retryIntervalMs?: number;
  /**
   * The Lambda timeout of a handler given in `functions` (default 60 s); a catalog handler has its step's, from
   * functions/steps/step-sizing.ts as the stack deploys it. Past it the invocation fails with Sandbox.Timedout.
   */
  lambdaTimeoutSeconds?: number;
  /** The execution role reported in ExecutionStarted and DescribeStateMachine. */
  roleArn?: string;
  /**
   * Who each catalog step's handler signs its AWS calls as (its own role's session: step-credentials.ts);
   * undefined, or a step it gives no signer: the process's default credentials.
   */
  stepSigner?: (entry: StepFunctionEntry) => Signer | undefined;
  /**
   * Hears each execution's end as Step Functions tells EventBridge ("Step Functions Execution Status Change", source
   * aws.states, on the account's default bus): the sandbox puts it on the emulated default bus.
   */
  onStatusChange?: (event: ExecutionStatusChangeEvent) => void;
}

/** An execution's status change as Step Functions sends it to EventBridge (the detail as AWS writes it). */
export interface ExecutionStatusChangeEvent {
  source: "aws.states";
  detailType: "Step Functions Execution Status Change";
  resources: string[];
  detail: {
    executionArn: string;
    stateMachineArn: string;
    name: string;
    status: ExecutionStatusName;
    /** epoch milliseconds */
    startDate: number;
    stopDate: number | null;
    input: string;
    inputDetails: { included: boolean };
    output: string | null;
    outputDetails: { included: boolean } | null;
    error: string | null;
    cause: string | null;
  };
}

export type ExecutionStatusName = Extract<ExecutionStatus, "RUNNING" | "SUCCEEDED" | "FAILED" | "ABORTED" | "TIMED_OUT">;

/** What `onEvent` listeners receive: one history event of one execution, as it is appended. */
export interface ExecutionEventNotice {
  executionArn: string;
  stateMachineArn: string;
  name: string;
  status: ExecutionStatusName;
  event: HistoryEvent;
}

export type ExecutionEventListener = (notice: ExecutionEventNotice) => void;

interface MachineRecord {
  name: string;
  arn: string;
  definition: AslDefinition;
  definitionText: string;
  states: StateInfo[];
  /** every state's definition by name (nested ones too) */
  stateDefinitions: Map<string, AslState>;
  /** SecondsPath Waits whose input the runner can know: the Tasks (through pass-through Choices) that lead into each */
  secondsPathInputs: Map<string, Set<string>>;
  machine: StateMachine;
  creationDate: Date;
  /** Task state name → the handler it runs, resolved once */
  handlers: Map<string, TaskBinding>;
}

/** What a Task state runs: the Lambda function, its handler (loaded on first use) and its timeout. */
interface TaskBinding {
  functionName: string;
  functionArn: string;
  /** the timeout the handler's context counts down from: the Lambda's, or the Task's TimeoutSeconds if shorter */
  timeoutSeconds: number;
  /** the Lambda function's own timeout: past it the invocation is Sandbox.Timedout and its clients are cut off */
  lambdaTimeoutSeconds: number;
  load: () => Promise<LambdaHandler>;
}

interface ExecutionRecord {
  executionArn: string;
  stateMachineArn: string;
  name: string;
  status: ExecutionStatusName;
  startDate: Date;
  stopDate?: Date;
  input: string;
  output?: string;
  error?: string;
  cause?: string;
  history: HistoryBuilder;
  abort?: () => void;
  stopDetails?: { error?: string; cause?: string };
  /** Settles when the library is done and the history is complete */
  finished: Promise<void>;
}

const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
const DEFAULT_ACCOUNT = "000000000000";
/** StartExecution's `name`: 1-80 characters, none of whitespace, brackets, wildcards, specials or controls. */
const EXECUTION_NAME = /^[^\s<>{}[\]?*"#%\\^|~`$&,;:/\u0000-\u001f\u007f-\u009f]{1,80}$/;

function sfnError<E extends Error>(Kind: new (opts: { message: string; $metadata: { httpStatusCode: number } }) => E, message: string): E {
  return new Kind({ message, $metadata: { httpStatusCode: 400 } });
}

/** Lambda reports a Node handler's error as `{errorType, errorMessage, trace}`; Step Functions passes it on as the Cause. */
function lambdaError(error: unknown): { error: string; cause: string } {
  const e = error instanceof Error ? error : new Error(typeof error === "string" ? error : JSON.stringify(error));
  const errorType = e.name || "Error";
  const trace = (e.stack ?? `${errorType}: ${e.message}`).split("\n");
  return { error: errorType, cause: JSON.stringify({ errorType, errorMessage: e.message, trace }) };
}

/** The error the library sees: named as the Lambda error, the message being the Cause Step Functions reports. */
class LambdaFunctionError extends Error {
  constructor(name: string, cause: string) {
    super(cause);
    this.name = name;
  }
}

function pageSize(maxResults: number | undefined, fallback: number): number {
  if (maxResults === undefined || maxResults === 0) return fallback;
  if (!Number.isInteger(maxResults) || maxResults < 0 || maxResults > 1000) {
    throw sfnError(
      ValidationException,
      "1 validation error detected: Value at 'maxResults' failed to satisfy constraint: Member must have value between 0 and 1000",
    );
  }
  return maxResults;
}

export class LocalStepFunctions {
  readonly region: string;
  readonly accountId: string;
  readonly roleArn: string;
  private readonly opts: LocalStepFunctionsOptions;
  private readonly substitution: SubstitutionOptions;
  private readonly machines = new Map<string, MachineRecord>();
  private readonly executions = new Map<string, ExecutionRecord>();
  private readonly listeners = new Set<ExecutionEventListener>();

  constructor(opts: LocalStepFunctionsOptions = {}) {
    this.opts = opts;
    this.region = opts.region ?? (process.env.AWS_REGION || process.env.AWS_DEFAULT_REGION || "us-east-1");
    this.accountId = opts.accountId ?? DEFAULT_ACCOUNT;
    this.roleArn = opts.roleArn ?? `arn:aws:iam::${this.accountId}:role/nf-eks-provisioner-states`;
    this.substitution = {
      region: this.region,
      accountId: this.accountId,
      functionNamePrefix: opts.functionNamePrefix ?? "nf-eks-",
      substitutions: opts.substitutions,
    };
    if (opts.stateMachines) {
      for (const [name, source] of Object.entries(opts.stateMachines)) this.addStateMachine(name, source);
    } else {
      const dir = opts.definitionsDir ?? join(REPO_ROOT, "statemachines");
      if (existsSync(dir)) {
        for (const file of readdirSync(dir)
          .filter((f) => f.endsWith(".asl.json"))
          .sort()) {
          this.addStateMachine(basename(file, ".asl.json"), join(dir, file));
        }
      }
    }
  }

  // ---- state machines ----

  /** Load a definition (file path or object), fill its placeholders, bind its Tasks; returns the state machine ARN. */
  addStateMachine(name: string, source: string | object): string {
    const raw = (typeof source === "string" ? JSON.parse(readFileSync(source, "utf8")) : structuredClone(source)) as AslDefinition;
    const definition = substitutePlaceholders(raw, this.substitution);
    const states = walkStates(raw, definition);
    // Validated here (ASL schema, JSONPaths, ARNs): the library validates in the constructor only, so runs skip it.
    const validated = new StateMachine(asLibraryDefinition(definition), { validationOptions: { checkPaths: true, checkArn: true } });
    // Fast mode runs a scaled copy (fractions of seconds, which ASL's validation would refuse: validated above as written).
    // A fixed retryIntervalMs replaces the retries' intervals: their MaxDelaySeconds then stays as written, or the
    // library would clamp the fixed interval to a scaled cap.
    const scale = this.opts.timeScale && {
      ...this.opts.timeScale,
      ...(this.opts.retryIntervalMs !== undefined ? { retryIntervalMs: 1000 } : {}),
    };
    const machine = scale
      ? new StateMachine(asLibraryDefinition(scaleDefinition(definition, scale)), { validationOptions: { noValidate: true } })
      : validated;
    const stateDefinitions = allStateDefinitions(definition);
    const arn = this.stateMachineArn(name);
    const handlers = new Map<string, TaskBinding>();
    for (const state of states.filter((s) => s.type === "Task")) handlers.set(state.name, this.bindTask(name, state));
    this.machines.set(arn, {
      name,
      arn,
      definition,
      definitionText: JSON.stringify(definition, null, 2),
      states,
      stateDefinitions,
      secondsPathInputs: secondsPathPredecessors(definition),
      machine,
      creationDate: new Date(),
      handlers,
    });
    return arn;
  }

  stateMachineArn(name: string): string {
    return `arn:aws:states:${this.region}:${this.accountId}:stateMachine:${name}`;
  }

  executionArn(stateMachineName: string, executionName: string): string {
    return `arn:aws:states:${this.region}:${this.accountId}:execution:${stateMachineName}:${executionName}`;
  }

  /** The Lambda handler a Task runs: an override from `functions`, else the catalog's module and export. */
  private bindTask(machineName: string, state: StateInfo): TaskBinding {
    const where = `state machine ${machineName}, Task ${state.name} (Resource ${state.rawResource ?? state.resource})`;
    if (!state.functionName || !state.resource) {
      throw new Error(`${where}: only Lambda function ARNs (or \${<Name>FunctionArn}) run locally`);
    }
    const baseName = state.placeholder?.replace(/FunctionArn$/, "");
    const overrides = this.opts.functions ?? {};
    const override = [state.placeholder, baseName, state.functionName].map((k) => (k ? overrides[k] : undefined)).find(Boolean);
    const functionArn = lambdaArn(this.substitution, state.functionName);
    const entry = ALL_STEP_FUNCTIONS.find((e) => e.placeholder === state.placeholder);
    const lambdaTimeoutSeconds =
      (!override && entry ? STEP_SIZING[entry.module]?.timeout : undefined) ?? this.opts.lambdaTimeoutSeconds ?? 60;
    const timeoutSeconds = Math.min(state.timeoutSeconds ?? Infinity, lambdaTimeoutSeconds);
    if (override)
      return { functionName: state.functionName, functionArn, timeoutSeconds, lambdaTimeoutSeconds, load: async () => override };
    if (!entry) throw new Error(`${where}: no handler in functions/steps/catalog.ts and none given in options.functions`);
    let loaded: Promise<LambdaHandler> | undefined;
    const load = () =>
      // vite-ignore: under vitest the path resolves at run time (to the .ts source), as under tsx.
      (loaded ??= import(/* @vite-ignore */ `../../functions/steps/${entry.module}.js`).then((module: Record<string, unknown>) => {
        const handler = module[entry.handler];
        if (typeof handler !== "function") throw new Error(`functions/steps/${entry.module} has no export "${entry.handler}"`);
        const signer = this.opts.stepSigner?.(entry);
        return signer
          ? (event, context) => signedWith(signer, () => (handler as LambdaHandler)(event, context))
          : (handler as LambdaHandler);
      }));
    return { functionName: state.functionName, functionArn, timeoutSeconds, lambdaTimeoutSeconds, load };
  }

  private machineByArn(stateMachineArn: string | undefined): MachineRecord {
    const parsed = parseArn(stateMachineArn ?? "");
    if (parsed?.service !== "states" || !parsed.resource.startsWith("stateMachine:")) {
      throw sfnError(InvalidArn, `Invalid Arn: 'Resource type not valid in this context: ${stateMachineArn}'`);
    }
    const machine = this.machines.get(stateMachineArn!);
    if (!machine) throw sfnError(StateMachineDoesNotExist, `State Machine Does Not Exist: '${stateMachineArn}'`);
    return machine;
  }

  async describeStateMachine(input: { stateMachineArn?: string }): Promise<DescribeStateMachineOutput> {
    const m = this.machineByArn(input.stateMachineArn);
    return {
      stateMachineArn: m.arn,
      name: m.name,
      status: "ACTIVE",
      definition: m.definitionText,
      roleArn: this.roleArn,
      type: "STANDARD",
      creationDate: m.creationDate,
    };
  }

  async listStateMachines(): Promise<ListStateMachinesOutput> {
    return {
      stateMachines: [...this.machines.values()].map((m) => ({
        stateMachineArn: m.arn,
        name: m.name,
        type: "STANDARD",
        creationDate: m.creationDate,
      })),
    };
  }

  // ---- executions ----

  /**
   * StartExecution as Standard workflows answer it: the same name and input as a RUNNING execution returns
   * that execution; a name already used by a closed execution, or with a different input, is ExecutionAlreadyExists.
   */
  async startExecution(input: StartExecutionInput): Promise<StartExecutionOutput> {
    const machine = this.machineByArn(input.stateMachineArn);
    const name = input.name ?? randomUUID();
    if (!EXECUTION_NAME.test(name)) throw sfnError(InvalidName, `Invalid Name: '${name}'`);
    const text = input.input ?? "{}";
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch (problem) {
      throw sfnError(InvalidExecutionInput, `Invalid State Machine Execution Input: '${(problem as Error).message}'`);
    }
    if (Buffer.byteLength(text) > PAYLOAD_LIMIT_BYTES)
      throw sfnError(InvalidExecutionInput, "Invalid State Machine Execution Input: input exceeds 262144 bytes");
    const executionArn = this.executionArn(machine.name, name);
    const existing = this.executions.get(executionArn);
    if (existing) {
      if (existing.status === "RUNNING" && existing.input === text) return { executionArn, startDate: existing.startDate };
      throw sfnError(ExecutionAlreadyExists, `Execution Already Exists: '${executionArn}'`);
    }
    const record = this.launch(machine, name, executionArn, text, parsed);
    return { executionArn, startDate: record.startDate };
  }

  private launch(machine: MachineRecord, name: string, executionArn: string, text: string, parsedInput: unknown): ExecutionRecord {
    const invocations = new InvocationLog();
    const record = {
      executionArn,
      stateMachineArn: machine.arn,
      name,
      status: "RUNNING",
      startDate: new Date(),
      input: text,
    } as ExecutionRecord;
    record.history = new HistoryBuilder({
      states: machine.states,
      roleArn: this.roleArn,
      invocations,
      stopDetails: () => record.stopDetails,
      onEnd: (outcome) => this.close(record, outcome),
      onEvent: (event) => this.notify(record, event),
    });
    this.executions.set(executionArn, record);

    // What each Task left as the state (its input with its result at ResultPath), for a SecondsPath Wait after it.
    const documents = new Map<string, { at: number; document: unknown }>();
    let sequence = 0;
    // Every state's input and output, nested ones too, is held to the 256 KiB quota (payload-quota.ts).
    const execution = machine.machine.run(
      parsedInput as never,
      withPayloadQuota({
        noThrowOnAbort: true,
        context: {
          Execution: { Id: executionArn, Name: name, RoleArn: this.roleArn, RedriveCount: 0 },
          StateMachine: { Id: machine.arn, Name: machine.name },
        },
        overrides: {
          taskResourceLocalHandlers: this.taskHandlers(machine, invocations, (state, document) =>
            documents.set(state, { at: ++sequence, document }),
          ),
          waitTimeOverrides:
            this.opts.waitMs !== undefined
              ? this.everyRelativeWait(machine, this.opts.waitMs)
              : this.opts.timeScale
                ? this.scaledSecondsPathWaits(machine, documents, this.opts.timeScale)
                : undefined,
          retryIntervalOverrides:
            this.opts.retryIntervalMs === undefined ? undefined : this.everyRetryingState(machine, this.opts.retryIntervalMs),
        },
      }),
    );
    record.abort = execution.abort;
    const consumed = (async () => {
      for await (const event of execution.eventLogs) record.history.translate(event);
    })();
    record.finished = Promise.allSettled([execution.result, consumed]).then(([result, history]) => {
      // The library always ends with a terminal event; if it did not, say so rather than hang as RUNNING.
      const reason = history.status === "rejected" ? history.reason : result.status === "rejected" ? result.reason : undefined;
      if (!record.history.isEnded) {
        record.history.failUnfinished(
          "LocalRunner.Error",
          reason instanceof Error ? reason.message : "the execution ended without a terminal event",
        );
      }
    });
    return record;
  }

  private everyState(machine: MachineRecord, type: string, value: number): Record<string, number> {
    return Object.fromEntries(machine.states.filter((s) => s.type === type).map((s) => [s.name, value]));
  }

  /**
   * Every Wait state that pauses for a duration (Seconds, SecondsPath): a Wait until a timestamp (Timestamp,
   * TimestampPath) keeps its time, which whoever wrote the timestamp chose (the stopped-run compensation's grace).
   */
  private everyRelativeWait(machine: MachineRecord, value: number): Record<string, number> {
    const top = (machine.definition as { States?: Record<string, Record<string, unknown>> }).States ?? {};
    const waits = this.everyState(machine, "Wait", value);
    for (const name of Object.keys(waits))
      if (top[name]?.Timestamp !== undefined || top[name]?.TimestampPath !== undefined) delete waits[name];
    return waits;
  }

  /**
   * The library asks for a Wait's override as it starts the Wait: a SecondsPath Wait gets its scaled duration from
   * the state the Task before it left (the Choices between pass it through). Undefined lets the library read the
   * path itself: unscaled, or an uncatchable States.Runtime for a value that is not a non-negative integer.
   */
  private scaledSecondsPathWaits(
    machine: MachineRecord,
    documents: Map<string, { at: number; document: unknown }>,
    scale: TimeScale,
  ): Record<string, number> {
    return new Proxy({} as Record<string, number>, {
      get: (_target, stateName) => {
        if (typeof stateName !== "string") return undefined;
        const tasks = machine.secondsPathInputs.get(stateName);
        const state = machine.stateDefinitions.get(stateName);
        if (!tasks || !state) return undefined;
        const latest = [...tasks]
          .map((t) => documents.get(t))
          .filter((d) => d !== undefined)
          .sort((a, b) => b.at - a.at)[0];
        return latest === undefined ? undefined : scaledSecondsPathWait(state, latest.document, scale);
      },
    });
  }

  private everyRetryingState(machine: MachineRecord, ms: number): Record<string, number> {
    return Object.fromEntries(machine.states.filter((s) => s.hasRetry).map((s) => [s.name, ms]));
  }

  /** One wrapper per Task state: JSON in, JSON out, Lambda's error naming, and a record for the history. */
  private taskHandlers(
    machine: MachineRecord,
    invocations: InvocationLog,
    onDocument: (stateName: string, document: unknown) => void,
  ): Record<string, (input: any) => Promise<any>> {
    const handlers: Record<string, (input: any) => Promise<any>> = {};
    for (const [stateName, binding] of machine.handlers) {
      handlers[stateName] = async (input: unknown) => {
        // Serialised once; parsed twice, so the history's copy and the handler's event are separate.
        const inputText = json(input);
        // Recorded synchronously: the library calls this right after it logs the attempt.
        const invocation: Invocation = { input: JSON.parse(inputText), startedAt: new Date() };
        invocations.record(stateName, invocation);
        // The Lambda's payload (the input after InputPath/Parameters) is held to the quota before it runs.
        if (Buffer.byteLength(inputText) > PAYLOAD_LIMIT_BYTES) {
          invocation.finishedAt = new Date();
          throw new DataLimitExceeded(
            `The state/task '${stateName}' has an input with a size exceeding the maximum number of bytes service limit.`,
          );
        }
        let output: unknown;
        let outputText: string;
        try {
          const handler = await binding.load().catch((problem: Error) => {
            throw Object.assign(new Error(problem.message), { name: "Runtime.ImportModuleError" });
          });
          const event = JSON.parse(inputText);
          const context = lambdaContext({
            functionName: binding.functionName,
            functionArn: binding.functionArn,
            timeoutMs: binding.timeoutSeconds * 1000,
          });
          outputText = json(await invokeWithTimeout(() => handler(event, context), binding.lambdaTimeoutSeconds));
          output = JSON.parse(outputText);
        } catch (problem) {
          invocation.finishedAt = new Date();
          invocation.error = lambdaError(problem);
          throw new LambdaFunctionError(invocation.error.error, invocation.error.cause);
        }
        invocation.finishedAt = new Date();
        invocation.output = output;
        if (Buffer.byteLength(outputText) > PAYLOAD_LIMIT_BYTES) {
          throw new DataLimitExceeded(
            `The state/task '${stateName}' returned a result with a size exceeding the maximum number of bytes service limit.`,
          );
        }
        // Only Tasks without InputPath/Parameters/ResultSelector/OutputPath are tracked (secondsPathPredecessors);
        // the state's effective output is held to the quota as it exits (payload-quota.ts).
        const definition = machine.stateDefinitions.get(stateName);
        if (definition)
          onDocument(stateName, withResultAt(JSON.parse(inputText), definition.ResultPath as string | null | undefined, output));
        return output;
      };
    }
    return handlers;
  }

  private close(record: ExecutionRecord, outcome: TerminalOutcome): void {
    record.status = outcome.status;
    record.stopDate = outcome.at;
    record.output = outcome.output;
    record.error = outcome.error;
    record.cause = outcome.cause;
    this.announce(record);
  }

  /** Step Functions' status-change event for a closed execution, to `onStatusChange` (never breaks the execution). */
  private announce(record: ExecutionRecord): void {
    const listener = this.opts.onStatusChange;
    if (!listener) return;
    const event: ExecutionStatusChangeEvent = {
      source: "aws.states",
      detailType: "Step Functions Execution Status Change",
      resources: [record.executionArn],
      detail: {
        executionArn: record.executionArn,
        stateMachineArn: record.stateMachineArn,
        name: record.name,
        status: record.status,
        startDate: record.startDate.getTime(),
        stopDate: record.stopDate ? record.stopDate.getTime() : null,
        input: record.input,
        inputDetails: { included: true },
        output: record.output ?? null,
        outputDetails: record.output === undefined ? null : { included: true },
        error: record.error ?? null,
        cause: record.cause ?? null,
      },
    };
    // Delivered after the close, as EventBridge delivers asynchronously.
    setImmediate(() => {
      try {
        listener(event);
      } catch {
        // A listener must never break the runner.
      }
    });
  }

  private notify(record: ExecutionRecord, event: HistoryEvent): void {
    for (const listener of this.listeners) {
      try {
        listener({
          executionArn: record.executionArn,
          stateMachineArn: record.stateMachineArn,
          name: record.name,
          status: record.status,
          event,
        });
      } catch {
        // A listener (the CLI's progress display) must never break an execution.
      }
    }
  }

  private executionByArn(executionArn: string | undefined): ExecutionRecord {
    const parsed = parseArn(executionArn ?? "");
    if (parsed?.service !== "states" || !parsed.resource.startsWith("execution:") || parsed.resource.split(":").length !== 3) {
      throw sfnError(InvalidArn, `Invalid Arn: 'Resource type not valid in this context: ${executionArn}'`);
    }
    const record = this.executions.get(executionArn!);
    if (!record) throw sfnError(ExecutionDoesNotExist, `Execution Does Not Exist: '${executionArn}'`);
    return record;
  }

  async describeExecution(input: { executionArn?: string }): Promise<DescribeExecutionOutput> {
    const r = this.executionByArn(input.executionArn);
    return {
      executionArn: r.executionArn,
      stateMachineArn: r.stateMachineArn,
      name: r.name,
      status: r.status,
      startDate: r.startDate,
      ...(r.stopDate ? { stopDate: r.stopDate } : {}),
      input: r.input,
      inputDetails: { included: true },
      ...(r.output !== undefined ? { output: r.output, outputDetails: { included: true } } : {}),
      ...(r.error !== undefined ? { error: r.error } : {}),
      ...(r.cause !== undefined ? { cause: r.cause } : {}),
      redriveCount: 0,
    };
  }

  async getExecutionHistory(input: GetExecutionHistoryInput): Promise<GetExecutionHistoryOutput> {
    const r = this.executionByArn(input.executionArn);
    const size = pageSize(input.maxResults, 100);
    const reverse = input.reverseOrder === true;
    let offset = 0;
    if (input.nextToken) {
      const token = decodePageToken<{ arn: string; reverse: boolean; offset: number }>(input.nextToken);
      if (!token || token.arn !== r.executionArn || token.reverse !== reverse || !Number.isInteger(token.offset)) {
        throw sfnError(InvalidToken, "Invalid Token: 'the token does not belong to this request'");
      }
      offset = token.offset;
    }
    const ordered = reverse ? [...r.history.events].reverse() : r.history.events;
    const { items, next } = page(ordered, offset, size);
    const events = items.map((event) => (input.includeExecutionData === false ? withoutData(event) : structuredClone(event)));
    return { events, ...(next !== undefined ? { nextToken: encodePageToken({ arn: r.executionArn, reverse, offset: next }) } : {}) };
  }

  async listExecutions(input: ListExecutionsInput): Promise<ListExecutionsOutput> {
    const machine = this.machineByArn(input.stateMachineArn);
    const size = pageSize(input.maxResults, 100);
    let offset = 0;
    if (input.nextToken) {
      const token = decodePageToken<{ arn: string; offset: number }>(input.nextToken);
      if (!token || token.arn !== machine.arn || !Number.isInteger(token.offset)) throw sfnError(InvalidToken, "Invalid Token");
      offset = token.offset;
    }
    // Newest first, as the service lists them.
    const matching = [...this.executions.values()]
      .filter((r) => r.stateMachineArn === machine.arn && (!input.statusFilter || r.status === input.statusFilter))
      .reverse();
    const { items, next } = page(matching, offset, size);
    const executions: ExecutionListItem[] = items.map((r) => ({
      executionArn: r.executionArn,
      stateMachineArn: r.stateMachineArn,
      name: r.name,
      status: r.status,
      startDate: r.startDate,
      ...(r.stopDate ? { stopDate: r.stopDate } : {}),
    }));
    return { executions, ...(next !== undefined ? { nextToken: encodePageToken({ arn: machine.arn, offset: next }) } : {}) };
  }

  /** StopExecution: the execution ends ABORTED; a Lambda already running finishes on its own, as in AWS. */
  async stopExecution(input: StopExecutionInput): Promise<StopExecutionOutput> {
    const r = this.executionByArn(input.executionArn);
    if (r.status === "RUNNING") {
      r.stopDetails = { error: input.error, cause: input.cause };
      r.abort?.();
      await r.finished;
    }
    return { stopDate: r.stopDate ?? new Date() };
  }

  // ---- for tests, the CLI and the sandbox ----

  /** Resolves with DescribeExecution once the execution is no longer RUNNING (rejects after `timeoutMs`). */
  async waitFor(executionArn: string, opts: { timeoutMs?: number } = {}): Promise<DescribeExecutionOutput> {
    const r = this.executionByArn(executionArn);
    const timeoutMs = opts.timeoutMs ?? 60_000;
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`execution ${executionArn} still ${r.status} after ${timeoutMs} ms`)), timeoutMs);
    });
    try {
      await Promise.race([r.finished, timeout]);
    } finally {
      clearTimeout(timer);
    }
    return this.describeExecution({ executionArn });
  }

  /** Every history event of every execution as it is appended; returns the unsubscribe function. */
  onEvent(listener: ExecutionEventListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /**
   * Forget every closed execution, as Step Functions does once its retention period (90 days) has passed: their
   * names can be started again, and DescribeExecution / ListExecutions no longer know them. Returns how many.
   */
  forgetClosedExecutions(): number {
    const closed = [...this.executions.values()].filter((r) => r.status !== "RUNNING");
    for (const record of closed) this.executions.delete(record.executionArn);
    return closed.length;
  }

  /** Stop every running execution (Ctrl-C, test teardown). */
  async shutdown(): Promise<void> {
    const running = [...this.executions.values()].filter((r) => r.status === "RUNNING");
    await Promise.all(
      running.map((r) => this.stopExecution({ executionArn: r.executionArn, error: "Shutdown", cause: "the local runner was shut down" })),
    );
  }
}

/** Lambda's error for a function past its timeout (what Step Functions reports, and the definition retries). */
class LambdaTimedOut extends Error {
  constructor(seconds: number) {
    super(`${new Date().toISOString()} Task timed out after ${seconds.toFixed(2)} seconds`);
    this.name = LAMBDA_TIMEOUT_ERROR;
  }
}

/**
 * A handler run as one invocation with Lambda's timeout: past it the invocation fails with Sandbox.Timedout and its
 * scope's signal is aborted, so the product's AWS and Kubernetes clients make no further call for it (a real
 * Lambda is frozen then); what it still computes is dropped.
 */
async function invokeWithTimeout<T>(call: () => T | Promise<T>, timeoutSeconds: number): Promise<T> {
  const controller = new AbortController();
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      controller.abort();
      reject(new LambdaTimedOut(timeoutSeconds));
    }, timeoutSeconds * 1000);
  });
  const running = Promise.resolve().then(() => runInInvocation(controller.signal, call));
  running.catch(() => undefined); // a handler cut off fails later, unobserved
  try {
    return await Promise.race([running, timedOut]);
  } finally {
    clearTimeout(timer);
  }
}

/** Every state's definition by name, nested ones included (names are unique: walkStates checks). */
function allStateDefinitions(definition: AslDefinition): Map<string, AslState> {
  const found = new Map<string, AslState>();
  const walk = (def: AslDefinition) => {
    for (const [name, state] of Object.entries(def.States)) {
      found.set(name, state);
      for (const branch of state.Branches ?? []) walk(branch);
      const processor = state.ItemProcessor ?? state.Iterator;
      if (processor) walk(processor);
    }
  };
  walk(definition);
  return found;
}

const RESHAPES_INPUT = ["InputPath", "Parameters", "ResultSelector", "OutputPath"];

/**
 * For each Wait with a SecondsPath, the Tasks whose output document is its input: every way into the Wait is a Task
 * that reshapes nothing but its ResultPath (the runner then knows the state), possibly through Choices that pass
 * their input on. A Wait reached any other way (a Pass, a Catch, a reshaping Task) is left out: the library reads
 * its SecondsPath itself, unscaled.
 */
function secondsPathPredecessors(definition: AslDefinition): Map<string, Set<string>> {
  const result = new Map<string, Set<string>>();
  const scopes: AslDefinition[] = [];
  const collect = (def: AslDefinition) => {
    scopes.push(def);
    for (const state of Object.values(def.States)) {
      for (const branch of state.Branches ?? []) collect(branch);
      const processor = state.ItemProcessor ?? state.Iterator;
      if (processor) collect(processor);
    }
  };
  collect(definition);
  for (const scope of scopes) {
    const into = (target: string): Array<{ name: string; state: AslState; how: "next" | "catch" }> =>
      Object.entries(scope.States).flatMap(([name, state]) => {
        const ways: Array<{ name: string; state: AslState; how: "next" | "catch" }> = [];
        if (state.Next === target) ways.push({ name, state, how: "next" });
        const choices = (state.Choices as Array<{ Next?: string }> | undefined) ?? [];
        if (choices.some((c) => c.Next === target) || state.Default === target) ways.push({ name, state, how: "next" });
        if (((state.Catch as Array<{ Next?: string }> | undefined) ?? []).some((c) => c.Next === target))
          ways.push({ name, state, how: "catch" });
        return ways;
      });
    const tasksInto = (target: string, seen: Set<string>): Set<string> | undefined => {
      const tasks = new Set<string>();
      if (scope.StartAt === target) return undefined; // the scope's input: not a Task's document
      for (const way of into(target)) {
        if (way.how === "catch" || RESHAPES_INPUT.some((field) => field in way.state)) return undefined;
        if (way.state.Type === "Task") tasks.add(way.name);
        else if (way.state.Type === "Choice") {
          if (seen.has(way.name)) continue;
          const further = tasksInto(way.name, new Set([...seen, way.name]));
          if (!further) return undefined;
          for (const t of further) tasks.add(t);
        } else return undefined;
      }
      return tasks.size ? tasks : undefined;
    };
    for (const [name, state] of Object.entries(scope.States)) {
      if (state.Type !== "Wait" || typeof state.SecondsPath !== "string") continue;
      const tasks = tasksInto(name, new Set());
      if (tasks) result.set(name, tasks);
    }
  }
  return result;
}

/** GetExecutionHistory with includeExecutionData=false: the events without their inputs and outputs. */
function withoutData(event: HistoryEvent): HistoryEvent {
  const copy = structuredClone(event) as unknown as Record<string, unknown>;
  for (const [key, value] of Object.entries(copy)) {
    if (!key.endsWith("EventDetails") || !value || typeof value !== "object") continue;
    const details = value as Record<string, unknown>;
    delete details.input;
    delete details.output;
    delete details.inputDetails;
    delete details.outputDetails;
  }
  return copy as unknown as HistoryEvent;
}
