// Issue 9, item 3: a pod's life the way kubelet drives it, through containerd's CRI
// (runtime.v1 over gRPC) with the "ferry" runtime handler of contrib/kubernetes/: RunPodSandbox,
// two containers, ExecSync, ContainerStatus exit codes and reasons, StopContainer (SIGTERM, then
// SIGKILL after the timeout), RemoveContainer, StopPodSandbox, RemovePodSandbox — one shim
// daemon per pod, and nothing left afterwards. Pods use host networking (no CNI here).
// Runs on every lane; with FERRY_E2E_RUNTIMES=io.containerd.runc.v2 the pods use containerd's
// runc handler instead, the reference.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { status } from '@grpc/grpc-js';
import { ContainerState, NamespaceMode } from '../../api/gen/k8s/cri/v1/api';
import { Containerd, startContainerd } from '../helpers/containerd';
import { COUNTER_COMMAND, CriClient, isCriError } from '../helpers/cri';
import { CRI_HANDLERS } from '../helpers/cri-config';
import { podFootprint, podLeftovers } from '../helpers/cri-footprint';
import { isGoShim, Lane, lanes } from '../helpers/lanes';

jest.setTimeout(180000);

const text = (b: Uint8Array) => Buffer.from(b).toString('utf8');
const runcRootOf = (c: Containerd, handler: string) => path.join(c.dir, 'runc', handler);

