// A checkpoint as a standard OCI image in containerd's image store, the way the Kubernetes docs'
// buildah recipe and Podman's --create-image make one (checkpoint-formats.md §2.1): FROM scratch,
// one layer whose files are the checkpoint archive's files at `/`, an OCI config and an OCI
// manifest — no containerd-specific media types, so any registry takes it. The manifest carries
// the annotations by which each engine recognises a checkpoint image (containerd's CRI reads the
// top-level annotations of the image target, CRI-O the manifest's, Podman the manifest's) and the
// facts of the host. The image's target is the manifest itself (there is no index to annotate).
//
// The layer blob is written while it is produced (compressed), its digest computed on the way;
// the manifest gets the gc.ref labels that keep config and layer alive once the caller's lease
// ends, as containerd's own client labels what it writes.
import type { Connection } from '../containerd/connection';
import { setContentLabels, writeContentBytes, writeContentStream } from '../containerd/content';
import { applyLayer } from '../containerd/diff';
import { putImage } from '../containerd/images';
import { commitSnapshot, prepareSnapshot, removeSnapshot, statSnapshot } from '../containerd/snapshots';
import { hostPlatform } from '../containerd/transfer';
import type { ArchiveCompression } from '../../format/compression';
import { layerMediaType } from '../../format/compression';
import type { DigestStream } from '../../format/checkpoint-archive-writer';
import {
  CRIO_ANNOTATION_PREFIX, CRIU_ANNOTATION_PREFIX, FERRY_ANNOTATION_PREFIX, FerryImageFact, ImageAnnotation, ImageFact,
  OCI_CREATED_ANNOTATION, OciMediaType, PODMAN_ANNOTATION_PREFIX,
} from '../../format/layout';
import type { HostFacts } from './host-facts';

export interface ImageFactsInput {
  containerName: string;
  runtimeName?: string;
  baseImageName?: string;
  /** `repo@sha256:…` of the base image (config.dump rootfsImageRef). */
  baseImageRef?: string;
  host: HostFacts;
  created: Date;
}

/** Every engine's annotations for this checkpoint; values that are unknown are left out. */
export function checkpointImageAnnotations(f: ImageFactsInput): Record<string, string> {
  const out: Record<string, string> = {
    [ImageAnnotation.containerdName]: f.containerName,
    [ImageAnnotation.crioName]: f.containerName,
    [ImageAnnotation.podmanName]: f.containerName,
    [OCI_CREATED_ANNOTATION]: f.created.toISOString(),
  };
  const facts: [keyof typeof ImageFact, string | undefined][] = [
    ['engineName', 'ferry'],
    ['engineVersion', f.host.ferryVersion],
    ['rootfsImageName', f.baseImageName],
    ['rootfsImageId', f.baseImageRef],
    ['rawImageName', f.baseImageName],
    ['runtimeName', f.runtimeName],
    ['runtimeVersion', f.host.runtimeVersion],
    ['criuVersion', f.host.criuVersion],
    ['hostArch', f.host.arch],
    ['hostKernel', f.host.kernel],
    ['cgroupVersion', f.host.cgroupVersion],
    ['distributionName', f.host.distributionName],
    ['distributionVersion', f.host.distributionVersion],
  ];
  for (const [fact, value] of facts) {
    if (!value) continue;
    const keys: { criu: string; podman?: string; crio?: string } = ImageFact[fact];
    out[CRIU_ANNOTATION_PREFIX + keys.criu] = value;
    if (keys.podman) out[PODMAN_ANNOTATION_PREFIX + keys.podman] = value;
    if (keys.crio) out[CRIO_ANNOTATION_PREFIX + keys.crio] = value;
  }
  // Podman restores from an image only when it names the runtime (`podman run IMG`).
  if (f.runtimeName) out[ImageAnnotation.podmanRuntimeName] = f.runtimeName;
  out[FERRY_ANNOTATION_PREFIX + FerryImageFact.ferryVersion] = f.host.ferryVersion;
  if (f.host.containerdVersion) out[FERRY_ANNOTATION_PREFIX + FerryImageFact.containerdVersion] = f.host.containerdVersion;
  return out;
}

