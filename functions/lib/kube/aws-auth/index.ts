/**
 * kube-system/aws-auth, the one place the product reads and edits it (CONFIG_MAP authentication mode):
 *  - codec.ts: parse the ConfigMap's data, add, replace, remove and restore mappings, serialise;
 *  - list-text.ts: those edits as splices of a list's text, so every byte not edited stays (and an undo is exact);
 *  - configmap-edit.ts: {@link AwsAuthConfigMap} (one read, parsed, with the product's marks) and {@link editAwsAuth},
 *    the read-edit-replace loop with its re-read on 409, the previous copy for the step output and the undo of a run.
 */
export {
  addMapping,
  awsAuthEntryLine,
  awsAuthPrincipal,
  findMapping,
  parseAwsAuth,
  removeMapping,
  restoreReplacedMapping,
  serializeAwsAuth,
  type AddMappingOptions,
  type MappingEdit,
  type RemoveMappingOptions,
  type AwsAuth,
  type AwsAuthMapping,
} from "./codec.js";
export {
  ANNOTATION_AWS_AUTH_EDITS,
  ANNOTATION_AWS_AUTH_MAPPINGS,
  ANNOTATION_PREVIOUS_AWS_AUTH,
  AWS_AUTH_MAX_ATTEMPTS,
  AWS_AUTH_REF,
  AWS_AUTH_ROUND_WORST_MS,
  AwsAuthConfigMap,
  editAwsAuth,
  MAX_PREVIOUS_COPY_CHARS,
  type AwsAuthLog,
  type EditAwsAuthOptions,
  type PreviousCopy,
  type PrincipalMapping,
  type RunMappingsRemoval,
} from "./configmap-edit.js";
