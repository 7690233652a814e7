/**
 * Pod Security admission (staging/src/k8s.io/pod-security-admission), as kube-apiserver runs it with EKS's defaults
 * (no exemptions, `privileged` where a namespace has no label): the namespace's labels
 * `pod-security.kubernetes.io/{enforce,warn,audit}[-version]` pick the levels; a pod that breaks the `enforce` level
 * is refused with `pods "<name>" is forbidden: violates PodSecurity "<level>:<version>": <reason> (<detail>), ...`,
 * and one that breaks the `warn` level is admitted with a `Warning: would violate PodSecurity ...` header. Workload
 * objects (Jobs) are only warned about; their pods are what is refused.
 *
 * The checks, in upstream's order and words: baseline `hostNamespaces`, `hostPorts`, `privileged`, `procMount`,
 * `seccompProfile` (not Unconfined), `capabilities` (only the default set), `hostPath volumes`; restricted adds
 * `allowPrivilegeEscalation != false`, `unrestricted capabilities` (drop ALL, add at most NET_BIND_SERVICE),
 * `restricted volume types` (hostPath only, here), `runAsNonRoot != true` and `seccompProfile` (RuntimeDefault or
 * Localhost). AppArmor, SELinux, sysctls, runAsUser and Windows host processes are not checked.
 */
import { forbidden, type KubeStatusError } from "./kube-status.js";
import { PODS } from "./resources.js";
import type { KubeObject } from "./admission.js";

export type PodSecurityLevel = "privileged" | "baseline" | "restricted";
const LEVELS: PodSecurityLevel[] = ["privileged", "baseline", "restricted"];
const LABEL = "pod-security.kubernetes.io";

interface Policy {
  level: PodSecurityLevel;
  version: string;
}

/** The policy of one mode (`enforce`, `warn`, `audit`) from the namespace's labels; no label: privileged. */
export function namespacePolicy(labels: Record<string, string> | undefined, mode: "enforce" | "warn" | "audit"): Policy {
  const level = labels?.[`${LABEL}/${mode}`];
  return {
    level: LEVELS.includes(level as PodSecurityLevel) ? (level as PodSecurityLevel) : "privileged",
    version: labels?.[`${LABEL}/${mode}-version`] ?? "latest",
  };
}

interface Container {
  name: string;
  securityContext?: any;
  ports?: Array<{ hostPort?: number }>;
}

type Violation = [reason: string, detail: string];

const joinQuote = (items: string[]) => items.map((i) => JSON.stringify(i)).join(", ");
const plural = (one: string, many: string, n: number) => (n === 1 ? one : many);
const named = (names: string[]) => `${plural("container", "containers", names.length)} ${joinQuote(names)}`;

function containersOf(spec: any): Container[] {
  return [...(spec?.initContainers ?? []), ...(spec?.containers ?? []), ...(spec?.ephemeralContainers ?? [])];
}

const DEFAULT_CAPABILITIES = new Set([
  "AUDIT_WRITE",
  "CHOWN",
  "DAC_OVERRIDE",
  "FOWNER",
  "FSETID",
  "KILL",
  "MKNOD",
  "NET_BIND_SERVICE",
  "SETFCAP",
  "SETGID",
  "SETPCAP",
  "SETUID",
  "SYS_CHROOT",
]);

function hostNamespaces(spec: any): Violation | undefined {
  const used = ["hostIPC", "hostNetwork", "hostPID"].filter((field) => spec?.[field] === true);
  return used.length ? ["host namespaces", used.map((f) => `${f}=true`).join(", ")] : undefined;
}

function hostPorts(spec: any): Violation | undefined {
  const bad = containersOf(spec).filter((c) => (c.ports ?? []).some((p) => (p.hostPort ?? 0) !== 0));
  if (!bad.length) return undefined;
  const ports = [...new Set(bad.flatMap((c) => (c.ports ?? []).filter((p) => p.hostPort).map((p) => String(p.hostPort))))].sort();
  return [
    "hostPort",
    `${named(bad.map((c) => c.name))} ${plural("uses", "use", bad.length)} ${plural("hostPort", "hostPorts", ports.length)} ${ports.join(", ")}`,
  ];
}

