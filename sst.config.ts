import type { SSTConfig } from "sst";
import { Provisioner } from "./stacks/Provisioner.js";

export default {
  config(input) {
    return {
      name: "nf-eks-provisioner",
      region: input.region ?? process.env.AWS_REGION ?? "eu-west-1",
    };
  },
  stacks(app) {
    // Throwaway stages clean up after themselves; "prod" keeps its log groups and queues on `sst remove`.
    if (app.stage !== "prod") app.setDefaultRemovalPolicy("destroy");
    app.stack(Provisioner);
  },
} satisfies SSTConfig;
