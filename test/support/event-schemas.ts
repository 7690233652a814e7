/**
 * The product's event schemas (events/*.schema.json, listed in functions/lib/domain/product-events.ts), compiled
 * once with ajv 8 (draft 2020-12, strict, formats): `schemaProblems(detailType, detail)` lists what an emitted
 * event's detail breaks, `[]` when it keeps its schema.
 */
import { readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import Ajv2020 from "ajv/dist/2020.js";
import addFormats from "ajv-formats";
import { PRODUCT_EVENTS, type ProductEventType } from "../../functions/lib/domain/product-events.js";

const ROOT = resolve(import.meta.dirname, "../..");

export function loadSchema(detailType: string): Record<string, unknown> {
  const entry = PRODUCT_EVENTS.find((e) => e.detailType === detailType);
  if (!entry) throw new Error(`${detailType} is not one of the product's events`);
  return JSON.parse(readFileSync(join(ROOT, entry.schemaFile), "utf8")) as Record<string, unknown>;
}

// The default exports are CommonJS modules seen through ESM: the class / function may sit on `.default`.
const AjvClass = ((Ajv2020 as unknown as { default?: unknown }).default ?? Ajv2020) as typeof Ajv2020;
const addFormatsFn = ((addFormats as unknown as { default?: unknown }).default ?? addFormats) as typeof addFormats;

export function newAjv(): InstanceType<typeof Ajv2020> {
  const ajv = new AjvClass({ strict: true, allErrors: true });
  addFormatsFn(ajv);
  return ajv;
}

const ajv = newAjv();
const validators = new Map(PRODUCT_EVENTS.map((e) => [e.detailType, ajv.compile(loadSchema(e.detailType))]));

/** What the detail breaks in its schema, one line each (`/path message`); [] when it is valid. */
export function schemaProblems(detailType: ProductEventType | string, detail: unknown): string[] {
  const validate = validators.get(detailType as ProductEventType);
  if (!validate) return [`${detailType} has no schema`];
  if (validate(detail)) return [];
  return (validate.errors ?? []).map(
    (e) =>
      `${e.instancePath || "/"} ${e.message}${e.params && "additionalProperty" in e.params ? `: ${String(e.params.additionalProperty)}` : ""}`,
  );
}
