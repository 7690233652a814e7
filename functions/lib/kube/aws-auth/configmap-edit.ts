/**
 * kube-system/aws-auth as the product edits it (CONFIG_MAP clusters). The ConfigMap is shared with the node
 * groups and with whoever else maps principals there, so every edit is:
 *   read → edit the parsed entries (codec.ts) → replace with the read resourceVersion; on 409 someone wrote in
 *   between, so read their version and redo the edit on it. Content that does not parse is never written back
 *   (AwsAuthUnparseable), and the ConfigMap is never created or deleted.
 * Marks: an annotation on the ConfigMap records which run (its run mark) added which principal ARN, so the
 * undo removes exactly its run's entry, found by its mark even when the step failed before returning.
 * Edits: a second annotation records what a run's edit needs for its exact undo: that it added the list key itself,
 * or, for an adopted entry it replaced, the entry's source before and after (put back only while the entry is still,
 * byte for byte, what the run wrote). Every edit is a splice of the list's text (list-text.ts), so removing the entry
 * a run appended gives back the data from before the run byte for byte, whatever others wrote elsewhere meanwhile.
 * Previous copy: the data before the edit travels in the step output only (Step Functions keeps it in the
 * execution history); one copy on the shared ConfigMap could not be right for every tenant at once.
 */
import type { V1ConfigMap } from "@kubernetes/client-node";
import { KubeConflict } from "../../domain/errors.js";
import { type RunMark, tenantOfLauncherUsername } from "../../domain/naming.js";
import { isKubeError, KUBE_REQUEST_TIMEOUT_MS, readObject, replaceObject, type KubeApi, type ObjectRef } from "../kube-client.js";
import {
  addMapping,
  findMapping,
  parseAwsAuth,
  removeMapping,
  restoreReplacedMapping,
  serializeAwsAuth,
  type AwsAuth,
  type AwsAuthMapping,
} from "./codec.js";

export const AWS_AUTH_REF: ObjectRef = { apiVersion: "v1", kind: "ConfigMap", namespace: "kube-system", name: "aws-auth" };
/** Read-edit-replace rounds before giving up with KubeConflict (the state machine then retries the step). */
export const AWS_AUTH_MAX_ATTEMPTS = 5;
/**
 * A Step Functions state holds at most 256 KiB, and this copy travels in the workflow state with the
 * request and every other step's result: a copy of an aws-auth larger than this (JSON characters, some
 * escaped to several bytes) is left out of the step output, keeping the state far below the limit (the
 * edit itself still proceeds; the undo does not need the copy).
 */
export const MAX_PREVIOUS_COPY_CHARS = 32_000;

/**
 * A copy of the data before the last edit, written by earlier versions. Shared by every tenant it went stale as
 * soon as one run was undone beside another's, so the copy now lives only in the step output
 * (`AccessResult.previousAwsAuth`); our next edit removes this annotation.
 */
export const ANNOTATION_PREVIOUS_AWS_AUTH = "nf-eks-provisioner/previous-aws-auth";
/** Which run (its run mark) added which principal ARN (JSON {arn: mark}). */
export const ANNOTATION_AWS_AUTH_MAPPINGS = "nf-eks-provisioner/mappings";
/**
 * What each execution's edits need for their exact undo (JSON {mark: {arn: {newList?, replaced?}}}): present only
 * for a run that added the list key itself or replaced an adopted entry (with the entry's source before and after).
 */
export const ANNOTATION_AWS_AUTH_EDITS = "nf-eks-provisioner/mapping-edits";

/** Where the edit reports what an operator may want to know: the step passes its logger (kube/ sits below workflow/). */
export interface AwsAuthLog {
  info(message: string, ...attributes: Array<Record<string, unknown>>): void;
  warn(message: string): void;
}

/** {principal ARN: run mark of the run that added its entry} */
type Marks = Record<string, string>;

/** What one run's edit of one principal's entry needs for its exact undo (see {@link MappingEdit}). */
interface RecordedEdit {
  /** The run added the list key along with the entry: its undo drops the key again. */
  newList?: true;
  /** The run replaced an entry it adopted: the source of each before, and the source it wrote. */
  replaced?: { previous: string[]; written: string };
}
/** {run mark: {principal ARN: what that run's edit needs for its undo}} */
type Edits = Record<string, Record<string, RecordedEdit>>;

