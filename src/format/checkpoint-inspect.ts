// Everything `ferry inspect` shows of one checkpoint, in checkpointctl's JSON shape (its
// internal/json.go DisplayNode at v1.3.0 and HEAD: same keys, same nesting, same omitempty
// rules, same value formats), plus ferry's additions under keys checkpointctl does not use
// (`criu`, `verify`). Built from a CheckpointSource, so an archive, an unpacked directory and a
// bare CRIU image directory are inspected alike.
import { ArchiveFile } from './layout';
import type { CheckpointSource } from './checkpoint-source';
import { archiveSizes, containerInfo, criuDumpFacts, goRfc3339, isZeroTime, readConfigDump, readSpecDump, type ContainerConfigDump, type SpecDump } from './checkpoint-info';
import { CheckpointImages, findProcess, type ProcessNode } from './criu/explore';
import { readInventory, readPstree, readStats } from './criu/images';
import { MapImageStore } from './criu/map-store';
import { verifyCriuImages, type VerifyReport } from './criu/verify';
import { ImageName } from './criu/magic';
import { InvalidArgumentError, NotFoundError } from '../errors';

export interface InspectOptions {
  psTree?: boolean;
  psTreeCmd?: boolean;
  psTreeEnv?: boolean;
  files?: boolean;
  sockets?: boolean;
  mounts?: boolean;
  stats?: boolean;
  metadata?: boolean;
  verify?: boolean;
  pid?: number;
}

export interface PsJson {
  pid: number;
  command: string;
  cmdline?: string;
  task_state?: string;
  environment_variables?: Record<string, string>;
  children?: PsJson[];
}

export interface InspectJson {
  container_name: string;
  image: string;
  id: string;
  runtime: string;
  created: string;
  checkpointed?: string;
  engine: string;
  ip?: string;
  mac?: string;
  checkpoint_size: { total_size?: number; memory_pages_size?: number; amd_gpu_memory_pages_size?: number; root_fs_diff_size?: number };
  statistics?: { freezing_time?: number; frozen_time?: number; memdump_time?: number; memwrite_time?: number; pages_scanned?: number; pages_written?: number };
  metadata?: { pod_name?: string; kubernetes_namespace?: string; annotations?: Record<string, string> };
  process_tree?: PsJson;
  file_descriptors?: { pid: number; open_files?: { type: string; fd: string; path: string }[] }[];
  sockets?: { pid: number; open_sockets?: { protocol?: string; data: Record<string, string | number> }[] }[];
  mounts?: { destination: string; type: string; source: string }[];
  /** ferry: what the checkpoint records of CRIU and the host. */
  criu?: { version?: string; kernel?: string; image_version?: number };
  /** ferry: the completeness check (inspect --verify). */
  verify?: { ok: boolean; problems: string[] };
}

/** Keys checkpointctl's structs have without omitempty: always present, even when empty. */
const ALWAYS = new Set(['container_name', 'image', 'id', 'runtime', 'created', 'engine', 'checkpoint_size', 'pid', 'command', 'type', 'fd', 'path', 'data', 'destination', 'source']);

/** Go's omitempty: leave out "", 0, undefined, empty maps and slices (a struct-valued field is never omitted). */
function omitEmpty<T extends object>(o: T): T {
  for (const [k, v] of Object.entries(o)) {
    if (ALWAYS.has(k) && v !== undefined) continue;
    if (v === undefined || v === '' || v === 0 || (Array.isArray(v) && v.length === 0) || (v && typeof v === 'object' && !Array.isArray(v) && Object.keys(v).length === 0)) {
      delete (o as Record<string, unknown>)[k];
    }
  }
  return o;
}

/** crit's countBytes: "512 B", "16.0 KB", "2.5 MB". */
export function countBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  let div = 1024;
  let exp = 0;
  for (let i = Math.floor(n / 1024); i >= 1024; i = Math.floor(i / 1024)) {
    div *= 1024;
    exp++;
  }
  return `${(n / div).toFixed(1)} ${'KMGTPE'[exp]}B`;
}

export interface InspectResult {
  json: InspectJson;
  config: ContainerConfigDump;
  spec: SpecDump;
  tree?: ProcessNode;
  report?: VerifyReport;
}

