/**
 * Each HTTP API route and the handler it runs, as stacks/Provisioner.ts should wire them: the expectation that
 * test/infra/stack-wiring.test.ts holds the synthesized stack to, and the Lambdas test/security/replays.ts replays.
 */
export const ROUTE_HANDLERS: Readonly<Record<string, string>> = {
  "POST /provision": "functions/api/provision.handler",
  "GET /executions/{id}": "functions/api/status.handler",
  "POST /environments": "functions/api/environments.createHandler",
  "GET /environments": "functions/api/environments.listHandler",
  "GET /environments/{tenant}/{region}/{cluster}": "functions/api/environments.readHandler",
  "POST /environments/{tenant}/{region}/{cluster}/reconcile": "functions/api/reconcile.handler",
  "PUT /environments/{tenant}/{region}/{cluster}": "functions/api/update-environment.updateHandler",
  "DELETE /environments/{tenant}/{region}/{cluster}": "functions/api/environments.deleteHandler",
};
