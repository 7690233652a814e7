/**
 * The RBAC registry's privilege-escalation rule, as kube-apiserver applies it to Role, ClusterRole, RoleBinding and
 * ClusterRoleBinding writes (pkg/registry/rbac/{role,rolebinding}/policybased, pkg/registry/rbac/validation):
 *  - a Role/ClusterRole create or update passes when the user is in system:masters, or may `escalate` that role
 *    (authorized with the request's name: a create has none, so `escalate` limited by resourceNames never covers a
 *    create), or already holds every rule it grants (in the role's namespace);
 *  - a RoleBinding/ClusterRoleBinding create or update passes when the user is in system:masters, or may `bind` the
 *    role it refers to (its name and kind, in the binding's namespace), or already holds every rule of that role.
 * Otherwise: 403 `<resource> "<name>" is forbidden: user "<u>" (groups=[...]) is attempting to grant RBAC
 * permissions not currently held:` followed by the missing rules, one per line, as upstream compacts and sorts them.
 */
import { forbidden, notFound, type KubeStatusError } from "./kube-status.js";
import { isPrivileged, roleRules, rulesHeldBy, type KubeUser, type PolicyRule, type RequestAttributes } from "./rbac-authorizer.js";
import { CLUSTER_ROLES, ROLES, type ResourceType } from "./resources.js";
import type { KubeObject, KubeStore } from "./store.js";

const RBAC_GROUP = "rbac.authorization.k8s.io";
const ROLE_RESOURCES = new Set(["roles", "clusterroles"]);
const BINDING_RESOURCES = new Set(["rolebindings", "clusterrolebindings"]);

/** Asks the authorizer (and records the decision); the API server hands its own. */
export type Authorize = (attributes: RequestAttributes) => boolean;

/** True when the escalation rule applies to writes of this type. */
export function guardsEscalation(type: ResourceType): boolean {
  return type.group === RBAC_GROUP && (ROLE_RESOURCES.has(type.resource) || BINDING_RESOURCES.has(type.resource));
}

/**
 * Throws the API server's 403 (or the 404 of a binding's missing role) when `object`, written by `user`, would grant
 * more than the user holds. `requestName` is the name on the URL: absent for a create.
 */
export function requireNoEscalation(
  store: KubeStore,
  user: KubeUser,
  type: ResourceType,
  object: KubeObject,
  request: { namespace?: string; name?: string },
  authorize: Authorize,
): void {
  if (isPrivileged(user) || !guardsEscalation(type)) return;
  const namespace = type.namespaced ? request.namespace : undefined;
  let granted: PolicyRule[];
  if (ROLE_RESOURCES.has(type.resource)) {
    if (authorize({ verb: "escalate", apiGroup: RBAC_GROUP, resource: type.resource, namespace, name: request.name })) return;
    granted = (object.rules ?? []) as PolicyRule[];
  } else {
    const ref = object.roleRef ?? {};
    const resource = ref.kind === "ClusterRole" ? "clusterroles" : "roles";
    if (authorize({ verb: "bind", apiGroup: ref.apiGroup ?? RBAC_GROUP, resource, namespace, name: ref.name })) return;
    const rules = roleRules(store, ref.kind, namespace, ref.name);
    if (!rules) throw notFound(ref.kind === "ClusterRole" ? CLUSTER_ROLES : ROLES, ref.name);
    granted = rules as PolicyRule[];
  }
  const missing = uncovered(rulesHeldBy(store, user, namespace), granted);
  if (missing.length > 0) throw escalationForbidden(user, type, object.metadata?.name ?? "", missing);
}

// ---------------------------------------------------------------- upstream's Covers

/** One verb, one group, one resource, at most one name (BreakdownRule). */
function breakdown(rule: PolicyRule): PolicyRule[] {
  const atoms: PolicyRule[] = [];
  for (const group of rule.apiGroups ?? []) {
    for (const resource of rule.resources ?? []) {
      for (const verb of rule.verbs ?? []) {
        const names = rule.resourceNames?.length ? rule.resourceNames : [undefined];
        for (const name of names)
          atoms.push({
            apiGroups: [group],
            resources: [resource],
            verbs: [verb],
            ...(name !== undefined ? { resourceNames: [name] } : {}),
          });
      }
    }
  }
  for (const url of rule.nonResourceURLs ?? []) for (const verb of rule.verbs ?? []) atoms.push({ nonResourceURLs: [url], verbs: [verb] });
  return atoms;
}

