/** Where the HTTP API addresses an environment (GET, PUT to update, DELETE): /environments/{tenant}/{region}/{cluster}. */
export function environmentUrlFor(id: { tenant: string; region: string; cluster: string }): string {
  return `/environments/${[id.tenant, id.region, id.cluster].map(encodeURIComponent).join("/")}`;
}
