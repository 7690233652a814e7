/**
 * The real AWS CLI v2 against the AWS emulator (skipped where /usr/bin/aws is not installed).
 */
import { execFile } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { IAMClient } from "@aws-sdk/client-iam";
import { CreateAccessEntryCommand, type EKSClient } from "@aws-sdk/client-eks";
import { DEFAULT_ACCESS_KEY_ID, DEFAULT_SECRET_ACCESS_KEY, type AwsEmulator } from "../../local/aws/aws-emulator-server.js";
import {
  ACCOUNT,
  ADMIN_ARN,
  createLauncherRole,
  ISSUER,
  NODE_ROLE_ARN,
  REGION,
  RESEARCH,
  useAwsEmulator,
} from "../support/aws-emulator-clients.js";

let aws: AwsEmulator;
let iam: IAMClient;
let eks: EKSClient;
useAwsEmulator((started) => ({ aws, iam, eks } = started));

const AWS_CLI = "/usr/bin/aws";
const cliInstalled = existsSync(AWS_CLI);
const execFileAsync = promisify(execFile);

describe.skipIf(!cliInstalled)(`AWS CLI v2 ${cliInstalled ? "" : "(skipped: /usr/bin/aws is not installed)"}`.trim(), () => {
  let home: string;

  beforeAll(() => {
    home = mkdtempSync(join(tmpdir(), "aws-cli-home-"));
  });
  afterAll(() => rmSync(home, { recursive: true, force: true }));

  /** Runs the CLI with argv (no shell), the example keys and an empty home, against the emulator. */
  async function cli(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
    const env = {
      PATH: process.env.PATH ?? "/usr/bin:/bin",
      HOME: home,
      AWS_ACCESS_KEY_ID: DEFAULT_ACCESS_KEY_ID,
      AWS_SECRET_ACCESS_KEY: DEFAULT_SECRET_ACCESS_KEY,
      AWS_REGION: REGION,
      AWS_DEFAULT_REGION: REGION,
      AWS_PAGER: "",
      AWS_EC2_METADATA_DISABLED: "true",
      AWS_CONFIG_FILE: join(home, "config"),
      AWS_SHARED_CREDENTIALS_FILE: join(home, "credentials"),
    };
    try {
      const { stdout, stderr } = await execFileAsync(AWS_CLI, ["--endpoint-url", aws.url, "--output", "json", ...args], {
        env,
        timeout: 25_000,
      });
      return { code: 0, stdout, stderr };
    } catch (error) {
      const e = error as { code?: number; stdout?: string; stderr?: string };
      return { code: typeof e.code === "number" ? e.code : -1, stdout: e.stdout ?? "", stderr: e.stderr ?? "" };
    }
  }

  it("sts get-caller-identity", async () => {
    // Act
    const result = await cli("sts", "get-caller-identity");
    // Assess
    expect(result.code, result.stderr).toBe(0);
    expect(JSON.parse(result.stdout)).toMatchObject({ Account: ACCOUNT, Arn: ADMIN_ARN });
  });

  it("iam get-role, and the NoSuchEntity error for a missing role", async () => {
    // Act
    const found = await cli("iam", "get-role", "--role-name", "research-nodes");
    const missing = await cli("iam", "get-role", "--role-name", "ghost");
    // Assess
    expect(found.code, found.stderr).toBe(0);
    const role = JSON.parse(found.stdout).Role;
    expect(role.Arn).toBe(NODE_ROLE_ARN);
    // The CLI decodes the URL-encoded trust policy into JSON.
    expect(role.AssumeRolePolicyDocument.Statement[0].Principal).toEqual({ Service: "ec2.amazonaws.com" });
    expect(missing.code).not.toBe(0);
    expect(missing.stderr).toContain("(NoSuchEntity)");
  });

  it("eks describe-cluster", async () => {
    // Act
    const result = await cli("eks", "describe-cluster", "--name", "research");
    // Assess
    expect(result.code, result.stderr).toBe(0);
    expect(JSON.parse(result.stdout).cluster).toMatchObject({
      name: "research",
      arn: `arn:aws:eks:${REGION}:${ACCOUNT}:cluster/research`,
      status: "ACTIVE",
      endpoint: RESEARCH.endpoint,
      certificateAuthority: { data: RESEARCH.certificateAuthority },
      identity: { oidc: { issuer: ISSUER } },
    });
  });

  it("eks list-access-entries", async (ctx) => {
    // Prepare
    const principalArn = await createLauncherRole(iam);
    await eks.send(new CreateAccessEntryCommand({ clusterName: "research", principalArn }));
    // Act
    const result = await cli("eks", "list-access-entries", "--cluster-name", "research");
    // Assess
    // Access entries came with CLI 2.15 (Dec 2023); an older CLI does not know the command at all.
    ctx.skip(result.stderr.includes("Invalid choice"), `skipped: ${AWS_CLI} predates EKS access entries (no list-access-entries command)`);
    expect(result.code, result.stderr).toBe(0);
    expect(JSON.parse(result.stdout).accessEntries).toEqual([ADMIN_ARN, NODE_ROLE_ARN, principalArn]);
  });
});
