// Builds the e2e test image — Debian's busybox-static as a one-layer OCI image — as an OCI
// image layout tar that `ctr image import` loads. No registry is reachable from the test
// machines and docker is not installed, so the image is assembled here byte by byte.
//
// The layer is an uncompressed tar: its digest is then also its diffID (the digest of the
// uncompressed content), which is what the config's rootfs.diff_ids must list.
import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { makeTar, TarEntry } from './tar';

export const TEST_IMAGE_NAME = 'docker.io/library/ferry-busybox:latest';
/** The CRI tests' sandbox ("pause") image: the same busybox layer, a shell that waits for SIGTERM. */
export const PAUSE_IMAGE_NAME = 'docker.io/library/ferry-pause:latest';

/**
 * What the pause container runs. It is pid 1 of the pod's shared pid namespace when the pod
 * shares one, so it must reap orphans: busybox ash reaps any child while it sits in `wait`.
 * SIGTERM/SIGINT end it at once (kubelet's pause exits on them too).
 */
const PAUSE_COMMAND = ['/bin/sh', '-c', 'trap "exit 0" TERM INT; while :; do sleep 3600 & wait $!; done'];

// Bump when the image layout below changes, so a stale cached tar is not reused.
const BUILDER_VERSION = 1;

export interface TestImage {
  /** Image reference the archive imports as. */
  name: string;
  /** Path of the OCI layout tar (cached in the temp dir, keyed by content). */
  tarPath: string;
  manifestDigest: string;
  configDigest: string;
  /** Digest of the uncompressed layer; equals its diffID. */
  layerDigest: string;
}

const sha256 = (data: Buffer | string): string => createHash('sha256').update(data).digest('hex');

function goArch(): string {
  const map: Record<string, string> = { x64: 'amd64', arm64: 'arm64', arm: 'arm', ppc64: 'ppc64le', s390x: 's390x', ia32: '386' };
  const arch = map[process.arch];
  if (!arch) throw new Error(`test image: unsupported architecture ${process.arch}`);
  return arch;
}

function busyboxPath(): string {
  const p = fs.realpathSync('/bin/busybox');
  const version = execFileSync(p, ['--help'], { encoding: 'utf8' }).split('\n')[0] ?? '';
  if (!/static|BusyBox/.test(version)) throw new Error(`test image: ${p} is not busybox`);
  return p;
}

function rootfsEntries(busybox: Buffer, applets: string[]): TarEntry[] {
  const entries: TarEntry[] = [];
  for (const dir of ['bin', 'dev', 'etc', 'proc', 'root', 'sys', 'var']) {
    entries.push({ type: 'dir', path: dir, mode: 0o755 });
  }
  entries.push({ type: 'dir', path: 'tmp', mode: 0o1777 });
  entries.push({ type: 'file', path: 'bin/busybox', mode: 0o755, data: busybox });
  for (const applet of applets) {
    if (applet === 'busybox') continue;
    entries.push({ type: 'symlink', path: `bin/${applet}`, target: 'busybox' });
  }
  // `id`, `ps` and `whoami` want to name uid 0.
  entries.push({ type: 'file', path: 'etc/passwd', mode: 0o644, data: Buffer.from('root:x:0:0:root:/root:/bin/sh\n') });
  entries.push({ type: 'file', path: 'etc/group', mode: 0o644, data: Buffer.from('root:x:0:\n') });
  return entries;
}

function blob(data: Buffer | string): { digest: string; hex: string; size: number; data: Buffer } {
  const buf = Buffer.isBuffer(data) ? data : Buffer.from(data);
  const hex = sha256(buf);
  return { digest: `sha256:${hex}`, hex, size: buf.length, data: buf };
}

/** The image's name and its config's process: `Cmd` alone (busybox) or an `Entrypoint` (pause). */
interface ImageKind {
  name: string;
  process: { Cmd?: string[]; Entrypoint?: string[] };
}

const BUSYBOX: ImageKind = { name: TEST_IMAGE_NAME, process: { Cmd: ['sh'] } };
const PAUSE: ImageKind = { name: PAUSE_IMAGE_NAME, process: { Entrypoint: PAUSE_COMMAND } };

