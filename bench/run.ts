/** `npm run bench`: every benchmark, one after the other (they share 2 cores; never in parallel). */
export {};
await import("./start.js");
await import("./integration.js");
