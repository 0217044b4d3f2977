// containerd's CRI layouts the shim has to find things in: where CRI collects CRIU's dump.log
// and stats-dump for a CheckpointContainer archive (cri-collect-dir.ts), and where CRI's
// restore puts spec.dump (one level above the `checkpoint/` dir it hands the shim), and the pid
// namespace rule read from the CRIU images when there is no spec.dump.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { CRI_CHECKPOINT_DIR, criCheckpointCollectDir, criRootFromSpec } from '../../src/checkpoint/cri-collect-dir';
import { findSavedSpec } from '../../src/checkpoint/restore';
import { checkPidNamespaceFromImages } from '../../src/checkpoint/pid-namespace-from-images';
import { writeFakeCheckpoint } from '../helpers/criu-images';

let tmp: string;
beforeEach(() => { tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ferry-crilayout-')); });
afterEach(() => { fs.rmSync(tmp, { recursive: true, force: true }); });

const SANDBOX = 'a'.repeat(64);
const ID = 'b'.repeat(64);

/** A CRI container spec whose /etc/hostname comes from `<criRoot>/sandboxes/<sandbox>/hostname`. */
function criSpec(criRoot: string, extra: { type?: string; sandbox?: string; source?: string } = {}) {
  return {
    annotations: { 'io.kubernetes.cri.container-type': extra.type ?? 'container', 'io.kubernetes.cri.sandbox-id': extra.sandbox ?? SANDBOX },
    mounts: [
      { destination: '/proc', source: 'proc' },
      { destination: '/etc/hostname', source: extra.source ?? `${criRoot}/sandboxes/${SANDBOX}/hostname` },
    ],
  };
}

/** `<criRoot>/containers/<ID>/status` (+ ctrd-checkpoint when hardened). */
function criTree(criRoot: string, hardened: boolean): string {
  const root = path.join(criRoot, 'containers', ID);
  fs.mkdirSync(root, { recursive: true });
  fs.writeFileSync(path.join(root, 'status'), '{}');
  if (hardened) fs.mkdirSync(path.join(root, CRI_CHECKPOINT_DIR), { mode: 0o700 });
  return root;
}

describe('criRootFromSpec', () => {
  test('the CRI root is the parent of sandboxes/<sandbox id>/ of a sandbox file mount', () => {
    expect(criRootFromSpec(criSpec('/var/lib/containerd/io.containerd.grpc.v1.cri'))).toBe('/var/lib/containerd/io.containerd.grpc.v1.cri');
  });

  test('not a CRI application container, or a mount that is not the sandbox file: none', () => {
    expect(criRootFromSpec({})).toBeUndefined();
    expect(criRootFromSpec(criSpec('/r', { type: 'sandbox' }))).toBeUndefined();
    expect(criRootFromSpec(criSpec('/r', { sandbox: '../x' }))).toBeUndefined();
    expect(criRootFromSpec(criSpec('/r', { source: `/r/sandboxes/${'c'.repeat(64)}/hostname` }))).toBeUndefined();
    expect(criRootFromSpec(criSpec('/r', { source: `/r/other/${SANDBOX}/hostname` }))).toBeUndefined();
    expect(criRootFromSpec(criSpec('/r', { source: `/r/x/../sandboxes/${SANDBOX}/hostname` }))).toBeUndefined();
    expect(criRootFromSpec(criSpec('/r', { source: `relative/sandboxes/${SANDBOX}/hostname` }))).toBeUndefined();
  });
});

describe('criCheckpointCollectDir', () => {
  test('containerd 2.1.9+: <container root>/ctrd-checkpoint', async () => {
    const root = criTree(tmp, true);
    await expect(criCheckpointCollectDir(criSpec(tmp), ID)).resolves.toBe(path.join(root, CRI_CHECKPOINT_DIR));
  });

  test('containerd before the ctrd-checkpoint dir: the container root itself', async () => {
    const root = criTree(tmp, false);
    await expect(criCheckpointCollectDir(criSpec(tmp), ID)).resolves.toBe(root);
  });

  test('no CRI status file, a symlinked dir on the way, a non-directory ctrd-checkpoint, a bad id: none', async () => {
    const root = criTree(tmp, false);
    fs.rmSync(path.join(root, 'status'));
    await expect(criCheckpointCollectDir(criSpec(tmp), ID)).resolves.toBeUndefined();
    fs.writeFileSync(path.join(root, 'status'), '{}');

    fs.writeFileSync(path.join(root, CRI_CHECKPOINT_DIR), 'x');
    await expect(criCheckpointCollectDir(criSpec(tmp), ID)).resolves.toBeUndefined();
    fs.rmSync(path.join(root, CRI_CHECKPOINT_DIR));
    fs.symlinkSync('/etc', path.join(root, CRI_CHECKPOINT_DIR));
    await expect(criCheckpointCollectDir(criSpec(tmp), ID)).resolves.toBeUndefined();

    const linked = path.join(tmp, 'linked');
    fs.symlinkSync(tmp, linked);
    await expect(criCheckpointCollectDir(criSpec(linked), ID)).resolves.toBeUndefined();
    await expect(criCheckpointCollectDir(criSpec(tmp), '../x')).resolves.toBeUndefined();
  });
});

describe('findSavedSpec', () => {
  const spec = { annotations: { 'io.kubernetes.cri.sandbox-id': SANDBOX }, linux: { namespaces: [{ type: 'pid' }] } };

  test("CRI restore: spec.dump beside the checkpoint/ dir it hands the shim", async () => {
    const images = path.join(tmp, 'ctrd-restore', 'checkpoint');
    fs.mkdirSync(images, { recursive: true });
    await expect(findSavedSpec(images)).resolves.toBeUndefined();
    fs.writeFileSync(path.join(tmp, 'ctrd-restore', 'spec.dump'), JSON.stringify(spec));
    await expect(findSavedSpec(images)).resolves.toEqual(spec);
  });

  test('a spec.dump in the images dir wins; a dir not named checkpoint never looks up', async () => {
    const images = path.join(tmp, 'checkpoint');
    fs.mkdirSync(images);
    fs.writeFileSync(path.join(tmp, 'spec.dump'), JSON.stringify(spec));
    fs.writeFileSync(path.join(images, 'spec.dump'), JSON.stringify({ annotations: { own: 'yes' } }));
    await expect(findSavedSpec(images)).resolves.toEqual({ annotations: { own: 'yes' } });
    const other = path.join(tmp, 'images');
    fs.mkdirSync(other);
    await expect(findSavedSpec(other)).resolves.toBeUndefined();
  });

  test('a symlinked ../spec.dump is refused, not followed', async () => {
    const images = path.join(tmp, 'ctrd-restore', 'checkpoint');
    fs.mkdirSync(images, { recursive: true });
    const secret = path.join(tmp, 'secret.json');
    fs.writeFileSync(secret, JSON.stringify(spec));
    fs.symlinkSync(secret, path.join(tmp, 'ctrd-restore', 'spec.dump'));
    await expect(findSavedSpec(images)).rejects.toThrow(/not a regular file/);
  });
});

describe('checkPidNamespaceFromImages (no saved spec: the CRIU images tell)', () => {
  const privatePid = { linux: { namespaces: [{ type: 'pid' }] } };
  const sharedPid = { linux: { namespaces: [{ type: 'pid', path: '/proc/42/ns/pid' }] } };
  const hostPid = { linux: { namespaces: [{ type: 'mount' }] } };
  const tree = (rootPid: number) => ({ processes: [{ pid: rootPid, ppid: 0, comm: 'sh', argv: ['sh'], env: [] }] });

  test('first process pid 1 (own pid namespace): only a private target', async () => {
    writeFakeCheckpoint(tmp, tree(1));
    await expect(checkPidNamespaceFromImages(tmp, privatePid)).resolves.toBeUndefined();
    await expect(checkPidNamespaceFromImages(tmp, sharedPid)).rejects.toThrow("restore refused: the checkpoint's pid namespace is private (its first process is pid 1), the target's is shared");
    await expect(checkPidNamespaceFromImages(tmp, hostPid)).rejects.toThrow("the target's is host");
  });

  test('first process not pid 1 (a shared pid namespace): refused in a private target only', async () => {
    writeFakeCheckpoint(tmp, tree(9));
    await expect(checkPidNamespaceFromImages(tmp, privatePid)).rejects.toThrow("restore refused: the checkpoint's pid namespace is shared (its first process is pid 9, not 1), the target's is private");
    await expect(checkPidNamespaceFromImages(tmp, sharedPid)).resolves.toBeUndefined();
    await expect(checkPidNamespaceFromImages(tmp, hostPid)).resolves.toBeUndefined();
  });

  test('no pstree image: nothing to say (the image check refuses such a checkpoint)', async () => {
    await expect(checkPidNamespaceFromImages(tmp, sharedPid)).resolves.toBeUndefined();
  });
});
