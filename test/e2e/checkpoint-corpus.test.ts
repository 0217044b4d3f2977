// Issue 4 item 11 end to end: every archive of the malicious checkpoint corpus
// (test/corpus/generate-malicious.ts) handed to ferry through a real containerd, two ways:
//
//  (a) as an archive file: runtime option criu_image_path names it, so ferry's staging helper
//      unpacks it into <bundle>/ctrd-restore. A 'refused' case must fail Tasks.Create with the
//      corpus's own error; a 'sanitized' case is staged (minus its links, devices, FIFOs) and,
//      since it is not a real CRIU image, must then fail — refused by a restore check in
//      Create, or by runc/CRIU in Start — with ctrd-restore removed either way.
//  (b) as a containerd checkpoint image: the (uncompressed) tar ingested as the criu.checkpoint
//      layer and named in Tasks.Create's `checkpoint`, so containerd unpacks it itself and ferry
//      checks the directory it is handed. Whatever containerd refuses or sanitizes is fine; the
//      end state must be the same: a clear error, nothing written outside, nothing left.
//
// After every case: no task, no shim daemon, no container process, no mount under the state
// dir, no ctrd-restore, no runc state; the canaries around the bundle (its parent directory is
// where the corpus's `../../` escapes aim) are unchanged, the absolute targets the corpus aims
// at are not created, /etc/passwd and /etc/shadow unchanged, the archive itself unchanged.
//
// One containerd for the whole suite, cases in sequence. Lanes: FERRY_E2E_CORPUS_LANES, a
// comma list of `1.7-ttrpc`, `1.7-grpc`, `2.1-ttrpc` or `all` (default `1.7-ttrpc`, to keep CI
// time bounded), within what FERRY_E2E_CONTAINERD allows. ferry-only: the Go shim stages
// nothing itself.
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as zlib from 'node:zlib';
import { decompress as zstdDecompress } from 'fzstd';
import { CORPUS, generateCorpus, type CorpusCase } from '../corpus/generate-malicious';
import { snapshotTree, type Node } from '../corpus/fs-snapshot';
import { ctrOk, findCtrdRestore, ingestCheckpoint, restoreLeftovers, rootfsMounts, type Desc } from '../helpers/checkpoint-content';
import { callTasks, runcOptions } from '../helpers/containerd-api';
import type { Containerd } from '../helpers/containerd';
import { isGoShim, lanes, taskRow, uniqueId, useContainerd, type Lane } from '../helpers/lanes';
import { waitFor } from '../helpers/procfs';
import type { Any } from '../../api/gen/google/protobuf/any';
import type { Mount } from '../../api/gen/containerd/types/mount';

/** Per case (one path): Create + Start + cleanup + checks; a hang is a failure, not a wait. */
const CASE_TIMEOUT_MS = 20000;

const laneKey = (l: Lane): string => `${l.containerd}-${l.grpc ? 'grpc' : 'ttrpc'}`;
const wanted = (process.env.FERRY_E2E_CORPUS_LANES ?? '1.7-ttrpc').split(',').map((s) => s.trim());
const corpusLanes = lanes().filter((l) => !isGoShim(l) && (wanted.includes('all') || wanted.includes(laneKey(l))));
const describeLanes = corpusLanes.length ? describe.each(corpusLanes) : describe.skip.each([{ name: 'no corpus lane' } as Lane]);

/** Absolute paths the corpus aims at (absolute names, links to /etc, `./.` → /): never created. */
const MUST_NOT_EXIST = ['/etc/ferry-corpus-x', '/etc/ferry-corpus-g', '/inventory.img', '/core-1.img', '/planted.txt', '/canary.txt', '/pwned'];
/** Host files the corpus's links point at: never changed. */
const MUST_NOT_CHANGE = ['/etc/passwd', '/etc/shadow'];

/** What an attempted restore did: refused in Create, or created and then failed in Start. */
interface Outcome {
  failedIn: 'create' | 'start';
  message: string;
  /** When Create succeeded: <bundle>/ctrd-restore as staged (`type mode [sha256]` per path), if any. */
  staged?: Map<string, string>;
  /** ctrd-restore dirs present right after the failed Start (before the task is deleted). */
  stagingAfterStart?: string[];
}