function privileged(spec: any): Violation | undefined {
  const bad = containersOf(spec)
    .filter((c) => c.securityContext?.privileged === true)
    .map((c) => c.name);
  return bad.length ? ["privileged", `${named(bad)} must not set securityContext.privileged=true`] : undefined;
}

function procMount(spec: any): Violation | undefined {
  const bad = containersOf(spec).filter((c) => (c.securityContext?.procMount ?? "Default") !== "Default");
  if (!bad.length) return undefined;
  const values = [...new Set(bad.map((c) => String(c.securityContext.procMount)))].sort();
  return ["procMount", `${named(bad.map((c) => c.name))} must not set securityContext.procMount to ${joinQuote(values)}`];
}

function seccompBaseline(spec: any): Violation | undefined {
  const setters = [
    ...(spec?.securityContext?.seccompProfile?.type === "Unconfined" ? ["pod"] : []),
    ...(() => {
      const bad = containersOf(spec)
        .filter((c) => c.securityContext?.seccompProfile?.type === "Unconfined")
        .map((c) => c.name);
      return bad.length ? [named(bad)] : [];
    })(),
  ];
  return setters.length
    ? ["seccompProfile", `${setters.join(" and ")} must not set securityContext.seccompProfile.type to "Unconfined"`]
    : undefined;
}

function capabilitiesBaseline(spec: any): Violation | undefined {
  const added = (c: Container): string[] =>
    (c.securityContext?.capabilities?.add ?? []).filter((cap: string) => !DEFAULT_CAPABILITIES.has(cap));
  const bad = containersOf(spec).filter((c) => added(c).length > 0);
  if (!bad.length) return undefined;
  const caps = [...new Set(bad.flatMap(added))].sort();
  return [
    "non-default capabilities",
    `${named(bad.map((c) => c.name))} must not include ${joinQuote(caps)} in securityContext.capabilities.add`,
  ];
}

function hostPathVolumes(spec: any): Violation | undefined {
  const bad = (spec?.volumes ?? []).filter((v: any) => v?.hostPath).map((v: any) => String(v.name));
  return bad.length ? ["hostPath volumes", `${plural("volume", "volumes", bad.length)} ${joinQuote(bad)}`] : undefined;
}

function allowPrivilegeEscalation(spec: any): Violation | undefined {
  const bad = containersOf(spec)
    .filter((c) => c.securityContext?.allowPrivilegeEscalation !== false)
    .map((c) => c.name);
  return bad.length
    ? ["allowPrivilegeEscalation != false", `${named(bad)} must set securityContext.allowPrivilegeEscalation=false`]
    : undefined;
}

function capabilitiesRestricted(spec: any): Violation | undefined {
  const containers = containersOf(spec);
  const missingDrop = containers.filter((c) => !(c.securityContext?.capabilities?.drop ?? []).includes("ALL")).map((c) => c.name);
  const adding = containers.filter((c) => (c.securityContext?.capabilities?.add ?? []).some((cap: string) => cap !== "NET_BIND_SERVICE"));
  const caps = [
    ...new Set(adding.flatMap((c) => (c.securityContext.capabilities.add as string[]).filter((cap) => cap !== "NET_BIND_SERVICE"))),
  ].sort();
  const details = [
    ...(missingDrop.length ? [`${named(missingDrop)} must set securityContext.capabilities.drop=["ALL"]`] : []),
    ...(adding.length
      ? [`${named(adding.map((c) => c.name))} must not include ${joinQuote(caps)} in securityContext.capabilities.add`]
      : []),
  ];
  return details.length ? ["unrestricted capabilities", details.join("; ")] : undefined;
}

function restrictedVolumes(spec: any): Violation | undefined {
  const bad = (spec?.volumes ?? []).filter((v: any) => v?.hostPath).map((v: any) => String(v.name));
  return bad.length
    ? [
        "restricted volume types",
        `${plural("volume", "volumes", bad.length)} ${joinQuote(bad)} ${plural("uses", "use", bad.length)} restricted volume type "hostPath"`,
      ]
    : undefined;
}

