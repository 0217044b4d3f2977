// The request checks accept what containerd sends (its identifiers, bundle layout, FIFOs, log
// URIs) and refuse the rest with InvalidArgument; the e2e suite hostile-rpc sends them to a real daemon.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Code, FerryError } from '../../src/errors';
import { checkAbsolute, checkBundle, checkId, checkProcessSpec, checkSignal, checkStdio, quoted } from '../../src/service/request-checks';

let tmp: string;
beforeEach(() => { tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ferry-checks-')); });
afterEach(() => fs.rmSync(tmp, { recursive: true, force: true }));

const invalid = (fn: () => unknown) => {
  try { fn(); } catch (err) { expect((err as FerryError).code).toBe(Code.InvalidArgument); return (err as Error).message; }
  throw new Error('not refused');
};

test('ids: what containerd allows passes (CRI hex, ctr names), nothing else', () => {
  for (const id of ['a', 'A9', 'c0ffee'.repeat(10).slice(0, 64), 'my-task_1.v2', 'x'.repeat(76)]) expect(() => checkId('container id', id)).not.toThrow();
  for (const id of ['', '-a', 'a-', 'a..b', 'a/b', '..', 'a b', 'a\0b', 'é', 'x'.repeat(77)]) invalid(() => checkId('container id', id));
});

test('quoted: escaped and shortened, the length said', () => {
  expect(quoted('a\0b')).toBe('"a\\u0000b"');
  expect(quoted('y'.repeat(300))).toBe(`"${'y'.repeat(256)}…" (300 characters)`);
});

test('absolute, normalised paths only', () => {
  expect(() => checkAbsolute('p', '/run/containerd/fifo/1/x-stdout')).not.toThrow();
  for (const p of ['', 'rel', '/a/../b', '/a//b', '/a/./b', '/a\0']) invalid(() => checkAbsolute('p', p));
});

test('bundles: <parent>/<id>, a real directory', async () => {
  const parent = path.join(tmp, 'ns');
  fs.mkdirSync(path.join(parent, 'c1'), { recursive: true });
  await expect(checkBundle(path.join(parent, 'c1'), 'c1', parent)).resolves.toBeUndefined();
  fs.symlinkSync(path.join(parent, 'c1'), path.join(parent, 'c2'));
  await expect(checkBundle(path.join(parent, 'c2'), 'c2', parent)).rejects.toThrow(/a symlink/);
  await expect(checkBundle(path.join(tmp, 'c1'), 'c1', parent)).rejects.toThrow(/not in containerd's state directory/);
});

test('stdio: FIFOs (plain or fifo://) and log URIs pass; files, links, devices do not', async () => {
  const fifo = path.join(tmp, 'out');
  execFileSync('mkfifo', [fifo]);
  await expect(checkStdio('stdout', fifo, true)).resolves.toBeUndefined();
  await expect(checkStdio('stdout', `fifo://${fifo}`, true)).resolves.toBeUndefined();
  await expect(checkStdio('stdout', 'binary:///usr/bin/logger?x=1', true)).resolves.toBeUndefined();
  await expect(checkStdio('stdout', 'file:///var/log/c.log', true)).resolves.toBeUndefined();
  await expect(checkStdio('stdin', 'file:///var/log/c.log', false)).rejects.toThrow(/unknown STDIO scheme file/);
  await expect(checkStdio('stdout', '/dev/null', true)).rejects.toThrow(/is not a FIFO/);
  fs.writeFileSync(path.join(tmp, 'f'), '');
  await expect(checkStdio('stdout', path.join(tmp, 'f'), true)).rejects.toThrow(/is a regular file/);
});

test('exec specs and signals', () => {
  expect(() => checkProcessSpec(Buffer.from('{"args":["sh","-c","true"],"cwd":"/"}'))).not.toThrow();
  expect(invalid(() => checkProcessSpec(Buffer.from('secret-text')))).toBe('exec process spec (11 bytes) is not JSON');
  invalid(() => checkProcessSpec(Buffer.from('{"args":"sh"}')));
  for (const s of [1, 9, 15, 64]) expect(() => checkSignal(s)).not.toThrow();
  for (const s of [0, 65, -1, 2 ** 32 - 1, 1.5]) invalid(() => checkSignal(s));
});
