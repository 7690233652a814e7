import { describe, expect, it } from "vitest";
import { ApiException } from "@kubernetes/client-node";
import { IAMServiceException, NoSuchEntityException, ServiceFailureException } from "@aws-sdk/client-iam";
import { InvalidParameterException } from "@aws-sdk/client-eks";
import {
  ClusterUnreachable,
  IamNotYetConsistent,
  InvalidRequest,
  KubeConflict,
  NamespaceTerminating,
  NotAllowed,
  OwnershipConflict,
  Throttled,
} from "../../functions/lib/domain/errors.js";
import { isAwsError, normaliseError } from "../../functions/lib/workflow/normalise-error.js";

/** An SDK v3 service error as the deserialiser builds it. */
function awsError(name: string, message: string, httpStatusCode: number, extra: Record<string, unknown> = {}) {
  return Object.assign(
    new IAMServiceException({ name, message, $fault: httpStatusCode >= 500 ? "server" : "client", $metadata: { httpStatusCode } }),
    extra,
  );
}

function kubeError(code: number, body: unknown) {
  return new ApiException(code, "kube call failed", body, {});
}

describe("normaliseError: AWS SDK errors", () => {
  it.each([
    ["Throttling", 400],
    ["ThrottlingException", 400],
    ["TooManyRequestsException", 429],
    ["RequestLimitExceeded", 503],
    ["SomethingNew", 429],
  ])("%s (HTTP %i) becomes Throttled", (name, status) => {
    // Prepare
    const original = awsError(name, "Rate exceeded", status);
    // Act
    const named = normaliseError(original, "iam:CreateRole");
    // Assess
    expect(named).toBeInstanceOf(Throttled);
    expect(named.name).toBe("Throttled");
    expect(named.message).toContain("iam:CreateRole failed");
    expect(named.cause).toBe(original);
  });

  it("treats $retryable.throttling as Throttled", () => {
    // Prepare
    const original = awsError("Weird", "slow down", 400, { $retryable: { throttling: true } });
    // Act
    const named = normaliseError(original);
    // Assess
    expect(named).toBeInstanceOf(Throttled);
  });

  it.each([
    [new ServiceFailureException({ message: "boom", $metadata: { httpStatusCode: 500 } }), "ServiceFailureException"],
    [awsError("InternalFailure", "internal", 500), "InternalFailure"],
    [awsError("ServiceUnavailable", "unavailable", 503), "ServiceUnavailable"],
    [awsError("Unheard", "bad gateway", 502), "Unheard"],
  ])("a 5xx (%s) becomes ClusterUnreachable", (original, name) => {
    // Act
    const named = normaliseError(original, "eks:DescribeCluster");
    // Assess
    expect(named).toBeInstanceOf(ClusterUnreachable);
    expect(named.message).toContain(`eks:DescribeCluster failed: ${name}`);
  });

  it("an escaped NoSuchEntity is IAM catching up (IamNotYetConsistent)", () => {
    // Prepare
    const original = new NoSuchEntityException({ message: "The role with name x cannot be found.", $metadata: { httpStatusCode: 404 } });
    // Act
    const named = normaliseError(original, "iam:PutRolePolicy");
    // Assess
    expect(named).toBeInstanceOf(IamNotYetConsistent);
    expect(named.cause).toBe(original);
  });

  it.each([
    ["iam:CreateRole", "Scope ARN: arn:aws:iam::111122223333:policy/boundary does not exist or is not attachable."],
    ["iam:PutRolePermissionsBoundary", "Policy arn:aws:iam::111122223333:policy/boundary does not exist or is not attachable."],
  ])("a missing permissions boundary policy (%s) is permanent and names PERMISSIONS_BOUNDARY_ARN", (operation, message) => {
    // Prepare
    const original = new NoSuchEntityException({ message, $metadata: { httpStatusCode: 404 } });
    Object.defineProperty(original, "$operation", { value: operation });
    // Act
    const named = normaliseError(original);
    // Assess
    expect(named).toBeInstanceOf(NotAllowed);
    expect((named as NotAllowed).transient).toBe(false);
    expect(named.message).toContain("permissions boundary policy arn:aws:iam::111122223333:policy/boundary does not exist");
    expect(named.message).toContain("PERMISSIONS_BOUNDARY_ARN");
    expect(named.cause).toBe(original);
  });

  it("a missing managed policy on another call is permanent too (the product creates no managed policy)", () => {
    // Prepare
    const original = new NoSuchEntityException({
      message: "Policy arn:aws:iam::111122223333:policy/x does not exist or is not attachable.",
      $metadata: { httpStatusCode: 404 },
    });
    // Act
    const named = normaliseError(original, "iam:AttachRolePolicy");
    // Assess
    expect(named).toBeInstanceOf(NotAllowed);
    expect(named.message).not.toContain("PERMISSIONS_BOUNDARY_ARN");
  });

  it.each([
    ["iam:PutRolePolicy", "The role with name nfeks-genomics-launcher cannot be found."],
    ["iam:CreateRole", "The role with name nfeks-genomics-launcher cannot be found."],
    ["iam:PutUserPolicy", "The user with name ci cannot be found."],
  ])("a role or user not found yet stays IamNotYetConsistent (%s)", (operation, message) => {
    // Prepare
    const original = new NoSuchEntityException({ message, $metadata: { httpStatusCode: 404 } });
    // Act
    const named = normaliseError(original, operation);
    // Assess
    expect(named).toBeInstanceOf(IamNotYetConsistent);
  });

  it.each([
    [awsError("MalformedPolicyDocument", 'Invalid principal in policy: "AWS":"arn:aws:iam::111122223333:role/x"', 400)],
    [
      new InvalidParameterException({
        message: "The specified principalArn is invalid: invalid principal",
        $metadata: { httpStatusCode: 400 },
      }),
    ],
    [
      new InvalidParameterException({
        message: "Role arn:aws:iam::111122223333:role/x cannot be assumed by principal pods.eks.amazonaws.com",
        $metadata: { httpStatusCode: 400 },
      }),
    ],
    [
      new InvalidParameterException({
        message: "The specified principalArn could not be found. You can view your available IAM roles in the IAM console.",
        $metadata: { httpStatusCode: 400 },
      }),
    ],
  ])("IAM propagation messages become IamNotYetConsistent (%#)", (original) => {
    // Act
    const named = normaliseError(original);
    // Assess
    expect(named).toBeInstanceOf(IamNotYetConsistent);
  });

  it("an InvalidParameterException that is not about a principal is left as it is", () => {
    // Prepare
    const original = new InvalidParameterException({ message: "kubernetesGroups is malformed", $metadata: { httpStatusCode: 400 } });
    // Act
    const named = normaliseError(original);
    // Assess
    expect(named).toBe(original);
  });

  it("AccessDenied becomes NotAllowed", () => {
    // Prepare
    const original = awsError("AccessDenied", "User is not authorized to perform iam:CreateRole", 403);
    // Act
    const named = normaliseError(original);
    // Assess
    expect(named).toBeInstanceOf(NotAllowed);
  });

  it("ConcurrentModification is transient (Throttled)", () => {
    // Prepare
    const original = awsError("ConcurrentModification", "try again", 409);
    // Act
    const named = normaliseError(original);
    // Assess
    expect(named).toBeInstanceOf(Throttled);
  });

  it("uses the operation clients.ts stamped on the error when none is given", () => {
    // Prepare
    const original = awsError("Throttling", "Rate exceeded", 400);
    Object.defineProperty(original, "$operation", { value: "iam:GetRole" });
    // Act
    const named = normaliseError(original);
    // Assess
    expect(named.message).toMatch(/^iam:GetRole failed: Throttling/);
  });

  it("matches error codes with or without the SDK's Exception suffix", () => {
    // Prepare
    const original = new NoSuchEntityException({ message: "gone", $metadata: {} });
    // Assess
    expect(isAwsError(original, "NoSuchEntity")).toBe(true);
    expect(isAwsError(original, "NoSuchEntityException")).toBe(true);
    expect(isAwsError(original, "EntityAlreadyExists")).toBe(false);
    expect(isAwsError(new Error("plain"), "Error")).toBe(false);
  });
});

