// Issue 2, point 3: container stdio through containerd's FIFOs and the shim — complete, in
// order, stdin included, and real pipes inside the container (/dev/stdout must be openable).
import { createHash } from 'node:crypto';
import { ctrRun, ctrRunWithStdin, expectExit, lanes, uniqueId, useContainerd } from '../helpers/lanes';

jest.setTimeout(120000); // a project-level testTimeout is not honoured by jest 30

const seqText = (n: number): string => Array.from({ length: n }, (_, i) => `${i + 1}\n`).join('');

describe.each(lanes())('io [$name]', (lane) => {
  const containerd = useContainerd(lane);

  test(`seq 1 200000 on stdout arrives complete and in order [${lane.name}]`, async () => {
    const c = containerd();
    const r = await ctrRun(c, lane, uniqueId('seq'), ['seq', '1', '200000']);
    expectExit(c, r, 0);
    expect(r.stdout.length).toBe(seqText(200000).length);
    expect(r.stdout === seqText(200000)).toBe(true);
  });

  test(`stderr arrives whole and in order, apart from stdout [${lane.name}]`, async () => {
    const c = containerd();
    const r = await ctrRun(c, lane, uniqueId('stderr'), ['sh', '-c', 'echo out; seq 1 50000 >&2; echo done']);
    expectExit(c, r, 0);
    expect(r.stdout).toBe('out\ndone\n');
    expect(r.stderr === seqText(50000)).toBe(true);
  });

  test(`stdin reaches the container: echo x | ctr run ... cat [${lane.name}]`, async () => {
    const c = containerd();
    const r = await ctrRunWithStdin(c, lane, uniqueId('stdin'), ['cat'], 'x\n');
    expectExit(c, r, 0);
    expect(r.stdout).toBe('x\n');
  });

  test(`4 MiB of stdin pass through intact (md5sum inside matches) [${lane.name}]`, async () => {
    const c = containerd();
    const data = Buffer.alloc(4 * 1024 * 1024);
    for (let i = 0; i < data.length; i++) data[i] = (i * 7919) % 251;
    const r = await ctrRunWithStdin(c, lane, uniqueId('stdin-big'), ['md5sum'], data);
    expectExit(c, r, 0);
    expect(r.stdout.split(/\s+/)[0]).toBe(createHash('md5').update(data).digest('hex'));
  });

  test(`stdin EOF ends a reader: wc -c counts what was sent [${lane.name}]`, async () => {
    const c = containerd();
    const r = await ctrRunWithStdin(c, lane, uniqueId('stdin-eof'), ['wc', '-c'], 'abcdef');
    expectExit(c, r, 0);
    expect(r.stdout.trim()).toBe('6');
  });

  test(`echo hi > /dev/stdout and > /dev/stderr work inside the container [${lane.name}]`, async () => {
    const c = containerd();
    const r = await ctrRun(c, lane, uniqueId('devstdout'), ['sh', '-c', 'echo hi > /dev/stdout && echo oops > /dev/stderr']);
    expectExit(c, r, 0);
    expect(r.stdout).toBe('hi\n');
    expect(r.stderr).toBe('oops\n');
  });

  test(`the container's stdio are pipes, not sockets [${lane.name}]`, async () => {
    const c = containerd();
    const r = await ctrRun(c, lane, uniqueId('stdio-kind'), ['sh', '-c', 'for f in 0 1 2; do readlink /proc/self/fd/$f; done']);
    expectExit(c, r, 0);
    const kinds = r.stdout.trim().split('\n');
    expect(kinds).toHaveLength(3);
    for (const k of kinds) expect(k).toMatch(/^pipe:\[\d+\]$/);
  });
});
