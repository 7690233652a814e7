/**
 * The exact problems (path and message) of a refused deploy configuration, which operators get at start. These words
 * are the product's: written down before zod 4 (whose built-in messages differ) so that a dependency move cannot
 * change what operators read. The request's: request-refusal-messages.test.ts.
 */
import { describe, expect, it } from "vitest";
import { checkDeploymentConfig, loadDeploymentConfig } from "../../functions/lib/domain/deploy-config.js";
import type { Problem } from "../../functions/lib/domain/errors.js";

const BASE = { ALLOWED_CLUSTERS: "research@eu-west-1", ALLOWED_ACCOUNT_IDS: "111122223333", IAM_PREFIX: "nfeks" };

const CONFIG_REFUSALS: Array<[name: string, env: Record<string, string>, problems: Problem[]]> = [
  ["an empty cluster list", { ALLOWED_CLUSTERS: "" }, [{ path: "allowedClusters", message: "Array must contain at least 1 element(s)" }]],
  [
    "a JSON list with a null entry",
    { ALLOWED_CLUSTERS: '[{"name":"research","region":"eu-west-1"},null]' },
    [{ path: "allowedClusters.1", message: "Expected object, received null" }],
  ],
  [
    "a JSON list of names",
    { ALLOWED_CLUSTERS: '["research"]' },
    [{ path: "allowedClusters.0", message: "Expected object, received string" }],
  ],
  [
    "a JSON entry with a number for a name and no region",
    { ALLOWED_CLUSTERS: '[{"name":1}]' },
    [
      { path: "allowedClusters.0.name", message: "Expected string, received number" },
      { path: "allowedClusters.0.region", message: "Required" },
    ],
  ],
  ["a listed cluster without a region", { ALLOWED_CLUSTERS: "orphan" }, [{ path: "allowedClusters.0.region", message: "Required" }]],
  [
    "a JSON region of the wrong type",
    { ALLOWED_CLUSTERS: '[{"name":"research","region":true}]' },
    [{ path: "allowedClusters.0.region", message: "Expected string, received boolean" }],
  ],
  [
    "account IDs that are not 12 digits",
    { ALLOWED_ACCOUNT_IDS: "12,abc" },
    [
      { path: "allowedAccountIds.0", message: "account IDs are 12 digits" },
      { path: "allowedAccountIds.1", message: "account IDs are 12 digits" },
    ],
  ],
  [
    "an IAM prefix with spaces",
    { IAM_PREFIX: "bad prefix!" },
    [{ path: "iamPrefix", message: "iamPrefix is 1-20 characters of [A-Za-z0-9+=,.@_-]" }],
  ],
  [
    "a boundary that is no IAM policy",
    { PERMISSIONS_BOUNDARY_ARN: "arn:aws:s3:::b" },
    [{ path: "permissionsBoundaryArn", message: 'an IAM policy ARN is needed, this one is for service "s3"' }],
  ],
  [
    "several problems at once",
    { ALLOWED_CLUSTERS: "lab*@eu-west-1,orphan", ALLOWED_ACCOUNT_IDS: "1", IAM_PREFIX: "xxxxxxxxxxxxxxxxxxxxx" },
    [
      {
        path: "allowedClusters.0.name",
        message: "an EKS cluster name is 1-100 letters, digits, '-' or '_', starting with a letter or digit",
      },
      { path: "allowedClusters.1.region", message: "Required" },
      { path: "allowedAccountIds.0", message: "account IDs are 12 digits" },
      { path: "iamPrefix", message: "iamPrefix is 1-20 characters of [A-Za-z0-9+=,.@_-]" },
    ],
  ],
];

describe("the problems of a refused deploy configuration, word for word", () => {
  it.each(CONFIG_REFUSALS)("%s", (_name, env, problems) => {
    // Act
    const checked = checkDeploymentConfig({ ...BASE, ...env });
    // Assess
    expect(checked).toEqual({ problems });
  });

  it("reach the operator joined into one message", () => {
    // Prepare
    const env = { ...BASE, ALLOWED_CLUSTERS: "lab*@eu-west-1,orphan", ALLOWED_ACCOUNT_IDS: "1" };
    // Act
    const load = () => loadDeploymentConfig(env);
    // Assess
    expect(load).toThrow(
      new Error(
        "Invalid deployment configuration: allowedClusters.0.name: an EKS cluster name is 1-100 letters, digits, '-' or '_', starting with a letter or digit; " +
          "allowedClusters.1.region: Required; allowedAccountIds.0: account IDs are 12 digits",
      ),
    );
  });

  it("drops keys it does not know in a JSON cluster entry", () => {
    // Act
    const checked = checkDeploymentConfig({ ...BASE, ALLOWED_CLUSTERS: '[{"name":"research","region":"eu-west-1","account":"1"}]' });
    // Assess
    expect(checked).toMatchObject({ config: { allowedClusters: [{ name: "research", region: "eu-west-1" }] } });
  });
});