describe("normaliseError: network errors", () => {
  it.each(["ECONNREFUSED", "ETIMEDOUT", "ENOTFOUND"])("%s becomes ClusterUnreachable", (code) => {
    // Prepare
    const original = Object.assign(new Error(`connect ${code} 127.0.0.1:1`), { code });
    // Act
    const named = normaliseError(original, "kube:GET namespaces");
    // Assess
    expect(named).toBeInstanceOf(ClusterUnreachable);
    expect(named.message).toContain(code);
    expect(named.cause).toBe(original);
  });

  it("socket hang up becomes ClusterUnreachable", () => {
    // Act
    const named = normaliseError(new Error("socket hang up"));
    // Assess
    expect(named).toBeInstanceOf(ClusterUnreachable);
  });

  it("a wrapped fetch failure (cause.code) becomes ClusterUnreachable", () => {
    // Prepare
    const original = new TypeError("fetch failed", { cause: Object.assign(new Error("connect"), { code: "ECONNREFUSED" }) });
    // Act
    const named = normaliseError(original);
    // Assess
    expect(named).toBeInstanceOf(ClusterUnreachable);
  });

  it("an SDK request that could not connect becomes ClusterUnreachable", () => {
    // Prepare: the SDK attaches $metadata to transport errors too
    const original = Object.assign(new Error("connect ECONNREFUSED 127.0.0.1:9"), { code: "ECONNREFUSED", $metadata: { attempts: 2 } });
    // Act
    const named = normaliseError(original);
    // Assess
    expect(named).toBeInstanceOf(ClusterUnreachable);
  });
});