/** Reads the command lines and environments of these processes in one pass over an archive. */
async function prefetchArgs(images: CheckpointImages, pids: number[], env: boolean, cmd: boolean): Promise<void> {
  const store = images.store;
  if (!store.prefetch) return;
  const wants: { name: string; ranges: { offset: number; length: number }[] }[] = [];
  for (const pid of pids) {
    if (!(await images.hasState(pid))) continue;
    const mm = await images.mm(pid);
    const mem = await images.memory(pid);
    const size = (await store.size(mem.pagesName)) ?? 0;
    const ranges: { offset: number; length: number }[] = [];
    const spans: [bigint, bigint][] = [];
    if (cmd) spans.push([mm.mmArgStart, mm.mmArgEnd]);
    if (env) spans.push([mm.mmEnvStart, mm.mmEnvEnd]);
    for (const [start, end] of spans) {
      for (const run of mem.pagemap.runs) {
        if (!run.present) continue;
        const runEnd = run.vaddr + BigInt(run.nrPages * images.pageSize);
        const from = start > run.vaddr ? start : run.vaddr;
        const to = end < runEnd ? end : runEnd;
        if (from >= to) continue;
        const r = { offset: run.pagesOffset + Number(from - run.vaddr), length: Number(to - from) };
        if (r.offset + r.length <= size) ranges.push(r);
      }
    }
    if (ranges.length) wants.push({ name: mem.pagesName, ranges });
  }
  await store.prefetch(wants);
}

async function psJson(images: CheckpointImages, node: ProcessNode, opts: InspectOptions): Promise<PsJson> {
  const out: PsJson = { pid: node.pid, command: node.comm, task_state: node.taskStateName };
  if (await images.hasState(node.pid)) {
    if (opts.psTreeCmd) out.cmdline = await images.cmdline(node.pid);
    if (opts.psTreeEnv) {
      const env: Record<string, string> = {};
      for (const e of await images.environment(node.pid)) {
        const i = e.indexOf('=');
        if (i <= 0) throw new InvalidArgumentError(`process ${node.pid}: invalid environment variable ${JSON.stringify(e)}`);
        env[e.slice(0, i)] = e.slice(i + 1);
      }
      out.environment_variables = env;
    }
  }
  const children: PsJson[] = [];
  for (const c of node.children) children.push(await psJson(images, c, opts));
  out.children = children;
  return omitEmpty(out);
}

