import type { SSTConfig } from "sst";
import { deployRegion } from "./stacks/config.js";
import { Provisioner } from "./stacks/Provisioner.js";

export default {
  async config(input) {
    return {
      name: "nf-eks-provisioner",
      // --region, AWS_REGION / AWS_DEFAULT_REGION, or the profile's region; never a silent us-east-1.
      region: await deployRegion(input),
    };
  },
  stacks(app) {
    // Throwaway stages clean up after themselves; "prod" keeps its log groups and queues on `sst remove`.
    if (app.stage !== "prod") app.setDefaultRemovalPolicy("destroy");
    app.stack(Provisioner);
  },
} satisfies SSTConfig;