/** What aws-auth holds for one principal: its entry, the run of this product that recorded it, whose launcher it maps to. */
export interface PrincipalMapping {
  entry: Record<string, unknown> | undefined;
  /** The run mark recorded for the entry (undefined without one, or without an entry). */
  recordedBy: string | undefined;
  /** The tenant whose launcher username the entry maps to (undefined for any other username, or without an entry). */
  launcherTenant: string | undefined;
}

/** The data before an edit, for the step output (left out when too large for a Step Functions state). */
export interface PreviousCopy {
  previousAwsAuth?: Record<string, string>;
}

/**
 * What the undo of one run found: the entries it removed, the adopted entries it put back as they were, the
 * entries it added that were changed since (kept, mark forgotten), and the adopted entries it changed that were
 * changed again since (kept: they could not be put back).
 */
export interface RunMappingsRemoval {
  removed: string[];
  restored: string[];
  changedSince: string[];
  notRestored: string[];
}

/** A JSON object annotation of ours; unreadable content counts as none (and is rewritten). */
function readJsonAnnotation(configMap: V1ConfigMap, name: string, log: AwsAuthLog): Record<string, unknown> {
  const raw = configMap.metadata?.annotations?.[name];
  if (!raw) return {};
  try {
    const parsed: unknown = JSON.parse(raw);
    if (parsed && typeof parsed === "object" && !Array.isArray(parsed)) return parsed as Record<string, unknown>;
  } catch {
    // reported below
  }
  log.warn(`ignoring unreadable ${name} annotation on kube-system/aws-auth`);
  return {};
}

/** The {arn: run mark} record on the ConfigMap. */
function readMarks(configMap: V1ConfigMap, log: AwsAuthLog): Marks {
  const parsed = readJsonAnnotation(configMap, ANNOTATION_AWS_AUTH_MAPPINGS, log);
  return Object.fromEntries(Object.entries(parsed).filter((e): e is [string, string] => typeof e[1] === "string"));
}

function readEdits(configMap: V1ConfigMap, log: AwsAuthLog): Edits {
  const parsed = readJsonAnnotation(configMap, ANNOTATION_AWS_AUTH_EDITS, log);
  return Object.fromEntries(
    Object.entries(parsed).filter((e): e is [string, Record<string, RecordedEdit>] => !!e[1] && typeof e[1] === "object"),
  );
}

/** The ConfigMap's annotations with ours set to `value` (removed when empty). */
function withJsonAnnotation(annotations: Record<string, string>, name: string, value: object): Record<string, string> {
  const { [name]: _old, ...rest } = annotations;
  return Object.keys(value).length > 0 ? { ...rest, [name]: JSON.stringify(value) } : rest;
}

/**
 * One read of kube-system/aws-auth, parsed, with the product's marks (the counterpart of eksctl's AuthConfigMap).
 * The edits change this copy only; {@link editAwsAuth} writes `replacement()` back.
 */
export class AwsAuthConfigMap {
  private parsed: AwsAuth | undefined;
  private marks: Marks;
  private edits: Edits;
  private changed = false;

  constructor(
    private readonly configMap: V1ConfigMap,
    private readonly log: AwsAuthLog,
  ) {
    this.marks = readMarks(configMap, log);
    this.edits = readEdits(configMap, log);
  }

  /**
   * The entries, parsed when an edit first needs them: throws AwsAuthUnparseable when mapRoles/mapUsers do not
   * parse, so such content is never written back (an undo with no mark of its run never needs them).
   */
  private get auth(): AwsAuth {
    this.parsed ??= parseAwsAuth(this.configMap.data);
    return this.parsed;
  }

  private set auth(auth: AwsAuth) {
    this.parsed = auth;
  }

  /** Read only (the ConfigMap is never written): undefined when it does not exist. */
  static async read(api: KubeApi, log: AwsAuthLog): Promise<AwsAuthConfigMap | undefined> {
    const configMap = await readObject<V1ConfigMap>(api, AWS_AUTH_REF);
    return configMap ? new AwsAuthConfigMap(configMap, log) : undefined;
  }

  /** `principalArn` canonical (awsAuthPrincipal): the marks are keyed by it. */
  mappingOf(principalArn: string): PrincipalMapping {
    const entry = findMapping(this.auth, principalArn);
    return {
      entry,
      recordedBy: entry !== undefined ? this.marks[principalArn] : undefined,
      launcherTenant: tenantOfLauncherUsername(entry?.username),
    };
  }