/** Collects what `opts` asks for. Bad content throws a FerryError naming the file. */
export async function inspectCheckpoint(src: CheckpointSource, opts: InspectOptions): Promise<InspectResult> {
  const bare = src.kind === 'criu-images';
  const config: ContainerConfigDump = bare ? {} : await readConfigDump(src);
  const spec: SpecDump = bare ? {} : await readSpecDump(src);
  const info = bare ? { name: '', engine: 'containerd', created: goRfc3339(undefined), ip: '', mac: '', namespace: '', pod: '' } : containerInfo(config, spec);
  const sizes = archiveSizes(src);
  const json: InspectJson = {
    container_name: info.name,
    image: typeof config.rootfsImageName === 'string' ? config.rootfsImageName : '',
    id: typeof config.id === 'string' ? config.id : '',
    runtime: typeof config.runtime === 'string' ? config.runtime : '',
    created: info.created,
    checkpointed: isZeroTime(config.checkpointedTime) ? undefined : goRfc3339(config.checkpointedTime),
    engine: info.engine,
    ip: info.ip,
    mac: info.mac,
    checkpoint_size: omitEmpty({ total_size: sizes.checkpointSize, memory_pages_size: sizes.pagesSize, amd_gpu_memory_pages_size: sizes.amdgpuPagesSize, root_fs_diff_size: sizes.rootFsDiffSize }),
  };
  const images = new CheckpointImages(src.images);
  if (opts.stats) {
    let stats;
    const top = bare ? undefined : await src.readFile(ArchiveFile.statsDump);
    if (top) {
      stats = await readStats(new MapImageStore(`${src.location}:`, new Map([[ArchiveFile.statsDump, top]])), ArchiveFile.statsDump);
    } else if ((await src.images.size(ArchiveFile.statsDump)) !== undefined) {
      stats = await readStats(src.images, ArchiveFile.statsDump);
    } else {
      throw new NotFoundError(`checkpoint ${src.location} has no ${ArchiveFile.statsDump} (CRIU's dump statistics)`);
    }
    const d = stats.dump;
    json.statistics = omitEmpty({
      freezing_time: d?.freezingTime, frozen_time: d?.frozenTime, memdump_time: d?.memdumpTime, memwrite_time: d?.memwriteTime,
      pages_scanned: d ? Number(d.pagesScanned) : undefined, pages_written: d ? Number(d.pagesWritten) : undefined,
    });
  }
  if (opts.metadata) {
    json.metadata = omitEmpty({ pod_name: info.pod, kubernetes_namespace: info.namespace, annotations: spec.annotations ?? {} });
    if (!json.metadata) json.metadata = {};
  }
  let tree: ProcessNode | undefined;
  if (opts.psTree || opts.files || opts.sockets || opts.pid !== undefined) {
    tree = await images.processTree();
    if (opts.pid !== undefined) {
      const sub = findProcess(tree, opts.pid);
      if (!sub) throw new NotFoundError(`no process with PID ${opts.pid} (use \`inspect --ps-tree\` to view all PIDs)`);
      tree = sub;
    }
  }
  const order = opts.files || opts.sockets ? (await readPstree(src.images)).map((e) => e.pid).filter((p) => opts.pid === undefined || p === opts.pid) : [];
  if (opts.psTree && tree) {
    if (opts.psTreeCmd || opts.psTreeEnv) {
      const pids: number[] = [];
      const walk = (n: ProcessNode) => { pids.push(n.pid); n.children.forEach(walk); };
      walk(tree);
      await prefetchArgs(images, pids, !!opts.psTreeEnv, !!opts.psTreeCmd);
    }
    json.process_tree = await psJson(images, tree, opts);
  }
  if (opts.files) {
    json.file_descriptors = [];
    for (const pid of order) {
      if (!(await images.hasState(pid))) continue;
      const files = await images.openFiles(pid);
      json.file_descriptors.push(omitEmpty({ pid, open_files: files.map((f) => ({ type: f.type, fd: `${f.type} ${f.fd}`.trim(), path: f.path })) }));
    }
  }
  if (opts.sockets) {
    json.sockets = [];
    for (const pid of order) {
      if (!(await images.hasState(pid))) continue;
      const sks = await images.sockets(pid);
      if (sks.length === 0) continue;
      json.sockets.push({
        pid,
        open_sockets: sks.map((s) => {
          let data: Record<string, string | number>;
          if (s.fdType === 'UNIXSK') data = { type: 'UNIX', address: s.srcAddr };
          else if (s.fdType === 'INETSK') data = { type: s.protocol, state: s.state, src: s.srcAddr, src_port: s.srcPort, dst: s.dstAddr, dst_port: s.dstPort, send_buf: countBytes(s.sendBuf), recv_buf: countBytes(s.recvBuf) };
          else data = { send_buf: countBytes(s.sendBuf), recv_buf: countBytes(s.recvBuf) };
          return omitEmpty({ protocol: s.protocol, data: omitEmpty(data) });
        }),
      });
    }
  }
  if (opts.mounts) {
    json.mounts = (Array.isArray(spec.mounts) ? spec.mounts : []).map((m) => ({ destination: str(m?.destination), type: str(m?.type), source: str(m?.source) }));
  }
  const facts = bare ? {} : await criuDumpFacts(src);
  let imageVersion: number | undefined;
  try {
    imageVersion = (await readInventory(src.images)).imgVersion;
  } catch (err) {
    if (!opts.verify) throw err;
  }
  json.criu = omitEmpty({ version: facts.criuVersion, kernel: facts.kernel, image_version: imageVersion });
  let report: VerifyReport | undefined;
  if (opts.verify) {
    report = await verifyCriuImages(src.images);
    json.verify = { ok: report.ok, problems: report.problems.map((p) => `${p.file}: ${p.problem}`) };
  }
  return { json: omitEmpty(json), config, spec, tree, report };
}

const str = (v: unknown): string => (typeof v === 'string' ? v : '');

export { ImageName };