function buildLayout(kind: ImageKind, busybox: Buffer, applets: string[]): { tar: Buffer; image: Omit<TestImage, 'tarPath'> } {
  const arch = goArch();
  const layer = blob(makeTar(rootfsEntries(busybox, applets)));
  const config = blob(
    JSON.stringify({
      architecture: arch,
      os: 'linux',
      created: '2024-01-01T00:00:00Z',
      config: {
        Env: ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'],
        ...kind.process,
        WorkingDir: '/',
      },
      rootfs: { type: 'layers', diff_ids: [layer.digest] },
      history: [{ created: '2024-01-01T00:00:00Z', created_by: 'ferry test/helpers/image.ts' }],
    }),
  );
  const manifest = blob(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: config.digest, size: config.size },
      layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: layer.digest, size: layer.size }],
    }),
  );
  const index = JSON.stringify({
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.index.v1+json',
    manifests: [
      {
        mediaType: 'application/vnd.oci.image.manifest.v1+json',
        digest: manifest.digest,
        size: manifest.size,
        platform: { architecture: arch, os: 'linux' },
        // containerd's importer names the image from io.containerd.image.name first, then
        // from the OCI ref name; both carry the full reference so either path gives it.
        annotations: {
          'io.containerd.image.name': kind.name,
          'org.opencontainers.image.ref.name': kind.name,
        },
      },
    ],
  });
  const entries: TarEntry[] = [
    { type: 'file', path: 'oci-layout', mode: 0o644, data: Buffer.from(JSON.stringify({ imageLayoutVersion: '1.0.0' })) },
    { type: 'file', path: 'index.json', mode: 0o644, data: Buffer.from(index) },
    { type: 'dir', path: 'blobs', mode: 0o755 },
    { type: 'dir', path: 'blobs/sha256', mode: 0o755 },
    ...[layer, config, manifest].map(
      (b): TarEntry => ({ type: 'file', path: `blobs/sha256/${b.hex}`, mode: 0o644, data: b.data }),
    ),
  ];
  return {
    tar: makeTar(entries),
    image: { name: kind.name, manifestDigest: manifest.digest, configDigest: config.digest, layerDigest: layer.digest },
  };
}

/**
 * Returns the test image archive, building it on first use. The archive is cached in the
 * temp dir under a name derived from busybox's content and this builder's version; it is
 * written to a unique temp name and renamed, so concurrent builders never see a partial file.
 */
export function buildTestImage(): TestImage {
  return buildImage(BUSYBOX, 'ferry-test-image');
}

/** The pause image of the CRI tests' pods, built and cached like the busybox image. */
export function buildPauseImage(): TestImage {
  return buildImage(PAUSE, 'ferry-test-pause-image');
}

function buildImage(kind: ImageKind, cachePrefix: string): TestImage {
  const bbPath = busyboxPath();
  const busybox = fs.readFileSync(bbPath);
  const applets = execFileSync(bbPath, ['--list'], { encoding: 'utf8' }).split('\n').filter(Boolean).sort();
  // The busybox key stays what it was before the pause image existed (cached tars stay valid).
  const kindKey = kind === BUSYBOX ? '' : `\n${JSON.stringify(kind)}`;
  const key = sha256(`${BUILDER_VERSION}\n${sha256(busybox)}\n${applets.join(',')}\n${goArch()}${kindKey}`).slice(0, 16);
  const tarPath = path.join(os.tmpdir(), `${cachePrefix}-${key}.tar`);
  const metaPath = `${tarPath}.json`;
  if (fs.existsSync(tarPath) && fs.existsSync(metaPath)) {
    return { ...(JSON.parse(fs.readFileSync(metaPath, 'utf8')) as Omit<TestImage, 'tarPath'>), tarPath };
  }
  const { tar, image } = buildLayout(kind, busybox, applets);
  const tmp = `${tarPath}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, tar);
  fs.writeFileSync(`${metaPath}.${process.pid}.tmp`, JSON.stringify(image));
  fs.renameSync(`${metaPath}.${process.pid}.tmp`, metaPath);
  fs.renameSync(tmp, tarPath);
  return { ...image, tarPath };
}
