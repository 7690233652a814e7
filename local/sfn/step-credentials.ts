/**
 * Each step Lambda's credentials in the sandbox: a session of its own role (local/aws/product-roles.ts), issued
 * by the emulated STS as Lambda gets one for its execution role (trust: `lambda.amazonaws.com`), and renewed
 * before it expires. The runner (runner.ts, option `stepSigner`) runs each Task's handler signed with its step's
 * role, so every AWS call a step makes is authorized by that role's policies, as deployed.
 */
import type { AwsCredentialIdentity, AwsCredentialIdentityProvider } from "@smithy/types";
import type { Signer } from "../../functions/lib/aws/clients.js";
import type { StepFunctionEntry } from "../../functions/steps/catalog.js";
import type { AwsEmulator } from "../aws/aws-emulator-server.js";
import { stepRoleKey } from "../aws/product-roles.js";

/** Re-assume a role this long before its session expires. */
export const SESSION_REFRESH_MS = 5 * 60_000;

/** A session of `roleArn` assumed as Lambda, as an execution role gets one, renewed before it expires. */
export function lambdaRoleCredentials(aws: AwsEmulator, roleArn: string, sessionName: string): AwsCredentialIdentityProvider {
  let session: Awaited<ReturnType<AwsEmulator["assumeRole"]>> | undefined;
  let pending: Promise<void> | undefined;
  return async (): Promise<AwsCredentialIdentity> => {
    if (!session || session.credentials.expiration.getTime() - SESSION_REFRESH_MS < Date.now()) {
      // One AssumeRole for concurrent callers (the Parallel state's branches ask at once).
      pending ??= aws
        .assumeRole(roleArn, { service: "lambda.amazonaws.com", sessionName })
        .then((issued) => {
          session = issued;
        })
        .finally(() => {
          pending = undefined;
        });
      await pending;
    }
    const { accessKeyId, secretAccessKey, sessionToken, expiration } = session!.credentials;
    return { accessKeyId, secretAccessKey, sessionToken, expiration };
  };
}

/**
 * Signers by role key, from the roles' ARNs (defineProductRoles): one credentials provider per role, shared by
 * every Lambda that runs as it. The session is named after the role key, as Lambda names it after the function.
 */
export function roleSigners(aws: AwsEmulator, roleArns: Map<string, string>): Map<string, Signer> {
  const signers = new Map<string, Signer>();
  for (const [key, arn] of roleArns) {
    const sessionName = key.replace(/[^\w+=,.@-]+/g, "-").replace(/^-|-$/g, "").slice(0, 64) || "lambda";
    signers.set(key, { id: `role:${key}`, credentials: lambdaRoleCredentials(aws, arn, sessionName) });
  }
  return signers;
}

/** What the runner asks for each step: the signer of the step's role (undefined: one it does not know). */
export function stepSigners(signers: Map<string, Signer>): (entry: StepFunctionEntry) => Signer | undefined {
  return (entry) => signers.get(stepRoleKey(entry));
}
