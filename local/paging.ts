/**
 * Pagination shared by the emulated AWS services (EKS `nextToken`, IAM `Marker`) and the local Step
 * Functions: pages are slices of a list, and a token is an opaque JSON value, base64url-encoded (what it
 * holds, and how it is checked, is each caller's business).
 */

export function encodePageToken(value: object): string {
  return Buffer.from(JSON.stringify(value)).toString("base64url");
}

/** The value a token holds, or undefined when it is not one of ours. */
export function decodePageToken<T>(token: string): T | undefined {
  try {
    return JSON.parse(Buffer.from(token, "base64url").toString("utf8")) as T;
  } catch {
    return undefined;
  }
}

/** One page of `items` starting at `offset`; `next` is the offset of the following page, if any. */
export function page<T>(items: T[], offset: number, size: number): { items: T[]; next?: number } {
  const slice = items.slice(offset, offset + size);
  return { items: slice, ...(offset + size < items.length ? { next: offset + size } : {}) };
}
