/**
 * GET /executions/{id} (functions/api/status.ts) called as API Gateway calls it, with Step Functions mocked
 * (aws-sdk-client-mock): the execution the tests ask about, DescribeExecution's answer for it, and the handler's
 * status and parsed body. `useStatusApi()` sets the state machine the handler reads and resets the mock before each test.
 */
import { beforeEach } from "vitest";
import { mockClient } from "aws-sdk-client-mock";
import { SFNClient, type DescribeExecutionOutput } from "@aws-sdk/client-sfn";
import type { APIGatewayProxyEventV2 } from "aws-lambda";
import { handler } from "../../functions/api/status.js";
import { resetClients } from "../../functions/lib/aws/clients.js";
import { T0 } from "./execution-history.js";
import { useEnv } from "./fixtures.js";
import { STATE_MACHINE_ARN } from "./sfn-fake.js";

export { STATE_MACHINE_ARN };
export const sfn = mockClient(SFNClient);

export const NAME = "genomics_key-1";
export const EXECUTION_ARN = `arn:aws:states:eu-west-1:111122223333:execution:nf-eks-provision:${NAME}`;

export function described(
  status: DescribeExecutionOutput["status"],
  extra: Partial<DescribeExecutionOutput> = {},
): DescribeExecutionOutput {
  return {
    executionArn: EXECUTION_ARN,
    stateMachineArn: STATE_MACHINE_ARN,
    name: NAME,
    status,
    startDate: new Date(T0),
    ...(status !== "RUNNING" ? { stopDate: new Date(T0 + 120_000) } : {}),
    input: "{}",
    ...extra,
  };
}

export function apiEvent(id: string | undefined): APIGatewayProxyEventV2 {
  return {
    pathParameters: id === undefined ? undefined : { id },
    requestContext: { requestId: "req-1" },
  } as unknown as APIGatewayProxyEventV2;
}

export async function get(id: string | undefined): Promise<{ statusCode: number; body: any }> {
  const response = await handler(apiEvent(id));
  return { statusCode: response.statusCode!, body: JSON.parse(response.body!) };
}

/** The handler's environment for the file's tests, and a fresh mock and SDK clients before each. */
export function useStatusApi(): void {
  useEnv({ STATE_MACHINE_ARN });

  beforeEach(() => {
    sfn.reset();
    resetClients();
  });
}
