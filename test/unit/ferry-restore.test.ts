// The pure parts of `ferry restore`: what each engine's config.dump and spec.dump say (engine,
// name, base image), deleted.files and its whiteout layer, the rootfs-diff media type, chain ids,
// image name normalisation, and the spec adaptation (root, cgroups, pod, CDI, hooks, namespaces).
import { createHash } from 'node:crypto';
import { openArchiveStream, readTarEntries } from '../../src/format/tar-reader';
import { baseImageOf, containerNameOf, engineOf, type SavedSpec } from '../../src/ferry/restore/checkpoint-metadata';
import { normaliseImageName } from '../../src/ferry/restore/base-image';
import { chainIds } from '../../src/ferry/restore/image-snapshot';
import { adaptSpec } from '../../src/ferry/restore/restored-spec';
import { diffMediaType, parseDeletedFiles, whiteoutLayer } from '../../src/ferry/restore/rootfs';
import { checkContainerId } from '../../src/ferry/restore/restore';
import { Readable } from 'node:stream';

const HEX = 'ab'.repeat(32);
const log = () => { const warnings: string[] = []; return { warnings, warn: (m: string) => { warnings.push(m); } }; };

describe('checkpoint metadata of each engine', () => {
  test('engine from io.container.manager, as checkpointctl decides it', () => {
    expect(engineOf({ annotations: { 'io.container.manager': 'libpod' } })).toBe('Podman');
    expect(engineOf({ annotations: { 'io.container.manager': 'cri-o' } })).toBe('CRI-O');
    expect(engineOf({ annotations: {} })).toBe('containerd');
    expect(engineOf({})).toBe('containerd');
  });

  test('base image: containerd repo@digest, a bare sha256 ref, Podman rootfsImageID, CRI-O storage id, names', () => {
    expect(baseImageOf('containerd', { rootfsImageRef: `reg/app@sha256:${HEX}`, rootfsImageName: 'reg/app:1' }))
      .toEqual({ digest: `sha256:${HEX}`, digestedName: `reg/app@sha256:${HEX}`, name: 'reg/app:1' });
    // containerd issue 12876: a bare sha256: ref is an image id (config digest).
    expect(baseImageOf('containerd', { rootfsImageRef: `sha256:${HEX}`, rootfsImageName: 'reg/app:1' })).toEqual({ configDigest: `sha256:${HEX}`, name: 'reg/app:1' });
    expect(baseImageOf('Podman', { rootfsImageID: HEX, rootfsImageName: 'docker.io/library/busybox:latest' })).toEqual({ configDigest: `sha256:${HEX}`, name: 'docker.io/library/busybox:latest' });
    expect(baseImageOf('CRI-O', { rootfsImageRef: HEX, rootfsImage: 'quay.io/x:1' })).toEqual({ configDigest: `sha256:${HEX}`, name: 'quay.io/x:1' });
    expect(baseImageOf('Podman', { RawImageName: 'busybox' })).toEqual({ name: 'busybox' });
    expect(() => baseImageOf('containerd', { rootfsImageName: `sha256:${HEX}` })).toThrow(/names no base image/);
    expect(() => baseImageOf('Podman', {})).toThrow(/names no base image/);
  });

  test('the container name each engine shows', () => {
    const spec = (annotations: Record<string, string>) => ({ process: {}, linux: {}, annotations }) as SavedSpec;
    expect(containerNameOf('containerd', { name: 'counter_pod_ns_uid_0' }, spec({ 'io.kubernetes.cri.container-name': 'counter' }))).toBe('counter');
    expect(containerNameOf('containerd', { name: 'c1' }, spec({}))).toBe('c1');
    expect(containerNameOf('Podman', { name: 'web' }, spec({ 'io.container.manager': 'libpod' }))).toBe('web');
    expect(containerNameOf('CRI-O', { name: 'k8s_x' }, spec({ 'io.kubernetes.cri-o.Metadata': '{"name":"app","attempt":1}' }))).toBe('app');
    expect(() => containerNameOf('CRI-O', {}, spec({ 'io.kubernetes.cri-o.Metadata': '{' }))).toThrow(/Metadata annotation is not JSON/);
  });

  test('container ids follow containerd\'s identifier rule', () => {
    expect(() => checkContainerId('web-1.a_b', 'x')).not.toThrow();
    for (const bad of ['', 'a..b', '-a', 'a b', 'x'.repeat(77), 'k8s_counter/1']) expect(() => checkContainerId(bad, 'x')).toThrow(/not a valid container id/);
  });
});

