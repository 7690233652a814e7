/**
 * Reading a state machine definition the way the stack deploys it: `${Placeholders}` filled in (Lambda
 * ARNs for `${<Name>FunctionArn}`), then walked once to know every state by name, the scope (top level,
 * or a Parallel branch) it runs in, and which Lambda each Task calls. aws-local-stepfunctions keys its
 * overrides by state name, including states inside Parallel branches, so names must be unique.
 */
import type { StateMachineDefinition } from "aws-local-stepfunctions";

export interface AslRetrier {
  ErrorEquals: string[];
  IntervalSeconds?: number;
  MaxAttempts?: number;
  BackoffRate?: number;
  MaxDelaySeconds?: number;
  JitterStrategy?: "FULL" | "NONE";
}

export interface AslState {
  Type: string;
  Resource?: string;
  TimeoutSeconds?: number;
  Retry?: AslRetrier[];
  Branches?: AslDefinition[];
  Iterator?: AslDefinition;
  ItemProcessor?: AslDefinition;
  [field: string]: unknown;
}

export interface AslDefinition {
  StartAt: string;
  States: Record<string, AslState>;
  [field: string]: unknown;
}

/** The top-level scope; a Parallel branch is `<scope>/<Parallel>[<i>]`, a Map iteration `<scope>/<Map>[*]`. */
export const ROOT_SCOPE = "";

export interface StateInfo {
  name: string;
  type: string;
  scope: string;
  /** Task: the Resource as written in the file (`${CreateIamResourcesFunctionArn}`) */
  rawResource?: string;
  /** Task: the Resource after substitution (a Lambda ARN) */
  resource?: string;
  /** Task: `CreateIamResourcesFunctionArn` when the Resource is a `${...FunctionArn}` placeholder */
  placeholder?: string;
  /** Task: the Lambda function name the Resource names */
  functionName?: string;
  timeoutSeconds?: number;
  hasRetry: boolean;
  /** Parallel: the scope of each branch; Map: the iteration scope */
  childScopes: string[];
}

export interface SubstitutionOptions {
  region: string;
  accountId: string;
  /** Lambda function names are `<functionNamePrefix><Name>` for `${<Name>FunctionArn}` */
  functionNamePrefix: string;
  /** Other placeholders (`${EventBusName}`) */
  substitutions?: Record<string, string>;
}

const PLACEHOLDER = /\$\{([A-Za-z0-9_]+)\}/g;
const FUNCTION_ARN_PLACEHOLDER = /^([A-Za-z0-9_]+)FunctionArn$/;

export function lambdaArn(opts: SubstitutionOptions, functionName: string): string {
  return `arn:aws:lambda:${opts.region}:${opts.accountId}:function:${functionName}`;
}

/** The value a `${Name}` placeholder stands for, or undefined when nothing fills it. */
function placeholderValue(name: string, opts: SubstitutionOptions): string | undefined {
  if (opts.substitutions && name in opts.substitutions) return opts.substitutions[name];
  const fn = FUNCTION_ARN_PLACEHOLDER.exec(name);
  if (fn) return lambdaArn(opts, `${opts.functionNamePrefix}${fn[1]}`);
  return undefined;
}

/** Fill every `${...}` in every string of the definition; unresolved placeholders are an error, listed. */
export function substitutePlaceholders<T>(definition: T, opts: SubstitutionOptions): T {
  const unresolved = new Set<string>();
  const visit = (value: unknown): unknown => {
    if (typeof value === "string") {
      return value.replace(PLACEHOLDER, (whole, name: string) => {
        const filled = placeholderValue(name, opts);
        if (filled === undefined) unresolved.add(name);
        return filled ?? whole;
      });
    }
    if (Array.isArray(value)) return value.map(visit);
    if (value && typeof value === "object") {
      return Object.fromEntries(Object.entries(value as Record<string, unknown>).map(([k, v]) => [visit(k) as string, visit(v)]));
    }
    return value;
  };
  const result = visit(definition) as T;
  if (unresolved.size) throw new Error(`unresolved placeholders in the definition: ${[...unresolved].map((n) => `\${${n}}`).join(", ")}`);
  return result;
}

/** Every state of the machine, nested ones included, in definition order. */
export function walkStates(raw: AslDefinition, substituted: AslDefinition): StateInfo[] {
  const found: StateInfo[] = [];
  const walk = (rawDef: AslDefinition, def: AslDefinition, scope: string) => {
    for (const [name, state] of Object.entries(def.States)) {
      const rawState = rawDef.States[name] ?? state;
      const info: StateInfo = {
        name,
        type: state.Type,
        scope,
        hasRetry: Array.isArray(state.Retry) && state.Retry.length > 0,
        childScopes: [],
      };
      if (state.Type === "Task") {
        info.rawResource = rawState.Resource;
        info.resource = state.Resource;
        info.timeoutSeconds = state.TimeoutSeconds;
        const placeholder = /^\$\{([A-Za-z0-9_]+FunctionArn)\}$/.exec(rawState.Resource ?? "");
        if (placeholder) info.placeholder = placeholder[1];
        const lambda = /^arn:[^:]+:lambda:[^:]*:[^:]*:function:([^:]+)(:[^:]+)?$/.exec(state.Resource ?? "");
        if (lambda) info.functionName = lambda[1];
      }
      found.push(info);
      if (state.Type === "Parallel") {
        (state.Branches ?? []).forEach((branch, i) => {
          const childScope = `${scope}/${name}[${i}]`;
          info.childScopes.push(childScope);
          walk(rawState.Branches?.[i] ?? branch, branch, childScope);
        });
      }
      if (state.Type === "Map") {
        const processor = state.ItemProcessor ?? state.Iterator;
        const rawProcessor = rawState.ItemProcessor ?? rawState.Iterator ?? processor;
        if (processor && rawProcessor) {
          const childScope = `${scope}/${name}[*]`;
          info.childScopes.push(childScope);
          walk(rawProcessor, processor, childScope);
        }
      }
    }
  };
  walk(raw, substituted, ROOT_SCOPE);
  const seen = new Map<string, StateInfo>();
  for (const info of found) {
    if (seen.has(info.name)) {
      // The local runner's overrides are keyed by state name: two states with one name cannot be told apart.
      throw new Error(`state name "${info.name}" is used twice (scopes "${seen.get(info.name)!.scope}" and "${info.scope}")`);
    }
    seen.set(info.name, info);
  }
  return found;
}

export function asLibraryDefinition(definition: AslDefinition): StateMachineDefinition {
  return definition as unknown as StateMachineDefinition;
}
