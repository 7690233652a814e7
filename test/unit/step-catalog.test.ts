/**
 * functions/steps/catalog.ts is the one place a step's name is defined. Everything else that writes it
 * must agree: each step's `stepHandler("<state>", …)`, the ASL's Task states and their placeholders, and
 * the README's "What a run does" table. A step's description is written there too: the first sentence of the
 * ASL Comment of every Task state named after it is its description (the rest of the Comment may add detail).
 */
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join, resolve } from "node:path";
import { describe, expect, it } from "vitest";
import { PRODUCT } from "../../functions/lib/domain/naming.js";
import { ALL_STEP_FUNCTIONS, DEPROVISION_STEP_FUNCTIONS, placeholderOf, STEP_FUNCTIONS } from "../../functions/steps/catalog.js";
import { STATES } from "../support/asl-definition.js";

const ROOT = resolve(import.meta.dirname, "../..");
const STEPS_DIR = join(ROOT, "functions/steps");
const CATALOG_STATES = STEP_FUNCTIONS.map((entry) => entry.state);
/** Both workflows' own Lambdas: every stepHandler under functions/steps/ names one of them. */
const ALL_CATALOG_STATES = ALL_STEP_FUNCTIONS.map((entry) => entry.state);

function sourceFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return sourceFiles(path);
    return name.endsWith(".ts") ? [path] : [];
  });
}