export interface CheckpointImageInput {
  /** Image name in containerd's store (and the registry reference for --push). */
  name: string;
  /** The compressed layer bytes (the checkpoint archive), produced while they are written. */
  layer: AsyncIterable<Buffer>;
  /** Digest of the uncompressed layer (its diff_id); read after `layer` has ended. */
  uncompressed: DigestStream;
  compression: ArchiveCompression;
  annotations: Record<string, string>;
  created: Date;
  /** Unpack the image into this snapshotter (as a pull or `ctr image import` would); '' = don't. */
  snapshotter: string;
  onProgress?: (bytes: number) => void;
}

export interface CheckpointImage {
  name: string;
  manifest: { mediaType: string; digest: string; size: number };
  config: { digest: string; size: number };
  layer: { mediaType: string; digest: string; size: number; diffId: string };
}

/** Writes layer, config and manifest into the content store (under `leased`'s lease) and names the image. */
export async function createCheckpointImage(leased: Connection, input: CheckpointImageInput): Promise<CheckpointImage> {
  const ref = `ferry-checkpoint-layer-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 10)}`;
  const layerBlob = await writeContentStream(leased, input.layer, { ref, onProgress: input.onProgress });
  const diffId = input.uncompressed.digest();
  const layer = { mediaType: layerMediaType(input.compression), digest: layerBlob.digest, size: layerBlob.size };
  const platform = hostPlatform();
  const created = input.created.toISOString();
  const config = {
    created,
    architecture: platform.architecture,
    ...(platform.variant ? { variant: platform.variant } : {}),
    os: platform.os,
    config: {},
    rootfs: { type: 'layers', diff_ids: [diffId] },
    history: [{ created, created_by: 'ferry checkpoint', comment: 'checkpoint archive at /' }],
  };
  const configBlob = await writeContentBytes(leased, Buffer.from(JSON.stringify(config)));
  const manifest = {
    schemaVersion: 2,
    mediaType: OciMediaType.manifest,
    config: { mediaType: OciMediaType.config, digest: configBlob.digest, size: configBlob.size },
    layers: [layer],
    annotations: input.annotations,
  };
  const manifestLabels = {
    'containerd.io/gc.ref.content.config': configBlob.digest,
    'containerd.io/gc.ref.content.l.0': layer.digest,
  };
  const manifestBlob = await writeContentBytes(leased, Buffer.from(JSON.stringify(manifest)), { labels: manifestLabels });
  await setContentLabels(leased, manifestBlob.digest, manifestLabels);
  const target = { mediaType: OciMediaType.manifest, digest: manifestBlob.digest, size: manifestBlob.size };
  if (input.snapshotter) await unpack(leased, input.snapshotter, layer, diffId, configBlob.digest);
  await putImage(leased, { name: input.name, target, labels: {} });
  return { name: input.name, manifest: target, config: configBlob, layer: { ...layer, diffId } };
}

/**
 * Unpacks the single layer into a committed snapshot named by its chain id (= its diff id), as
 * containerd's unpacker does, and labels config and layer the way it does, so the image counts
 * as unpacked and the snapshot lives as long as the image: a CRI restore from this image
 * (CreateContainer) mounts that snapshot.
 */
async function unpack(leased: Connection, snapshotter: string, layer: { mediaType: string; digest: string; size: number }, diffId: string, configDigest: string): Promise<void> {
  if (!(await statSnapshot(leased, snapshotter, diffId))) {
    const key = `extract-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)} ${diffId}`;
    const mounts = await prepareSnapshot(leased, snapshotter, key, '');
    try {
      const applied = await applyLayer(leased, { ...layer, annotations: {} }, mounts);
      if (applied.digest !== diffId) throw new Error(`unpacking the checkpoint layer gave ${applied.digest}, expected ${diffId}`);
      await commitSnapshot(leased, snapshotter, diffId, key);
    } catch (err) {
      await removeSnapshot(leased, snapshotter, key).catch(() => undefined);
      throw err;
    }
  }
  await setContentLabels(leased, layer.digest, { 'containerd.io/uncompressed': diffId });
  await setContentLabels(leased, configDigest, { [`containerd.io/gc.ref.snapshot.${snapshotter}`]: diffId });
}
