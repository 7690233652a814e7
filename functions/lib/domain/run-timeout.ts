/**
 * How long one provisioning run may last: the state machine's `TimeoutSeconds` (statemachines/provision.asl.json)
 * and the expiry of the environment lease a run holds. The longest head job wait (7 days) plus a day for the rest.
 */
export const RUN_TIMEOUT_SECONDS = 8 * 24 * 3600;
