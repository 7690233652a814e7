/**
 * kube-system/aws-auth as the product edits it (CONFIG_MAP clusters). The ConfigMap is shared with the node
 * groups and with whoever else maps principals there, so every edit is:
 *   read → edit the parsed entries (codec.ts) → replace with the read resourceVersion; on 409 someone wrote in
 *   between, so read their version and redo the edit on it. Content that does not parse is never written back
 *   (AwsAuthUnparseable), and the ConfigMap is never created or deleted.
 * Marks: an annotation on the ConfigMap records which run (its run mark) added which principal ARN, so the
 * undo removes exactly its run's entry, found by its mark even when the step failed before returning.
 * Previous copy: the data before the edit travels in the step output only (Step Functions keeps it in the
 * execution history); one copy on the shared ConfigMap could not be right for every tenant at once.
 */
import type { V1ConfigMap } from "@kubernetes/client-node";
import { KubeConflict } from "../../domain/errors.js";
import { type RunMark, tenantOfLauncherUsername } from "../../domain/naming.js";
import { isKubeError, readObject, replaceObject, type KubeApi, type ObjectRef } from "../kube-client.js";
import { addMapping, findMapping, parseAwsAuth, removeMapping, serializeAwsAuth, type AwsAuth, type AwsAuthMapping } from "./codec.js";

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

/** Where the edit reports what an operator may want to know: the step passes its logger (kube/ sits below workflow/). */
export interface AwsAuthLog {
  info(message: string, ...attributes: Array<Record<string, unknown>>): void;
  warn(message: string): void;
}

/** {principal ARN: run mark of the run that added its entry} */
type Marks = Record<string, string>;

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

/** What the undo of one run found: the entries it removed, and the ones changed since (kept, mark forgotten). */
export interface RunMappingsRemoval {
  removed: string[];
  changedSince: string[];
}

/** The {arn: run mark} record on the ConfigMap; unreadable content counts as none (and is rewritten). */
function readMarks(configMap: V1ConfigMap, log: AwsAuthLog): Marks {
  const raw = configMap.metadata?.annotations?.[ANNOTATION_AWS_AUTH_MAPPINGS];
  if (!raw) return {};
  try {
    const parsed: unknown = JSON.parse(raw);
    if (!parsed || typeof parsed !== "object" || Array.isArray(parsed)) return {};
    return Object.fromEntries(Object.entries(parsed).filter((e): e is [string, string] => typeof e[1] === "string"));
  } catch {
    log.warn(`ignoring unreadable ${ANNOTATION_AWS_AUTH_MAPPINGS} annotation on kube-system/aws-auth`);
    return {};
  }
}

/**
 * One read of kube-system/aws-auth, parsed, with the product's marks (the counterpart of eksctl's AuthConfigMap).
 * The edits change this copy only; {@link editAwsAuth} writes `replacement()` back.
 */
export class AwsAuthConfigMap {
  private parsed: AwsAuth | undefined;
  private marks: Marks;
  private changed = false;

  constructor(
    private readonly configMap: V1ConfigMap,
    private readonly log: AwsAuthLog,
  ) {
    this.marks = readMarks(configMap, log);
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
   * mapping in place (changed by hand, or the shared username of an earlier version); anyone else's entry with a
   * different mapping is an OwnershipConflict (codec addMapping). `created`: this run added the entry.
   */
  addRunMapping(mapping: AwsAuthMapping, runMark: RunMark): { created: boolean } & PreviousCopy {
    const { entry, recordedBy } = this.mappingOf(mapping.arn);
    const existedBefore = entry !== undefined;
    const { auth, changed } = addMapping(this.auth, mapping, { replaceOwned: recordedBy !== undefined });
    if (!changed) {
      // Already there: added by this run earlier (a retry), by another run, or by hand (then never ours to remove).
      const createdHere = recordedBy === runMark;
      // A retry whose first attempt wrote but never returned: the content before it is today's without this
      // run's entry (exactly what the undo will leave).
      return {
        created: createdHere,
        ...(createdHere ? this.copyOf(serializeAwsAuth(removeMapping(this.auth, mapping.arn, mapping).auth)) : {}),
      };
    }
    const previous = this.copyOf(this.configMap.data);
    this.auth = auth;
    // A new entry is this run's (a stale mark for an entry removed by hand is replaced); an adjusted one stays
    // with the run that added it.
    if (!existedBefore) this.marks = { ...this.marks, [mapping.arn]: runMark };
    this.changed = true;
    return { created: !existedBefore || recordedBy === runMark, ...previous };
  }

  /**
   * Undo the run `runMark`: remove each entry it recorded while it still maps to `only` (an entry someone changed
   * after us is theirs now), and forget its marks.
   */
  removeRunMappings(runMark: RunMark, only: { username: string; groups: string[] }): RunMappingsRemoval {
    const removal: RunMappingsRemoval = { removed: [], changedSince: [] };
    const ours = Object.keys(this.marks).filter((arn) => this.marks[arn] === runMark);
    if (ours.length === 0) return removal;
    const remaining = { ...this.marks };
    for (const arn of ours) {
      const { auth, removed } = removeMapping(this.auth, arn, only);
      this.auth = auth;
      delete remaining[arn];
      (removed ? removal.removed : removal.changedSince).push(arn);
    }
    this.marks = remaining;
    this.changed = true;
    return removal;
  }

  /** The ConfigMap to write (new data and our marks; labels, owners and other annotations as read), or undefined when unchanged. */
  replacement(): V1ConfigMap | undefined {
    if (!this.changed) return undefined;
    const annotations: Record<string, string> = { ...(this.configMap.metadata?.annotations ?? {}) };
    // Ours, from an earlier version: a copy shared by every tenant's edits that goes stale.
    delete annotations[ANNOTATION_PREVIOUS_AWS_AUTH];
    if (Object.keys(this.marks).length > 0) annotations[ANNOTATION_AWS_AUTH_MAPPINGS] = JSON.stringify(this.marks);
    else delete annotations[ANNOTATION_AWS_AUTH_MAPPINGS];
    return { ...this.configMap, metadata: { ...this.configMap.metadata, annotations }, data: serializeAwsAuth(this.auth) };
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
 * Read → `edit` → replace with the read resourceVersion when the edit changed something; a 409 means someone
 * wrote in between, so read their version and redo the edit on it. `missing` answers when the ConfigMap does
 * not exist (it is never created).
 */
export async function editAwsAuth<R>(api: KubeApi, log: AwsAuthLog, edit: (awsAuth: AwsAuthConfigMap) => R, missing: () => R): Promise<R> {
  for (let attempt = 1; attempt <= AWS_AUTH_MAX_ATTEMPTS; attempt++) {
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
