/**
 * The AWS query protocol (IAM, STS): form-encoded parameters in, XML out.
 *   in:  Action=CreateRole&Version=2010-05-08&RoleName=x&Tags.member.1.Key=k&Tags.member.1.Value=v
 *   out: <CreateRoleResponse xmlns="https://iam.amazonaws.com/doc/2010-05-08/">
 *          <CreateRoleResult>...</CreateRoleResult><ResponseMetadata><RequestId>..</RequestId></ResponseMetadata>
 *        </CreateRoleResponse>
 * Lists are `<member>` elements, timestamps ISO 8601, booleans `true`/`false`.
 */
import type { AwsApiError } from "./protocol.js";

export type XmlValue = string | number | boolean | Date | undefined | null | XmlValue[] | { [key: string]: XmlValue };

function escapeXml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&apos;" })[c]!);
}

/** IAM writes timestamps without milliseconds: 2024-05-01T12:00:00Z. */
function isoSeconds(date: Date): string {
  return date.toISOString().replace(/\.\d{3}Z$/, "Z");
}

/** One element; undefined and null members are left out, as AWS leaves out absent members. */
function xmlElement(name: string, value: XmlValue): string {
  if (value === undefined || value === null) return "";
  if (Array.isArray(value)) return `<${name}>${value.map((item) => xmlElement("member", item)).join("")}</${name}>`;
  if (value instanceof Date) return `<${name}>${isoSeconds(value)}</${name}>`;
  if (typeof value === "object") {
    return `<${name}>${Object.entries(value)
      .map(([key, child]) => xmlElement(key, child))
      .join("")}</${name}>`;
  }
  return `<${name}>${escapeXml(String(value))}</${name}>`;
}

export function queryResponse(action: string, namespace: string, requestId: string, result?: Record<string, XmlValue>): string {
  const body = result === undefined ? "" : xmlElement(`${action}Result`, result);
  return (
    `<${action}Response xmlns="${namespace}">${body}` +
    `<ResponseMetadata><RequestId>${escapeXml(requestId)}</RequestId></ResponseMetadata></${action}Response>`
  );
}

export function queryErrorResponse(error: AwsApiError, namespace: string, requestId: string): string {
  return (
    `<ErrorResponse xmlns="${namespace}"><Error><Type>${error.type}</Type><Code>${escapeXml(error.code)}</Code>` +
    `<Message>${escapeXml(error.message)}</Message></Error><RequestId>${escapeXml(requestId)}</RequestId></ErrorResponse>`
  );
}

/** The parameters of a query-protocol call: the form body of a POST and the URL query, flattened. */
export function queryParams(
  query: Record<string, string | string[]>,
  body: Buffer,
  contentType: string | undefined,
): Record<string, string> {
  const params: Record<string, string> = {};
  for (const [key, value] of Object.entries(query)) params[key] = Array.isArray(value) ? value[0] : value;
  if (body.length && (!contentType || contentType.startsWith("application/x-www-form-urlencoded"))) {
    for (const [key, value] of new URLSearchParams(body.toString("utf8"))) params[key] = value;
  }
  return params;
}

/** `Prefix.member.N` → values in N order. */
export function memberList(params: Record<string, string>, prefix: string): string[] {
  const pattern = new RegExp(`^${escapeRegExp(prefix)}\\.member\\.(\\d+)$`);
  return Object.entries(params)
    .map(([key, value]) => [pattern.exec(key)?.[1], value] as const)
    .filter((entry): entry is readonly [string, string] => entry[0] !== undefined)
    .sort((a, b) => Number(a[0]) - Number(b[0]))
    .map(([, value]) => value);
}

/** `Prefix.member.N.Field` → objects in N order. */
export function memberStructList(params: Record<string, string>, prefix: string): Array<Record<string, string>> {
  const pattern = new RegExp(`^${escapeRegExp(prefix)}\\.member\\.(\\d+)\\.(.+)$`);
  const byIndex = new Map<number, Record<string, string>>();
  for (const [key, value] of Object.entries(params)) {
    const match = pattern.exec(key);
    if (!match) continue;
    const index = Number(match[1]);
    byIndex.set(index, { ...byIndex.get(index), [match[2]]: value });
  }
  return [...byIndex.entries()].sort((a, b) => a[0] - b[0]).map(([, value]) => value);
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}
