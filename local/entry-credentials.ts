/**
 * The entry Lambdas' credentials in the sandbox: each HTTP API route's handler and the ComputeEnvironmentRequested
 * handler run signed with their own role's session (local/aws/product-roles.ts), as deployed, so the AWS calls
 * they make are their role's: IAM, STS, EKS and EventBridge calls, and the Step Functions (local runner) and
 * DynamoDB (dynalite) calls, which the sandbox authorizes in front of them (local/aws/signed-service-gate.ts).
 */
import { signedWith, type Signer } from "../functions/lib/aws/clients.js";

/** `handler` run signed by `signer` (no signer: as it is). */
export function withEntrySigner<H extends (...args: any[]) => unknown>(handler: H, signer: Signer | undefined): H {
  if (!signer) return handler;
  return ((...args: Parameters<H>) => signedWith(signer, () => handler(...args))) as H;
}
