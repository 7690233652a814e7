/** Recognising the errors @kubernetes/client-node throws, and reading the Kubernetes Status they carry. */

/** @kubernetes/client-node 1.x ApiException: a numeric HTTP `code`, a `body` (V1Status object or its JSON text). */
export function isKubeApiException(error: unknown): error is { code: number; body: unknown } {
  return !!error && typeof error === "object" && typeof (error as { code?: unknown }).code === "number" && "body" in error;
}

/** The parts of a Kubernetes `Status` we read; `text` is a body that was not JSON. */
export interface KubeStatus {
  message?: unknown;
  reason?: unknown;
  details?: { causes?: Array<{ reason?: unknown }> };
  text?: string;
}

export function kubeStatus(body: unknown): KubeStatus {
  let status: unknown = body;
  if (typeof body === "string") {
    try {
      status = JSON.parse(body);
    } catch {
      return { text: body };
    }
  }
  return status && typeof status === "object" ? (status as KubeStatus) : {};
}

/** The `reason` of the Status a Kubernetes API error carries (`AlreadyExists`, `Conflict`, `NotFound`, ...). */
export function kubeErrorReason(error: unknown): string | undefined {
  const reason = kubeStatus((error as { body?: unknown } | undefined)?.body).reason;
  return typeof reason === "string" ? reason : undefined;
}
