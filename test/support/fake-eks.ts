/**
 * A small in-memory EKS holding access entries, behind aws-sdk-client-mock: DescribeAccessEntry,
 * CreateAccessEntry, UpdateAccessEntry and DeleteAccessEntry answer as EKS does (ResourceNotFoundException
 * for a missing entry, ResourceInUseException for a second create of the same principal).
 */
import { afterEach, beforeEach } from "vitest";
import { mockClient, type AwsClientStub } from "aws-sdk-client-mock";
import {
  CreateAccessEntryCommand,
  DeleteAccessEntryCommand,
  DescribeAccessEntryCommand,
  EKSClient,
  ResourceInUseException,
  ResourceNotFoundException,
  UpdateAccessEntryCommand,
  type AccessEntry,
} from "@aws-sdk/client-eks";
import { resetClients } from "../../functions/lib/aws/clients.js";

export interface FakeEks {
  /** The mocked EKSClient: assert on the commands it received, or override one answer in a test. */
  eks: AwsClientStub<EKSClient>;
  /** The access entries of cluster `research`, by principal ARN. */
  entries: Map<string, AccessEntry>;
  /** An entry that exists before the test acts. */
  seedEntry(principalArn: string, fields: Partial<AccessEntry>): void;
}

/** What EKS answers for an access entry that does not exist. */
export function accessEntryNotFound(): ResourceNotFoundException {
  return new ResourceNotFoundException({
    message: "The specified access entry resource could not be found.",
    $metadata: { httpStatusCode: 404 },
  });
}

function installFakeAccessEntries(eks: AwsClientStub<EKSClient>, entries: Map<string, AccessEntry>): void {
  eks.on(DescribeAccessEntryCommand).callsFake(({ principalArn }) => {
    const entry = entries.get(principalArn);
    if (!entry) throw accessEntryNotFound();
    return { accessEntry: structuredClone(entry) };
  });
  eks.on(CreateAccessEntryCommand).callsFake(({ clusterName, principalArn, kubernetesGroups, username, type, tags }) => {
    if (entries.has(principalArn))
      throw new ResourceInUseException({
        message: "The specified access entry resource is already in use on this cluster.",
        $metadata: { httpStatusCode: 409 },
      });
    const entry: AccessEntry = { clusterName, principalArn, kubernetesGroups, username, type, tags };
    entries.set(principalArn, entry);
    return { accessEntry: entry };
  });
  eks.on(UpdateAccessEntryCommand).callsFake(({ principalArn, kubernetesGroups, username }) => {
    const entry = entries.get(principalArn);
    if (!entry) throw accessEntryNotFound();
    Object.assign(entry, { kubernetesGroups, username });
    return { accessEntry: entry };
  });
  eks.on(DeleteAccessEntryCommand).callsFake(({ principalArn }) => {
    if (!entries.delete(principalArn)) throw accessEntryNotFound();
    return {};
  });
}

/** The fake EKS for every test of the calling file: empty before each test, the SDK clients dropped after. */
export function useFakeEks(): FakeEks {
  const eks = mockClient(EKSClient);
  const entries = new Map<string, AccessEntry>();
  beforeEach(() => {
    eks.reset();
    entries.clear();
    installFakeAccessEntries(eks, entries);
  });
  afterEach(() => {
    resetClients();
  });
  return {
    eks,
    entries,
    seedEntry: (principalArn, fields) => {
      entries.set(principalArn, { clusterName: "research", principalArn, type: "STANDARD", ...fields });
    },
  };
}
