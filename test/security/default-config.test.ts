/**
 * The default configuration (no PERMISSIONS_BOUNDARY_ARN): the stack's own tenant-role boundary is the one the
 * IAM Lambdas require. See lambda-permissions.ts for what is simulated and how.
 */
import { DEFAULT_ENV } from "./stack-policies.js";
import { describeLambdaPermissions } from "./lambda-permissions.js";

describeLambdaPermissions("default configuration: the stack's own boundary", DEFAULT_ENV);
