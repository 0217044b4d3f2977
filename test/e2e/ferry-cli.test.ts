// The `ferry` command's frame: global flags as ctr's (-a/--address, -n/--namespace and their
// environment variables), --json, --help on every command, one-line errors and exit status 1,
// against containerd 1.7 and 2.1. The commands themselves have their own test files.
import { startContainerd, Containerd } from '../helpers/containerd';
import { spawnSync } from 'node:child_process';
import { FERRY_CLI, runFerry } from '../helpers/ferry-cli';
import { startRegistry } from '../helpers/registry';

const versions = (process.env.FERRY_E2E_CONTAINERD ?? '1.7,2.1').split(',').map((s) => s.trim()) as ('1.7' | '2.1')[];

describe.each(versions)('ferry command against containerd %s', (version) => {
  let c: Containerd;
  beforeAll(async () => {
    c = await startContainerd({ version, importImage: false });
  }, 120000);
  afterAll(async () => {
    await c?.stop();
  }, 120000);

  test('version names both ends, as text and as JSON', async () => {
    const text = await runFerry(c, ['version']);
    expect(text.stderr).toBe('');
    expect(text.code).toBe(0);
    expect(text.stdout).toMatch(/Client:\n {2}Version: \d+\.\d+\.\d+/);
    expect(text.stdout).toMatch(new RegExp(`Server:\\n {2}Version: +v?${version.replace('.', '\\.')}\\.\\d+`));
    const json = await runFerry(c, ['--json', 'version']);
    expect(json.code).toBe(0);
    const parsed = JSON.parse(json.stdout) as { server: { version: string } };
    expect(parsed.server.version).toMatch(new RegExp(`^v?${version.replace('.', '\\.')}`));
    // --json after the command works too.
    expect(JSON.parse((await runFerry(c, ['version', '--json'])).stdout)).toEqual(parsed);
  });

  test('CONTAINERD_ADDRESS and CONTAINERD_NAMESPACE stand in for -a and -n', async () => {
    const r = await runFerry(c, ['version'], { noGlobals: true, env: { CONTAINERD_ADDRESS: c.address, CONTAINERD_NAMESPACE: c.namespace } });
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/Server:/);
  });

  test('an unreachable containerd is one line on stderr and exit status 1', async () => {
    const r = await runFerry(undefined, ['-a', `${c.dir}/no-such.sock`, 'version']);
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr.trimEnd().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(/^ferry version: cannot reach containerd at .*no-such\.sock: no such socket/);
  });
});

describe('ferry command without containerd', () => {
  test('--help works on the program and on every command', async () => {
    const top = await runFerry(undefined, ['--help']);
    expect(top.code).toBe(0);
    const commands = [...top.stdout.matchAll(/^ {2}([a-z][a-z-]*)(?: \[options\]| <|\s)/gm)].map((m) => m[1]!).filter((n) => n !== 'help');
    expect(commands).toContain('version');
    for (const cmd of commands) {
      const r = await runFerry(undefined, [cmd, '--help']);
      expect({ cmd, code: r.code }).toEqual({ cmd, code: 0 });
      expect(r.stdout).toMatch(new RegExp(`^Usage: ferry ${cmd}`));
    }
  });

  test('an unknown command or flag is one line and exit status 1', async () => {
    const r = await runFerry(undefined, ['no-such-command']);
    expect(r.code).toBe(1);
    expect(r.stderr.trimEnd().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(/^ferry: /);
    const f = await runFerry(undefined, ['version', '--no-such-flag']);
    expect(f.code).toBe(1);
    expect(f.stderr).toMatch(/^ferry: unknown option '--no-such-flag'/);
  });

  test('the launcher run as a program drops NODE_EXTRA_CA_CERTS; run by node it is the same command', () => {
    // Node warns at start-up when the bundle it is told to read is missing: the warning shows
    // whether the node process saw the variable.
    const env = { ...process.env, NODE_EXTRA_CA_CERTS: '/nonexistent/ferry-test-ca.pem' };
    const direct = spawnSync(FERRY_CLI, ['--version'], { env, encoding: 'utf8' });
    const byNode = spawnSync(process.execPath, [FERRY_CLI, '--version'], { env, encoding: 'utf8' });
    expect({ code: direct.status, stderr: direct.stderr }).toEqual({ code: 0, stderr: '' });
    expect(byNode.status).toBe(0);
    expect(byNode.stderr).toMatch(/Ignoring extra certs from `\/nonexistent\/ferry-test-ca\.pem`/);
    expect(direct.stdout).toBe(byNode.stdout);
    expect(direct.stdout.trim()).toMatch(/^\d+\.\d+\.\d+$/);
  });
});

describe('test registry', () => {
  test('serves the registry API over TLS with its own CA', async () => {
    const reg = await startRegistry();
    try {
      const r = await reg.get('');
      expect(r.status).toBe(200);
      expect(reg.containerdEnv().SSL_CERT_FILE).toBe(reg.bundleFile);
    } finally {
      await reg.stop();
    }
  }, 60000);
});