/** Every `stepHandler(…)` call under functions/steps/, and the names of those given a string literal. */
function stepHandlerCalls(): { calls: number; literals: string[] } {
  let calls = 0;
  const literals: string[] = [];
  for (const file of sourceFiles(STEPS_DIR)) {
    // Comments may show the pattern (`stepHandler("<state>", …)`): only code counts.
    const text = readFileSync(file, "utf8")
      .replace(/\/\*[\s\S]*?\*\//g, "")
      .replace(/^\s*\/\/.*$/gm, "");
    // The type arguments hold no parentheses (`<WorkflowState, { detail: Record<string, unknown> }>`).
    calls += [...text.matchAll(/\bstepHandler\s*(?:<[^()]*>)?\s*\(/g)].length;
    literals.push(...[...text.matchAll(/\bstepHandler\s*(?:<[^()]*>)?\s*\(\s*"([^"]+)"/g)].map((m) => m[1]));
  }
  return { calls, literals };
}

/** The state names in the first and last columns of the README's "What a run does" table. */
function readmeTableStates(): string[] {
  const readme = readFileSync(join(ROOT, "README.md"), "utf8");
  const start = readme.indexOf("## What a run does");
  if (start < 0) throw new Error('README.md has no "## What a run does" section');
  const lines = readme.slice(start).split("\n").slice(1);
  const table = lines.slice(
    0,
    lines.findIndex((line, i) => i > 0 && !line.startsWith("|")),
  );
  const rows = table.slice(2); // the header and the |---| line
  return rows.flatMap((row) => {
    const cells = row.split("|").slice(1, -1);
    return [cells[0], cells[cells.length - 1]].flatMap((cell) => [...(cell ?? "").matchAll(/`([A-Za-z]+)`/g)].map((m) => m[1]));
  });
}

interface CommentedState {
  Type: string;
  Comment?: string;
  Branches?: Array<{ States: Record<string, CommentedState> }>;
}

/** Every Task state of every statemachines/*.asl.json (Parallel branches included), with the file it is in. */
function aslTasks(): Array<{ file: string; name: string; comment: string | undefined }> {
  const dir = join(ROOT, "statemachines");
  const walk = (file: string, states: Record<string, CommentedState>): Array<{ file: string; name: string; comment: string | undefined }> =>
    Object.entries(states).flatMap(([name, state]) => [
      ...(state.Type === "Task" ? [{ file, name, comment: state.Comment }] : []),
      ...(state.Branches ?? []).flatMap((branch) => walk(file, branch.States)),
    ]);
  return readdirSync(dir)
    .filter((name) => name.endsWith(".asl.json"))
    .flatMap((file) =>
      walk(file, (JSON.parse(readFileSync(join(dir, file), "utf8")) as { States: Record<string, CommentedState> }).States),
    );
}

/** Up to the first full stop that ends a sentence ("nextflow.config" and "eks:DescribeCluster" do not). */
function firstSentence(text: string): string {
  return text.split(/\.(?:\s|$)/)[0];
}

/** Lambda caps a function's description at 256 characters; the stack prefixes the product's name. */
const LAMBDA_DESCRIPTION_ROOM = 256 - `${PRODUCT}: `.length;

describe("functions/steps/catalog.ts", () => {
  it("names each state once, and its placeholder after it", () => {
    // Act
    const duplicates = CATALOG_STATES.filter((name, i) => CATALOG_STATES.indexOf(name) !== i);
    // Assess
    expect(duplicates).toEqual([]);
    for (const entry of STEP_FUNCTIONS) expect(entry.placeholder).toBe(placeholderOf(entry.state));
  });

  it("is where every stepHandler name under functions/steps/ comes from: a literal naming a catalog state, each state once", () => {
    // Act
    const { calls, literals } = stepHandlerCalls();
    // Assess
    expect(literals).toHaveLength(calls);
    expect(literals.filter((name) => !ALL_CATALOG_STATES.includes(name))).toEqual([]);
    expect([...literals].sort()).toEqual([...ALL_CATALOG_STATES].sort());
  });

  it.each(STEP_FUNCTIONS.map((entry) => [entry.state, entry] as const))(
    "%s is a Task state of the ASL that runs its placeholder",
    (name, entry) => {
      // Act
      const located = STATES.get(name);
      // Assess
      expect(located?.state.Type).toBe("Task");
      expect(located?.state.Resource).toBe(`\${${entry.placeholder}}`);
    },
  );

  it("has an entry for every Task state of the ASL", () => {
    // Act
    const tasks = [...STATES.values()].filter((located) => located.state.Type === "Task").map((located) => located.name);
    // Assess
    expect(tasks.filter((name) => !CATALOG_STATES.includes(name))).toEqual([]);
  });

  it.each(STEP_FUNCTIONS.map((entry) => [entry.state, entry] as const))("%s stores its result where the catalog says", (name, entry) => {
    // Act
    const resultPath = STATES.get(name)?.state.ResultPath;
    // Assess
    if (entry.handler === "compensate") expect(resultPath).toBe(`$.compensation.${name}`);
    else expect(resultPath).toBe(`$.${entry.resultKey}`);
  });

  it.each(STEP_FUNCTIONS.map((entry) => [`${entry.module}.${entry.handler}`, entry] as const))(
    "functions/steps/%s is a handler",
    async (_where, entry) => {
      // Act
      // vite-ignore: the path resolves at run time (to the .ts source), as the local runner loads it.
      const module = (await import(/* @vite-ignore */ `../../functions/steps/${entry.module}.js`)) as Record<string, unknown>;
      // Assess
      expect(typeof module[entry.handler]).toBe("function");
    },
  );

  it("its descriptions begin every ASL Comment of a Task state named after a step, in all three workflows", () => {
    // Prepare
    const tasks = aslTasks().filter((task) => ALL_CATALOG_STATES.includes(task.name));
    const descriptionOf = new Map(ALL_STEP_FUNCTIONS.map((entry) => [entry.state, entry.description]));
    // Act
    const mismatches = tasks
      .filter((task) => firstSentence(task.comment ?? "") !== descriptionOf.get(task.name))
      .map((task) => `${task.file} ${task.name}: ${task.comment}`);
    // Assess
    expect(new Set(tasks.map((task) => task.name))).toEqual(new Set(ALL_CATALOG_STATES));
    expect(mismatches).toEqual([]);
  });

  it("the comparison takes the first sentence, not a dot inside a name", () => {
    // Act
    const sentence = firstSentence("Emit the tenant's nextflow.config. Then eks:DescribeCluster.");
    // Assess
    expect(sentence).toBe("Emit the tenant's nextflow.config");
  });

  it.each(ALL_STEP_FUNCTIONS.map((entry) => [entry.state, entry] as const))(
    "%s's description fits a Lambda description",
    (_name, entry) => {
      // Assess
      expect(entry.description.length).toBeLessThanOrEqual(LAMBDA_DESCRIPTION_ROOM);
    },
  );

  it("is what the README's 'What a run does' table names, state for state", () => {
    // Act
    const named = readmeTableStates();
    // Assess
    expect([...new Set(named)].sort()).toEqual([...CATALOG_STATES].sort());
  });
});

describe("functions/steps/catalog.ts: the teardown (statemachines/deprovision.asl.json)", () => {
  const definition = JSON.parse(readFileSync(join(ROOT, "statemachines/deprovision.asl.json"), "utf8")) as {
    States: Record<string, { Type: string; Resource?: string }>;
  };
  const tasks = Object.entries(definition.States).filter(([, state]) => state.Type === "Task");

  it.each(DEPROVISION_STEP_FUNCTIONS.map((entry) => [entry.state, entry] as const))(
    "%s is a Task state of the deprovision ASL that runs its placeholder",
    (name, entry) => {
      // Act
      const state = definition.States[name];
      // Assess
      expect(state?.Type).toBe("Task");
      expect(state?.Resource).toBe(`\${${entry.placeholder}}`);
    },
  );

  it("runs only catalog Lambdas: the teardown's own, and the provisioning workflow's compensators and ResolveCluster", () => {
    // Act
    const placeholders = tasks.map(([, state]) => /^\$\{(.+)\}$/.exec(state.Resource ?? "")?.[1]);
    const functions = placeholders.map((placeholder) => ALL_STEP_FUNCTIONS.find((entry) => entry.placeholder === placeholder));
    // Assess
    expect(functions.every(Boolean)).toBe(true);
    expect(functions.map((entry) => `${entry!.module}.${entry!.handler}`)).toEqual([
      "resolve-cluster.apply",
      "head-job.compensate",
      "storage.compensate",
      "rbac.compensate",
      "namespace-removal.check",
      "cluster-access/index.compensate",
      "iam/index.compensate",
      "teardown-record.record",
    ]);
  });

  it.each(DEPROVISION_STEP_FUNCTIONS.map((entry) => [`${entry.module}.${entry.handler}`, entry] as const))(
    "functions/steps/%s is a handler",
    async (_where, entry) => {
      // Act
      const module = (await import(/* @vite-ignore */ `../../functions/steps/${entry.module}.js`)) as Record<string, unknown>;
      // Assess
      expect(typeof module[entry.handler]).toBe("function");
    },
  );
});