  /**
   * Map `mapping.arn` (canonical) for the run `runMark`. An entry a run of this product recorded is brought to the
   * mapping in place (changed by hand, or the shared username of an earlier version), and that change is recorded for
   * this run's undo; anyone else's entry with a different mapping is an OwnershipConflict (codec addMapping).
   * `created`: this run added the entry.
   */
  addRunMapping(mapping: AwsAuthMapping, runMark: RunMark): { created: boolean } & PreviousCopy {
    const { entry, recordedBy } = this.mappingOf(mapping.arn);
    const { auth, changed, edit } = addMapping(this.auth, mapping, { replaceOwned: recordedBy !== undefined });
    if (!changed || !edit) {
      // Already there: added by this run earlier (a retry), by another run, or by hand (then never ours to remove).
      const createdHere = recordedBy === runMark;
      // A retry whose first attempt wrote but never returned: the content before it is what this run's undo leaves.
      return { created: createdHere, ...(createdHere || this.edits[runMark]?.[mapping.arn] ? this.copyBeforeRun(runMark, mapping) : {}) };
    }
    const previous = this.copyOf(this.configMap.data);
    this.auth = auth;
    // A new entry is this run's (a stale mark for an entry removed by hand is replaced); an adjusted one stays
    // with the run that added it, and the adjustment is this run's to undo.
    if (entry === undefined) this.marks = { ...this.marks, [mapping.arn]: runMark };
    const recorded: RecordedEdit = {
      ...(edit.newList ? { newList: true as const } : {}),
      ...(edit.replaced ? { replaced: edit.replaced } : {}),
    };
    if (Object.keys(recorded).length > 0) this.edits = { ...this.edits, [runMark]: { ...this.edits[runMark], [mapping.arn]: recorded } };
    this.changed = true;
    return { created: entry === undefined || recordedBy === runMark, ...previous };
  }

  /**
   * Undo the run `runMark`: put back each adopted entry it replaced while it is still byte for byte what the run
   * wrote, remove each entry it added while it still maps to `only` (an entry someone changed after us is theirs
   * now), and forget its marks. With `principalArn` (canonical), only that principal's entry: the run's other edits
   * and marks stay (an update removing the mapping of a launcher the new spec no longer names).
   */
  removeRunMappings(runMark: RunMark, only: { username: string; groups: string[] }, principalArn?: string): RunMappingsRemoval {
    const removal: RunMappingsRemoval = { removed: [], restored: [], changedSince: [], notRestored: [] };
    const concerned = (arn: string) => principalArn === undefined || arn === principalArn;
    const allRunEdits = this.edits[runMark] ?? {};
    const runEdits = Object.fromEntries(Object.entries(allRunEdits).filter(([arn]) => concerned(arn)));
    const added = Object.keys(this.marks).filter((arn) => this.marks[arn] === runMark && concerned(arn));
    if (added.length === 0 && Object.keys(runEdits).length === 0) return removal;
    for (const [arn, recorded] of Object.entries(runEdits)) {
      if (!recorded.replaced) continue;
      const { auth, restored } = restoreReplacedMapping(this.auth, arn, recorded.replaced);
      this.auth = auth;
      (restored ? removal.restored : removal.notRestored).push(arn);
    }
    const remaining = { ...this.marks };
    for (const arn of added) {
      const { auth, removed } = removeMapping(this.auth, arn, only, { dropEmptiedList: runEdits[arn]?.newList === true });
      this.auth = auth;
      delete remaining[arn];
      (removed ? removal.removed : removal.changedSince).push(arn);
    }
    const { [runMark]: _done, ...otherRuns } = this.edits;
    const leftOfRun = Object.fromEntries(Object.entries(allRunEdits).filter(([arn]) => !concerned(arn)));
    this.marks = remaining;
    this.edits = Object.keys(leftOfRun).length > 0 ? { ...otherRuns, [runMark]: leftOfRun } : otherRuns;
    this.changed = true;
    return removal;
  }

  /**
   * The runs whose edits of `principalArn`'s entry are recorded here (the one that added it, those that changed it):
   * what a teardown undoes, run by run, to remove the environment's mapping whichever run made it.
   */
  runsThatMapped(principalArn: string): RunMark[] {
    const adder = this.marks[principalArn];
    const editors = Object.keys(this.edits).filter((run) => this.edits[run]?.[principalArn] !== undefined);
    // Marks read back from the annotations our own runs wrote (runMark made them).
    return [...new Set([...(adder ? [adder] : []), ...editors])] as RunMark[];
  }

