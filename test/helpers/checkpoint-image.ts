// A checkpoint OCI image in the "archive at / of a scratch image" layout that CRI-O, containerd's
// CRI and Podman restore from (checkpoint-formats.md §2.1): what
//   buildah from scratch; buildah add $c checkpoint.tar /; buildah config --annotation …; buildah commit
// makes, built here without buildah: one uncompressed layer holding the archive's files at `/`
// (the CRI archive is an uncompressed tar of regular files and directories with relative
// names, i.e. already such a layer), and `org.criu.checkpoint.container.name` on the manifest,
// where containerd's CRI looks (top-level annotations of the image target). Written as an OCI
// layout tar for `ctr images import`.
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import { makeTar, TarEntry } from './tar';

export interface CheckpointImageOptions {
  /** The CRI checkpoint archive (uncompressed tar) to put at `/`. */
  archive: Buffer;
  /** Image reference the layout imports as (e.g. `localhost/checkpoint-counter:latest`). */
  name: string;
  /** Container name for the annotation (containerd only checks that it is there). */
  containerName: string;
  /** Extra manifest annotations (e.g. to test detection). */
  annotations?: Record<string, string>;
  /** Platform architecture (GOARCH); default this machine's. */
  architecture?: string;
}

export const CONTAINERD_CHECKPOINT_ANNOTATION = 'org.criu.checkpoint.container.name';

const GOARCH: Record<string, string> = { x64: 'amd64', arm64: 'arm64', arm: 'arm', ppc64: 'ppc64le', s390x: 's390x', ia32: '386' };

function blob(data: Buffer | string): { digest: string; hex: string; size: number; data: Buffer } {
  const buf = Buffer.isBuffer(data) ? data : Buffer.from(data);
  const hex = createHash('sha256').update(buf).digest('hex');
  return { digest: `sha256:${hex}`, hex, size: buf.length, data: buf };
}

/** The OCI layout tar of the checkpoint image; also its manifest digest. */
export function buildCheckpointImage(o: CheckpointImageOptions): { tar: Buffer; manifestDigest: string } {
  const architecture = o.architecture ?? GOARCH[process.arch] ?? process.arch;
  const layer = blob(o.archive);
  const config = blob(JSON.stringify({
    architecture,
    os: 'linux',
    created: new Date().toISOString(),
    config: {},
    rootfs: { type: 'layers', diff_ids: [layer.digest] },
    history: [{ created: new Date().toISOString(), created_by: 'ferry test/helpers/checkpoint-image.ts: archive at /' }],
  }));
  const manifest = blob(JSON.stringify({
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.manifest.v1+json',
    config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: config.digest, size: config.size },
    layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: layer.digest, size: layer.size }],
    annotations: { [CONTAINERD_CHECKPOINT_ANNOTATION]: o.containerName, ...(o.annotations ?? {}) },
  }));
  const index = JSON.stringify({
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.index.v1+json',
    manifests: [{
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      digest: manifest.digest,
      size: manifest.size,
      platform: { architecture, os: 'linux' },
      annotations: { 'io.containerd.image.name': o.name, 'org.opencontainers.image.ref.name': o.name },
    }],
  });
  const entries: TarEntry[] = [
    { type: 'file', path: 'oci-layout', mode: 0o644, data: Buffer.from(JSON.stringify({ imageLayoutVersion: '1.0.0' })) },
    { type: 'file', path: 'index.json', mode: 0o644, data: Buffer.from(index) },
    { type: 'dir', path: 'blobs', mode: 0o755 },
    { type: 'dir', path: 'blobs/sha256', mode: 0o755 },
    ...[layer, config, manifest].map((b): TarEntry => ({ type: 'file', path: `blobs/sha256/${b.hex}`, mode: 0o644, data: b.data })),
  ];
  return { tar: makeTar(entries), manifestDigest: manifest.digest };
}

/** buildCheckpointImage written to `file`. */
export function writeCheckpointImage(file: string, o: CheckpointImageOptions): string {
  const { tar, manifestDigest } = buildCheckpointImage(o);
  fs.writeFileSync(file, tar, { mode: 0o600 });
  return manifestDigest;
}
