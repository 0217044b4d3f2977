// A failed dump (issue 12, point 5): the error quotes the CRIU log line that is the cause (not
// an error CRIU carries on from; "stopped before it finished" when CRIU died), and no partial
// image is left; an image path that already holds something is refused before CRIU runs.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { checkpointContainer, type CheckpointConfig } from '../../src/checkpoint/checkpoint';
import { criuFailureLine } from '../../src/checkpoint/criu-log';
import { Code, FerryError } from '../../src/errors';
import { Runc } from '../../src/runc/runc';

let tmp: string;
beforeEach(() => { tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ferry-ckfail-')); });
afterEach(() => { fs.rmSync(tmp, { recursive: true, force: true }); });

const RLIMIT = "(00.01) Error (criu/util.c:1534): rlimit: Can't setup RLIMIT_NOFILE for self: Operation not permitted";
const log = (lines: string[]) => { const p = path.join(tmp, `log-${Math.random()}`); fs.writeFileSync(p, `${lines.join('\n')}\n`); return p; };

describe('criuFailureLine', () => {
  test('the first error that stopped CRIU, past the ones it carries on from', async () => {
    await expect(criuFailureLine(log([RLIMIT, '(00.7) page-xfer: buf 6/2',
      '(00.78) Error (criu/page-xfer.c:263): page-xfer: Unable to spice data: No space left on device',
      '(00.78) Error (criu/bfd.c:131): bfd: Error flushing image: No space left on device',
      '(00.86) Error (criu/cr-dump.c:1975): Dumping FAILED.'])))
      .resolves.toBe('(00.78) Error (criu/page-xfer.c:263): page-xfer: Unable to spice data: No space left on device');
  });

  test('a log without CRIU verdict: CRIU died in the middle', async () => {
    await expect(criuFailureLine(log([RLIMIT, '(00.2) Seized task 2345']))).resolves
      .toBe('CRIU stopped before it finished (killed or crashed); its log ends: (00.2) Seized task 2345');
  });

  test('quotes the first Error line that is a cause', async () => {
    await expect(criuFailureLine(log(['(00.1) Dumping', '(00.2) Error (criu/sk-unix.c:123): unix: Connected external socket', '(00.3) Error (criu/cr-dump.c:1): Dump failed'])))
      .resolves.toBe('(00.2) Error (criu/sk-unix.c:123): unix: Connected external socket');
  });

  test("passes over CRIU's harmless rlimit error to the cause", async () => {
    await expect(criuFailureLine(log([RLIMIT, "(00.09) Error (criu/files-reg.c:1790): Can't lookup mount=27 for fd=1 path=/x.log", '(00.14) Error (criu/cr-dump.c:1975): Dumping FAILED.'])))
      .resolves.toBe("(00.09) Error (criu/files-reg.c:1790): Can't lookup mount=27 for fd=1 path=/x.log");
  });

  test('no log, an empty log', async () => {
    await expect(criuFailureLine(path.join(tmp, 'none'))).resolves.toBeUndefined();
    await expect(criuFailureLine(log([]))).resolves.toBe('CRIU wrote an empty log');
  });
});

describe('checkpointContainer after a failed dump', () => {
  const options = (imagePath: string, workPath: string): CheckpointConfig => ({
    exit: false, openTcp: false, externalUnixSockets: false, terminal: false, fileLocks: false,
    emptyNamespaces: [], cgroupsMode: '', imagePath, workPath,
  });
  function fakeCriu(): string {
    const p = path.join(tmp, 'criu');
    fs.writeFileSync(p, '#!/bin/sh\necho "Version: 4.2.1"\n', { mode: 0o755 });
    return p;
  }
  /** A runc whose "dump" writes images and a log, then fails the way runc does when CRIU fails. */
  function failingRunc(): Runc {
    const bin = path.join(tmp, 'runc');
    fs.writeFileSync(bin, `#!/bin/sh
while [ $# -gt 0 ]; do case "$1" in --image-path) img=$2; shift;; --work-path) work=$2; shift;; esac; shift; done
echo data > "$img/pages-1.img"; echo x > "$img/pagemap-1.img"
printf '%s\\n' "${RLIMIT}" '(00.5) Error (criu/page-xfer.c:263): page-xfer: Unable to spice data: No space left on device' > "$work/dump.log"
echo '{"level":"error","msg":"criu failed: type NOTIFY errno 0"}' >> ${tmp}/log.json
exit 1
`, { mode: 0o755 });
    return new Runc({ binary: bin, root: '/r', logPath: `${tmp}/log.json` });
  }

  test('an image dir it created is removed; the error quotes the cause', async () => {
    const img = path.join(tmp, 'user', 'image');
    const work = path.join(tmp, 'work');
    const err = await checkpointContainer({ id: 'c1', bundle: tmp, runc: failingRunc(), path: path.join(tmp, 'ctd'), options: options(img, work), criuPath: fakeCriu(), criuWorkPath: '' })
      .catch((e: Error) => e);
    expect((err as Error).message).toBe(`runc checkpoint failed: criu failed: type NOTIFY errno 0; CRIU log ${work}/dump.log: (00.5) Error (criu/page-xfer.c:263): page-xfer: Unable to spice data: No space left on device`);
    expect(fs.existsSync(img)).toBe(false);
    expect(fs.existsSync(path.join(work, 'dump.log'))).toBe(true); // the log stays, for whoever debugs it
  });

  test("containerd's own (empty) dir is emptied, not removed", async () => {
    const ctd = path.join(tmp, 'ctd-checkpoint');
    fs.mkdirSync(ctd, { mode: 0o700 });
    await expect(checkpointContainer({ id: 'c1', bundle: tmp, runc: failingRunc(), path: ctd, options: options('', ''), criuPath: fakeCriu(), criuWorkPath: '' }))
      .rejects.toThrow(/No space left on device/);
    expect(fs.readdirSync(ctd)).toEqual([]);
  });

  test('a stale dump.log is never quoted for a dump that wrote none', async () => {
    const work = path.join(tmp, 'work');
    fs.mkdirSync(work);
    fs.writeFileSync(path.join(work, 'dump.log'), '(00.1) Error (criu/old.c:1): from last week\n');
    const bin = path.join(tmp, 'runc-nolog');
    fs.writeFileSync(bin, '#!/bin/sh\necho "criu died" >&2; exit 1\n', { mode: 0o755 });
    const runc = new Runc({ binary: bin, root: '/r', logPath: `${tmp}/log.json` });
    await expect(checkpointContainer({ id: 'c1', bundle: tmp, runc, path: path.join(tmp, 'ctd'), options: options('', work), criuPath: fakeCriu(), criuWorkPath: '' }))
      .rejects.toThrow(`runc checkpoint failed: criu died; CRIU log ${work}/dump.log (missing)`);
  });

  test('an image path that holds something is refused before anything runs, and kept as it was', async () => {
    const img = path.join(tmp, 'image');
    fs.mkdirSync(img);
    fs.writeFileSync(path.join(img, 'pages-1.img'), 'an earlier checkpoint');
    const err = await checkpointContainer({ id: 'c1', bundle: tmp, runc: failingRunc(), path: path.join(tmp, 'ctd'), options: options(img, ''), criuPath: fakeCriu(), criuWorkPath: '' })
      .catch((e: Error) => e);
    expect(err).toBeInstanceOf(FerryError);
    expect((err as FerryError).code).toBe(Code.FailedPrecondition);
    expect((err as Error).message).toBe(`checkpoint image path ${img} is not empty (pages-1.img): a dump there would mix with what it holds`);
    expect(fs.readFileSync(path.join(img, 'pages-1.img'), 'utf8')).toBe('an earlier checkpoint');
    expect(fs.existsSync(path.join(tmp, 'log.json'))).toBe(false); // runc never ran
  });
});
