/**
 * The RBAC authorizer, evaluated over the store's Roles, ClusterRoles and their bindings exactly as
 * kube-apiserver does (verbs, apiGroups, resources with `res/sub` and `*\/sub`, resourceNames, `*`;
 * RoleBindings grant in their namespace, ClusterRoleBindings everywhere; subjects User, Group,
 * ServiceAccount). `system:masters` is the privileged group that bypasses authorization, as upstream.
 * The bootstrap policy every cluster has for authenticated users (discovery, /version, self reviews)
 * is compiled in here instead of being stored as system:* ClusterRoles.
 */
import type { KubeObject, KubeStore } from "./store.js";
import { CLUSTER_ROLE_BINDINGS, CLUSTER_ROLES, ROLE_BINDINGS, ROLES } from "./resources.js";

export interface KubeUser {
  username: string;
  groups: string[];
  uid?: string;
  extra?: Record<string, string[]>;
}

export interface RequestAttributes {
  /** get, list, watch, create, update, patch, delete, deletecollection (resource) or get/post/... (non-resource) */
  verb: string;
  /** resource requests */
  apiGroup?: string;
  resource?: string;
  subresource?: string;
  namespace?: string;
  name?: string;
  /** non-resource requests (`/version`, `/api`) */
  path?: string;
}

export interface PolicyRule {
  verbs?: string[];
  apiGroups?: string[];
  resources?: string[];
  resourceNames?: string[];
  nonResourceURLs?: string[];
}

const PRIVILEGED_GROUP = "system:masters";
export const AUTHENTICATED_GROUP = "system:authenticated";

/** system:discovery, system:public-info-viewer and system:basic-user, as bound to system:authenticated. */
const AUTHENTICATED_RULES: PolicyRule[] = [
  {
    verbs: ["get"],
    nonResourceURLs: [
      "/api",
      "/api/*",
      "/apis",
      "/apis/*",
      "/version",
      "/version/",
      "/healthz",
      "/livez",
      "/readyz",
      "/openapi",
      "/openapi/*",
    ],
  },
  { verbs: ["create"], apiGroups: ["authorization.k8s.io"], resources: ["selfsubjectaccessreviews", "selfsubjectrulesreviews"] },
  { verbs: ["create"], apiGroups: ["authentication.k8s.io"], resources: ["selfsubjectreviews"] },
];

function has(list: string[] | undefined, value: string): boolean {
  return (list ?? []).some((item) => item === "*" || item === value);
}

function ruleAllows(rule: PolicyRule, a: RequestAttributes): boolean {
  if (!has(rule.verbs, a.verb)) return false;
  if (a.path !== undefined) {
    return (rule.nonResourceURLs ?? []).some(
      (url) => url === "*" || url === a.path || (url.endsWith("*") && a.path!.startsWith(url.slice(0, -1))),
    );
  }
  if (!has(rule.apiGroups, a.apiGroup ?? "")) return false;
  const combined = a.subresource ? `${a.resource}/${a.subresource}` : a.resource!;
  const resourceMatch = (rule.resources ?? []).some(
    (r) => r === "*" || r === combined || (a.subresource !== undefined && r === `*/${a.subresource}`),
  );
  if (!resourceMatch) return false;
  if (rule.resourceNames && rule.resourceNames.length > 0) return a.name !== undefined && rule.resourceNames.includes(a.name);
  return true;
}

function subjectMatches(subject: any, user: KubeUser, bindingNamespace: string | undefined): boolean {
  switch (subject?.kind) {
    case "User":
      return subject.name === user.username;
    case "Group":
      return user.groups.includes(subject.name);
    case "ServiceAccount":
      return user.username === `system:serviceaccount:${subject.namespace ?? bindingNamespace}:${subject.name}`;
    default:
      return false;
  }
}

function boundToUser(binding: KubeObject, user: KubeUser): boolean {
  return (binding.subjects ?? []).some((s: unknown) => subjectMatches(s, user, binding.metadata.namespace));
}

/**
 * Every rule `user` holds in `namespace` (undefined: cluster scope), the bootstrap policy for authenticated users
 * included: what the RBAC registry's escalation check compares a Role's rules against (upstream's RulesFor).
 */
export function rulesHeldBy(store: KubeStore, user: KubeUser, namespace: string | undefined): PolicyRule[] {
  return [...(user.groups.includes(AUTHENTICATED_GROUP) ? AUTHENTICATED_RULES : []), ...rulesFor(store, user, namespace)];
}

/** The rules a Role or ClusterRole grants (a missing role grants nothing). */
export function roleRules(store: KubeStore, kind: string, namespace: string | undefined, name: string): PolicyRule[] | undefined {
  const role = kind === "ClusterRole" ? store.get(CLUSTER_ROLES, undefined, name) : store.get(ROLES, namespace, name);
  return role ? (role.rules ?? []) : undefined;
}

/** Every rule that applies to `user` for a request in `namespace` (undefined: cluster scope). */
function rulesFor(store: KubeStore, user: KubeUser, namespace: string | undefined): PolicyRule[] {
  const rules: PolicyRule[] = [];
  const clusterRole = (name: string) => store.get(CLUSTER_ROLES, undefined, name);
  for (const binding of store.list(CLUSTER_ROLE_BINDINGS)) {
    if (!boundToUser(binding, user)) continue;
    rules.push(...(clusterRole(binding.roleRef?.name)?.rules ?? []));
  }
  if (namespace) {
    for (const binding of store.list(ROLE_BINDINGS, { namespace })) {
      if (!boundToUser(binding, user)) continue;
      const role =
        binding.roleRef?.kind === "ClusterRole" ? clusterRole(binding.roleRef.name) : store.get(ROLES, namespace, binding.roleRef?.name);
      rules.push(...(role?.rules ?? []));
    }
  }
  return rules;
}

/** Members of system:masters: authorization and the escalation checks let them through, as upstream. */
export function isPrivileged(user: KubeUser): boolean {
  return user.groups.includes(PRIVILEGED_GROUP);
}

export function isAuthorized(store: KubeStore, user: KubeUser, attributes: RequestAttributes): boolean {
  if (isPrivileged(user)) return true;
  if (user.groups.includes(AUTHENTICATED_GROUP) && AUTHENTICATED_RULES.some((r) => ruleAllows(r, attributes))) return true;
  return rulesFor(store, user, attributes.namespace).some((r) => ruleAllows(r, attributes));
}