describe.each(lanes())('CRI pod lifecycle: $name', (lane: Lane) => {
  const handler: string = isGoShim(lane) ? CRI_HANDLERS.runc : CRI_HANDLERS.ferry;
  let c: Containerd;
  let cri: CriClient;
  let pods = 0;
  beforeAll(async () => {
    c = await startContainerd({ version: lane.containerd, grpcShim: lane.grpc, cri: true });
    cri = c.criClient();
  }, 120000);
  afterAll(async () => {
    cri?.close();
    await c?.stop();
  }, 120000);

  const newPod = (name: string, runtimeHandler: string = handler, pidMode?: NamespaceMode) => {
    const podName = `${name}-${++pods}`;
    return cri.runPod({ name: podName, runtimeHandler, logDirectory: path.join(c.dir, 'pod-logs', podName), pidMode });
  };

  test('two containers in a pod, ExecSync, one shim daemon for the pod, nothing left after removal', async () => {
    const pod = await newPod('two');
    const counter = await cri.startContainer(pod, { metadata: { name: 'counter' }, image: { image: c.image!.name }, command: COUNTER_COMMAND });
    const idle = await cri.startContainer(pod, { metadata: { name: 'idle' }, image: { image: c.image!.name }, command: ['/bin/sh', '-c', 'while :; do sleep 1; done'] });
    await cri.waitForState(counter, ContainerState.CONTAINER_RUNNING);
    await cri.waitForState(idle, ContainerState.CONTAINER_RUNNING);

    const listed = await cri.runtime('listContainers', { filter: { podSandboxId: pod.id } });
    expect(listed.containers.map((x) => x.id).sort()).toEqual([counter, idle].sort());
    expect(listed.containers.every((x) => x.state === ContainerState.CONTAINER_RUNNING)).toBe(true);
    const sandbox = await cri.runtime('podSandboxStatus', { podSandboxId: pod.id });
    expect(sandbox.status!.runtimeHandler).toBe(handler);

    // ExecSync: stdout, stderr and the exit code come back separately; each container is its own.
    const r = await cri.runtime('execSync', { containerId: counter, cmd: ['/bin/sh', '-c', 'echo out; echo err >&2; exit 3'], timeout: 20n });
    expect([text(r.stdout), text(r.stderr), r.exitCode]).toEqual(['out\n', 'err\n', 3]);
    const own = await cri.runtime('execSync', { containerId: idle, cmd: ['/bin/sh', '-c', 'test -e /tmp/count && echo shared || echo own'], timeout: 20n });
    expect(text(own.stdout)).toBe('own\n');
    const count = await cri.runtime('execSync', { containerId: counter, cmd: ['cat', '/tmp/count'], timeout: 20n });
    expect(Number(text(count.stdout))).toBeGreaterThan(0);

    // One daemon serves the sandbox and both containers (grouped by sandbox id).
    const daemons = c.shimDaemons();
    expect(daemons).toHaveLength(1);
    expect(daemons[0]!.argv).toContain(pod.id);
    const footprint = await podFootprint(c, cri, pod.id, [counter, idle], runcRootOf(c, handler));
    expect(footprint.shims).toHaveLength(1);
    expect(new Set(footprint.sockets).size).toBe(1);
    // What the leftover check looks for is really there while the pod runs (runc state in
    // the handler's private root, so the check cannot pass by looking in the wrong place).
    for (const p of [...footprint.runcState, ...footprint.bundles, ...footprint.sockets]) expect(fs.existsSync(p) ? p : `missing ${p}`).toBe(p);

    await cri.runtime('stopContainer', { containerId: idle, timeout: 0n });
    await cri.runtime('removeContainer', { containerId: idle });
    await cri.removePod(pod.id);
    expect(await podLeftovers(c, footprint)).toEqual([]);
    expect((await cri.runtime('listPodSandbox', {})).items.map((p) => p.id)).not.toContain(pod.id);
  });

  test('ContainerStatus: exit code and reason of containers that end by themselves', async () => {
    const pod = await newPod('exits');
    const ok = await cri.startContainer(pod, { metadata: { name: 'ok' }, image: { image: c.image!.name }, command: ['/bin/sh', '-c', 'exit 0'] });
    const bad = await cri.startContainer(pod, { metadata: { name: 'bad' }, image: { image: c.image!.name }, command: ['/bin/sh', '-c', 'exit 7'] });
    const okStatus = await cri.waitForState(ok, ContainerState.CONTAINER_EXITED);
    const badStatus = await cri.waitForState(bad, ContainerState.CONTAINER_EXITED);
    expect([okStatus!.exitCode, okStatus!.reason]).toEqual([0, 'Completed']);
    expect([badStatus!.exitCode, badStatus!.reason]).toEqual([7, 'Error']);
    // (finishedAt may precede CRI's startedAt: CRI stamps the start after Start returns, and
    // these containers may be gone by then — with any shim.)
    expect(badStatus!.finishedAt).toBeGreaterThan(0n);
    const footprint = await podFootprint(c, cri, pod.id, [], runcRootOf(c, handler));
    await cri.removePod(pod.id);
    expect(await podLeftovers(c, footprint)).toEqual([]);
  });

  test('StopContainer: SIGTERM first; SIGKILL once the timeout has passed', async () => {
    const pod = await newPod('stop');
    // pid 1 of its pid namespace: SIGTERM does nothing without a handler.
    const polite = await cri.startContainer(pod, { metadata: { name: 'polite' }, image: { image: c.image!.name }, command: ['/bin/sh', '-c', 'trap "exit 0" TERM; while :; do sleep 0.2; done'] });
    const stubborn = await cri.startContainer(pod, { metadata: { name: 'stubborn' }, image: { image: c.image!.name }, command: ['/bin/sh', '-c', 'trap "" TERM; while :; do sleep 0.2; done'] });
    await cri.waitForState(polite, ContainerState.CONTAINER_RUNNING);
    await cri.waitForState(stubborn, ContainerState.CONTAINER_RUNNING);
    const footprint = await podFootprint(c, cri, pod.id, [polite, stubborn], runcRootOf(c, handler));

    let t0 = Date.now();
    await cri.runtime('stopContainer', { containerId: polite, timeout: 30n });
    expect(Date.now() - t0).toBeLessThan(20000); // it ended on SIGTERM, long before the timeout
    const politeStatus = await cri.waitForState(polite, ContainerState.CONTAINER_EXITED);
    expect([politeStatus!.exitCode, politeStatus!.reason]).toEqual([0, 'Completed']);

    t0 = Date.now();
    await cri.runtime('stopContainer', { containerId: stubborn, timeout: 2n });
    expect(Date.now() - t0).toBeGreaterThanOrEqual(2000);
    const stubbornStatus = await cri.waitForState(stubborn, ContainerState.CONTAINER_EXITED);
    expect([stubbornStatus!.exitCode, stubbornStatus!.reason]).toEqual([137, 'Error']);

    for (const id of [polite, stubborn]) await cri.runtime('removeContainer', { containerId: id });
    expect((await cri.runtime('listContainers', { filter: { podSandboxId: pod.id } })).containers).toEqual([]);
    await cri.removePod(pod.id);
    expect(await podLeftovers(c, footprint)).toEqual([]);
  });

  test('a pod whose containers share its pid namespace: the pause process is pid 1 for them', async () => {
    const pod = await newPod('sharedpid', handler, NamespaceMode.POD);
    const a = await cri.startContainer(pod, { metadata: { name: 'a' }, image: { image: c.image!.name }, command: ['/bin/sh', '-c', 'while :; do sleep 1; done'] });
    const r = await cri.runtime('execSync', { containerId: a, cmd: ['/bin/sh', '-c', 'cat /proc/1/cmdline | tr "\\0" " "'], timeout: 20n });
    expect(text(r.stdout)).toContain('trap "exit 0" TERM INT'); // the pause image's command
    const footprint = await podFootprint(c, cri, pod.id, [a], runcRootOf(c, handler));
    await cri.removePod(pod.id);
    expect(await podLeftovers(c, footprint)).toEqual([]);
  });

  if (!isGoShim(lane)) {
    test('side by side on one containerd: a runc-handler pod, a ferry pod and a ferry-as-runc pod', async () => {
      const kinds = [CRI_HANDLERS.runc, CRI_HANDLERS.ferry, CRI_HANDLERS.ferryAsRunc];
      const pods = await Promise.all(kinds.map((h) => newPod(`side-${h}`, h)));
      const ids = await Promise.all(pods.map((p) => cri.startContainer(p, { metadata: { name: 'counter' }, image: { image: c.image!.name }, command: COUNTER_COMMAND })));
      for (const id of ids) await cri.waitForState(id, ContainerState.CONTAINER_RUNNING);
      // Which shim serves a pod: the Go shim runs as its binary, ferry as node with ferry's
      // bundle (the launcher execs `node … dist/shim-*.js`) or the shim script itself.
      const shimOf = (podId: string) => c.shimDaemons(podId).map((d) => {
        if (/containerd-shim-runc-v2$/.test(d.argv[0] ?? '')) return 'runc';
        if (d.argv.some((a) => /containerd-shim-ferry-v2$|\/dist\/shim[-.\w]*\.js$/.test(a))) return 'ferry';
        return d.argv.join(' ');
      });
      expect(shimOf(pods[0]!.id)).toEqual(['runc']);
      expect(shimOf(pods[1]!.id)).toEqual(['ferry']);
      expect(shimOf(pods[2]!.id)).toEqual(['ferry']); // runtime_path: ferry under runc's name
      expect(c.shimDaemons()).toHaveLength(3);
      for (const id of ids) {
        const r = await cri.runtime('execSync', { containerId: id, cmd: ['cat', '/tmp/count'], timeout: 20n });
        expect(r.exitCode).toBe(0);
      }
      const footprints = await Promise.all(pods.map((p, i) => podFootprint(c, cri, p.id, [ids[i]!], runcRootOf(c, kinds[i]!))));
      for (const p of pods) await cri.removePod(p.id);
      for (const f of footprints) expect(await podLeftovers(c, f)).toEqual([]);
    });
  }

  if (lane.containerd === '1.7') {
    test("containerd 1.7's CRI has no CheckpointContainer", async () => {
      const pod = await newPod('nockpt');
      const id = await cri.startContainer(pod, { metadata: { name: 'counter' }, image: { image: c.image!.name }, command: COUNTER_COMMAND });
      const err = await cri.runtime('checkpointContainer', { containerId: id, location: path.join(c.dir, 'x.tar') }).catch((e: unknown) => e);
      expect(isCriError(err) && err.code).toBe(status.UNIMPLEMENTED);
      expect(await cri.containerState(id)).toBe(ContainerState.CONTAINER_RUNNING);
      await cri.removePod(pod.id);
    });
  }
});
