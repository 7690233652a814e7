/**
 * What the sandbox's DynamoDB and Step Functions authorize for each operation (#12): the action from the
 * X-Amz-Target, the resource the Service Authorization Reference names, built from the request body.
 */
import { describe, expect, it } from "vitest";
import { dynamoDbChecks } from "../../local/aws/dynamodb.js";
import type { Caller } from "../../local/aws/protocol.js";
import { stepFunctionsChecks } from "../../local/sfn/service.js";

const caller: Caller = {
  accessKeyId: "ASIAEXAMPLE",
  arn: "arn:aws:sts::111122223333:assumed-role/r/s",
  accountId: "111122223333",
  userId: "AROA:s",
};
const TABLE = "arn:aws:dynamodb:eu-west-1:111122223333:table/registry";
const MACHINE = "arn:aws:states:eu-west-1:111122223333:stateMachine:provision";
const EXECUTION = "arn:aws:states:eu-west-1:111122223333:execution:provision:run-1";

describe("dynamoDbChecks", () => {
  it.each([
    ["UpdateItem", { TableName: "registry" }, [{ action: "dynamodb:UpdateItem", resource: TABLE }]],
    ["Query", { TableName: "registry" }, [{ action: "dynamodb:Query", resource: TABLE }]],
    ["Query", { TableName: "registry", IndexName: "byKind" }, [{ action: "dynamodb:Query", resource: `${TABLE}/index/byKind` }]],
    ["Scan", { TableName: TABLE, IndexName: "byKind" }, [{ action: "dynamodb:Scan", resource: `${TABLE}/index/byKind` }]],
    [
      "BatchWriteItem",
      { RequestItems: { registry: [], other: [] } },
      [
        { action: "dynamodb:BatchWriteItem", resource: TABLE },
        { action: "dynamodb:BatchWriteItem", resource: "arn:aws:dynamodb:eu-west-1:111122223333:table/other" },
      ],
    ],
    ["ListTables", {}, [{ action: "dynamodb:ListTables", resource: "*" }]],
    ["GetItem", { TableName: "x" }, []],
    ["GetItem", {}, []],
    ["Frobnicate", { TableName: "registry" }, []],
  ])("%s %j → %j", (operation, body, expected) => {
    // Prepare // Act
    const checks = dynamoDbChecks(operation, body, caller, "eu-west-1");
    // Assess
    expect(checks.map(({ action, resource }) => ({ action, resource }))).toEqual(expected);
  });
});

describe("stepFunctionsChecks", () => {
  it.each([
    ["StartExecution", { stateMachineArn: MACHINE }, [{ action: "states:StartExecution", resource: MACHINE }]],
    ["ListExecutions", { stateMachineArn: MACHINE }, [{ action: "states:ListExecutions", resource: MACHINE }]],
    ["DescribeExecution", { executionArn: EXECUTION }, [{ action: "states:DescribeExecution", resource: EXECUTION }]],
    ["GetExecutionHistory", { executionArn: EXECUTION }, [{ action: "states:GetExecutionHistory", resource: EXECUTION }]],
    ["StopExecution", { executionArn: EXECUTION }, [{ action: "states:StopExecution", resource: EXECUTION }]],
    ["ListStateMachines", {}, [{ action: "states:ListStateMachines", resource: "*" }]],
    ["StartExecution", { stateMachineArn: EXECUTION }, []],
    ["DescribeExecution", { executionArn: "not-an-arn" }, []],
  ])("%s %j → %j", (operation, input, expected) => {
    // Prepare // Act
    const checks = stepFunctionsChecks(operation, input);
    // Assess
    expect(checks.map(({ action, resource }) => ({ action, resource }))).toEqual(expected);
  });
});