describe("normaliseError: Kubernetes ApiException", () => {
  it.each([
    [409, KubeConflict],
    [429, Throttled],
    [500, ClusterUnreachable],
    [503, ClusterUnreachable],
    [401, NotAllowed],
    [403, NotAllowed],
  ])("HTTP %i becomes %o", (code, expected) => {
    // Prepare
    const original = kubeError(code, { kind: "Status", message: `the server says ${code}`, reason: "Something" });
    // Act
    const named = normaliseError(original, "kube:PUT configmaps");
    // Assess
    expect(named).toBeInstanceOf(expected);
    expect(named.message).toContain("kube:PUT configmaps failed");
    expect(named.message).toContain(`the server says ${code}`);
    expect(named.cause).toBe(original);
  });

  it.each([
    [
      "a NamespaceTerminating cause",
      {
        reason: "Forbidden",
        message: 'configmaps "x" is forbidden: namespace tower-nf is going away',
        details: {
          causes: [{ reason: "NamespaceTerminating", message: "namespace tower-nf is being terminated", field: "metadata.namespace" }],
        },
      },
    ],
    [
      "the server's message",
      JSON.stringify({
        reason: "Forbidden",
        message: 'pods "x" is forbidden: unable to create new content in namespace tower-nf because it is being terminated',
      }),
    ],
  ])("a 403 because the namespace is Terminating is transient NamespaceTerminating, not a KubeConflict (%s)", (_label, body) => {
    // Prepare
    const original = kubeError(403, typeof body === "string" ? body : { kind: "Status", code: 403, ...body });
    // Act
    const named = normaliseError(original, "kube:POST configmaps");
    // Assess
    expect(named).toBeInstanceOf(NamespaceTerminating);
    expect(named).not.toBeInstanceOf(KubeConflict);
    expect(named).toMatchObject({ name: "NamespaceTerminating", transient: true });
    expect(named.message).toContain("is forbidden");
    expect(named.cause).toBe(original);
  });

  it.each([
    [400, "BadRequest", "the body of the request was in an unknown format"],
    [422, "Invalid", 'ConfigMap "Bad_Name" is invalid: metadata.name: Invalid value: "Bad_Name"'],
  ])("HTTP %i %s is a permanent InvalidRequest carrying the server's message", (code, reason, message) => {
    // Prepare
    const original = kubeError(code, { kind: "Status", code, reason, message });
    // Act
    const named = normaliseError(original, "kube:POST configmaps");
    // Assess
    expect(named).toBeInstanceOf(InvalidRequest);
    expect((named as InvalidRequest).transient).toBe(false);
    expect(named.message).toBe(`kube:POST configmaps failed (HTTP ${code}): ${message}`);
    expect(named.cause).toBe(original);
  });

  it("reads the Status message from a JSON string body", () => {
    // Prepare
    const original = kubeError(409, JSON.stringify({ kind: "Status", message: 'Operation cannot be fulfilled on configmaps "aws-auth"' }));
    // Act
    const named = normaliseError(original);
    // Assess
    expect(named).toBeInstanceOf(KubeConflict);
    expect(named.message).toContain('configmaps "aws-auth"');
  });

  it("leaves a 404 alone (steps decide what absence means)", () => {
    // Prepare
    const original = kubeError(404, "not found");
    // Act
    const named = normaliseError(original);
    // Assess
    expect(named).toBe(original);
  });
});

describe("normaliseError: everything else", () => {
  it("passes named errors through unchanged", () => {
    // Prepare
    const original = new OwnershipConflict("role exists without our marks");
    // Act / Assess
    expect(normaliseError(original)).toBe(original);
  });

  it("leaves an unknown Error as it is", () => {
    // Prepare
    const original = new RangeError("bug");
    // Act / Assess
    expect(normaliseError(original)).toBe(original);
  });

  it("wraps a thrown non-Error into an Error that keeps it", () => {
    // Act
    const named = normaliseError("a string", "iam:GetRole");
    // Assess
    expect(named).toBeInstanceOf(Error);
    expect(named.message).toBe("iam:GetRole failed: a string");
    expect(named.cause).toBe("a string");
  });
});
