/**
 * Contract: the EKS bearer token (#13 points 6 and 7), against the sandbox (default) or a real cluster (TARGET=aws).
 * A token presigned for the regional STS endpoint is accepted; one presigned for another host (what
 * AWS_ENDPOINT_URL_STS pointing at a VPC endpoint used to give) or bound to another cluster is refused with 401.
 * Creates and removes nothing.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openTarget, kubeConfigWithToken, whoAmI, type ContractTarget } from "./target.js";

let target: ContractTarget;

beforeAll(async () => {
  target = await openTarget();
});

afterAll(async () => {
  await target?.close();
});

describe("the EKS token", () => {
  it("presigned for the regional STS endpoint, authenticates", async () => {
    // Act
    const answer = await whoAmI(await kubeConfigWithToken(target));
    // Assess
    expect(answer.status).toBe(201);
    expect(answer.username).toBeTruthy();
  });

  it("presigned for a VPC endpoint's host, is refused (401)", async () => {
    // Act
    const answer = await whoAmI(
      await kubeConfigWithToken(target, {
        stsEndpoint: `https://vpce-0123456789abcdef0-abcdefgh.sts.${target.cluster.region}.vpce.amazonaws.com`,
      }),
    );
    // Assess
    expect(answer.status).toBe(401);
  });

  it("bound to another cluster's name (x-k8s-aws-id), is refused (401)", async () => {
    // Act
    const answer = await whoAmI(await kubeConfigWithToken(target, { clusterName: `${target.cluster.name}-other` }));
    // Assess
    expect(answer.status).toBe(401);
  });
});