function runAsNonRoot(spec: any): Violation | undefined {
  const pod = spec?.securityContext?.runAsNonRoot;
  const containers = containersOf(spec);
  const explicit = containers.filter((c) => c.securityContext?.runAsNonRoot === false).map((c) => c.name);
  const setters = [...(pod === false ? ["pod"] : []), ...(explicit.length ? [named(explicit)] : [])];
  if (setters.length) return ["runAsNonRoot != true", `${setters.join(" and ")} must not set securityContext.runAsNonRoot=false`];
  const implicit = containers.filter((c) => c.securityContext?.runAsNonRoot === undefined && pod !== true).map((c) => c.name);
  return implicit.length ? ["runAsNonRoot != true", `pod or ${named(implicit)} must set securityContext.runAsNonRoot=true`] : undefined;
}

function seccompRestricted(spec: any): Violation | undefined {
  const valid = (type: unknown) => type === "RuntimeDefault" || type === "Localhost";
  const podType = spec?.securityContext?.seccompProfile?.type;
  const containers = containersOf(spec);
  const explicit = containers.filter((c) => c.securityContext?.seccompProfile && !valid(c.securityContext.seccompProfile.type));
  const setters = [
    ...(podType !== undefined && !valid(podType) ? ["pod"] : []),
    ...(explicit.length ? [named(explicit.map((c) => c.name))] : []),
  ];
  if (setters.length) {
    const values = [
      ...new Set([
        ...(podType !== undefined && !valid(podType) ? [String(podType)] : []),
        ...explicit.map((c) => String(c.securityContext.seccompProfile.type)),
      ]),
    ].sort();
    return ["seccompProfile", `${setters.join(" and ")} must not set securityContext.seccompProfile.type to ${joinQuote(values)}`];
  }
  const implicit = containers.filter((c) => !c.securityContext?.seccompProfile && !valid(podType)).map((c) => c.name);
  return implicit.length
    ? ["seccompProfile", `pod or ${named(implicit)} must set securityContext.seccompProfile.type to "RuntimeDefault" or "Localhost"`]
    : undefined;
}

const BASELINE = [hostNamespaces, hostPorts, privileged, procMount, seccompBaseline];
const BASELINE_ONLY = [capabilitiesBaseline, hostPathVolumes];
const RESTRICTED = [allowPrivilegeEscalation, capabilitiesRestricted, restrictedVolumes, runAsNonRoot, seccompRestricted];

/** What breaks `level` in a pod spec, as `reason (detail)` joined the way upstream joins them; undefined: nothing. */
export function podSecurityViolations(level: PodSecurityLevel, spec: unknown): string | undefined {
  if (level === "privileged") return undefined;
  const checks = level === "baseline" ? [...BASELINE, ...BASELINE_ONLY] : [...BASELINE, ...RESTRICTED];
  const found = checks.map((check) => check(spec)).filter((v): v is Violation => v !== undefined);
  return found.length ? found.map(([reason, detail]) => `${reason} (${detail})`).join(", ") : undefined;
}

/** The 403 for a pod that breaks its namespace's `enforce` level, or undefined when it may be created. */
export function podSecurityRefusal(namespaceLabels: Record<string, string> | undefined, pod: KubeObject): KubeStatusError | undefined {
  const policy = namespacePolicy(namespaceLabels, "enforce");
  const violations = podSecurityViolations(policy.level, pod.spec);
  if (!violations) return undefined;
  return forbidden(
    { username: "", verb: "create", type: PODS, name: pod.metadata.name },
    `violates PodSecurity "${policy.level}:${policy.version}": ${violations}`,
  );
}

/** The `Warning` header for a pod (or a Job's pod template) that breaks the namespace's `warn` level. */
export function podSecurityWarning(namespaceLabels: Record<string, string> | undefined, podSpec: unknown): string | undefined {
  const policy = namespacePolicy(namespaceLabels, "warn");
  const violations = podSecurityViolations(policy.level, podSpec);
  return violations ? `299 - ${JSON.stringify(`would violate PodSecurity "${policy.level}:${policy.version}": ${violations}`)}` : undefined;
}
