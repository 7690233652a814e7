/**
 * The two admission plugins a namespace's LimitRanges and ResourceQuotas act through, for pods:
 *  - LimitRanger (mutating): a container without a limit gets its LimitRange's `default`, one without a request its
 *    `defaultRequest` (after the API server's own defaulting: a limit without a request is also the request);
 *  - ResourceQuota (validating): when a quota names requests.cpu/memory, limits.cpu/memory (or cpu/memory), every
 *    container must state it, else `pods "<name>" is forbidden: failed quota: <quota>: must specify <resources>` —
 *    what a quota without a LimitRange's defaults does to a pod that asks for nothing. Usage is not counted here.
 */
import { forbidden, type KubeStatusError } from "./kube-status.js";
import { PODS } from "./resources.js";
import type { KubeObject } from "./admission.js";

type ResourceList = Record<string, string>;

interface ContainerResources {
  requests?: ResourceList;
  limits?: ResourceList;
}

function containersOf(pod: KubeObject): Array<{ resources?: ContainerResources }> {
  return [...(pod.spec?.initContainers ?? []), ...(pod.spec?.containers ?? [])];
}

/** Fill each container's missing limits and requests from the namespace's LimitRanges (type Container). */
export function applyLimitRangeDefaults(pod: KubeObject, limitRanges: KubeObject[]): void {
  const items = limitRanges
    .flatMap((range) => (range.spec?.limits ?? []) as Array<Record<string, any>>)
    .filter((item) => item.type === "Container");
  for (const container of containersOf(pod)) {
    const resources: ContainerResources = { ...(container.resources ?? {}) };
    const limits: ResourceList = { ...(resources.limits ?? {}) };
    const requests: ResourceList = { ...(resources.requests ?? {}) };
    for (const [resource, value] of Object.entries(limits)) requests[resource] ??= value;
    for (const item of items) {
      for (const [resource, value] of Object.entries((item.default ?? {}) as ResourceList)) limits[resource] ??= value;
      for (const [resource, value] of Object.entries((item.defaultRequest ?? {}) as ResourceList)) requests[resource] ??= value;
    }
    container.resources = {
      ...resources,
      ...(Object.keys(limits).length ? { limits } : {}),
      ...(Object.keys(requests).length ? { requests } : {}),
    };
  }
}

/** The quota resources a pod must state per container, and where in the container each one lives. */
const STATED: Record<string, { field: "requests" | "limits"; resource: string }> = {
  cpu: { field: "requests", resource: "cpu" },
  memory: { field: "requests", resource: "memory" },
  "requests.cpu": { field: "requests", resource: "cpu" },
  "requests.memory": { field: "requests", resource: "memory" },
  "limits.cpu": { field: "limits", resource: "cpu" },
  "limits.memory": { field: "limits", resource: "memory" },
};

/** The 403 of the first quota whose resources some container does not state, or undefined. */
export function quotaRefusal(pod: KubeObject, quotas: KubeObject[]): KubeStatusError | undefined {
  for (const quota of quotas) {
    const missing = Object.keys(quota.spec?.hard ?? {})
      .filter((name) => STATED[name] !== undefined)
      .filter((name) => containersOf(pod).some((c) => c.resources?.[STATED[name]!.field]?.[STATED[name]!.resource] === undefined))
      .sort();
    if (missing.length) {
      const why = `failed quota: ${quota.metadata.name}: must specify ${missing.join(",")}`;
      return forbidden({ username: "", verb: "create", type: PODS, name: pod.metadata.name }, why);
    }
  }
  return undefined;
}
