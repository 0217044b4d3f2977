// The runc wrapper against a stand-in runc script: arguments, and errors carrying runc's own
// last logged error line (as containerd-shim-runc-v2 reports them).
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { Runc, lastLoggedError } from '../../src/runc/runc';
import { RuntimeError } from '../../src/runc/runtime-error';
import { Code } from '../../src/errors';

let dir: string;
beforeEach(() => { dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ferry-runc-')); });
afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

function fakeRunc(body: string): string {
  const p = path.join(dir, 'runc');
  fs.writeFileSync(p, `#!/bin/sh\n${body}\n`, { mode: 0o755 });
  return p;
}

test('global flags and create arguments', async () => {
  const bin = fakeRunc(`echo "$@" > ${dir}/args`);
  const r = new Runc({ binary: bin, root: '/run/x/ns', logPath: `${dir}/log.json`, systemdCgroup: true });
  await r.create('c1', '/b', { pidFile: '/b/init.pid', noPivot: true, noNewKeyring: true });
  expect(fs.readFileSync(`${dir}/args`, 'utf8').trim()).toBe(
    `--root /run/x/ns --log ${dir}/log.json --log-format json --systemd-cgroup create --bundle /b --pid-file /b/init.pid --no-pivot --no-new-keyring c1`);
});

test('a failure carries the last error runc logged, not earlier ones', async () => {
  const log = `${dir}/log.json`;
  fs.writeFileSync(log, '{"level":"error","msg":"old failure","time":"x"}\n');
  const bin = fakeRunc(`echo '{"level":"warning","msg":"w"}' >> ${log}; echo '{"level":"error","msg":"runc create failed: unable to start container process: exec: \\"nosuch\\": executable file not found in $PATH","time":"t"}' >> ${log}; exit 1`);
  const r = new Runc({ binary: bin, root: '/r', logPath: log });
  const err = await r.create('c1', '/b', { pidFile: '/p' }).catch((e) => e);
  expect(err).toBeInstanceOf(RuntimeError);
  expect(err.code).toBe(Code.Unknown);
  expect(err.message).toBe('OCI runtime create failed: runc create failed: unable to start container process: exec: "nosuch": executable file not found in $PATH');
});

test('without a logged error, stderr is the message; a missing binary says so', async () => {
  const r = new Runc({ binary: fakeRunc('echo "container not running" >&2; exit 1'), root: '/r', logPath: `${dir}/none.json` });
  await expect(r.kill('c1', 9)).rejects.toThrow('runc kill failed: container not running');
  const missing = new Runc({ binary: `${dir}/nope`, root: '/r', logPath: `${dir}/l` });
  await expect(missing.start('c1')).rejects.toThrow(/not found/);
});

test('lastLoggedError ignores garbage lines', async () => {
  fs.writeFileSync(`${dir}/l.json`, 'not json\n{"level":"error","msg":" boom \\n"}\n\n');
  expect(await lastLoggedError(`${dir}/l.json`)).toBe('boom');
  expect(await lastLoggedError(`${dir}/missing.json`)).toBe('');
});

test('exec arguments in go-runc order; every command runs in the bundle (or / once it is gone)', async () => {
  const bundle = path.join(dir, 'bundle');
  fs.mkdirSync(bundle);
  const bin = fakeRunc(`echo "$(pwd) $@" > ${dir}/args`);
  const r = new Runc({ binary: bin, root: '/r', logPath: `${dir}/log.json`, criuPath: '/c', systemdCgroup: true, workDir: bundle });
  await r.exec('c1', { processSpecPath: '/p.json', pidFile: `${bundle}/e1.pid`, consoleSocket: '/s.sock' });
  expect(fs.readFileSync(`${dir}/args`, 'utf8').trim()).toBe(
    `${bundle} --root /r --log ${dir}/log.json --log-format json --criu /c --systemd-cgroup exec --process /p.json --console-socket /s.sock --detach --pid-file ${bundle}/e1.pid c1`);
  fs.rmSync(bundle, { recursive: true });
  await r.kill('c1', 9, true);
  expect(fs.readFileSync(`${dir}/args`, 'utf8').trim()).toBe(`/ --root /r --log ${dir}/log.json --log-format json --criu /c --systemd-cgroup kill --all c1 9`);
});

test('a fatal or panic line is the error text too; lines logged before this command are not', async () => {
  const log = `${dir}/log.json`;
  fs.writeFileSync(log, '{"level":"fatal","msg":"an earlier command\'s failure"}\n');
  const fatal = new Runc({ binary: fakeRunc(`echo '{"level":"info","msg":"starting"}' >> ${log}; echo '{"level":"fatal","msg":"wrapper: injected failure","time":"t"}' >> ${log}; exit 1`), root: '/r', logPath: log });
  await expect(fatal.create('c1', '/b', { pidFile: '/p' })).rejects.toThrow(/^OCI runtime create failed: wrapper: injected failure$/);
  const panic = new Runc({ binary: fakeRunc(`echo '{"level":"panic","msg":"runtime panicked"}' >> ${log}; exit 2`), root: '/r', logPath: log });
  await expect(panic.start('c1')).rejects.toThrow(/^OCI runtime start failed: runtime panicked$/);
  // Nothing logged by this command: its stderr, else the exit status.
  const quiet = new Runc({ binary: fakeRunc('exit 3'), root: '/r', logPath: log });
  await expect(quiet.delete('c1')).rejects.toThrow(/^OCI runtime delete failed: exit status 3$/);
});
