/**
 * statemachines/provision.asl.json as the ASL tests read it: the parsed definition, every state by name
 * (Parallel branches included), the catalog entry behind each Task, and the graph walks the tests ask
 * questions of (run order, where a failure goes, which compensators it runs).
 */
import { readFileSync } from "node:fs";
import { STEP_FUNCTIONS } from "../../functions/steps/catalog.js";

export interface Retrier {
  ErrorEquals: string[];
  IntervalSeconds?: number;
  BackoffRate?: number;
  MaxAttempts?: number;
  MaxDelaySeconds?: number;
  JitterStrategy?: string;
}
export interface Catcher {
  ErrorEquals: string[];
  ResultPath?: string;
  Next: string;
}
export interface AslState {
  Type: string;
  Resource?: string;
  Next?: string;
  End?: boolean;
  Default?: string;
  Choices?: Array<{ Next: string; Variable?: string; IsPresent?: boolean }>;
  Result?: unknown;
  Retry?: Retrier[];
  Catch?: Catcher[];
  Branches?: AslMachine[];
  ResultPath?: string;
  ErrorPath?: string;
  CausePath?: string;
  Seconds?: number;
  SecondsPath?: string;
}
export interface AslMachine {
  StartAt: string;
  States: Record<string, AslState>;
}

export const ASL_PATH = new URL("../../statemachines/provision.asl.json", import.meta.url);
export const ASL_TEXT = readFileSync(ASL_PATH, "utf8");
export const PLACEHOLDER = /\$\{([A-Za-z0-9_]+)\}/g;

/** What the stack does at deploy time: every `${Placeholder}` becomes a Lambda ARN. */
export function definitionWithFakeArns(): AslMachine {
  return JSON.parse(
    ASL_TEXT.replace(
      PLACEHOLDER,
      (_, name: string) => `arn:aws:lambda:eu-west-1:111122223333:function:nfeks-${name.replace(/FunctionArn$/, "")}`,
    ),
  ) as AslMachine;
}

export const definition = JSON.parse(ASL_TEXT) as AslMachine;

export interface Located {
  name: string;
  state: AslState;
  /** The Parallel state this one is a branch member of */
  parallel?: string;
}

/** Every state, including those inside Parallel branches, by name. */
export function allStates(machine: AslMachine, parallel?: string, into = new Map<string, Located>()): Map<string, Located> {
  for (const [name, state] of Object.entries(machine.States)) {
    into.set(name, { name, state, parallel });
    for (const branch of state.Branches ?? []) allStates(branch, name, into);
  }
  return into;
}

export const STATES = allStates(definition);
export const state = (name: string): AslState => {
  const found = STATES.get(name);
  if (!found) throw new Error(`no state ${name}`);
  return found.state;
};

export const placeholderOf = (s: AslState) => /^\$\{([A-Za-z0-9_]+)\}$/.exec(s.Resource ?? "")?.[1];
export const catalogEntryOf = (s: AslState) => STEP_FUNCTIONS.find((e) => e.placeholder === placeholderOf(s));
export const tasks = [...STATES.values()].filter((l) => l.state.Type === "Task");
export const isForward = (l: Located) => ["apply", "check", "ready"].includes(catalogEntryOf(l.state)?.handler ?? "");

/** The state whose Task runs the given module's compensate handler. */
export function compensatorOf(taskName: string): string | undefined {
  const module = catalogEntryOf(state(taskName))?.module;
  return tasks.find((t) => catalogEntryOf(t.state)?.module === module && catalogEntryOf(t.state)?.handler === "compensate")?.name;
}

/** The run order: depth-first along success transitions (Next, Choices, Default, Parallel branches in order). */
export function forwardOrder(): string[] {
  const seen = new Set<string>();
  const order: string[] = [];
  const visit = (name: string | undefined): void => {
    if (!name || seen.has(name)) return;
    seen.add(name);
    order.push(name);
    const s = state(name);
    for (const branch of s.Branches ?? []) visit(branch.StartAt);
    for (const choice of s.Choices ?? []) visit(choice.Next);
    visit(s.Default);
    visit(s.Next);
  };
  visit(definition.StartAt);
  return order.filter((name) => {
    const located = STATES.get(name)!;
    return located.state.Type === "Task" && isForward(located);
  });
}

export const catchAllOf = (s: AslState) => s.Catch?.find((c) => c.ErrorEquals.includes("States.ALL"));

/** The Choice rule that sends a run whose `$.error` is set (a Parallel branch failed) into compensation. */
export const errorRuleOf = (choice: AslState) => choice.Choices?.find((c) => c.Variable === "$.error" && c.IsPresent === true);

/**
 * Where a failure of this state goes: its own Catch. Inside a Parallel branch the Catch ends the branch
 * (so the Parallel waits for its other branch), and the Choice after the Parallel routes the failure on.
 */
export function failureEntryOf(name: string): string {
  const located = STATES.get(name)!;
  const catcher = catchAllOf(located.state);
  if (!catcher) throw new Error(`${name} has no Catch of States.ALL`);
  if (!located.parallel) return catcher.Next;
  const branchEnd = state(catcher.Next);
  if (STATES.get(catcher.Next)?.parallel !== located.parallel || !branchEnd.End) throw new Error(`${name}'s Catch does not end its branch`);
  const after = state(located.parallel).Next!;
  const rule = errorRuleOf(state(after));
  if (state(after).Type !== "Choice" || !rule) throw new Error(`${located.parallel} is not followed by a Choice on $.error`);
  return rule.Next;
}

/** All states reachable over every transition (success and failure). */
export function reachableFrom(start: string): Set<string> {
  const seen = new Set<string>();
  const stack = [start];
  while (stack.length) {
    const name = stack.pop()!;
    if (seen.has(name)) continue;
    seen.add(name);
    const s = state(name);
    const next = [s.Next, s.Default, ...(s.Choices ?? []).map((c) => c.Next), ...(s.Catch ?? []).map((c) => c.Next)];
    for (const n of next) if (n) stack.push(n);
  }
  return seen;
}

/** The compensators a failure runs, in order, following the chain's Next until it ends. */
export function compensationChainFrom(entry: string): string[] {
  const chain: string[] = [];
  let name: string | undefined = entry;
  const guard = new Set<string>();
  while (name && !guard.has(name)) {
    guard.add(name);
    const s = state(name);
    if (s.Type === "Task" && catalogEntryOf(s)?.handler === "compensate") chain.push(name);
    name = s.Next;
  }
  return chain;
}