describe('root file system changes', () => {
  test('deleted.files: absolute or relative paths, deduplicated; escapes and whiteout names refused', () => {
    expect(parseDeletedFiles(['/etc/group', 'etc/group', './a//b/'])).toEqual(['a/b', 'etc/group']);
    expect(() => parseDeletedFiles({})).toThrow(/not a JSON array/);
    expect(() => parseDeletedFiles(['/a/../../etc/passwd'])).toThrow(/".." component/);
    expect(() => parseDeletedFiles(['/'])).toThrow(/root directory/);
    expect(() => parseDeletedFiles([7])).toThrow(/not a path/);
    expect(() => parseDeletedFiles(['a\0b'])).toThrow(/not a path/);
    expect(() => parseDeletedFiles(['/a/.wh.b'])).toThrow(/whiteout name/);
  });

  test('the whiteout layer is a tar of .wh. entries, one per deleted path', async () => {
    const layer = await whiteoutLayer(['etc/group', 'top']);
    const { stream } = await openArchiveStream(Readable.from([layer]));
    const names: string[] = [];
    for await (const e of readTarEntries(stream)) names.push(`${e.header.type}:${e.header.name}:${e.header.size}`);
    expect(names).toEqual(['file:etc/.wh.group:0', 'file:.wh.top:0']);
  });

  test('rootfs-diff.tar media type from its first bytes (containerd CRI writes gzip)', () => {
    expect(diffMediaType(Buffer.from([0x1f, 0x8b, 8, 0]))).toBe('application/vnd.oci.image.layer.v1.tar+gzip');
    expect(diffMediaType(Buffer.from([0x28, 0xb5, 0x2f, 0xfd]))).toBe('application/vnd.oci.image.layer.v1.tar+zstd');
    expect(diffMediaType(Buffer.from('etc/'))).toBe('application/vnd.oci.image.layer.v1.tar');
  });

  test('chain ids as containerd computes them', () => {
    const a = `sha256:${'1'.repeat(64)}`;
    const b = `sha256:${'2'.repeat(64)}`;
    expect(chainIds([a, b])).toEqual([a, `sha256:${createHash('sha256').update(`${a} ${b}`).digest('hex')}`]);
    expect(chainIds([])).toEqual([]);
  });

  test('image names normalised as containerd does', () => {
    expect(normaliseImageName('busybox')).toBe('docker.io/library/busybox:latest');
    expect(normaliseImageName('library/busybox:1')).toBe('docker.io/library/busybox:1');
    expect(normaliseImageName('localhost:5000/x')).toBe('localhost:5000/x:latest');
    expect(normaliseImageName('reg.example/a/b@sha256:' + HEX)).toBe('reg.example/a/b@sha256:' + HEX);
  });
});

describe('the restored spec', () => {
  const saved = (): SavedSpec => ({
    process: { args: ['sh'], apparmorProfile: 'not-loaded-profile' },
    root: { path: '/var/lib/containers/storage/overlay/x/merged' },
    hooks: { prestart: [{ path: '/usr/libexec/podman/hook' }] },
    annotations: {
      'io.kubernetes.cri.sandbox-id': 'pod1', 'io.kubernetes.cri.sandbox-name': 'p', 'io.kubernetes.cri.container-name': 'old',
      'cdi.k8s.io/gpu': 'nvidia.com/gpu=0', 'org.criu.config': '/elsewhere/criu.conf', keep: 'me',
    },
    linux: {
      cgroupsPath: '/kubepods/besteffort/pod1/abc',
      namespaces: [{ type: 'pid' }, { type: 'network', path: '/proc/1/ns/net' }, { type: 'ipc', path: '/proc/1/ns/ipc' }, { type: 'mount' }],
    },
  });

  test('root, cgroups path, pod, CDI, container name, hooks, AppArmor, CRIU config, joined namespaces', async () => {
    const l = log();
    const spec = await adaptSpec(saved(), { id: 'new1', namespace: 'ns', netnsPath: async () => '/state/netns', criuConfigFile: '/state/criu.conf', log: l });
    expect(spec.root).toEqual({ path: 'rootfs' });
    expect(spec.linux.cgroupsPath).toBe('/ns/new1');
    expect(spec.annotations).toEqual({ 'io.kubernetes.cri.container-name': 'new1', 'org.criu.config': '/state/criu.conf', keep: 'me' });
    expect(spec.hooks).toBeUndefined();
    expect((spec.process as { apparmorProfile?: string }).apparmorProfile).toBeUndefined();
    expect(spec.linux.namespaces).toEqual([{ type: 'pid' }, { type: 'network', path: '/state/netns' }, { type: 'ipc' }, { type: 'mount' }]);
    expect(l.warnings.join('\n')).toMatch(/CDI annotation "cdi\.k8s\.io\/gpu"/);
    expect(l.warnings.join('\n')).toMatch(/taken inside a pod \(io\.kubernetes\.cri\.sandbox-id=pod1\)/);
    expect(l.warnings.join('\n')).toMatch(/new network namespace/);
  });

  test('a CRIU config path from the checkpoint is not handed to runc; a shared pid namespace is refused', async () => {
    const noTcp = await adaptSpec(saved(), { id: 'n', namespace: 'ns', netnsPath: async () => '/x', log: log() });
    expect(noTcp.annotations!['org.criu.config']).toBeUndefined();
    const s = saved();
    s.linux.namespaces!.push({ type: 'pid', path: '/proc/9/ns/pid' });
    s.linux.namespaces!.shift();
    await expect(adaptSpec(s, { id: 'n', namespace: 'ns', netnsPath: async () => '/x', log: log() })).rejects.toThrow(/shares a pid namespace/);
  });
});