/** A tree as `type mode [sha256]` per relative path. */
function describeTree(root: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const [p, n] of snapshotTree(root)) out.set(p, `${n.type} ${n.mode.toString(8)}${n.sha ? ` ${n.sha}` : ''}`);
  return out;
}

/** The gRPC error text containerd returns (`details` is its message without the status prefix). */
function errorText(err: unknown): string {
  const e = err as { details?: string; message?: string };
  return e.details || e.message || String(err);
}

/** The corpus archive as a plain tar (gzip/zstd decompressed), or the raw bytes if that fails. */
function asPlainTar(bytes: Buffer): { tar: Buffer; decompressed: boolean } {
  try {
    if (bytes[0] === 0x1f && bytes[1] === 0x8b) return { tar: zlib.gunzipSync(bytes), decompressed: true };
    if (bytes.readUInt32LE(0) === 0xfd2fb528) return { tar: Buffer.from(zstdDecompress(bytes)), decompressed: true };
  } catch {
    // A corrupt stream (gzip-truncated) goes in as it is: containerd must refuse it itself.
  }
  return { tar: bytes, decompressed: false };
}

/**
 * Independently of ferry's check, the first entry under `dir` (walked by bytes with lstat)
 * that ferry's directory check must refuse: not a directory or a single-link regular file, or
 * a name that is not valid UTF-8. undefined when the tree is only such files and directories.
 */
function firstOffender(dir: string): string | undefined {
  const utf8 = new TextDecoder('utf-8', { fatal: true });
  const walk = (d: Buffer): string | undefined => {
    for (const name of fs.readdirSync(d, { encoding: 'buffer' })) {
      const p = Buffer.concat([d, Buffer.from('/'), name]);
      try { utf8.decode(name); } catch { return `${p.toString('latin1')} (name not UTF-8)`; }
      const st = fs.lstatSync(p);
      if (st.isDirectory()) {
        const inner = walk(p);
        if (inner) return inner;
      } else if (!st.isFile() || st.nlink > 1) {
        return `${p.toString()} (mode ${st.mode.toString(8)}, ${st.nlink} links)`;
      }
    }
    return undefined;
  };
  return walk(Buffer.from(dir));
}

function sha256(p: string): string {
  return createHash('sha256').update(fs.readFileSync(p)).digest('hex');
}

