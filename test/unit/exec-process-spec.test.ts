// The exec's process spec takes its terminal from the request (the Go shim's
// `spec.Terminal = r.Terminal`), keeps everything else, and refuses what is not a JSON object.
import { execProcessSpec } from '../../src/process/exec-process';
import { Code } from '../../src/errors';
import { checkId } from '../../src/service/request-checks';

const spec = (o: unknown) => Buffer.from(JSON.stringify(o));
const parsed = (b: Uint8Array) => JSON.parse(Buffer.from(b).toString('utf8')) as Record<string, unknown>;

test('terminal comes from the request, both ways; the rest is kept', () => {
  const base = { args: ['sh'], cwd: '/', env: ['A=1'], terminal: false, user: { uid: 1, gid: 2 } };
  expect(parsed(execProcessSpec(spec(base), true))).toEqual({ ...base, terminal: true });
  expect(parsed(execProcessSpec(spec({ ...base, terminal: true }), false))).toEqual(base);
  const { terminal: _t, ...noTerminal } = base;
  expect(parsed(execProcessSpec(spec(noTerminal), true)).terminal).toBe(true);
});

test('a spec that is not a JSON object is refused with InvalidArgument', () => {
  for (const bad of [Buffer.from('{"args":'), Buffer.from('[1,2]'), Buffer.from('null'), Buffer.from('"x"')]) {
    expect(() => execProcessSpec(bad, true)).toThrow(expect.objectContaining({ code: Code.InvalidArgument }));
  }
});

test('exec ids follow containerd\'s identifier rule before they name a pid file', () => {
  for (const ok of ['e1', 'exec-1', 'a.b_c-d', 'A'.repeat(76)]) expect(() => checkId('exec id', ok)).not.toThrow();
  for (const bad of ['', '../x', 'a/b', '.', '..', '-a', 'a-', 'a b', 'A'.repeat(77)]) {
    expect(() => checkId('exec id', bad)).toThrow(expect.objectContaining({ code: Code.InvalidArgument }));
  }
});
