/**
 * Faults injected into the emulated Kubernetes API server (local/faults.ts), as client-node sees them:
 * 429 TooManyRequests, 503 ServiceUnavailable, 409 Conflict, and added latency.
 */
import { describe, expect, it } from "vitest";
import type { V1ConfigMap } from "@kubernetes/client-node";
import type { FaultInjector } from "../../local/faults.js";
import { apiError, configMap, job, useKubeEmulator, type Clients } from "../support/kube-emulator-clients.js";

describe("emulated Kubernetes API server", () => {
  let admin: Clients;
  let faults: FaultInjector;
  useKubeEmulator((started) => ({ admin, faults } = started));

  describe("faults", () => {
    it("answers an injected throttle with 429 TooManyRequests once, then normally", async () => {
      // Prepare
      const cm = await admin.objects.create(configMap("throttled", "team"));
      faults.inject({ operation: "kube:PUT configmaps", kind: "throttle", times: 1 });
      // Act
      const error = await apiError(admin.objects.replace({ ...cm, data: { key: "2" } }));
      const retried = await admin.objects.replace<V1ConfigMap>({ ...cm, data: { key: "2" } });
      // Assess
      expect(error.code).toBe(429);
      expect(error.body).toMatchObject({ kind: "Status", status: "Failure", reason: "TooManyRequests", code: 429 });
      expect(retried.data).toEqual({ key: "2" });
      expect(faults.fired).toEqual([{ operation: "kube:PUT configmaps", kind: "throttle" }]);
      faults.clear();
    });

    it("answers injected 5xx and conflict faults, and delays on latency", async () => {
      // Prepare
      faults.inject({ operation: "kube:GET pods", kind: "5xx", times: 1 });
      faults.inject({ operation: "kube:POST jobs", kind: "conflict", times: 1 });
      faults.inject({ operation: "kube:GET namespaces", kind: "latency", ms: 150, times: 1 });
      // Act
      const unavailable = await apiError(admin.core.listNamespacedPod({ namespace: "team" }));
      const conflicted = await apiError(admin.batch.createNamespacedJob({ namespace: "team", body: job("never", "team") }));
      const started = Date.now();
      await admin.core.listNamespace();
      const elapsed = Date.now() - started;
      // Assess
      expect(unavailable.code).toBe(503);
      expect(unavailable.body.reason).toBe("ServiceUnavailable");
      expect(conflicted.code).toBe(409);
      expect(conflicted.body.reason).toBe("Conflict");
      expect(elapsed).toBeGreaterThanOrEqual(140);
      faults.clear();
    });
  });
});
