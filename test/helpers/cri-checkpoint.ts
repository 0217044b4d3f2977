// Real containerd CRI checkpoint archives, made the way Kubernetes makes them: a counter pod
// on containerd 2.1 with a CRI runtime handler, then CheckpointContainer to a kubelet-style
// location. The base image comes from a loopback registry so that the archive's rootfsImageRef
// (`<registry>/ferry-busybox@sha256:…`) can be pulled again: containerd 2.1.9's CRI restore
// always pulls it over the network, even when the image is local.
//
// For other suites (ferry restore, ferry inspect): `makeCriCheckpointArchive(file)` does it all
// on a containerd of its own and leaves just the archive (and, if you pass one, the image in
// your registry).
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { ContainerState, NamespaceMode } from '../../api/gen/k8s/cri/v1/api';
import { Containerd, startContainerd } from './containerd';
import { COUNTER_COMMAND, CriClient, kubeletCheckpointLocation, Pod } from './cri';
import { CRI_HANDLERS } from './cri-config';
import { Registry, startRegistry } from './registry';
import { sleep } from './procfs';

/** The busybox test image as `<registry>/ferry-busybox:latest` (skopeo copy of the OCI layout). */
export async function pushTestImage(c: Containerd, registry: Registry): Promise<string> {
  const image = await c.importImage();
  const ref = `${registry.host}/ferry-busybox:latest`;
  // skopeo's cert dir takes CAs as *.crt and pairs any *.key with a client certificate: a dir of its own.
  let certDir: string | undefined;
  if (registry.tls) {
    certDir = fs.mkdtempSync(path.join(c.dir, 'skopeo-certs-'));
    fs.copyFileSync(registry.caFile, path.join(certDir, 'ca.crt'));
  }
  await promisify(execFile)('skopeo', [
    'copy', '--quiet', certDir ? `--dest-cert-dir=${certDir}` : '--dest-tls-verify=false',
    `oci-archive:${image.tarPath}`, `docker://${ref}`,
  ], { timeout: 60000 });
  return ref;
}

export interface CounterPod {
  pod: Pod;
  containerId: string;
}

/** A pod running the counter (COUNTER_COMMAND) from `image`, with the given handler and pid mode. */
export async function runCounterPod(c: Containerd, cri: CriClient, o: { name: string; image: string; handler: string; pidMode?: NamespaceMode }): Promise<CounterPod> {
  const pod = await cri.runPod({ name: o.name, runtimeHandler: o.handler, logDirectory: path.join(c.dir, 'pod-logs', o.name), pidMode: o.pidMode });
  const containerId = await cri.startContainer(pod, { metadata: { name: 'counter' }, image: { image: o.image }, command: COUNTER_COMMAND });
  await cri.waitForState(containerId, ContainerState.CONTAINER_RUNNING);
  return { pod, containerId };
}

/** The counter's current value (`cat /tmp/count` through ExecSync). */
export async function readCounter(cri: CriClient, containerId: string): Promise<number> {
  const r = await cri.runtime('execSync', { containerId, cmd: ['cat', '/tmp/count'], timeout: 20n });
  if (r.exitCode !== 0) throw new Error(`cat /tmp/count exited ${r.exitCode}: ${Buffer.from(r.stderr).toString()}`);
  return Number(Buffer.from(r.stdout).toString().trim());
}

/** Waits until the counter has counted to at least `n`. */
export async function waitForCount(cri: CriClient, containerId: string, n: number, timeoutMs = 30000): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    let v = 0;
    try { v = await readCounter(cri, containerId); } catch { /* not written yet */ }
    if (v >= n) return v;
    if (Date.now() > deadline) throw new Error(`counter of ${containerId} stayed at ${v}, below ${n}`);
    await sleep(200);
  }
}

/** CheckpointContainer to `<dir>/checkpoint-<pod>_<namespace>-counter-<time>.tar` (kubelet's name). */
export async function checkpointThroughCri(cri: CriClient, p: CounterPod, dir: string): Promise<string> {
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  const meta = p.pod.config.metadata!;
  const location = kubeletCheckpointLocation(dir, meta.name, meta.namespace, 'counter');
  await cri.runtime('checkpointContainer', { containerId: p.containerId, location, timeout: 120n });
  return location;
}

export interface MadeArchive {
  /** The archive (written where the caller asked). */
  archive: string;
  /** config.dump's rootfsImageRef: pullable from `registry` while it runs. */
  rootfsImageRef: string;
  /** The counter's value when the checkpoint was taken (at least). */
  countAtCheckpoint: number;
}

/**
 * A containerd 2.1 CRI checkpoint archive of a counter container, written to `file`. Starts and
 * removes a containerd of its own. Give `registry` to keep the base image pullable afterwards
 * (for a restore); without one a plain-HTTP registry is started and stopped here.
 */
export async function makeCriCheckpointArchive(file: string, o: { registry?: Registry; handler?: string; pidMode?: NamespaceMode } = {}): Promise<MadeArchive> {
  const registry = o.registry ?? (await startRegistry({ tls: false }));
  let c: Containerd | undefined;
  let cri: CriClient | undefined;
  try {
    c = await startContainerd({ version: '2.1', cri: true, env: registry.containerdEnv() });
    cri = c.criClient();
    const image = await pushTestImage(c, registry);
    await cri.image('pullImage', { image: { image } });
    const p = await runCounterPod(c, cri, { name: 'counters', image, handler: o.handler ?? CRI_HANDLERS.ferry, pidMode: o.pidMode });
    await waitForCount(cri, p.containerId, 2);
    const countAtCheckpoint = await readCounter(cri, p.containerId);
    const location = await checkpointThroughCri(cri, p, path.join(c.dir, 'checkpoints'));
    fs.copyFileSync(location, file);
    const status = await cri.runtime('containerStatus', { containerId: p.containerId });
    await cri.removePod(p.pod.id);
    return { archive: file, rootfsImageRef: status.status!.imageRef, countAtCheckpoint };
  } finally {
    cri?.close();
    await c?.stop();
    if (!o.registry) await registry.stop();
  }
}
