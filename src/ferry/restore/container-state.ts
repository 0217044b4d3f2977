// What a restored container needs on this host that the source engine kept outside the
// checkpoint: the files it bind-mounted from its own state (resolv.conf, hosts, hostname,
// .containerenv, termination-log, /dev/shm), and a network namespace when the checkpoint's was
// joined by path (runc then dumped it as external, and CRIU must be handed one on restore).
// These live in one directory per container, `<state>/containers/<ns>/<id>`, named in a label of
// the container record; `gcContainerStates` removes those whose container is gone.
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { InvalidArgumentError } from '../../errors';
import { stageCheckpointArchive } from '../../format/archive-staging';
import { ArchiveFile } from '../../format/layout';
import { readCheckpointJson } from '../../format/safe-read';
import type { WarnLogger } from '../../format/warn-logger';
import { umount2 } from '../../sys/native';
import type { SavedSpec, SpecMount } from './checkpoint-metadata';

const run = promisify(execFile);
const MNT_DETACH = 2;

/** Where ferry keeps per-container files and its staging directories (env FERRY_STATE_DIR). */
export function stateRoot(env: NodeJS.ProcessEnv = process.env): string {
  return env.FERRY_STATE_DIR ?? '/var/lib/ferry';
}

/** The container record label naming a restored container's state directory. */
export const STATE_DIR_LABEL = 'io.ferry.restore.state-dir';

/** One containerd (by socket) and namespace: containers of two containerds never share a directory. */
export function containersDir(root: string, address: string, namespace: string): string {
  const daemon = createHash('sha256').update(path.resolve(address)).digest('hex').slice(0, 12);
  return path.join(root, 'containers', daemon, namespace);
}

/** Files an engine bind-mounts from its own per-container state, and what ferry puts there instead. */
const ENGINE_FILES: Record<string, (spec: SavedSpec) => Promise<Buffer>> = {
  '/etc/resolv.conf': async () => fs.promises.readFile('/etc/resolv.conf').catch(() => Buffer.alloc(0)),
  '/etc/hosts': async (spec) => Buffer.from(`127.0.0.1\tlocalhost\n::1\tlocalhost\n${spec.hostname ? `127.0.1.1\t${spec.hostname}\n` : ''}`),
  '/etc/hostname': async (spec) => Buffer.from(`${spec.hostname ?? ''}\n`),
  '/run/.containerenv': async () => Buffer.alloc(0),
  '/dev/termination-log': async () => Buffer.alloc(0),
};
const SHM = '/dev/shm';

const isBind = (m: SpecMount): boolean => m.type === 'bind' || (m.options ?? []).some((o) => o === 'bind' || o === 'rbind');

interface CrioBindMount { source: string; destination: string; file_type?: string }

async function crioBindMounts(stageDir: string): Promise<Map<string, CrioBindMount>> {
  let v: unknown;
  try {
    v = await readCheckpointJson(stageDir, ArchiveFile.bindMounts, { maxBytes: 4 * 1024 * 1024 });
  } catch {
    return new Map();
  }
  const out = new Map<string, CrioBindMount>();
  if (!Array.isArray(v)) throw new InvalidArgumentError(`${ArchiveFile.bindMounts} is not a JSON array`);
  for (const b of v) {
    if (b && typeof b === 'object' && typeof (b as CrioBindMount).destination === 'string') out.set((b as CrioBindMount).destination, b as CrioBindMount);
  }
  return out;
}

export class ContainerState {
  constructor(readonly dir: string) {}

  /** Creates the directory fresh (0700); an existing one (a stale restore of the same id) is removed first. */
  async create(): Promise<void> {
    await ContainerState.removeDir(this.dir);
    await fs.promises.mkdir(path.dirname(this.dir), { recursive: true, mode: 0o700 });
    await fs.promises.mkdir(this.dir, { mode: 0o700 });
  }

