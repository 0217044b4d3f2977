// Runs every crafted malicious archive of the corpus through stageCheckpointArchive inside a
// throwaway "host" directory with canaries, and checks the declared outcome plus the absence of
// any write outside <bundle>/ctrd-restore.

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { stageCheckpointArchive, STAGING_DIR_NAME } from '../../src/format/archive-staging';
import { InvalidArgumentError } from '../../src/errors';
import { CORPUS, CorpusEntry, generateCorpus } from '../corpus/generate-malicious';
import { recordingLogger, snapshotTree } from '../corpus/fs-snapshot';

let tmp: string;
let entries: Map<string, CorpusEntry>;

beforeAll(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ferry-corpus-'));
  entries = new Map((await generateCorpus(path.join(tmp, 'corpus'))).map((e) => [e.id, e]));
});
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

/** A host dir with canaries around the bundle; escapes aim at host/canary.txt. */
function makeHost(id: string): { host: string; bundle: string } {
  const host = path.join(tmp, 'hosts', id);
  const bundle = path.join(host, 'bundle');
  fs.mkdirSync(path.join(host, 'etc'), { recursive: true });
  fs.mkdirSync(bundle);
  fs.writeFileSync(path.join(host, 'canary.txt'), 'canary');
  fs.writeFileSync(path.join(host, 'etc', 'passwd'), 'root:x:0:0::/root:/bin/sh\n');
  fs.writeFileSync(path.join(bundle, 'config.json'), '{}');
  fs.writeFileSync(path.join(bundle, 'canary.txt'), 'bundle canary');
  return { host, bundle };
}

/** Staged tree as { rel: {content, mode} | {dirMode} }. */
function listStaged(dir: string): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  const walk = (rel: string): void => {
    for (const name of fs.readdirSync(path.join(dir, rel)).sort()) {
      const childRel = rel ? `${rel}/${name}` : name;
      const st = fs.lstatSync(path.join(dir, childRel));
      if (st.isDirectory()) {
        out[childRel] = { dirMode: st.mode & 0o7777 };
        walk(childRel);
      } else if (st.isFile()) {
        out[childRel] = { content: fs.readFileSync(path.join(dir, childRel), 'utf8'), mode: st.mode & 0o7777 };
      } else {
        out[childRel] = 'NOT A FILE OR DIR';
      }
    }
  };
  walk('');
  return out;
}

test('the corpus has at least 20 malicious archives, unique ids, both outcomes', () => {
  const malicious = CORPUS.filter((c) => c.id !== 'legit-checkpoint');
  expect(malicious.length).toBeGreaterThanOrEqual(20);
  expect(new Set(CORPUS.map((c) => c.id)).size).toBe(CORPUS.length);
  expect(malicious.filter((c) => c.expect.outcome === 'refused').length).toBeGreaterThanOrEqual(10);
  expect(malicious.filter((c) => c.expect.outcome === 'sanitized').length).toBeGreaterThanOrEqual(5);
  // compressed variants really are compressed
  expect(fs.readFileSync(entries.get('gzip-escape')!.file).subarray(0, 2)).toEqual(Buffer.from([0x1f, 0x8b]));
  expect(fs.readFileSync(entries.get('zstd-escape')!.file).subarray(0, 4)).toEqual(Buffer.from([0x28, 0xb5, 0x2f, 0xfd]));
});

describe.each(CORPUS.map((c) => [c.id, c.description] as const))('%s', (id, description) => {
  test(description, async () => {
    const entry = entries.get(id)!;
    const { host, bundle } = makeHost(id);
    const staging = path.join(bundle, STAGING_DIR_NAME);
    const before = snapshotTree(host);
    const log = recordingLogger();

    if (entry.expect.outcome === 'refused') {
      const err = await stageCheckpointArchive(entry.file, bundle, log).then(
        () => { throw new Error('expected the archive to be refused'); },
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(InvalidArgumentError);
      expect((err as Error).message).toContain(entry.file);
      expect((err as Error).message).toMatch(entry.expect.error);
      expect(fs.existsSync(staging)).toBe(false);
    } else {
      const result = await stageCheckpointArchive(entry.file, bundle, log);
      expect(result.dir).toBe(staging);
      expect(result.skipped.map((s) => s.name)).toEqual(entry.expect.skipped);
      // one warning per skipped entry, naming it
      expect(log.warnings).toHaveLength(entry.expect.skipped.length);
      entry.expect.skipped.forEach((name, i) => expect(log.warnings[i].msg).toContain(JSON.stringify(name)));
      expect(listStaged(staging)).toEqual(entry.expect.tree);
      expect(fs.lstatSync(staging).mode & 0o7777).toBe(0o700);
    }

    // Nothing outside ctrd-restore changed (paths, types, modes, contents, mtimes).
    expect(snapshotTree(host, [`bundle/${STAGING_DIR_NAME}`])).toEqual(before);
    expect(fs.readFileSync(path.join(host, 'canary.txt'), 'utf8')).toBe('canary');
    expect(fs.existsSync('/etc/ferry-corpus-x')).toBe(false);
    expect(fs.existsSync('/etc/ferry-corpus-g')).toBe(false);
  });
});
