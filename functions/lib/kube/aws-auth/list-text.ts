/**
 * Edits of one aws-auth list (the text of `mapRoles` or `mapUsers`) as text: every byte outside the item added,
 * removed or replaced stays as it was (indentation, quoting, comments, flow spacing, a missing final newline).
 * The items are located with the `yaml` library's CST (concrete syntax tree, which knows each token's offset), so
 * the edit is a splice of the source rather than a re-serialisation. An append followed by the removal of the
 * appended item gives back the original text byte for byte.
 *
 * The text must already parse as a list of mappings (codec.ts checks it first): item i here is entry i there.
 */
import { CST, Document, Parser, parseDocument } from "yaml";

/** Where one item sits in the text. */
interface ItemSpan {
  /** The first byte of the item itself: the `-` indicator (block) or the value (flow). */
  start: number;
  /** Just after the item: after its final newline (block), after its last non-blank byte (flow). */
  end: number;
  /** Block: the start of the indicator's line when only indentation precedes it (what a removal takes with the item). */
  lineStart: number;
}

interface ListLayout {
  style: "block" | "flow" | "empty";
  items: ItemSpan[];
  /** Flow: just after the opening `[` (where the first item of an empty flow list goes). */
  afterOpen: number;
}

const TO_STRING = { lineWidth: 0, minContentWidth: 0 } as const;
const SEPARATOR_TOKENS = new Set(["comma", "space", "newline", "comment"]);

function lineStartOf(text: string, offset: number): number {
  const lineStart = text.lastIndexOf("\n", offset - 1) + 1;
  return /^[ \t]*$/.test(text.slice(lineStart, offset)) ? lineStart : offset;
}

function itemTokens(item: CST.CollectionItem): CST.Token[] {
  return [...item.start, ...(item.key ? [item.key] : []), ...(item.sep ?? []), ...(item.value ? [item.value] : [])];
}

function spanOf(text: string, item: CST.CollectionItem, style: "block" | "flow"): ItemSpan | undefined {
  const tokens = itemTokens(item);
  if (!item.value && !item.key) return undefined; // `[ ]`: only blanks, no item
  const itemStart = (tokens[0] as { offset: number }).offset;
  const itemEnd = itemStart + CST.stringify(item).length;
  if (style === "block") {
    const indicator = item.start.find((token) => token.type === "seq-item-ind")?.offset ?? itemStart;
    return { start: indicator, end: itemEnd, lineStart: lineStartOf(text, indicator) };
  }
  const first = tokens.find((token) => !SEPARATOR_TOKENS.has(token.type)) as { offset: number };
  const end = first.offset + text.slice(first.offset, itemEnd).trimEnd().length;
  return { start: first.offset, end, lineStart: first.offset };
}

/** The list's style and where its items are. */
function layoutOf(text: string): ListLayout {
  const document = [...new Parser().parse(text)].find((token): token is CST.Document => token.type === "document");
  const value = document?.value;
  if (value?.type === "block-seq") {
    return { style: "block", items: value.items.flatMap((item) => spanOf(text, item, "block") ?? []), afterOpen: 0 };
  }
  if (value?.type === "flow-collection" && value.start.source === "[") {
    return { style: "flow", items: value.items.flatMap((item) => spanOf(text, item, "flow") ?? []), afterOpen: value.start.offset + 1 };
  }
  return { style: "empty", items: [], afterOpen: 0 };
}

/** The style of nested block lists in the original (`groups:\n- x` or `groups:\n  - x`), for a new block item. */
function indentsNestedLists(text: string): boolean {
  const doc = parseDocument(text);
  return doc.contents === null || doc.toString({ ...TO_STRING, indentSeq: false }) !== text;
}

function blockItemText(entry: Record<string, unknown>, text: string, column: number): string {
  const own = new Document([entry]).toString({ ...TO_STRING, indentSeq: indentsNestedLists(text) });
  const pad = " ".repeat(column);
  return own.replace(/\n(?=.)/g, `\n${pad}`);
}

function splice(text: string, start: number, end: number, insert: string): string {
  return text.slice(0, start) + insert + text.slice(end);
}

/** The column of the list's `-` indicators (0 for a list with no item yet). */
function columnOf(text: string, layout: ListLayout): number {
  const last = layout.items[layout.items.length - 1];
  return last ? last.start - (text.lastIndexOf("\n", last.start - 1) + 1) : 0;
}

/** `text` with `entry` appended as its last item: JSON inside a flow list, a block item otherwise. */
export function appendItem(text: string | undefined, entry: Record<string, unknown>): string {
  if (text === undefined) return blockItemText(entry, "", 0);
  const layout = layoutOf(text);
  const last = layout.items[layout.items.length - 1];
  if (layout.style === "flow") {
    if (!last) return splice(text, layout.afterOpen, layout.afterOpen, JSON.stringify(entry));
    const before = layout.items[layout.items.length - 2];
    const separator = before ? text.slice(before.end, last.start) : ", ";
    return splice(text, last.end, last.end, separator + JSON.stringify(entry));
  }
  const at = last ? last.end : text.length;
  const column = last ? columnOf(text, layout) : 0;
  // A new line of its own: indented like the items before it.
  const item = " ".repeat(column) + blockItemText(entry, text, column);
  // A text whose last line has no newline keeps it that way: the item goes on a new line, itself unterminated.
  const chunk = at > 0 && text[at - 1] !== "\n" ? `\n${item.replace(/\n$/, "")}` : item;
  return splice(text, at, at, chunk);
}

/** `text` without item `index`, and nothing else: its separator in a flow list, its own lines in a block list. */
export function removeItem(text: string, index: number): string {
  const layout = layoutOf(text);
  const item = layout.items[index];
  if (!item) return text;
  if (layout.style === "flow") {
    const next = layout.items[index + 1];
    const previous = layout.items[index - 1];
    if (next) return splice(text, item.start, next.start, "");
    return splice(text, previous ? previous.end : item.start, item.end, "");
  }
  // The last item on an unterminated last line takes the newline before it (the inverse of appendItem).
  const unterminated = item.end === text.length && !text.endsWith("\n");
  const start = unterminated && item.lineStart > 0 && text[item.lineStart - 1] === "\n" ? item.lineStart - 1 : item.lineStart;
  return splice(text, start, item.end, "");
}

/** The source of item `index` (what {@link replaceItem} replaces), or undefined without such an item. */
export function itemText(text: string, index: number): string | undefined {
  const item = layoutOf(text).items[index];
  return item && text.slice(item.start, item.end);
}

/** `text` with item `index` replaced by `entry` (in the list's style); `written` is the new item's source. */
export function replaceItem(text: string, index: number, entry: Record<string, unknown>): { text: string; written: string } {
  const layout = layoutOf(text);
  const item = layout.items[index];
  if (!item) throw new RangeError(`the list has no item ${index}`);
  return replaceItemText(text, index, layout.style === "flow" ? JSON.stringify(entry) : newBlockItem(text, layout, item, entry));
}

function newBlockItem(text: string, layout: ListLayout, item: ItemSpan, entry: Record<string, unknown>): string {
  const written = blockItemText(entry, text, columnOf(text, layout));
  return text.slice(item.start, item.end).endsWith("\n") ? written : written.replace(/\n$/, "");
}

/** `text` with the source of item `index` replaced by `source` verbatim (an undo puts a recorded item back this way). */
export function replaceItemText(text: string, index: number, source: string): { text: string; written: string } {
  const item = layoutOf(text).items[index];
  if (!item) throw new RangeError(`the list has no item ${index}`);
  return { text: splice(text, item.start, item.end, source), written: source };
}
