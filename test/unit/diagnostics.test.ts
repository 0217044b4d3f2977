// The daemon's diagnostic switch: off without an absolute FERRY_DIAGNOSTICS_DIR; a report is
// written whole (beside, then renamed), private, after a forced GC, with a heap snapshot on demand.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { diagnosticsDirFromEnv, forcedGc, writeReport, type DiagnosticsReport } from '../../src/daemon/diagnostics';

let dir: string;
beforeEach(() => { dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ferry-diag-unit-')); });
afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

test('the switch is off unless FERRY_DIAGNOSTICS_DIR is an absolute path', () => {
  expect(diagnosticsDirFromEnv({})).toBeNull();
  expect(diagnosticsDirFromEnv({ FERRY_DIAGNOSTICS_DIR: 'relative/dir' })).toBeNull();
  expect(diagnosticsDirFromEnv({ FERRY_DIAGNOSTICS_DIR: '/var/tmp/x' })).toBe('/var/tmp/x');
});

test('a report holds memory after a forced GC, fds and what the caller holds; files are 0600 in a 0700 dir', () => {
  const out = path.join(dir, 'reports');
  let collected = 0;
  const file = writeReport({ dir: out, heapSnapshot: false, holds: () => ({ tasks: 3 }), log: () => {} }, () => { collected++; }, 1);
  expect(collected).toBe(1);
  expect(file).toBe(path.join(out, `ferry-${process.pid}-1.json`));
  const r = JSON.parse(fs.readFileSync(file, 'utf8')) as DiagnosticsReport;
  expect(r).toMatchObject({ pid: process.pid, seq: 1, holds: { tasks: 3 } });
  expect(r.heapUsed).toBeGreaterThan(0);
  expect(r.fds).toBeGreaterThan(2);
  expect(Object.keys(r.spaces)).toEqual(expect.arrayContaining(['new_space', 'old_space']));
  expect(fs.statSync(out).mode & 0o777).toBe(0o700);
  expect(fs.statSync(file).mode & 0o777).toBe(0o600);
  expect(fs.readdirSync(out)).toEqual([`ferry-${process.pid}-1.json`]); // nothing half-written left
});

// (The heap snapshot is checked against a real daemon, in test/e2e/hostile-rpc.test.ts: a
// snapshot of jest's own heap would take minutes.)
test('forcedGc really collects', () => {
  const gc = forcedGc();
  let big: number[][] | null = Array.from({ length: 200 }, () => new Array(10000).fill(1));
  const before = process.memoryUsage().heapUsed;
  big = null;
  gc();
  expect(big).toBeNull();
  expect(process.memoryUsage().heapUsed).toBeLessThan(before - 5_000_000);
});