  /**
   * The principals our runs recorded here (added or changed) whose entry maps the launcher identity of `tenant`: with
   * the principal an environment's record names, what a teardown removes (an update leaves an earlier launcher's
   * mapping to it).
   */
  launchersOfTenant(tenant: string): string[] {
    const recorded = new Set([...Object.keys(this.marks), ...Object.values(this.edits).flatMap((byArn) => Object.keys(byArn ?? {}))]);
    return [...recorded].filter((arn) => this.mappingOf(arn).launcherTenant === tenant);
  }

  /** The ConfigMap to write (new data and our marks; labels, owners and other annotations as read), or undefined when unchanged. */
  replacement(): V1ConfigMap | undefined {
    if (!this.changed) return undefined;
    // Ours, from an earlier version: a copy shared by every tenant's edits that goes stale.
    const { [ANNOTATION_PREVIOUS_AWS_AUTH]: _stale, ...read } = this.configMap.metadata?.annotations ?? {};
    const annotations = withJsonAnnotation(
      withJsonAnnotation(read, ANNOTATION_AWS_AUTH_MAPPINGS, this.marks),
      ANNOTATION_AWS_AUTH_EDITS,
      this.edits,
    );
    return { ...this.configMap, metadata: { ...this.configMap.metadata, annotations }, data: serializeAwsAuth(this.auth) };
  }

  /** The data as this run's undo would leave it (a fresh read of the same ConfigMap, undone). */
  private copyBeforeRun(runMark: RunMark, mapping: AwsAuthMapping): PreviousCopy {
    const undone = new AwsAuthConfigMap(this.configMap, this.log);
    undone.removeRunMappings(runMark, mapping);
    return this.copyOf(undone.replacement()?.data ?? this.configMap.data);
  }

  private copyOf(data: Record<string, string> | undefined): PreviousCopy {
    const copy = { ...(data ?? {}) };
    if (JSON.stringify(copy).length > MAX_PREVIOUS_COPY_CHARS) {
      this.log.warn("kube-system/aws-auth is too large to copy into the step output; the edit proceeds without the copy");
      return {};
    }
    return { previousAwsAuth: copy };
  }
}

/**
 * The worst case of one read-edit-replace round: a read and a replace, each cut off at KUBE_REQUEST_TIMEOUT_MS.
 * A round is started only when it can finish before the deadline.
 */
export const AWS_AUTH_ROUND_WORST_MS = 2 * KUBE_REQUEST_TIMEOUT_MS;

export interface EditAwsAuthOptions {
  /**
   * Epoch milliseconds by which the loop must have returned (the Lambda's own end, less a margin): a round that
   * could run past it is not started, and the step ends with KubeConflict for the state machine to retry.
   */
  deadline?: number;
}

/**
 * Read → `edit` → replace with the read resourceVersion when the edit changed something; a 409 means someone
 * wrote in between, so read their version and redo the edit on it. `missing` answers when the ConfigMap does
 * not exist (it is never created). The first round always runs; a further one only while the deadline allows it.
 */
export async function editAwsAuth<R>(
  api: KubeApi,
  log: AwsAuthLog,
  edit: (awsAuth: AwsAuthConfigMap) => R,
  missing: () => R,
  options: EditAwsAuthOptions = {},
): Promise<R> {
  for (let attempt = 1; attempt <= AWS_AUTH_MAX_ATTEMPTS; attempt++) {
    if (attempt > 1 && options.deadline !== undefined && Date.now() + AWS_AUTH_ROUND_WORST_MS > options.deadline) {
      throw new KubeConflict(
        `kube-system/aws-auth kept changing under us and this invocation has no time for another round (${attempt - 1} done); retrying later`,
      );
    }
    const configMap = await readObject<V1ConfigMap>(api, AWS_AUTH_REF);
    if (!configMap) return missing();
    const awsAuth = new AwsAuthConfigMap(configMap, log);
    const result = edit(awsAuth);
    const write = awsAuth.replacement();
    if (!write) return result;
    try {
      await replaceObject(api, write);
      return result;
    } catch (error) {
      if (!isKubeError(error, 409)) throw error;
      log.info("kube-system/aws-auth changed under us; reading it again", { attempt });
    }
  }
  throw new KubeConflict(`kube-system/aws-auth kept changing under us (${AWS_AUTH_MAX_ATTEMPTS} attempts); retrying later`);
}
