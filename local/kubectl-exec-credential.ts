/**
 * kubectl's exec credential plugin for the sandbox cluster (what `aws eks get-token` is for a real one):
 * prints an ExecCredential holding an EKS bearer token made by the same code the step Lambdas use.
 * Usage (from the kubeconfig the sandbox writes): tsx local/kubectl-exec-credential.ts <cluster> <region>
 */
import { eksBearerToken } from "../functions/lib/aws/eks-token.js";

const [cluster, region] = process.argv.slice(2);
if (!cluster || !region) {
  console.error("usage: eks-token <cluster-name> <region>");
  process.exit(2);
}
const { token, expiresAt } = await eksBearerToken(cluster, region);
process.stdout.write(
  JSON.stringify({
    kind: "ExecCredential",
    apiVersion: "client.authentication.k8s.io/v1beta1",
    spec: {},
    status: { expirationTimestamp: expiresAt.toISOString(), token },
  }),
);
