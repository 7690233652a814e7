/**
 * Synthesizing the SST app as `sst deploy` does, offline (test/infra/stack-*.test.ts): the deploy-time settings
 * the tests use, the synth itself (optionally bundling the Lambdas with SST's esbuild), and readers that turn
 * the CloudFormation template into what the assertions compare (policy statements, role actions, Lambdas by
 * handler, intrinsics rendered readably). No AWS credentials are used: in test mode SST skips its bootstrap lookups.
 */
import path from "node:path";
import type { Stack } from "aws-cdk-lib";
import { Template } from "aws-cdk-lib/assertions";
import { CfnFunction } from "aws-cdk-lib/aws-lambda";
import { App, getStack } from "sst/constructs";
import { initProject } from "sst/project.js";
import { afterAll, beforeAll, expect, vi } from "vitest";
import type { StepFunctionEntry } from "../../functions/steps/catalog.js";
import sstConfig from "../../sst.config.js";
import { Provisioner } from "../../stacks/Provisioner.js";

/** The deployment the tests synthesize: its account, IAM prefix, boundary and the two clusters it allows. */
export const ACCOUNT = "123456789012";
export const PREFIX = "nfeks";
export const BOUNDARY = `arn:aws:iam::${ACCOUNT}:policy/platform-boundary`;
export const ALLOWED = [
  { name: "research", region: "eu-west-1", outputSuffix: "ResearchEuWest1" },
  { name: "genomics-prod", region: "us-east-1", outputSuffix: "GenomicsProdUsEast1" },
];
export const BASE_ENV = {
  ALLOWED_CLUSTERS: ALLOWED.map((c) => `${c.name}@${c.region}`).join(","),
  ALLOWED_ACCOUNT_IDS: "111122223333",
  IAM_PREFIX: PREFIX,
  PERMISSIONS_BOUNDARY_ARN: "",
  ONBOARDING_EVENT_SOURCES: "com.example.onboarding",
};

// ---------------------------------------------------------------- template helpers

export type Json = any; // CloudFormation JSON

export interface Statement {
  Effect: string;
  Action: string | string[];
  Resource: Json;
  Condition?: Record<string, Record<string, Json>>;
}

export const asList = <T>(value: T | T[] | undefined): T[] => (value === undefined ? [] : Array.isArray(value) ? value : [value]);

/** Intrinsics rendered readably: `{Ref: AWS::Partition}` → aws, GetAtt → `<Id.Attr>`, Join → joined. */
export function flatten(value: Json): string {
  if (typeof value === "string") return value;
  if (value?.Ref === "AWS::Partition") return "aws";
  if (value?.Ref === "AWS::Region") return "eu-west-1";
  if (value?.Ref === "AWS::AccountId") return ACCOUNT;
  if (value?.Ref === "AWS::URLSuffix") return "amazonaws.com";
  if (value?.Ref) return `<${value.Ref}>`;
  if (value?.["Fn::GetAtt"]) return `<${value["Fn::GetAtt"].join(".")}>`;
  if (value?.["Fn::Join"]) return value["Fn::Join"][1].map(flatten).join(value["Fn::Join"][0]);
  return JSON.stringify(value);
}

export function resourcesOf(template: Template, type: string): Array<[string, Json]> {
  return Object.entries(template.findResources(type)).map(([id, resource]) => [id, (resource as Json).Properties]);
}

/** Every statement of every policy in the stack (AWS::IAM::Policy documents and inline role policies). */
export function allStatements(template: Template): Array<{ policy: string; statement: Statement }> {
  const found: Array<{ policy: string; statement: Statement }> = [];
  for (const [id, props] of resourcesOf(template, "AWS::IAM::Policy")) {
    for (const statement of props.PolicyDocument.Statement) found.push({ policy: id, statement });
  }
  for (const [id, props] of resourcesOf(template, "AWS::IAM::Role")) {
    for (const inline of props.Policies ?? [])
      for (const statement of inline.PolicyDocument.Statement) found.push({ policy: `${id}/inline`, statement });
  }
  return found;
}

export const isReadOnly = (action: string) => /^[a-z0-9-]+:(Get|List|Describe)/.test(action);

export function functionIdByHandler(template: Template, handler: string): string {
  const matches = resourcesOf(template, "AWS::Lambda::Function").filter(([, props]) => props.Handler === handler);
  expect(
    matches.map(([id]) => id),
    `exactly one Lambda with handler ${handler}`,
  ).toHaveLength(1);
  return matches[0][0];
}

export const stepHandler = (entry: StepFunctionEntry) => `functions/steps/${entry.module}.${entry.handler}`;

/** The Allow actions (minus X-Ray) of the policies attached to a Lambda's role. */
export function roleActions(template: Template, functionId: string): string[] {
  const fn = template.findResources("AWS::Lambda::Function")[functionId] as Json;
  const roleId = fn.Properties.Role["Fn::GetAtt"][0];
  const actions = new Set<string>();
  for (const [, props] of resourcesOf(template, "AWS::IAM::Policy")) {
    if (!props.Roles.some((r: Json) => r.Ref === roleId)) continue;
    for (const s of props.PolicyDocument.Statement as Statement[]) {
      if (s.Effect !== "Allow") continue; // a Deny grants nothing
      for (const a of asList(s.Action)) if (!a.startsWith("xray:")) actions.add(a);
    }
  }
  return [...actions].sort();
}

/** Where SST put each Lambda's bundle: `.sst/artifacts/<construct address>/`, by logical ID. */
export function bundleDirectories(stack: Stack): Map<string, string> {
  const dirs = new Map<string, string>();
  for (const construct of stack.node.findAll()) {
    if (construct instanceof CfnFunction)
      dirs.set(stack.resolve(stack.getLogicalId(construct)), path.join(".sst", "artifacts", construct.node.scope!.node.addr));
  }
  return dirs;
}

export async function synthesize(env: Record<string, string>, { bundle }: { bundle: boolean }): Promise<Template> {
  return (await synthesizeStack(env, { bundle })).template;
}

export async function synthesizeStack(
  env: Record<string, string>,
  { bundle }: { bundle: boolean },
): Promise<{ template: Template; stack: Stack }> {
  for (const [name, value] of Object.entries(env)) vi.stubEnv(name, value);
  const { name } = await sstConfig.config({ stage: "test" });
  const app = new App({ mode: "deploy", stage: "test", name, region: "eu-west-1", account: ACCOUNT });
  // The app's own stacks() from sst.config.ts, as `sst deploy` calls it.
  await sstConfig.stacks(app);
  // finish() runs SST's deferred tasks: the esbuild bundle of every function, as in `sst deploy`.
  if (bundle) await app.finish();
  const stack = getStack(Provisioner);
  return { template: Template.fromStack(stack), stack };
}

/** SST's project for the stage "test", set up before the file's tests; the stubbed variables restored after them. */
export function useSstTestProject(): void {
  beforeAll(async () => {
    // Without NODE_ENV=test SST would look up its bootstrap stack in a real account.
    vi.stubEnv("NODE_ENV", "test");
    await initProject({ stage: "test" });
  });

  afterAll(() => {
    vi.unstubAllEnvs();
  });
}
