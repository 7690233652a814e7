/**
 * A small in-memory Step Functions behind aws-sdk-client-mock: StartExecution refuses a name it has
 * seen (ExecutionAlreadyExists, as a closed or different-input execution does), DescribeExecution
 * answers with the stored input and status, ListExecutions lists newest first, by status, in pages.
 * Executions end at once (SUCCEEDED) unless `startAs` says otherwise; `setStatus` moves one on.
 * Shared by the API and EventBridge entry tests.
 */
import { mockClient } from "aws-sdk-client-mock";
import {
  DescribeExecutionCommand,
  ExecutionAlreadyExists,
  ExecutionDoesNotExist,
  ListExecutionsCommand,
  SFNClient,
  StartExecutionCommand,
  type DescribeExecutionCommandInput,
  type ExecutionStatus,
  type ListExecutionsCommandInput,
  type StartExecutionCommandInput,
} from "@aws-sdk/client-sfn";

export const STATE_MACHINE_ARN = "arn:aws:states:eu-west-1:111122223333:stateMachine:nf-eks-provision";

export interface FakeStepFunctionsOptions {
  /** The status a started execution has (default SUCCEEDED: it ends at once) */
  startAs?: ExecutionStatus;
  /** The most ListExecutions answers per page, whatever maxResults asks (default 1000, the service's maximum) */
  listPageSize?: number;
}

interface FakeExecution {
  input: string;
  executionArn: string;
  stateMachineArn: string;
  status: ExecutionStatus;
  startDate: Date;
}

export function fakeStepFunctions(options: FakeStepFunctionsOptions = {}) {
  const sfn = mockClient(SFNClient);
  const executions = new Map<string, FakeExecution>();
  let clock = Date.parse("2025-01-31T12:00:00Z");
  const add = (stateMachineArn: string, name: string, input: string, status: ExecutionStatus): FakeExecution => {
    clock += 1000;
    const execution = {
      input,
      executionArn: `${stateMachineArn.replace(":stateMachine:", ":execution:")}:${name}`,
      stateMachineArn,
      status,
      startDate: new Date(clock),
    };
    executions.set(name, execution);
    return execution;
  };
  sfn.on(StartExecutionCommand).callsFake((input: StartExecutionCommandInput) => {
    const name = input.name!;
    if (executions.has(name)) {
      throw new ExecutionAlreadyExists({ message: `Execution Already Exists: '${name}'`, $metadata: { httpStatusCode: 400 } });
    }
    const started = add(input.stateMachineArn!, name, input.input ?? "{}", options.startAs ?? "SUCCEEDED");
    return { executionArn: started.executionArn, startDate: started.startDate };
  });
  sfn.on(DescribeExecutionCommand).callsFake((input: DescribeExecutionCommandInput) => {
    const found = [...executions.values()].find((e) => e.executionArn === input.executionArn);
    if (!found)
      throw new ExecutionDoesNotExist({ message: `Execution Does Not Exist: '${input.executionArn}'`, $metadata: { httpStatusCode: 400 } });
    return {
      executionArn: found.executionArn,
      stateMachineArn: found.stateMachineArn,
      input: found.input,
      status: found.status,
      startDate: found.startDate,
    };
  });
  sfn.on(ListExecutionsCommand).callsFake((input: ListExecutionsCommandInput) => {
    const size = Math.min(input.maxResults || 100, options.listPageSize ?? 1000);
    const offset = input.nextToken ? Number(input.nextToken) : 0;
    const matching = [...executions.entries()]
      .filter(([, e]) => e.stateMachineArn === input.stateMachineArn && (!input.statusFilter || e.status === input.statusFilter))
      .reverse();
    const page = matching.slice(offset, offset + size).map(([name, e]) => ({
      executionArn: e.executionArn,
      stateMachineArn: e.stateMachineArn,
      name,
      status: e.status,
      startDate: e.startDate,
    }));
    return { executions: page, ...(offset + size < matching.length ? { nextToken: String(offset + size) } : {}) };
  });
  return {
    sfn,
    executions,
    startInputs: () => sfn.commandCalls(StartExecutionCommand).map((c) => c.args[0].input as StartExecutionCommandInput),
    /** An execution started elsewhere (another request, the console), RUNNING unless said otherwise */
    seed: (name: string, status: ExecutionStatus = "RUNNING", input: unknown = {}, stateMachineArn = STATE_MACHINE_ARN) =>
      add(stateMachineArn, name, JSON.stringify(input), status),
    setStatus: (name: string, status: ExecutionStatus) => {
      const found = executions.get(name);
      if (!found) throw new Error(`no execution ${name} in the fake`);
      found.status = status;
    },
  };
}