describeLanes('malicious checkpoint corpus end to end [$name]', (lane: Lane) => {
  const containerd = useContainerd(lane);
  let work: string;
  let archives: string;
  let nsDir: string;
  const hostHashes = new Map<string, string>();
  const outcomes: string[] = [];

  beforeAll(async () => {
    const c = containerd();
    work = fs.mkdtempSync(path.join(os.tmpdir(), 'ferry-corpus-e2e-'));
    archives = path.join(work, 'archives');
    await generateCorpus(archives);
    // A canary beside the archives: staging reads the archive, it never writes next to it.
    fs.writeFileSync(path.join(archives, 'canary.txt'), 'canary beside the archives\n');
    // The bundle is <nsDir>/<id>, so the corpus's ../../canary.txt from <bundle>/ctrd-restore
    // is <nsDir>/canary.txt. containerd creates nsDir with the first bundle; create it first
    // (same mode) so the canaries are there from the first case on.
    nsDir = path.dirname(c.bundleDir('x'));
    fs.mkdirSync(nsDir, { recursive: true, mode: 0o711 });
    fs.writeFileSync(path.join(nsDir, 'canary.txt'), 'canary\n', { mode: 0o644 });
    fs.mkdirSync(path.join(nsDir, 'canary-dir'), { mode: 0o755 });
    fs.writeFileSync(path.join(nsDir, 'canary-dir', 'inner.txt'), 'inner canary\n');
    for (const p of MUST_NOT_CHANGE) hostHashes.set(p, sha256(p));
  });

  afterAll(() => {
    // Canaries out before containerd's cleanup lists the namespace dir for bundles.
    if (nsDir) {
      fs.rmSync(path.join(nsDir, 'canary.txt'), { force: true });
      fs.rmSync(path.join(nsDir, 'canary-dir'), { recursive: true, force: true });
    }
    if (work) fs.rmSync(work, { recursive: true, force: true });
    if (outcomes.length) console.log(`corpus outcomes [${lane.name}]:\n${outcomes.join('\n')}`);
  });

  /** Everything around the bundle and the archives; the listings must not change. */
  function hostState(): { ns: Map<string, Node>; archives: Map<string, Node> } {
    return { ns: snapshotTree(nsDir), archives: snapshotTree(archives) };
  }

  function expectHostUnchanged(before: ReturnType<typeof hostState>): void {
    const after = hostState();
    expect([...after.ns.entries()]).toEqual([...before.ns.entries()]);
    expect([...after.archives.entries()]).toEqual([...before.archives.entries()]);
    expect(MUST_NOT_EXIST.filter((p) => fs.existsSync(p))).toEqual([]);
    for (const [p, h] of hostHashes) expect(`${p} ${sha256(p)}`).toBe(`${p} ${h}`);
  }

  /** A container record and snapshot (no task) to restore into. */
  async function newContainer(c: Containerd, prefix: string): Promise<{ id: string; mounts: Mount[] }> {
    const id = uniqueId(prefix);
    await ctrOk(c, ['containers', 'create', '--runtime', lane.runtime, c.image!.name, id, 'sh']);
    return { id, mounts: await rootfsMounts(c, id) };
  }

  /**
   * Tasks.Create (and, if that succeeds, Tasks.Start) of a restore; it must fail. A restore that
   * succeeds is a bug: the task is removed and the test fails.
   */
  async function attemptRestore(c: Containerd, id: string, mounts: Mount[], req: { checkpoint?: Desc; options?: Any }): Promise<Outcome> {
    try {
      await callTasks(c, 'create', { containerId: id, rootfs: mounts, checkpoint: req.checkpoint ? { ...req.checkpoint, annotations: {} } : undefined, options: req.options }, CASE_TIMEOUT_MS);
    } catch (err) {
      return { failedIn: 'create', message: errorText(err) };
    }
    const stagingDir = path.join(c.bundleDir(id), 'ctrd-restore');
    const staged = fs.existsSync(stagingDir) ? describeTree(stagingDir) : undefined;
    try {
      await callTasks(c, 'start', { containerId: id }, CASE_TIMEOUT_MS);
    } catch (err) {
      return { failedIn: 'start', message: errorText(err), staged, stagingAfterStart: findCtrdRestore(c.state) };
    } finally {
      // A created (or restored) task is removed either way; what it leaves is checked after.
      await c.ctr(['task', 'kill', '-s', 'SIGKILL', id]);
      await c.ctr(['task', 'rm', '-f', id], { timeoutMs: CASE_TIMEOUT_MS });
    }
    throw new Error(`restore of ${id} succeeded: crafted content was restored as a running container`);
  }

  async function runCase(prefix: string, req: { checkpoint?: Desc; options?: Any }, check: (o: Outcome) => void, label: string): Promise<void> {
    const c = containerd();
    const before = hostState();
    const { id, mounts } = await newContainer(c, prefix);
    try {
      const outcome = await attemptRestore(c, id, mounts, req);
      outcomes.push(`${label.padEnd(40)} ${outcome.failedIn.padEnd(6)} ${outcome.message.replace(/\s+/g, ' ').slice(0, 200)}`);
      check(outcome);
      // A failed restore removes its staging dir itself, not only when the task is deleted.
      expect(outcome.stagingAfterStart ?? []).toEqual([]);
      expect(await restoreLeftovers(c, id)).toEqual([]);
      expectHostUnchanged(before);
    } finally {
      if (await taskRow(c, id)) await c.ctr(['task', 'rm', '-f', id]);
      await c.ctr(['containers', 'rm', id]);
    }
  }

  /** An archive file through criu_image_path: ferry's own staging. */
  describe('(a) archive file via criu_image_path', () => {
    test.each(CORPUS.map((k) => [k.id, k] as [string, CorpusCase]))('%s', async (_id, k) => {
      const archive = path.join(archives, `${k.id}.tar`);
      await runCase(`a-${k.id}`, { options: runcOptions({ criuImagePath: archive }) }, (o) => {
        if (k.expect.outcome === 'refused') {
          // Refused by staging, in Create, with the message the unit corpus expects.
          expect(o.failedIn).toBe('create');
          expect(o.message).toMatch(k.expect.error);
          expect(o.message).toContain(archive);
        } else {
          if (o.failedIn === 'start') {
            // What CRIU was handed is exactly the sanitized tree the unit corpus expects.
            const want = new Map<string, string>();
            for (const [p, v] of Object.entries(k.expect.tree)) {
              want.set(p, 'dirMode' in v ? `dir ${v.dirMode.toString(8)}` : `file ${v.mode.toString(8)} ${createHash('sha256').update(v.content).digest('hex')}`);
            }
            expect(o.staged && [...o.staged.entries()].sort()).toEqual([...want.entries()].sort());
          }
          // Staged (not a CRIU image), then refused by a restore check or failed by runc/CRIU.
          expect(o.message).toMatch(o.failedIn === 'create'
            ? /restore refused|checkpoint (spec|config)\.dump/
            : /OCI runtime restore failed/);
        }
      }, `a ${k.id}`);
      if (k.expect.outcome === 'sanitized') {
        // Each skipped entry was logged (shim log → containerd's log), naming the archive and the entry.
        const expected = k.expect.skipped;
        const skipped = await waitFor(() => {
          const lines = containerd().log().split('\n').filter((l) => l.includes(`checkpoint archive ${archive}: skipped `));
          return lines.length >= expected.length ? lines : undefined;
        }, 5000, 100) ?? [];
        expect(skipped.length).toBe(expected.length);
        expected.forEach((name, i) => expect(skipped[i]).toContain(`entry ${JSON.stringify(JSON.stringify(name)).slice(1, -1)}:`));
      }
    }, CASE_TIMEOUT_MS * 2);
  });

  /** The tar as a checkpoint image's CRIU layer: containerd unpacks, ferry checks the directory. */
  describe('(b) checkpoint image layer unpacked by containerd', () => {
    // containerd unpacks into ctrd-checkpoint* under $XDG_RUNTIME_DIR (else its temp dir) and
    // leaves it there (containerd issue 10166): the test reads what ferry was handed from it.
    const unpackRoot = (c: Containerd): string => process.env.XDG_RUNTIME_DIR || path.join(c.dir, 'tmp');
    const unpackedDirs = (c: Containerd): string[] =>
      fs.readdirSync(unpackRoot(c)).filter((n) => n.startsWith('ctrd-checkpoint')).map((n) => path.join(unpackRoot(c), n));

    test.each(CORPUS.map((k) => [k.id, k] as [string, CorpusCase]))('%s', async (_id, k) => {
      const c = containerd();
      const { tar } = asPlainTar(fs.readFileSync(path.join(archives, `${k.id}.tar`)));
      const desc = await ingestCheckpoint(c, tar);
      const earlier = new Set(unpackedDirs(c));
      await runCase(`b-${k.id}`, { checkpoint: desc }, (o) => {
        const fresh = unpackedDirs(c).filter((d) => !earlier.has(d));
        try {
          // When containerd unpacked it and called ferry, ferry must have refused whatever is not
          // a plain file or directory in what it was handed, before CRIU read anything.
          if (o.failedIn === 'start' || /failed to create shim task/.test(o.message)) {
            expect(fresh.length).toBe(1);
            const offender = firstOffender(fresh[0]!);
            if (offender) {
              expect(`${offender}: ${o.failedIn}`).toBe(`${offender}: create`);
              expect(o.message).toMatch(/checkpoint directory \S+: .*(only regular files and directories are allowed|hard links|not valid UTF-8)/);
            }
          }
        } finally {
          for (const d of fresh) fs.rmSync(d, { recursive: true, force: true });
        }
        // containerd's own unpacking error (Go's archive/tar, its path checks), ferry's directory
        // check, a restore check, or runc/CRIU failing on a non-image: each names the problem.
        expect(o.message).toMatch(o.failedIn === 'create'
          ? /archive\/tar|unexpected EOF|unhandled tar header|file name too long|only regular files and directories|hard links|not valid UTF-8|restore refused|no such file|not a directory|too many links/i
          : /OCI runtime restore failed/);
      }, `b ${k.id}`);
    }, CASE_TIMEOUT_MS * 2);
  });
});
