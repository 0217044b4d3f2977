// The pieces of `ferry checkpoint` that need no containerd: the metadata files built from a
// container record, the image annotations, the export file's put-in-place rules, CRIU log
// reading, and the progress line.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { Container } from '../../src/ferry/containerd/containers';
import { checkpointImageAnnotations } from '../../src/ferry/checkpoint/checkpoint-image';
import { checkRequest, type CheckpointRequest } from '../../src/ferry/checkpoint/checkpoint';
import { buildMetadata, criContainerInfo, digestedReference, goTime } from '../../src/ferry/checkpoint/metadata';
import { OutputFile } from '../../src/ferry/checkpoint/output-file';
import { dumpFailureCause } from '../../src/ferry/checkpoint/task-dump';
import { formatBytes, formatDuration, progressLine } from '../../src/ferry/progress';
import type { HostFacts } from '../../src/ferry/checkpoint/host-facts';

let tmp: string;
beforeAll(() => { tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ferry-ckparts-')); });
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

function container(over: Partial<Container> = {}): Container {
  return {
    id: 'web', labels: { app: 'x' }, image: 'docker.io/library/busybox:1.36',
    runtime: { name: 'io.containerd.ferry.v2', options: undefined },
    spec: { typeUrl: 'types.containerd.io/opencontainers/runtime-spec/1/Spec', value: Buffer.from('{}') },
    snapshotter: 'overlayfs', snapshotKey: 'web', createdAt: { seconds: 1_700_000_000, nanos: 123_400_000 }, updatedAt: undefined,
    extensions: {}, sandbox: '', ...over,
  };
}

describe('metadata', () => {
  test('Go RFC3339Nano times (UTC, fraction without trailing zeros, zero time)', () => {
    expect(goTime({ seconds: 1_700_000_000, nanos: 123_400_000 })).toBe('2023-11-14T22:13:20.1234Z');
    expect(goTime({ seconds: 1_700_000_000, nanos: 0 })).toBe('2023-11-14T22:13:20Z');
    expect(goTime({ seconds: 1_700_000_000, nanos: 5 })).toBe('2023-11-14T22:13:20.000000005Z');
    expect(goTime(new Date(Date.UTC(2026, 0, 2, 3, 4, 5, 60)))).toBe('2026-01-02T03:04:05.06Z');
    expect(goTime(undefined)).toBe('0001-01-01T00:00:00Z');
  });

  test('a pullable repo@digest from an image name (tags and registry ports told apart)', () => {
    const d = 'sha256:' + 'a'.repeat(64);
    expect(digestedReference('docker.io/library/busybox:1.36', d)).toBe(`docker.io/library/busybox@${d}`);
    expect(digestedReference('localhost:5000/team/app', d)).toBe(`localhost:5000/team/app@${d}`);
    expect(digestedReference('localhost:5000/team/app:v2', d)).toBe(`localhost:5000/team/app@${d}`);
    expect(digestedReference(`reg.example/app@sha256:${'b'.repeat(64)}`, d)).toBe(`reg.example/app@sha256:${'b'.repeat(64)}`);
  });

  test('config.dump, spec.dump and status.dump of a plain containerd container', () => {
    const spec = { ociVersion: '1.1.0', process: { args: ['sh'] }, annotations: { keep: 'me' } };
    const m = buildMetadata({ container: container(), spec, imageDigest: 'sha256:' + 'c'.repeat(64), checkpointedAt: new Date(Date.UTC(2026, 5, 1)) });
    expect(m.name).toBe('web');
    expect(m.configDump).toEqual({
      id: 'web', name: 'web', rootfsImage: 'docker.io/library/busybox:1.36', rootfsImageRef: `docker.io/library/busybox@sha256:${'c'.repeat(64)}`,
      rootfsImageName: 'docker.io/library/busybox:1.36', runtime: 'io.containerd.ferry.v2', createdTime: '2023-11-14T22:13:20.1234Z',
      checkpointedTime: '2026-06-01T00:00:00Z', restoredTime: '0001-01-01T00:00:00Z', restored: false,
    });
    // checkpointctl names a containerd checkpoint by this annotation only; the rest of the spec is as it was.
    expect(m.specDump).toEqual({ ...spec, annotations: { keep: 'me', 'io.kubernetes.cri.container-name': 'web' } });
    expect(spec.annotations).toEqual({ keep: 'me' });
    expect(m.statusDump).toEqual({
      id: 'web', metadata: { name: 'web' }, state: 1, created_at: 1_700_000_000_123_400_000,
      image: { image: 'docker.io/library/busybox:1.36' }, image_ref: m.configDump.rootfsImageRef, labels: { app: 'x' }, annotations: {},
    });
  });

  test('without the base image in the store there is no rootfsImageRef; a container without image has no image fields', () => {
    const m = buildMetadata({ container: container(), spec: {}, checkpointedAt: new Date() });
    expect(m.configDump.rootfsImageRef).toBeUndefined();
    expect(m.configDump.rootfsImageName).toBe('docker.io/library/busybox:1.36');
    const bare = buildMetadata({ container: container({ image: '' }), spec: {}, checkpointedAt: new Date() });
    expect(bare.configDump).not.toHaveProperty('rootfsImage');
    expect(bare.statusDump).not.toHaveProperty('image');
  });

  test('a container made by containerd\'s CRI: name, labels, annotations and log path from its CRI extension; its spec annotation kept', () => {
    const ext = { Version: 'v1', Metadata: { ID: 'abc', Name: 'counter_pod_ns_uid_0', LogPath: '/var/log/pods/p/counter/0.log', Config: { metadata: { name: 'counter', attempt: 2 }, labels: { 'io.kubernetes.pod.name': 'pod' }, annotations: { 'io.kubernetes.container.hash': '42' } } } };
    const c = container({ extensions: { 'io.cri-containerd.container.metadata': { typeUrl: 'github.com/containerd/cri/pkg/store/container/Metadata', value: Buffer.from(JSON.stringify(ext)) } } });
    const spec = { annotations: { 'io.kubernetes.cri.container-name': 'counter', 'io.kubernetes.cri.sandbox-id': 'sb' } };
    const m = buildMetadata({ container: c, spec, checkpointedAt: new Date() });
    expect(m.name).toBe('counter');
    expect(m.specDump).toBe(spec);
    expect(m.statusDump).toMatchObject({ metadata: { name: 'counter', attempt: 2 }, labels: { 'io.kubernetes.pod.name': 'pod' }, annotations: { 'io.kubernetes.container.hash': '42' }, log_path: '/var/log/pods/p/counter/0.log' });
  });

  test('a malformed CRI extension is ignored, not trusted', () => {
    const bad = (value: string) => criContainerInfo(container({ extensions: { 'io.cri-containerd.container.metadata': { typeUrl: 'x', value: Buffer.from(value) } } }));
    expect(bad('not json')).toBeUndefined();
    expect(bad('{"Metadata":{"Config":{"metadata":{"name":7}}}}')).toBeUndefined();
    expect(bad('null')).toBeUndefined();
    expect(bad('{"Metadata":{"Config":{"metadata":{"name":"n"},"labels":{"a":1}}}}')).toEqual({ name: 'n', attempt: 0, labels: {}, annotations: {}, logPath: '' });
  });
});

describe('checkpoint image annotations', () => {
  const host: HostFacts = { ferryVersion: '0.1.0', containerdVersion: 'v1.7.24', criuVersion: '4.2.1', runtimeVersion: '1.1.15', kernel: '6.18.0', arch: 'amd64', cgroupVersion: 'v1', distributionName: 'debian', distributionVersion: '12' };

  test('every engine\'s detection key, the facts under checkpointctl\'s and Podman\'s names', () => {
    const a = checkpointImageAnnotations({ containerName: 'web', runtimeName: 'io.containerd.runc.v2', baseImageName: 'docker.io/library/busybox:1.36', baseImageRef: 'docker.io/library/busybox@sha256:1', host, created: new Date(Date.UTC(2026, 0, 1)) });
    expect(a).toEqual({
      'org.criu.checkpoint.container.name': 'web',
      'io.kubernetes.cri-o.annotations.checkpoint.name': 'web',
      'io.podman.annotations.checkpoint.name': 'web',
      'io.podman.annotations.checkpoint.runtime.name': 'io.containerd.runc.v2',
      'org.opencontainers.image.created': '2026-01-01T00:00:00.000Z',
      'org.criu.checkpoint.engine.name': 'ferry',
      'org.criu.checkpoint.engine.version': '0.1.0',
      'org.criu.checkpoint.rootfsImageName': 'docker.io/library/busybox:1.36',
      'io.podman.annotations.checkpoint.rootfsImageName': 'docker.io/library/busybox:1.36',
      'io.kubernetes.cri-o.annotations.checkpoint.rootfsImageName': 'docker.io/library/busybox:1.36',
      'org.criu.checkpoint.rootfsImageID': 'docker.io/library/busybox@sha256:1',
      'io.podman.annotations.checkpoint.rootfsImageID': 'docker.io/library/busybox@sha256:1',
      'io.kubernetes.cri-o.annotations.checkpoint.rootfsImageID': 'docker.io/library/busybox@sha256:1',
      'org.criu.checkpoint.rawImageName': 'docker.io/library/busybox:1.36',
      'io.podman.annotations.checkpoint.rawImageName': 'docker.io/library/busybox:1.36',
      'io.kubernetes.cri-o.annotations.checkpoint.rawImageName': 'docker.io/library/busybox:1.36',
      'org.criu.checkpoint.runtime.name': 'io.containerd.runc.v2',
      'org.criu.checkpoint.runtime.version': '1.1.15',
      'io.podman.annotations.checkpoint.runtime.version': '1.1.15',
      'org.criu.checkpoint.criu.version': '4.2.1',
      'io.podman.annotations.checkpoint.criu.version': '4.2.1',
      'io.kubernetes.cri-o.annotations.checkpoint.criu.version': '4.2.1',
      'org.criu.checkpoint.host.arch': 'amd64',
      'io.podman.annotations.checkpoint.host.arch': 'amd64',
      'org.criu.checkpoint.host.kernel': '6.18.0',
      'io.podman.annotations.checkpoint.host.kernel': '6.18.0',
      'org.criu.checkpoint.cgroup.version': 'v1',
      'io.podman.annotations.checkpoint.cgroups.version': 'v1',
      'org.criu.checkpoint.distribution.name': 'debian',
      'io.podman.annotations.checkpoint.distribution.name': 'debian',
      'org.criu.checkpoint.distribution.version': '12',
      'io.podman.annotations.checkpoint.distribution.version': '12',
      'io.ferry.checkpoint.ferry.version': '0.1.0',
      'io.ferry.checkpoint.containerd.version': 'v1.7.24',
    });
  });

  test('unknown facts are left out, not guessed', () => {
    const a = checkpointImageAnnotations({ containerName: 'web', host: { ...host, criuVersion: undefined, runtimeVersion: undefined, containerdVersion: undefined }, created: new Date(0) });
    expect(Object.keys(a).filter((k) => /criu\.version|runtime\.|rootfsImage|containerd\.version/.test(k))).toEqual([]);
  });
});

describe('the export file', () => {
  test('refused before any work: missing directory, a directory, an existing file without --force', async () => {
    await expect(OutputFile.prepare(path.join(tmp, 'no', 'x.tar'), false)).rejects.toThrow(/directory .*\/no does not exist/);
    await expect(OutputFile.prepare(tmp, true)).rejects.toThrow(/it is a directory/);
    fs.writeFileSync(path.join(tmp, 'taken'), 'keep');
    await expect(OutputFile.prepare(path.join(tmp, 'taken'), false)).rejects.toThrow('already exists (use --force to replace it)');
  });

  test('written under a temporary 0600 name, put in place on commit; a name taken meanwhile is left alone', async () => {
    const o = await OutputFile.prepare(path.join(tmp, 'a.tar'), false);
    const fh = await o.open();
    await fh.writeFile('data');
    await fh.close();
    expect(fs.existsSync(path.join(tmp, 'a.tar'))).toBe(false);
    expect(fs.statSync(o.tempPath).mode & 0o777).toBe(0o600);
    await o.commit();
    expect(fs.readFileSync(path.join(tmp, 'a.tar'), 'utf8')).toBe('data');
    expect(fs.existsSync(o.tempPath)).toBe(false);

    const late = await OutputFile.prepare(path.join(tmp, 'b.tar'), false);
    await (await late.open()).close();
    fs.writeFileSync(path.join(tmp, 'b.tar'), 'someone else');
    await expect(late.commit()).rejects.toThrow(/appeared while the archive was written/);
    expect(fs.readFileSync(path.join(tmp, 'b.tar'), 'utf8')).toBe('someone else');
    expect(fs.existsSync(late.tempPath)).toBe(false);
  });

  test('--force replaces; discard removes the temporary file', async () => {
    fs.writeFileSync(path.join(tmp, 'c.tar'), 'old');
    const o = await OutputFile.prepare(path.join(tmp, 'c.tar'), true);
    const fh = await o.open();
    await fh.writeFile('new');
    await fh.close();
    await o.commit();
    expect(fs.readFileSync(path.join(tmp, 'c.tar'), 'utf8')).toBe('new');
    const d = await OutputFile.prepare(path.join(tmp, 'd.tar'), false);
    await (await d.open()).close();
    await d.discard();
    expect(fs.readdirSync(tmp).filter((n) => n.includes('d.tar'))).toEqual([]);
  });
});

describe('request checks', () => {
  const base: CheckpointRequest = { containerId: 'x', compression: 'zstd', push: false, leaveRunning: false, tcpEstablished: false, fileLocks: false, printStats: false, force: false };
  test('something to write to, --push only with an image, a plausible reference', () => {
    expect(() => checkRequest(base)).toThrow('nothing to write the checkpoint to');
    expect(() => checkRequest({ ...base, exportFile: 'f', push: true })).toThrow('--push needs --create-image');
    expect(() => checkRequest({ ...base, createImage: 'a b' })).toThrow('is not an image reference');
    expect(() => checkRequest({ ...base, createImage: 'reg.example:5000/team/app:v1', push: true })).not.toThrow();
    expect(() => checkRequest({ ...base, exportFile: 'f' })).not.toThrow();
  });
});

describe('CRIU dump log', () => {
  test('the cause of a failed dump, not the harmless rlimit error nor the summaries', async () => {
    const log = path.join(tmp, 'dump.log');
    fs.writeFileSync(log, [
      '(00.000000) Version: 4.2.1 (gitid 0)',
      "(00.081172) Error (criu/util.c:1534): rlimit: Can't setup RLIMIT_NOFILE for self: Operation not permitted",
      '(00.090772) Error (criu/files-reg.c:1790): Can\'t lookup mount=27 for fd=1 path=/tmp/x.log',
      '(00.090782) Error (criu/cr-dump.c:1545): Dump files (pid: 18758) failed with -1',
      '(00.142239) Error (criu/cr-dump.c:1975): Dumping FAILED.',
    ].join('\n'));
    expect(await dumpFailureCause(log)).toBe("Can't lookup mount=27 for fd=1 path=/tmp/x.log");
    fs.writeFileSync(log, '(00.1) Error (criu/cr-dump.c:1975): Dumping FAILED.\n');
    expect(await dumpFailureCause(log)).toBe('Dumping FAILED');
    expect(await dumpFailureCause(path.join(tmp, 'none.log'))).toBeUndefined();
  });
});

describe('progress line', () => {
  test('bytes, rate and time left', () => {
    expect(formatBytes(512)).toBe('512 B');
    expect(formatBytes(1536)).toBe('1.5 KiB');
    expect(formatBytes(256 * 2 ** 20)).toBe('256.0 MiB');
    expect(formatDuration(42.4)).toBe('42s');
    expect(formatDuration(185)).toBe('3m05s');
    expect(formatDuration(3720)).toBe('1h02m');
    expect(formatDuration(Infinity)).toBe('--');
    expect(progressLine('export', 64 * 2 ** 20, 256 * 2 ** 20, 2000, 8)).toBe('export [==------]  25% 64.0 MiB/256.0 MiB 32.0 MiB/s 6s left');
    expect(progressLine('push', 10 * 2 ** 20, 0, 1000)).toBe('push 10.0 MiB 10.0 MiB/s');
    expect(progressLine('push', 0, 100, 0)).toMatch(/  0% 0 B\/100 B --\/s -- left$/);
  });
});
