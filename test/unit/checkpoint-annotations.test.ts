import { dropCdiAnnotations, isCdiAnnotation, mergeRestoredAnnotations } from '../../src/format/annotations';
import { recordingLogger } from '../corpus/fs-snapshot';

test.each([
  ['cdi.k8s.io', true],
  ['cdi.k8s.io/', true],
  ['cdi.k8s.io/vendor.gpu_0', true],
  ['cdi.k8s.io/a/b', true],
  ['CDI.k8s.io/x', true], // dropped case-insensitively: see annotations.ts for why
  ['cdi.K8S.IO', true],
  ['cdi.k8s.iox', false],
  ['cdi.k8s.io.evil/x', false],
  ['xcdi.k8s.io/a', false],
  ['a.cdi.k8s.io/x', false],
  [' cdi.k8s.io/x', false],
  ['cdi.k8s', false],
  ['io.kubernetes.cri.sandbox-id', false],
  ['', false],
])('isCdiAnnotation(%j) is %s', (key, expected) => {
  expect(isCdiAnnotation(key)).toBe(expected);
});

test('dropCdiAnnotations drops CDI keys with one warning each and keeps everything else', () => {
  const log = recordingLogger();
  const out = dropCdiAnnotations(
    { 'cdi.k8s.io': 'x', 'cdi.k8s.io/gpu': 'nvidia.com/gpu=all', 'cdi.k8s.iox': 'keep', 'xcdi.k8s.io/a': 'keep', app: 'web' },
    log,
  );
  expect(out).toEqual({ 'cdi.k8s.iox': 'keep', 'xcdi.k8s.io/a': 'keep', app: 'web' });
  expect(log.warnings.map((w) => w.msg)).toEqual([
    expect.stringContaining('"cdi.k8s.io"'),
    expect.stringContaining('"cdi.k8s.io/gpu"'),
  ]);
});

test('untrusted JSON shapes: non-string values dropped, __proto__ stays a plain key', () => {
  const log = recordingLogger();
  const parsed = JSON.parse('{"__proto__":"p","n":1,"ok":"v"}') as Record<string, string>;
  const out = dropCdiAnnotations(parsed, log);
  expect(Object.getPrototypeOf(out)).toBe(Object.prototype);
  expect(Object.keys(out).sort()).toEqual(['__proto__', 'ok']);
  expect(log.warnings).toHaveLength(1);
  expect(log.warnings[0].msg).toContain('"n"');
});

test('merge: target wins, checkpoint fills gaps, checkpoint CDI dropped, target CDI kept', () => {
  const log = recordingLogger();
  const merged = mergeRestoredAnnotations(
    { shared: 'target', 'cdi.k8s.io/mine': 'vendor.com/dev=a' },
    { shared: 'checkpoint', only: 'from-ckpt', 'cdi.k8s.io/smuggled': 'vendor.com/dev=all' },
    log,
  );
  expect(merged).toEqual({ shared: 'target', only: 'from-ckpt', 'cdi.k8s.io/mine': 'vendor.com/dev=a' });
  expect(log.warnings).toHaveLength(1);
  expect(log.warnings[0].msg).toContain('cdi.k8s.io/smuggled');
});

test('merge does not mutate its inputs and tolerates empty maps', () => {
  const target = { a: '1' };
  const ckpt = { 'cdi.k8s.io/x': 'y', b: '2' };
  const log = recordingLogger();
  expect(mergeRestoredAnnotations(target, ckpt, log)).toEqual({ a: '1', b: '2' });
  expect(target).toEqual({ a: '1' });
  expect(ckpt).toEqual({ 'cdi.k8s.io/x': 'y', b: '2' });
  expect(mergeRestoredAnnotations({}, {}, log)).toEqual({});
});
