/**
 * kube-system/aws-auth, the one place the product reads and edits it (CONFIG_MAP authentication mode):
 *  - codec.ts: parse the ConfigMap's data, add and remove mappings, serialise keeping untouched entries byte for byte;
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
  serializeAwsAuth,
  type AddMappingOptions,
  type AwsAuth,
  type AwsAuthMapping,
} from "./codec.js";
export {
  ANNOTATION_AWS_AUTH_MAPPINGS,
  ANNOTATION_PREVIOUS_AWS_AUTH,
  AWS_AUTH_MAX_ATTEMPTS,
  AWS_AUTH_REF,
  AwsAuthConfigMap,
  editAwsAuth,
  MAX_PREVIOUS_COPY_CHARS,
  type AwsAuthLog,
  type PreviousCopy,
  type PrincipalMapping,
  type RunMappingsRemoval,
} from "./configmap-edit.js";