const has = (list: string[] | undefined, value: string) => (list ?? []).includes(value);
const hasAll = (list: string[] | undefined, values: string[] | undefined) => (values ?? []).every((v) => has(list, v));

/** `pods/log` is covered by `pods/log`, `*\/log` or `*`. */
function resourcesCover(owned: string[] | undefined, wanted: string[] | undefined): boolean {
  if (has(owned, "*") || hasAll(owned, wanted)) return true;
  return (wanted ?? []).every((path) => has(owned, path) || (path.includes("/") && has(owned, `*/${path.slice(path.indexOf("/") + 1)}`)));
}

function urlsCover(owned: string[] | undefined, wanted: string[] | undefined): boolean {
  return (wanted ?? []).every((path) =>
    (owned ?? []).some((o) => o === path || (o.endsWith("*") && path.startsWith(o.replace(/\*+$/, "")))),
  );
}

function ruleCovers(owner: PolicyRule, atom: PolicyRule): boolean {
  const names = atom.resourceNames?.length
    ? !owner.resourceNames?.length || hasAll(owner.resourceNames, atom.resourceNames)
    : !owner.resourceNames?.length;
  return (
    (has(owner.verbs, "*") || hasAll(owner.verbs, atom.verbs)) &&
    (has(owner.apiGroups, "*") || hasAll(owner.apiGroups, atom.apiGroups)) &&
    resourcesCover(owner.resources, atom.resources) &&
    urlsCover(owner.nonResourceURLs, atom.nonResourceURLs) &&
    names
  );
}

/** The atoms of `wanted` no rule of `owned` covers. */
export function uncovered(owned: PolicyRule[], wanted: PolicyRule[]): PolicyRule[] {
  return wanted.flatMap(breakdown).filter((atom) => !owned.some((owner) => ruleCovers(owner, atom)));
}

// ---------------------------------------------------------------- the message

/** CompactRules: atoms of one group and resource (and at most one name) merge their verbs. */
function compact(atoms: PolicyRule[]): PolicyRule[] {
  const merged = new Map<string, PolicyRule>();
  const others: PolicyRule[] = [];
  for (const atom of atoms) {
    if (atom.nonResourceURLs?.length) {
      others.push(atom);
      continue;
    }
    const key = JSON.stringify([atom.apiGroups, atom.resources, atom.resourceNames ?? null]);
    const existing = merged.get(key);
    if (existing) existing.verbs = [...(existing.verbs ?? []), ...(atom.verbs ?? [])];
    else merged.set(key, { ...atom, verbs: [...(atom.verbs ?? [])] });
  }
  return [...others, ...merged.values()];
}

/** Go's %q of a []string: `["a" "b"]`. */
function quoted(list: string[]): string {
  return `[${list.map((v) => JSON.stringify(v)).join(" ")}]`;
}

/** rbacv1helpers.CompactString. */
function compactString(rule: PolicyRule): string {
  const parts: string[] = [];
  if (rule.apiGroups?.length) parts.push(`APIGroups:${quoted(rule.apiGroups)}`);
  if (rule.resources?.length) parts.push(`Resources:${quoted(rule.resources)}`);
  if (rule.nonResourceURLs?.length) parts.push(`NonResourceURLs:${quoted(rule.nonResourceURLs)}`);
  if (rule.resourceNames?.length) parts.push(`ResourceNames:${quoted(rule.resourceNames)}`);
  if (rule.verbs?.length) parts.push(`Verbs:${quoted(rule.verbs)}`);
  return `{${parts.join(", ")}}`;
}

function escalationForbidden(user: KubeUser, type: ResourceType, name: string, missing: PolicyRule[]): KubeStatusError {
  const lines = [...new Set(compact(missing).map(compactString))].sort();
  const why = `user ${JSON.stringify(user.username)} (groups=${quoted(user.groups)}) is attempting to grant RBAC permissions not currently held:\n${lines.join("\n")}`;
  return forbidden({ username: user.username, verb: "create", type, name }, why);
}
