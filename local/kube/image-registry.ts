/**
 * Which container images exist, for the emulated kubelet's pulls. The sandbox decides: the product's default
 * Nextflow image and common public images are there (any tag of those repositories); a test adds or removes an
 * image (`kube.images.add("ghcr.io/acme/pipeline:1.0")`, `remove("nextflow/nextflow")`). References are normalised
 * as containerd does (`busybox` → `docker.io/library/busybox:latest`), so `busybox:1.36` and
 * `docker.io/library/busybox:1.36` are the same image.
 */

/** Repositories whose every tag and digest can be pulled. */
const COMMON_REPOSITORIES = [
  "nextflow/nextflow",
  "seqeralabs/nf-launcher",
  "library/busybox",
  "library/alpine",
  "library/ubuntu",
  "library/debian",
  "library/python",
  "library/nginx",
  "amazon/aws-cli",
  "public.ecr.aws/amazonlinux/amazonlinux",
  "public.ecr.aws/docker/library/busybox",
  "quay.io/biocontainers/fastqc",
  "quay.io/biocontainers/multiqc",
  "quay.io/nextflow/bash",
  "community.wave.seqera.io/library/fastqc",
];

export interface ImageReference {
  /** `docker.io/library/busybox` */
  repository: string;
  /** `1.36`, or `latest` when neither tag nor digest is given */
  tag?: string;
  digest?: string;
  /** `docker.io/library/busybox:1.36` */
  canonical: string;
}

/** An image reference as containerd reads it; undefined when it cannot be parsed (the kubelet's InvalidImageName). */
export function parseImage(image: string): ImageReference | undefined {
  if (!image || /\s/.test(image) || image !== image.trim() || /[A-Z]/.test(image.split(/[@:]/)[0]!)) return undefined;
  let rest = image;
  let digest: string | undefined;
  const at = rest.indexOf("@");
  if (at >= 0) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
    if (!/^[a-z0-9]+:[a-f0-9]{32,}$/.test(digest)) return undefined;
  }
  let tag: string | undefined;
  const colon = rest.lastIndexOf(":");
  if (colon > rest.lastIndexOf("/")) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
    if (!/^[\w][\w.-]{0,127}$/.test(tag)) return undefined;
  }
  if (!/^[a-z0-9]+([._-][a-z0-9]+)*(\/[a-z0-9]+([._-][a-z0-9]+)*)*$/.test(rest.replace(/^[^/]+[.:][^/]*\//, "x/"))) return undefined;
  const first = rest.split("/")[0]!;
  const hasRegistry = rest.includes("/") && (first.includes(".") || first.includes(":") || first === "localhost");
  const repository = hasRegistry ? rest : `docker.io/${rest.includes("/") ? rest : `library/${rest}`}`;
  if (!tag && !digest) tag = "latest";
  return { repository, tag, digest, canonical: `${repository}${tag ? `:${tag}` : ""}${digest ? `@${digest}` : ""}` };
}

export class ImageRegistry {
  private readonly repositories = new Set<string>();
  private readonly images = new Set<string>();
  private readonly removed = new Set<string>();

  constructor(repositories: string[] = COMMON_REPOSITORIES) {
    for (const r of repositories) this.repositories.add(parseImage(r)?.repository ?? r);
  }

  /** Make an image (`repo:tag`, `repo@sha256:…`) or a whole repository (no tag) pullable. */
  add(image: string): void {
    const ref = this.parse(image);
    this.removed.delete(ref.canonical);
    if (/[:@]/.test(image.slice(image.lastIndexOf("/") + 1))) this.images.add(ref.canonical);
    else this.repositories.add(ref.repository);
  }

  /** Make an image (with a tag) or a whole repository (without one) unpullable. */
  remove(image: string): void {
    const ref = this.parse(image);
    if (/[:@]/.test(image.slice(image.lastIndexOf("/") + 1))) {
      this.images.delete(ref.canonical);
      this.removed.add(ref.canonical);
    } else {
      this.repositories.delete(ref.repository);
      for (const i of [...this.images]) if (i.startsWith(`${ref.repository}:`) || i.startsWith(`${ref.repository}@`)) this.images.delete(i);
    }
  }

  /** Whether a pull of `image` succeeds. */
  has(image: string): boolean {
    const ref = parseImage(image);
    if (!ref || this.removed.has(ref.canonical)) return false;
    return this.images.has(ref.canonical) || this.repositories.has(ref.repository);
  }

  private parse(image: string): ImageReference {
    const ref = parseImage(image);
    if (!ref) throw new Error(`not an image reference: ${JSON.stringify(image)}`);
    return ref;
  }
}
