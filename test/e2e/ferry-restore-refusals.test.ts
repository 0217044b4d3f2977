// Bad input to `ferry restore --import` gets one clear line on stderr, exit status 1, and changes
// nothing: after each case containerd has the same containers, tasks, snapshots, leases,
// content, ingests and images (asked through its API), no mount is left under containerd's or
// ferry's directories, and ferry's state directory holds nothing new. The cases: a missing
// file, a file that is not an archive, a truncated and a corrupt archive, no checkpoint/, a
// config.dump or spec.dump that is not JSON or lacks what restore needs, incomplete CRIU images,
// a base image that is not there, a name in use, a rootfs-diff.tar containerd cannot apply and a
// checkpoint CRIU cannot restore (those two fail after containerd was touched: the rollback),
// and every archive of the malicious corpus. The variants are made from a real Podman archive.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { CORPUS, writeCorpusArchive } from '../corpus/generate-malicious';
import { snapshotTree } from '../corpus/fs-snapshot';
import { startContainerd, Containerd } from '../helpers/containerd';
import { runFerry } from '../helpers/ferry-cli';
import { uniqueId } from '../helpers/lanes';
import { podmanCheckpointExport } from '../helpers/podman';
import { footprint } from '../helpers/restore-footprint';
import { mountsUnder } from '../helpers/procfs';

jest.setTimeout(240000);

const versions = (process.env.FERRY_E2E_CONTAINERD ?? '1.7,2.1').split(',').map((s) => s.trim()) as ('1.7' | '2.1')[];
const COUNTER = 'i=0; while true; do i=$((i+1)); echo $i > /tmp/count; sleep 0.1; done';

/** A copy of the unpacked archive `src`, changed by `change`, tarred again as `out`. */
function variant(src: string, out: string, change: (dir: string) => void): string {
  const dir = `${out}.d`;
  fs.cpSync(src, dir, { recursive: true });
  change(dir);
  execFileSync('tar', ['-C', dir, '-cf', out, '.']);
  fs.rmSync(dir, { recursive: true, force: true });
  return out;
}

const editJson = (file: string, edit: (v: Record<string, unknown>) => void) => {
  const v = JSON.parse(fs.readFileSync(file, 'utf8')) as Record<string, unknown>;
  edit(v);
  fs.writeFileSync(file, JSON.stringify(v));
};

