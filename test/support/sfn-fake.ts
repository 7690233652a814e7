/**
 * A small in-memory Step Functions behind aws-sdk-client-mock: StartExecution refuses a name it has
 * seen (ExecutionAlreadyExists, as a closed or different-input execution does), DescribeExecution
 * answers with the stored input. Shared by the API and EventBridge entry tests.
 */
import { mockClient } from "aws-sdk-client-mock";
import {
  DescribeExecutionCommand,
  ExecutionAlreadyExists,
  ExecutionDoesNotExist,
  SFNClient,
  StartExecutionCommand,
  type DescribeExecutionCommandInput,
  type StartExecutionCommandInput,
} from "@aws-sdk/client-sfn";

export const STATE_MACHINE_ARN = "arn:aws:states:eu-west-1:111122223333:stateMachine:nf-eks-provision";

export function fakeStepFunctions() {
  const sfn = mockClient(SFNClient);
  const executions = new Map<string, { input: string; executionArn: string }>();
  sfn.on(StartExecutionCommand).callsFake((input: StartExecutionCommandInput) => {
    const name = input.name!;
    if (executions.has(name)) {
      throw new ExecutionAlreadyExists({ message: `Execution Already Exists: '${name}'`, $metadata: { httpStatusCode: 400 } });
    }
    const executionArn = `${input.stateMachineArn!.replace(":stateMachine:", ":execution:")}:${name}`;
    executions.set(name, { input: input.input ?? "{}", executionArn });
    return { executionArn, startDate: new Date("2025-01-31T12:00:00Z") };
  });
  sfn.on(DescribeExecutionCommand).callsFake((input: DescribeExecutionCommandInput) => {
    const found = [...executions.values()].find((e) => e.executionArn === input.executionArn);
    if (!found) throw new ExecutionDoesNotExist({ message: `Execution Does Not Exist: '${input.executionArn}'`, $metadata: { httpStatusCode: 400 } });
    return { executionArn: found.executionArn, stateMachineArn: STATE_MACHINE_ARN, input: found.input, status: "SUCCEEDED", startDate: new Date() };
  });
  return {
    sfn,
    executions,
    startInputs: () => sfn.commandCalls(StartExecutionCommand).map((c) => c.args[0].input as StartExecutionCommandInput),
  };
}