  /** A new network namespace, kept by a bind mount at <dir>/netns (util-linux `unshare --net=FILE`), loopback up. */
  async newNetworkNamespace(): Promise<string> {
    const file = path.join(this.dir, 'netns');
    await fs.promises.writeFile(file, '', { mode: 0o600 });
    await run('unshare', [`--net=${file}`, 'true']);
    // Best effort: a fresh namespace has lo down; engines bring it up, and so do we when ip is here.
    await run('nsenter', [`--net=${file}`, 'ip', 'link', 'set', 'lo', 'up']).catch(() => undefined);
    return file;
  }

  /**
   * Bind-mount sources for `spec`'s mounts that do not exist here: the engine's own files are
   * recreated in this directory (/dev/shm from Podman's devshm-checkpoint.tar); a CRI-O
   * bind.mounts entry gets an empty file or directory of its type (as CRI-O recreates them, but
   * here, never at the recorded host path); any other missing source refuses the restore.
   */
  async substituteMissingSources(spec: SavedSpec, stageDir: string, log: WarnLogger): Promise<string[]> {
    const replaced: string[] = [];
    const declared = await crioBindMounts(stageDir);
    let n = 0;
    for (const m of spec.mounts ?? []) {
      if (!isBind(m) || !m.source) continue;
      if (await fs.promises.lstat(m.source).then(() => true, () => false)) continue;
      const sub = path.join(this.dir, 'mounts', `${n++}-${path.basename(m.destination) || 'root'}`);
      await fs.promises.mkdir(path.dirname(sub), { recursive: true, mode: 0o700 });
      const make = ENGINE_FILES[m.destination];
      if (make) {
        await fs.promises.writeFile(sub, await make(spec), { mode: 0o644 });
      } else if (m.destination === SHM) {
        await this.shmDir(sub, stageDir, log);
      } else if (declared.has(m.destination)) {
        if (declared.get(m.destination)!.file_type === 'file') await fs.promises.writeFile(sub, '', { mode: 0o644 });
        else await fs.promises.mkdir(sub, { mode: 0o755 });
        log.warn(`bind mount ${m.destination}: its source ${m.source} does not exist on this host; the restored container gets an empty ${declared.get(m.destination)!.file_type === 'file' ? 'file' : 'directory'}`);
      } else {
        throw new InvalidArgumentError(`the checkpoint bind-mounts ${m.source} at ${m.destination} and ${m.source} does not exist on this host`);
      }
      m.source = sub;
      replaced.push(m.destination);
    }
    return replaced;
  }

  /** /dev/shm's content: Podman's devshm-checkpoint.tar, unpacked with the checkpoint staging rules. */
  private async shmDir(dir: string, stageDir: string, log: WarnLogger): Promise<void> {
    const tar = path.join(stageDir, ArchiveFile.devShmTar);
    if (await fs.promises.lstat(tar).then((s) => s.isFile(), () => false)) {
      const holder = `${dir}.d`;
      await fs.promises.mkdir(holder, { mode: 0o700 });
      const staged = await stageCheckpointArchive(tar, holder, log);
      await fs.promises.rename(staged.dir, dir);
      await fs.promises.rm(holder, { recursive: true, force: true });
    } else {
      await fs.promises.mkdir(dir, { mode: 0o1777 });
    }
    await fs.promises.chmod(dir, 0o1777);
  }

  /** Unmounts the network namespace (if any) and removes the directory. */
  async remove(): Promise<void> {
    await ContainerState.removeDir(this.dir);
  }

  static async removeDir(dir: string): Promise<void> {
    const netns = path.join(dir, 'netns');
    try {
      umount2(netns, MNT_DETACH);
    } catch {
      // not mounted (or gone): nothing to release
    }
    await fs.promises.rm(dir, { recursive: true, force: true });
  }
}

/** Removes the state directories of containers that no longer exist (`exists(id)` false). */
export async function gcContainerStates(dir: string, exists: (id: string) => Promise<boolean>): Promise<void> {
  let names: string[];
  try {
    names = await fs.promises.readdir(dir);
  } catch {
    return;
  }
  for (const id of names) {
    if (!(await exists(id))) await ContainerState.removeDir(path.join(dir, id)).catch(() => undefined);
  }
}
