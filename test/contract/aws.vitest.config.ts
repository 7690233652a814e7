/**
 * The contract tests against a real AWS account and EKS cluster (never run in CI or by `npm test`):
 *   TARGET=aws CONTRACT_CLUSTER=research CONTRACT_REGION=eu-west-1 npx vitest run --config test/contract/aws.vitest.config.ts
 * Credentials come from the default chain (AWS_PROFILE, SSO, ...); no fake keys are set here. The per-step IAM contract
 * also reads CONTRACT_STEP_ROLE_ARNS, CONTRACT_PERMISSIONS_BOUNDARY_ARN, CONTRACT_EVENT_BUS_NAME and CONTRACT_IAM_PREFIX
 * (README, Contract tests).
 * Each test sets its own timeout from the real durations it waits for (target.ts testTimeout).
 */
import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/contract/**/*.contract.test.ts"],
    environment: "node",
    env: { TARGET: "aws", POWERTOOLS_LOG_LEVEL: "SILENT", POWERTOOLS_TRACE_ENABLED: "false", POWERTOOLS_METRICS_DISABLED: "true" },
    testTimeout: 120_000,
    hookTimeout: 120_000,
    pool: "forks",
    fileParallelism: false,
  },
});
