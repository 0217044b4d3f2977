// Unit tests for the checkpoint/restore engine's decisions: CRIU lookup and version check,
// checkpoint option decoding (two option families with different field numbers), the
// pod/namespace compatibility check, reading a saved spec, and CRIU log quoting.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { CheckpointOptions as RuncV1CheckpointOptions } from '../../api/gen/containerd/runc/v1/options';
import { CheckpointOptions as LinuxRuncCheckpointOptions } from '../../api/gen/containerd/linux/runc/runc';
import { compareVersions, ensureCriu, findCriu, parseCriuVersion } from '../../src/checkpoint/criu';
import { forgetCriuVersions } from '../../src/checkpoint/criu-version-cache';
import { criuWorkDir, decodeCheckpointOptions } from '../../src/checkpoint/checkpoint';
import { checkpointContainer } from '../../src/checkpoint/checkpoint';
import { checkRestoreCompatibility, prepareRestore, readSavedSpec } from '../../src/checkpoint/restore';
import { defaultRuntimeOptions } from '../../src/service/runtime-options';
import { Runc } from '../../src/runc/runc';
import { Code, FerryError } from '../../src/errors';
import { writeFakeCheckpoint } from '../helpers/criu-images';

let tmp: string;
beforeEach(() => { tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ferry-ckeng-')); });
afterEach(() => { fs.rmSync(tmp, { recursive: true, force: true }); });

function fakeCriu(dir: string, versionLine: string): string {
  fs.mkdirSync(dir, { recursive: true });
  const p = path.join(dir, 'criu');
  fs.writeFileSync(p, `#!/bin/sh\necho "${versionLine}"\n`, { mode: 0o755 });
  return p;
}

describe('CRIU lookup and version', () => {
  test('findCriu searches PATH in order and returns the first executable', async () => {
    const a = path.join(tmp, 'a');
    const b = path.join(tmp, 'b');
    fs.mkdirSync(a);
    fs.writeFileSync(path.join(a, 'criu'), 'not executable', { mode: 0o644 });
    const expected = fakeCriu(b, 'Version: 4.1');
    await expect(findCriu('', `${a}:${b}`)).resolves.toBe(expected);
  });

  test('missing from PATH: the error lists every directory it looked in', async () => {
    const err = await findCriu('', `${tmp}/x:${tmp}/y`).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(FerryError);
    expect((err as FerryError).code).toBe(Code.FailedPrecondition);
    expect((err as Error).message).toBe(`criu was not found in PATH (looked in: ${tmp}/x, ${tmp}/y)`);
  });

  test('criu_path set: only that path is used, and named when missing', async () => {
    fakeCriu(path.join(tmp, 'onpath'), 'Version: 4.1');
    await expect(findCriu(path.join(tmp, 'nope', 'criu'), path.join(tmp, 'onpath')))
      .rejects.toThrow(`criu was not found: options.criu_path "${path.join(tmp, 'nope', 'criu')}" is not an executable file`);
    const own = fakeCriu(path.join(tmp, 'own'), 'Version: 4.1');
    await expect(findCriu(own, '')).resolves.toBe(own);
  });

  test('parseCriuVersion reads major.minor[.patch]', () => {
    expect(parseCriuVersion('Version: 4.1.1\n')).toBe('4.1.1');
    expect(parseCriuVersion('Version: 3.17\nGitID: v3.17\n')).toBe('3.17.0');
    expect(parseCriuVersion('criu something')).toBeUndefined();
  });

  test('compareVersions is numeric, not lexical', () => {
    expect(compareVersions('3.17.0', '3.9.0')).toBeGreaterThan(0);
    expect(compareVersions('2.12.0', '3.0.0')).toBeLessThan(0);
    expect(compareVersions('3.0.0', '3.0')).toBe(0);
  });

  test('ensureCriu: a too old CRIU is refused with both versions; a new one passes', async () => {
    const old = fakeCriu(path.join(tmp, 'old'), 'Version: 2.12');
    await expect(ensureCriu(old)).rejects.toThrow(`criu at ${old} is version 2.12.0; ferry needs 3.0.0 or newer`);
    const ok = fakeCriu(path.join(tmp, 'new'), 'Version: 4.1.1');
    await expect(ensureCriu(ok, undefined, path.join(tmp, 'cache'))).resolves.toEqual({ path: ok, version: '4.1.1' });
  });
});

describe('remembered CRIU versions (criu-version-cache.ts)', () => {
  /** A fake criu that counts how often it was asked. */
  function countingCriu(dir: string, version: string): { bin: string; asked: () => number } {
    fs.mkdirSync(dir, { recursive: true });
    const bin = path.join(dir, 'criu');
    const count = path.join(dir, 'count');
    fs.writeFileSync(bin, `#!/bin/sh
echo x >> ${count}
echo "Version: ${version}"
`, { mode: 0o755 });
    return { bin, asked: () => (fs.existsSync(count) ? fs.readFileSync(count, 'utf8').split('\n').filter(Boolean).length : 0) };
  }
  afterEach(() => forgetCriuVersions());

  test('a CRIU is asked once, also by the next daemon, and again once its binary changes', async () => {
    const cache = path.join(tmp, 'cache');
    const c = countingCriu(path.join(tmp, 'c'), '4.2.1');
    await expect(ensureCriu(c.bin, undefined, cache)).resolves.toEqual({ path: c.bin, version: '4.2.1' });
    await expect(ensureCriu(c.bin, undefined, cache)).resolves.toEqual({ path: c.bin, version: '4.2.1' });
    expect(c.asked()).toBe(1);
    expect(fs.statSync(cache).mode & 0o777).toBe(0o700);
    const [entry] = fs.readdirSync(cache);
    expect(fs.statSync(path.join(cache, entry!)).mode & 0o777).toBe(0o600);
    forgetCriuVersions(); // a new daemon: only the file remains
    await expect(ensureCriu(c.bin, undefined, cache)).resolves.toEqual({ path: c.bin, version: '4.2.1' });
    expect(c.asked()).toBe(1);
    // Rewritten in place (same path, maybe the same size): its ctime moved, so it is asked again.
    fs.writeFileSync(c.bin, fs.readFileSync(c.bin, 'utf8').replace('4.2.1', '4.3.0'));
    await expect(ensureCriu(c.bin, undefined, cache)).resolves.toEqual({ path: c.bin, version: '4.3.0' });
    expect(c.asked()).toBe(2);
    // Writing an entry drops those of binaries that are gone.
    const gone = countingCriu(path.join(tmp, 'gone'), '4.2.1');
    await ensureCriu(gone.bin, undefined, cache);
    expect(fs.readdirSync(cache)).toHaveLength(2);
    fs.rmSync(gone.bin);
    fs.writeFileSync(c.bin, fs.readFileSync(c.bin, 'utf8').replace('4.3.0', '4.3.1'));
    await expect(ensureCriu(c.bin, undefined, cache)).resolves.toEqual({ path: c.bin, version: '4.3.1' });
    expect(fs.readdirSync(cache)).toHaveLength(1);
  });

  test('a refused CRIU is not remembered; a damaged or foreign entry is ignored', async () => {
    const cache = path.join(tmp, 'cache');
    const old = countingCriu(path.join(tmp, 'old'), '2.12');
    for (let i = 0; i < 2; i++) await expect(ensureCriu(old.bin, undefined, cache)).rejects.toThrow('is version 2.12.0; ferry needs 3.0.0 or newer');
    expect(old.asked()).toBe(2);
    const c = countingCriu(path.join(tmp, 'c'), '4.2.1');
    await ensureCriu(c.bin, undefined, cache);
    const file = path.join(cache, fs.readdirSync(cache)[0]!);
    const entry = JSON.parse(fs.readFileSync(file, 'utf8')) as { identity: string };
    for (const bad of ['{not json', JSON.stringify({ ...entry, identity: '1:2:3:4:5', version: '9.9.9' }), JSON.stringify({ ...entry, version: 'new' })]) {
      fs.writeFileSync(file, bad);
      forgetCriuVersions();
      await expect(ensureCriu(c.bin, undefined, cache)).resolves.toEqual({ path: c.bin, version: '4.2.1' });
    }
    expect(c.asked()).toBe(4);
    // A link in its place is not followed.
    fs.rmSync(file);
    fs.writeFileSync(path.join(tmp, 'elsewhere'), JSON.stringify({ ...entry, version: '9.9.9' }));
    fs.symlinkSync(path.join(tmp, 'elsewhere'), file);
    forgetCriuVersions();
    await expect(ensureCriu(c.bin, undefined, cache)).resolves.toEqual({ path: c.bin, version: '4.2.1' });
  });
});

describe('decodeCheckpointOptions', () => {
  test('containerd.runc.v1.CheckpointOptions (image_path = 8, work_path = 9)', () => {
    const value = RuncV1CheckpointOptions.encode(RuncV1CheckpointOptions.fromPartial({
      exit: true, fileLocks: true, emptyNamespaces: ['network'], cgroupsMode: 'soft', imagePath: '/img', workPath: '/work',
    })).finish();
    const o = decodeCheckpointOptions({ typeUrl: 'containerd.runc.v1.CheckpointOptions', value });
    expect(o).toMatchObject({ exit: true, fileLocks: true, emptyNamespaces: ['network'], cgroupsMode: 'soft', imagePath: '/img', workPath: '/work' });
  });

  test('containerd.linux.runc.CheckpointOptions numbers them the other way round', () => {
    const value = LinuxRuncCheckpointOptions.encode(LinuxRuncCheckpointOptions.fromPartial({ imagePath: '/img', workPath: '/work', openTcp: true })).finish();
    const o = decodeCheckpointOptions({ typeUrl: 'types.containerd.io/containerd.linux.runc.CheckpointOptions', value });
    expect(o).toMatchObject({ imagePath: '/img', workPath: '/work', openTcp: true, exit: false });
    // Decoded as the other type, the paths would swap: the type name must decide.
    const wrong = RuncV1CheckpointOptions.decode(value);
    expect(wrong.imagePath).toBe('/work');
  });

  test('no options: leave running, nothing else; an unknown type is refused', () => {
    expect(decodeCheckpointOptions(undefined)).toMatchObject({ exit: false, imagePath: '', workPath: '' });
    expect(() => decodeCheckpointOptions({ typeUrl: 'foo.Bar', value: new Uint8Array([8, 1]) })).toThrow(/unsupported checkpoint options type "foo.Bar"/);
  });

  test('criuWorkDir: first non-empty preference, else <bundle>/criu-work', () => {
    expect(criuWorkDir('/b', '', '/w2')).toBe('/w2');
    expect(criuWorkDir('/b', '/w1', '/w2')).toBe('/w1');
    expect(criuWorkDir('/b', '', '')).toBe('/b/criu-work');
  });
});

describe('checkRestoreCompatibility', () => {
  const own = { linux: { namespaces: [{ type: 'pid' }, { type: 'ipc' }, { type: 'uts' }, { type: 'mount' }, { type: 'network' }] } };
  const inPod = (ns: { type: string; path?: string }[]) => ({ annotations: { 'io.kubernetes.cri.sandbox-id': 'sb1' }, linux: { namespaces: ns } });
  const podNs = [{ type: 'pid' }, { type: 'ipc', path: '/proc/9/ns/ipc' }, { type: 'uts', path: '/proc/9/ns/uts' }, { type: 'network', path: '/proc/9/ns/net' }];

  test('same setting passes (paths may differ between pods)', () => {
    expect(() => checkRestoreCompatibility(own, own)).not.toThrow();
    const other = podNs.map((n) => (n.path ? { ...n, path: n.path.replace('/9/', '/77/') } : n));
    expect(() => checkRestoreCompatibility(inPod(podNs), { ...inPod(other), annotations: { 'io.kubernetes.cri.sandbox-id': 'sb2' } })).not.toThrow();
  });

  test('pod → no pod and no pod → pod are refused', () => {
    expect(() => checkRestoreCompatibility(inPod(podNs), own)).toThrow('restore refused: the checkpoint was taken inside a pod (io.kubernetes.cri.sandbox-id=sb1) and the target container is not in one');
    expect(() => checkRestoreCompatibility(own, inPod(podNs))).toThrow(/taken outside a pod and the target container is in one/);
    expect(() => checkRestoreCompatibility({ annotations: { 'io.kubernetes.cri-o.SandboxID': 'x' } }, {})).toThrow(/inside a pod/);
  });

  test('a namespace shared in one and not the other is refused, naming it', () => {
    const shared = { linux: { namespaces: [...own.linux.namespaces.filter((n) => n.type !== 'ipc'), { type: 'ipc', path: '/proc/1/ns/ipc' }] } };
    expect(() => checkRestoreCompatibility(shared, own)).toThrow("restore refused: the checkpoint's ipc namespace is shared, the target's is private");
    expect(() => checkRestoreCompatibility(own, shared)).toThrow("the checkpoint's ipc namespace is private, the target's is shared");
    const hostNet = { linux: { namespaces: own.linux.namespaces.filter((n) => n.type !== 'network') } };
    // OCI calls it 'network'; the host's namespace (no entry) is a third setting.
    expect(() => checkRestoreCompatibility(own, hostNet)).toThrow("the checkpoint's network namespace is private, the target's is host");
    const cg = { linux: { namespaces: [...own.linux.namespaces, { type: 'cgroup', path: '/proc/1/ns/cgroup' }] } };
    expect(() => checkRestoreCompatibility(cg, { linux: { namespaces: [...own.linux.namespaces, { type: 'cgroup' }] } })).toThrow(/cgroup namespace is shared, the target's is private/);
  });
});

describe('readSavedSpec', () => {
  test('absent: undefined; spec.dump preferred; config.dump only with spec fields', async () => {
    await expect(readSavedSpec(tmp)).resolves.toBeUndefined();
    fs.writeFileSync(path.join(tmp, 'config.dump'), JSON.stringify({ id: 'x', rootfsImage: 'busybox' }));
    await expect(readSavedSpec(tmp)).resolves.toBeUndefined();
    fs.writeFileSync(path.join(tmp, 'spec.dump'), JSON.stringify({ annotations: { a: 'b' } }));
    await expect(readSavedSpec(tmp)).resolves.toEqual({ annotations: { a: 'b' } });
  });

  test('a symlinked spec.dump is an error, not followed', async () => {
    const secret = path.join(tmp, 'secret.json');
    fs.writeFileSync(secret, JSON.stringify({ annotations: { leaked: 'yes' } }));
    const dir = path.join(tmp, 'ck');
    fs.mkdirSync(dir);
    fs.symlinkSync(secret, path.join(dir, 'spec.dump'));
    await expect(readSavedSpec(dir)).rejects.toThrow();
  });

  test('non-object JSON or annotations are refused', async () => {
    fs.writeFileSync(path.join(tmp, 'spec.dump'), '[1,2]');
    await expect(readSavedSpec(tmp)).rejects.toThrow('checkpoint spec.dump is not a JSON object');
    fs.writeFileSync(path.join(tmp, 'spec.dump'), JSON.stringify({ annotations: ['x'] }));
    await expect(readSavedSpec(tmp)).rejects.toThrow('checkpoint spec.dump: annotations is not an object');
  });
});

describe('runc checkpoint/restore command lines', () => {
  function fakeRunc(body: string): string {
    const p = path.join(tmp, 'runc');
    fs.writeFileSync(p, `#!/bin/sh\n${body}\n`, { mode: 0o755 });
    return p;
  }

  test('checkpoint: go-runc flag order, --leave-running unless exit, --empty-ns per namespace', async () => {
    const r = new Runc({ binary: fakeRunc(`echo "$@" > ${tmp}/args`), root: '/r', logPath: `${tmp}/log.json`, criuPath: '/opt/criu' });
    await r.checkpoint('c1', {
      imagePath: '/img', workPath: '/w', parentPath: '/parent', leaveRunning: true, tcpEstablished: true, extUnixSk: true,
      shellJob: true, fileLocks: true, emptyNamespaces: ['network', 'ipc'], manageCgroupsMode: 'soft',
    });
    expect(fs.readFileSync(`${tmp}/args`, 'utf8').trim()).toBe(
      `--root /r --log ${tmp}/log.json --log-format json --criu /opt/criu checkpoint --image-path /img --work-path /w --parent-path /parent --tcp-established --ext-unix-sk --shell-job --file-locks --manage-cgroups-mode soft --empty-ns network --empty-ns ipc --leave-running c1`);
    await r.checkpoint('c1', { imagePath: '/img', workPath: '/w', leaveRunning: false });
    expect(fs.readFileSync(`${tmp}/args`, 'utf8').trim()).toMatch(/checkpoint --image-path \/img --work-path \/w c1$/);
  });

  test('restore: detached, pid file, no subreaper, console socket, bundle last', async () => {
    const r = new Runc({ binary: fakeRunc(`echo "$@" > ${tmp}/args`), root: '/r', logPath: `${tmp}/log.json` });
    await r.restore('c1', '/b', { imagePath: '/img', workPath: '/w', pidFile: '/b/init.pid', consoleSocket: '/s.sock', noPivot: true });
    expect(fs.readFileSync(`${tmp}/args`, 'utf8').trim()).toBe(
      `--root /r --log ${tmp}/log.json --log-format json restore --image-path /img --work-path /w --detach --pid-file /b/init.pid --console-socket /s.sock --no-pivot -no-subreaper --bundle /b c1`);
  });

  test('a failed dump names the CRIU log and quotes its first error line', async () => {
    const criu = fakeCriu(path.join(tmp, 'criubin'), 'Version: 4.1.1');
    const work = path.join(tmp, 'work');
    // Like runc: CRIU wrote its log into --work-path, runc logged a multi-line error.
    fs.writeFileSync(`${tmp}/dump.src`, '(00.1) Dumping\n(00.2) Error (criu/sk-unix.c:9): unix: Connected external socket\n(00.3) Error (criu/cr-dump.c:1): Dumping FAILED.\n');
    fs.writeFileSync(`${tmp}/err.json`, `${JSON.stringify({ level: 'error', msg: `criu failed: type NOTIFY errno 0\nlog file: ${work}/dump.log` })}\n`);
    const bin = fakeRunc(`cp ${tmp}/dump.src ${work}/dump.log; cat ${tmp}/err.json >> ${tmp}/log.json; exit 1`);
    const runc = new Runc({ binary: bin, root: '/r', logPath: `${tmp}/log.json` });
    const err = await checkpointContainer({
      id: 'c1', bundle: tmp, runc, path: path.join(tmp, 'img'), criuPath: criu, criuWorkPath: work,
      options: { exit: false, openTcp: false, externalUnixSockets: false, terminal: false, fileLocks: true, emptyNamespaces: [], cgroupsMode: '', imagePath: '', workPath: '' },
    }).catch((e: unknown) => e as Error);
    expect(err).toBeInstanceOf(Error);
    expect((err as Error).message).toBe(
      `runc checkpoint failed: criu failed: type NOTIFY errno 0; CRIU log ${work}/dump.log: (00.2) Error (criu/sk-unix.c:9): unix: Connected external socket`);
  });

  test('an invalid cgroups_mode is refused before anything runs', async () => {
    const runc = new Runc({ binary: fakeRunc(`touch ${tmp}/ran`), root: '/r', logPath: `${tmp}/log.json` });
    await expect(checkpointContainer({
      id: 'c1', bundle: tmp, runc, path: path.join(tmp, 'img'), criuPath: '', criuWorkPath: '',
      options: { exit: false, openTcp: false, externalUnixSockets: false, terminal: false, fileLocks: false, emptyNamespaces: [], cgroupsMode: 'bogus', imagePath: '', workPath: '' },
    })).rejects.toThrow(/cgroups_mode "bogus" is not one of soft, full, strict/);
    expect(fs.existsSync(`${tmp}/ran`)).toBe(false);
  });
});

describe('prepareRestore', () => {
  const oneProcess = { processes: [{ pid: 1, ppid: 0, comm: 'sh', argv: ['sh'], env: [] }] };
  function setup(spec: object) {
    const bundle = path.join(tmp, 'bundle');
    fs.mkdirSync(bundle);
    fs.writeFileSync(path.join(bundle, 'config.json'), JSON.stringify(spec));
    const ck = path.join(tmp, 'ck');
    writeFakeCheckpoint(ck, oneProcess);
    const options = { ...defaultRuntimeOptions(), criuPath: fakeCriu(path.join(tmp, 'criu'), 'Version: 4.1.1') };
    const warnings: string[] = [];
    const log = { warn: (m: string) => { warnings.push(m); } };
    return { bundle, ck, options, warnings, log };
  }

  test('a directory checkpoint: checked, used in place; saved annotations merged without CDI ones', async () => {
    const { bundle, ck, options, warnings, log } = setup({ annotations: { mine: 'target' }, linux: { namespaces: [{ type: 'pid' }] } });
    fs.writeFileSync(path.join(ck, 'spec.dump'), JSON.stringify({
      annotations: { mine: 'saved', extra: 'e', 'cdi.k8s.io/gpu': 'vendor.com/gpu=0' }, linux: { namespaces: [{ type: 'pid' }] },
    }));
    const plan = await prepareRestore({ bundle, checkpoint: ck, parentCheckpoint: '', options, log });
    expect(plan).toMatchObject({ imagePath: ck, staged: false, workPath: path.join(bundle, 'criu-work'), criu: { version: '4.1.1' } });
    const written = JSON.parse(fs.readFileSync(path.join(bundle, 'config.json'), 'utf8')) as { annotations: Record<string, string> };
    expect(written.annotations).toEqual({ mine: 'target', extra: 'e' });
    expect(warnings.some((w) => w.includes('cdi.k8s.io/gpu'))).toBe(true);
  });

  test('an archive is staged into <bundle>/ctrd-restore; a refusal afterwards removes it', async () => {
    const { bundle, ck, options, log } = setup({ linux: { namespaces: [{ type: 'pid' }] } });
    const archive = path.join(tmp, 'ck.tar');
    // A saved spec from a pod: refused, after staging.
    fs.writeFileSync(path.join(ck, 'spec.dump'), JSON.stringify({ annotations: { 'io.kubernetes.cri.sandbox-id': 's' } }));
    execFileSync('tar', ['-cf', archive, '-C', ck, '.']);
    await expect(prepareRestore({ bundle, checkpoint: archive, parentCheckpoint: '', options, log })).rejects.toThrow(/inside a pod/);
    expect(fs.existsSync(path.join(bundle, 'ctrd-restore'))).toBe(false);
    fs.rmSync(path.join(ck, 'spec.dump'));
    fs.rmSync(archive);
    execFileSync('tar', ['-cf', archive, '-C', ck, '.']);
    const plan = await prepareRestore({ bundle, checkpoint: archive, parentCheckpoint: '', options: { ...options, criuWorkPath: '/w' }, log });
    expect(plan).toMatchObject({ imagePath: path.join(bundle, 'ctrd-restore'), staged: true, workPath: '/w' });
    expect(fs.readFileSync(path.join(bundle, 'ctrd-restore', 'inventory.img'))).toEqual(fs.readFileSync(path.join(ck, 'inventory.img')));
  });

  test('criu_image_path wins over the request checkpoint; a symlink in a checkpoint dir is refused', async () => {
    // (A target with its own pid namespace, as the fake checkpoint's first process is pid 1.)
    const { bundle, ck, options, log } = setup({ linux: { namespaces: [{ type: 'pid' }] } });
    const other = path.join(tmp, 'other');
    writeFakeCheckpoint(other, oneProcess);
    const plan = await prepareRestore({ bundle, checkpoint: ck, parentCheckpoint: '', options: { ...options, criuImagePath: other }, log });
    expect(plan.imagePath).toBe(other);
    fs.symlinkSync('/etc/passwd', path.join(ck, 'pages-1.img'));
    await expect(prepareRestore({ bundle, checkpoint: ck, parentCheckpoint: '', options, log })).rejects.toThrow(/pages-1\.img/);
  });

  test('incomplete CRIU images are refused before the restore: in place, and staged (then removed)', async () => {
    const { bundle, ck, options, log } = setup({});
    fs.truncateSync(path.join(ck, 'pages-200.img'), 4096);
    const err = await prepareRestore({ bundle, checkpoint: ck, parentCheckpoint: '', options, log }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(FerryError);
    expect((err as FerryError).code).toBe(Code.InvalidArgument);
    expect((err as Error).message).toBe(`restore refused: the checkpoint's CRIU images are incomplete or inconsistent: ${ck}/pages-200.img: is 4096 bytes, but pagemap-1.img says 12288 bytes (3 pages of 4096 bytes): truncated`);
    const archive = path.join(tmp, 'ck.tar');
    fs.rmSync(path.join(ck, 'core-1.img'));
    execFileSync('tar', ['-cf', archive, '-C', ck, '.']);
    await expect(prepareRestore({ bundle, checkpoint: archive, parentCheckpoint: '', options, log }))
      .rejects.toThrow(/ctrd-restore\/core-1\.img: missing; .*ctrd-restore\/pages-200\.img: is 4096 bytes/);
    expect(fs.existsSync(path.join(bundle, 'ctrd-restore'))).toBe(false);
  });

  test('CRIU is checked first: nothing is staged when it is missing', async () => {
    const { bundle, options, log } = setup({});
    const archive = path.join(tmp, 'ck.tar');
    fs.writeFileSync(archive, Buffer.alloc(1024));
    await expect(prepareRestore({ bundle, checkpoint: archive, parentCheckpoint: '', options: { ...options, criuPath: path.join(tmp, 'no', 'criu') }, log }))
      .rejects.toThrow(/criu was not found/);
    expect(fs.existsSync(path.join(bundle, 'ctrd-restore'))).toBe(false);
  });
});
