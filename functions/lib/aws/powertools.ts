/**
 * The process's Powertools instances: one logger, one tracer, one metrics object for every handler in it.
 * They live here, below the SDK clients, so clients.ts can trace its clients with the same tracer the
 * handlers' middleware (workflow/middleware.ts) opens segments with.
 *
 * Outside Lambda, or with POWERTOOLS_TRACE_ENABLED=false (the tests, the sandbox), the tracer is off and
 * capturing a client changes nothing; POWERTOOLS_METRICS_DISABLED=true keeps metrics from being printed.
 */
import { Logger } from "@aws-lambda-powertools/logger";
import { Metrics } from "@aws-lambda-powertools/metrics";
import { Tracer } from "@aws-lambda-powertools/tracer";

const serviceName = process.env.POWERTOOLS_SERVICE_NAME ?? "nf-eks-provisioner";

export const logger = new Logger({ serviceName });
/** X-Ray segments per invocation and subsegments per SDK call (a no-op outside Lambda or with POWERTOOLS_TRACE_ENABLED=false). */
export const tracer = new Tracer({ serviceName });
/** CloudWatch metrics (EMF): each handler counts its outcomes under its own dimension. */
export const metrics = new Metrics({ namespace: process.env.POWERTOOLS_METRICS_NAMESPACE ?? "NfEksProvisioner", serviceName });
