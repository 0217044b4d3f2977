// What a CRI pod leaves on the machine, captured while it runs and checked after
// RemovePodSandbox: shim daemons (by this containerd's -address), the sandbox's and
// containers' processes, mounts under this containerd's dirs, shim sockets, task bundles and
// runc state in the handler's private root. Scoped to one test containerd, never machine-wide.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Containerd, CRI_NAMESPACE } from './containerd';
import { CriClient } from './cri';
import { mountsUnder, ProcInfo, readProc, waitFor } from './procfs';

export interface PodFootprint {
  podId: string;
  containerIds: string[];
  /** Shim daemons serving the pod (its sandbox id is their -id). */
  shims: ProcInfo[];
  /** Pids of the pause process and the containers' inits. */
  pids: number[];
  sockets: string[];
  bundles: string[];
  runcState: string[];
}

/** The pid containerd's CRI reports in the verbose status info. */
async function infoPid(get: () => Promise<{ info: Record<string, string> }>): Promise<number> {
  const info = JSON.parse((await get()).info.info ?? '{}') as { pid?: number };
  if (!info.pid) throw new Error('CRI status info has no pid');
  return info.pid;
}

export async function podFootprint(c: Containerd, cri: CriClient, podId: string, containerIds: string[], runcRoot: string): Promise<PodFootprint> {
  const ids = [podId, ...containerIds];
  const pids = [
    await infoPid(() => cri.runtime('podSandboxStatus', { podSandboxId: podId, verbose: true })),
    ...(await Promise.all(containerIds.map((id) => infoPid(() => cri.runtime('containerStatus', { containerId: id, verbose: true }))))),
  ];
  return {
    podId,
    containerIds,
    shims: c.shimDaemons(podId),
    pids,
    sockets: ids.map((id) => c.shimSocketPath(id, CRI_NAMESPACE)).filter((s): s is string => s !== undefined),
    bundles: ids.map((id) => c.bundleDir(id, CRI_NAMESPACE)),
    runcState: ids.map((id) => path.join(runcRoot, CRI_NAMESPACE, id)),
  };
}

/** Everything of the pod still on the machine (empty = clean); waits up to timeoutMs for it to go. */
export async function podLeftovers(c: Containerd, f: PodFootprint, timeoutMs = 15000): Promise<string[]> {
  const check = (): string[] => {
    const problems: string[] = [];
    for (const s of f.shims) {
      const p = readProc(s.pid);
      if (p) problems.push(`shim daemon ${s.pid} still exists (state ${p.state})`);
    }
    for (const d of c.shimDaemons(f.podId)) problems.push(`a shim daemon for pod ${f.podId} runs: ${d.pid}`);
    for (const pid of f.pids) if (readProc(pid)) problems.push(`process ${pid} of the pod still exists`);
    for (const id of [f.podId, ...f.containerIds]) {
      for (const m of mountsUnder(c.dir).filter((m) => m.mountPoint.includes(id))) problems.push(`mount left: ${m.mountPoint} (${m.fsType})`);
    }
    for (const s of f.sockets) if (fs.existsSync(s)) problems.push(`shim socket left: ${s}`);
    for (const b of f.bundles) if (fs.existsSync(b)) problems.push(`bundle left: ${b}`);
    for (const r of f.runcState) if (fs.existsSync(r)) problems.push(`runc state left: ${r}`);
    return problems;
  };
  return (await waitFor(() => (check().length === 0 ? [] : undefined), timeoutMs, 100)) ?? check();
}
