/**
 * An operator's permissions boundary (PERMISSIONS_BOUNDARY_ARN): it replaces the stack's own, which is then not
 * created, so no role can be switched to a weaker boundary. See lambda-permissions.ts for what is simulated and how.
 */
import { DEFAULT_ENV, OPERATOR_BOUNDARY } from "./stack-policies.js";
import { describeLambdaPermissions } from "./lambda-permissions.js";

describeLambdaPermissions("an operator's boundary", { ...DEFAULT_ENV, PERMISSIONS_BOUNDARY_ARN: OPERATOR_BOUNDARY });
