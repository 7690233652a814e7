/** `npx tsx local/write-openapi.ts`: write openapi.json (the HTTP API's OpenAPI document) from the zod schemas. */
import { writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { openApiDocument } from "../functions/api/openapi-document.js";

export const OPENAPI_FILE = join(resolve(dirname(fileURLToPath(import.meta.url)), ".."), "openapi.json");

/** The document's text as committed: 2-space JSON and a final newline. */
export function openApiText(): string {
  return `${JSON.stringify(openApiDocument(), null, 2)}\n`;
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) writeFileSync(OPENAPI_FILE, openApiText());
