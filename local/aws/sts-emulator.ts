/**
 * Emulated STS (query protocol, version 2011-06-15): GetCallerIdentity, answered for the access key
 * that signed the request (header-signed, or a presigned URL as the EKS authenticator forwards it).
 */
import { AwsApiError, type AwsRequest } from "./protocol.js";
import type { XmlValue } from "./xml.js";

export const STS_NAMESPACE = "https://sts.amazonaws.com/doc/2011-06-15/";
export const STS_VERSION = "2011-06-15";

export function handleSts(request: AwsRequest, action: string): Record<string, XmlValue> {
  if (action !== "GetCallerIdentity") throw new AwsApiError("InvalidAction", 400, `Could not find operation ${action} for version ${STS_VERSION}`);
  const { caller } = request;
  return { UserId: caller.userId, Account: caller.accountId, Arn: caller.arn };
}