describe.each(versions)('ferry restore --import refusals on containerd %s', (version) => {
  let c: Containerd;
  let work: string;
  let stateDir: string;
  let plain: string;
  let zstd: string;
  let unpacked: string;
  const env = () => ({ FERRY_STATE_DIR: stateDir });

  beforeAll(async () => {
    work = fs.mkdtempSync(path.join(os.tmpdir(), 'ferry-refuse-'));
    stateDir = path.join(work, 'state');
    fs.mkdirSync(stateDir);
    c = await startContainerd({ version });
    plain = path.join(work, 'pm.tar');
    zstd = path.join(work, 'pm.tar.zst');
    await podmanCheckpointExport(uniqueId('ferry-pmr'), COUNTER, plain, { compress: 'none' });
    await podmanCheckpointExport(uniqueId('ferry-pmz'), COUNTER, zstd);
    unpacked = path.join(work, 'unpacked');
    fs.mkdirSync(unpacked);
    execFileSync('tar', ['-C', unpacked, '-xf', plain]);
  }, 180000);
  afterAll(async () => {
    await c?.stop();
    fs.rmSync(work, { recursive: true, force: true });
  }, 120000);

  /** Runs the restore, expects one line matching `re` and exit 1, and an unchanged footprint. */
  async function refused(args: string[], re: RegExp): Promise<string> {
    const before = await footprint(c, stateDir);
    const r = await runFerry(c, ['restore', ...args], { env: env() });
    const errorLines = r.stderr.split('\n').filter((l) => l !== '' && !/^ferry restore: warning: /.test(l));
    expect({ code: r.code, stdout: r.stdout, errorLines }).toEqual({ code: 1, stdout: '', errorLines: [expect.stringMatching(re)] });
    expect(errorLines[0]).toMatch(/^ferry restore: /);
    if (process.env.FERRY_TEST_SHOW) console.log(errorLines[0]);
    expect(await footprint(c, stateDir)).toEqual(before);
    return errorLines[0]!;
  }

  test('a missing file', async () => {
    await refused(['--import', path.join(work, 'nope.tar')], /checkpoint archive .*nope\.tar does not exist$/);
  });

  test('a file that is not an archive', async () => {
    const f = path.join(work, 'text.tar');
    fs.writeFileSync(f, 'this is not a tar archive, not even close\n'.repeat(40));
    await refused(['--import', f], /checksum mismatch \(corrupt or not a tar archive\)/);
  });

  test('nothing to restore, or both sources', async () => {
    await refused([], /nothing to restore: give --import FILE or --image REF/);
    await refused(['--import', plain, '--image', 'x:y'], /not both/);
  });

  test('a truncated archive (zstd) and a corrupt one (plain)', async () => {
    const cut = path.join(work, 'cut.tar.zst');
    const bytes = fs.readFileSync(zstd);
    fs.writeFileSync(cut, bytes.subarray(0, Math.floor(bytes.length / 2)));
    await refused(['--import', cut], /truncated|zstd/);
    const bad = path.join(work, 'corrupt.tar');
    const p = Buffer.from(fs.readFileSync(plain));
    // Overwrite the second header block onwards with garbage: the checksum catches it.
    p.fill(0x41, 512 * 3, 512 * 6);
    fs.writeFileSync(bad, p);
    await refused(['--import', bad], /checksum mismatch|truncated/);
  });

  test('an archive without checkpoint/', async () => {
    const f = variant(unpacked, path.join(work, 'nockpt.tar'), (d) => fs.rmSync(path.join(d, 'checkpoint'), { recursive: true }));
    await refused(['--import', f], /the checkpoint has no checkpoint\/ directory/);
  });

  test('config.dump or spec.dump that is not JSON or lacks what restore needs', async () => {
    const cases: [string, (d: string) => void, RegExp][] = [
      ['config-notjson', (d) => fs.writeFileSync(path.join(d, 'config.dump'), '{"id": '), /config\.dump is not valid JSON$/],
      ['spec-notjson', (d) => fs.writeFileSync(path.join(d, 'spec.dump'), 'nope'), /spec\.dump is not valid JSON$/],
      ['spec-array', (d) => fs.writeFileSync(path.join(d, 'spec.dump'), '[]'), /spec\.dump is not a JSON object$/],
      ['spec-noprocess', (d) => editJson(path.join(d, 'spec.dump'), (v) => { delete v.process; }), /spec\.dump has no "process" object$/],
      ['config-noimage', (d) => editJson(path.join(d, 'config.dump'), (v) => { delete v.rootfsImageID; delete v.rootfsImageName; delete v.RawImageName; }), /config\.dump names no base image/],
      ['no-spec', (d) => fs.rmSync(path.join(d, 'spec.dump')), /the checkpoint has no spec\.dump$/],
    ];
    for (const [name, change, re] of cases) {
      await refused(['--import', variant(unpacked, path.join(work, `${name}.tar`), change), '--name', uniqueId('x')], re);
    }
  });

  test('incomplete CRIU images', async () => {
    const f = variant(unpacked, path.join(work, 'nopstree.tar'), (d) => fs.rmSync(path.join(d, 'checkpoint', 'pstree.img')));
    await refused(['--import', f], /CRIU images are incomplete: pstree\.img: missing/);
  });

  test('a base image that is neither present nor pullable', async () => {
    const f = variant(unpacked, path.join(work, 'noimage.tar'), (d) => editJson(path.join(d, 'config.dump'), (v) => {
      v.rootfsImageID = 'ab'.repeat(32);
      v.rootfsImageName = 'registry.invalid/ferry/none:1';
    }));
    await refused(['--import', f, '--name', uniqueId('x')], /base image .* (is not in containerd's image store|could not be pulled)/);
  });

  test('a name in use', async () => {
    const id = uniqueId('taken');
    expect((await c.ctr(['container', 'create', c.image!.name, id, 'true'])).code).toBe(0);
    try {
      await refused(['--import', plain, '--name', id], new RegExp(`a container named ${id} already exists$`));
    } finally {
      await c.ctr(['container', 'rm', id]);
      await c.ctr(['snapshot', 'rm', id]);
    }
  });

  test('a rootfs-diff.tar containerd cannot apply: everything made before is undone', async () => {
    const f = variant(unpacked, path.join(work, 'baddiff.tar'), (d) => fs.writeFileSync(path.join(d, 'rootfs-diff.tar'), Buffer.alloc(4096, 0x42)));
    await refused(['--import', f, '--name', uniqueId('x')], /rootfs-diff\.tar could not be applied/);
  });

  test('a checkpoint CRIU cannot restore: the task, container and snapshot are undone', async () => {
    // CRIU restores the mounts it dumped; without /etc/hostname in the spec it has no source for it.
    const f = variant(unpacked, path.join(work, 'nomount.tar'), (d) => editJson(path.join(d, 'spec.dump'), (v) => {
      v.mounts = (v.mounts as { destination: string }[]).filter((m) => m.destination !== '/etc/hostname');
    }));
    await refused(['--import', f, '--name', uniqueId('x')], /restore failed|criu/i);
  });

  // The corpus is refused while staging, before containerd is asked anything: it runs on the
  // first containerd version only (FERRY_E2E_RESTORE_CORPUS=all: on each), to keep e2e time.
  const corpusHere = process.env.FERRY_E2E_RESTORE_CORPUS === 'all' || version === versions[0];
  (corpusHere ? test : test.skip)('every archive of the malicious corpus', async () => {
    const dir = path.join(work, 'corpus');
    fs.mkdirSync(dir);
    fs.mkdirSync(path.join(stateDir, 'staging'), { recursive: true });
    fs.writeFileSync(path.join(stateDir, 'canary.txt'), 'canary');
    const beforeTree = snapshotTree(stateDir);
    const before = await footprint(c, stateDir);
    for (const cs of CORPUS) {
      const file = await writeCorpusArchive(cs, dir);
      const r = await runFerry(c, ['restore', '--import', file, '--name', uniqueId('m')], { env: env() });
      const lines = r.stderr.split('\n').filter((l) => l !== '' && !/^ferry restore: warning: /.test(l));
      const want = cs.expect.outcome === 'refused' ? cs.expect.error : /the checkpoint has no checkpoint\/ directory|CRIU images are incomplete|the checkpoint has no (config|spec)\.dump/;
      expect({ id: cs.id, code: r.code, stdout: r.stdout, lines }).toEqual({ id: cs.id, code: 1, stdout: '', lines: [expect.stringMatching(want)] });
      // Per case: nothing written in or around ferry's directories, no mount.
      expect({ id: cs.id, tree: snapshotTree(stateDir), mounts: mountsUnder(stateDir).length }).toEqual({ id: cs.id, tree: beforeTree, mounts: 0 });
    }
    expect(await footprint(c, stateDir)).toEqual(before);
    for (const p of ['/etc/ferry-corpus-x', '/etc/ferry-corpus-g', '/inventory.img', '/core-1.img', '/planted.txt', '/canary.txt', '/pwned']) {
      expect(fs.existsSync(p)).toBe(false);
    }
  });
});
