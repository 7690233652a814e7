/**
 * The plumbing the sandbox's HTTP(S) servers share: reading a request body under a size limit, the
 * request headers as one string each, listening on a port and closing with the open connections.
 */
import type { IncomingMessage, Server } from "node:http";
import type { AddressInfo } from "node:net";

/**
 * The whole request body. Once it grows past `limit` bytes, throws what `onTooLarge` returns (each
 * server answers an oversized body in its own protocol's words).
 */
export async function readBody(
  req: IncomingMessage,
  limit = Infinity,
  onTooLarge: () => Error = () => new Error("request body too large"),
): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > limit) throw onTooLarge();
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks);
}

/** The request headers, one string each (repeated headers joined with ","); Node has lower-cased the names. */
export function flatHeaders(req: IncomingMessage): Record<string, string> {
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(req.headers)) {
    if (value !== undefined) headers[name] = Array.isArray(value) ? value.join(",") : value;
  }
  return headers;
}

/** Listens on `host:port` (port 0: any free one); resolves with the port, rejects on a listen error (EADDRINUSE). */
export async function listen(server: Server, port: number, host: string): Promise<number> {
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => resolve());
  });
  return (server.address() as AddressInfo).port;
}

/** Stops listening and drops every open connection (keep-alive ones and watches included). */
export function closeServer(server: Server): Promise<void> {
  return new Promise<void>((resolve) => {
    server.close(() => resolve());
    server.closeAllConnections();
  });
}
