// What a checkpoint's CRIU images say about its processes, in the shape checkpointctl shows
// (go-criu's crit ExplorePs / ExploreFds / ExploreSk and its MemoryReader): the process tree,
// each process's command line and environment (read from its memory pages), its open files with
// cwd and root, and its sockets. Names and formats follow crit so that `ferry inspect --format
// json` matches checkpointctl's output field by field.
import { fdTypes } from '../../../api/gen/criu/fdinfo';
import type { ImageStore } from './image-store';
import { readCore, readFdinfo, readFiles, readFs, readIds, readMm, readPstree, type CoreEntry, type FileEntry, type MmEntry } from './images';
import { ProcessMemory } from './memory';
import { PAGE_SIZE, TaskState, taskStateName } from './magic';

export interface ProcessNode {
  pid: number;
  ppid: number;
  pgid: number;
  sid: number;
  threads: number[];
  comm: string;
  taskState: number;
  taskStateName: string;
  children: ProcessNode[];
}

export interface OpenFile {
  /** The fd number, or "cwd" / "root". */
  fd: string;
  /** CRIU's fd type name (REG, PIPE, INETSK, ...); empty for cwd and root. */
  type: string;
  path: string;
}

export interface SocketInfo {
  fd: number;
  fdType: string;
  family: string;
  protocol: string;
  type: string;
  state: string;
  srcAddr: string;
  srcPort: number;
  dstAddr: string;
  dstPort: number;
  sendBuf: number;
  recvBuf: number;
}

const FAMILY: Record<number, string> = { 1: 'UNIX', 2: 'IPV4', 7: 'BRIDGE', 10: 'IPV6', 15: 'KEY', 16: 'NETLINK', 17: 'PACKET' };
const SOCK_TYPE: Record<number, string> = { 1: 'STREAM', 2: 'DGRAM', 3: 'RAW', 4: 'RDM', 5: 'SEQPACKET', 10: 'PACKET' };
const PROTOCOL: Record<number, string> = { 0: 'IP', 1: 'ICMP', 2: 'IGMP', 6: 'TCP', 17: 'UDP', 58: 'ICMPV6', 136: 'UDPLITE', 255: 'RAW' };
/** include/net/tcp_states.h */
const TCP_STATE: Record<number, string> = {
  1: 'ESTABLISHED', 2: 'SYN_SENT', 3: 'SYN_RECV', 4: 'FIN_WAIT1', 5: 'FIN_WAIT2', 6: 'TIME_WAIT', 7: 'CLOSE',
  8: 'CLOSE_WAIT', 9: 'LAST_ACK', 10: 'LISTEN', 11: 'CLOSING', 12: 'NEW_SYN_RECV',
};
const named = (m: Record<number, string>, v: number): string => m[v] ?? (v === 0 ? '' : String(v));

/** An IPv4 address is one u32, an IPv6 address four, each in network byte order as the kernel keeps it. */
export function formatIp(parts: number[]): string {
  const b = Buffer.alloc(parts.length * 4);
  parts.forEach((p, i) => b.writeUInt32LE(p >>> 0, i * 4));
  if (parts.length === 1) return [...b].join('.');
  if (parts.length !== 4) return '';
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(b.readUInt16BE(i).toString(16));
  // Shorten the longest run of zero groups (RFC 5952), as Go's netip does; IPv4-mapped as ::ffff:a.b.c.d.
  if (groups.slice(0, 5).every((g) => g === '0') && groups[5] === 'ffff') return `::ffff:${[...b.subarray(12)].join('.')}`;
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; i++) {
    let j = i;
    while (j < 8 && groups[j] === '0') j++;
    if (j - i > bestLen) { best = i; bestLen = j - i; }
  }
  if (best < 0) return groups.join(':');
  return `${groups.slice(0, best).join(':')}::${groups.slice(best + bestLen).join(':')}`;
}

/** Reads the images of one checkpoint, caching the shared ones (files.img, cores). */
export class CheckpointImages {
  private filesById?: Map<number, FileEntry>;
  private readonly cores = new Map<number, CoreEntry>();

  constructor(readonly store: ImageStore, readonly pageSize: number = PAGE_SIZE) {}

  async core(pid: number): Promise<CoreEntry> {
    let c = this.cores.get(pid);
    if (!c) {
      c = await readCore(this.store, pid);
      this.cores.set(pid, c);
    }
    return c;
  }

  /** The process tree from pstree.img and each process's core image; the root is the process without a parent. */
  async processTree(): Promise<ProcessNode | undefined> {
    const entries = await readPstree(this.store);
    const nodes = new Map<number, ProcessNode>();
    let root: ProcessNode | undefined;
    for (const e of entries) {
      const tc = (await this.core(e.pid)).tc;
      const state = tc?.taskState ?? 0;
      const node: ProcessNode = {
        pid: e.pid, ppid: e.ppid, pgid: e.pgid, sid: e.sid, threads: e.threads,
        comm: tc?.comm ?? '', taskState: state, taskStateName: taskStateName(state), children: [],
      };
      nodes.set(e.pid, node);
      if (e.ppid === 0 && !root) root = node;
    }
    for (const n of nodes.values()) {
      // Each node hangs under its one parent, so only a process naming itself as parent could
      // make the tree cyclic (from a corrupt pstree.img); such a process is left out.
      if (n.ppid !== 0 && n.ppid !== n.pid) nodes.get(n.ppid)?.children.push(n);
    }
    return root;
  }

  /** Alive and stopped tasks have memory, files and sockets; dead and zombie ones have only a core. */
  async hasState(pid: number): Promise<boolean> {
    const s = (await this.core(pid)).tc?.taskState;
    return s === TaskState.ALIVE || s === TaskState.STOPPED;
  }

  async mm(pid: number): Promise<MmEntry> {
    return readMm(this.store, pid);
  }

  memory(pid: number): Promise<ProcessMemory> {
    return ProcessMemory.open(this.store, pid, this.pageSize);
  }

  /** The NUL-separated strings of [start, end) of the process's memory. */
  private async strings(pid: number, which: 'arg' | 'env'): Promise<string[]> {
    const mm = await this.mm(pid);
    const [start, end] = which === 'arg' ? [mm.mmArgStart, mm.mmArgEnd] : [mm.mmEnvStart, mm.mmEnvEnd];
    const bytes = await (await this.memory(pid)).read(start, end);
    return bytes.toString('utf8').split('\0');
  }

  /** The command line as checkpointctl prints it: the argv strings joined by spaces (a trailing NUL gives a trailing space). */
  async cmdline(pid: number): Promise<string> {
    return (await this.strings(pid, 'arg')).join(' ');
  }

  async argv(pid: number): Promise<string[]> {
    const parts = await this.strings(pid, 'arg');
    return parts[parts.length - 1] === '' ? parts.slice(0, -1) : parts;
  }

  /** The environment strings, empty ones left out. */
  async environment(pid: number): Promise<string[]> {
    return (await this.strings(pid, 'env')).filter((s) => s !== '');
  }

  private async file(id: number): Promise<FileEntry | undefined> {
    if (!this.filesById) {
      this.filesById = new Map();
      for (const f of await readFiles(this.store)) if (!this.filesById.has(f.id)) this.filesById.set(f.id, f);
    }
    return this.filesById.get(id);
  }

  /** crit's getFilePath: regular files by name, pipes as pipe[N], unix sockets as unix[ino (peer) name], others TYPE.id. */
  private async filePath(id: number, type: fdTypes): Promise<string> {
    const f = await this.file(id);
    switch (type) {
      case fdTypes.REG: return f?.reg ? f.reg.name : 'unknown';
      case fdTypes.PIPE: return f?.pipe ? `pipe[${f.pipe.pipeId}]` : 'pipe[?]';
      case fdTypes.UNIXSK: return f?.usk ? `unix[${f.usk.ino} (${f.usk.peer}) ${Buffer.from(f.usk.name).toString('utf8')}]` : 'unix[?]';
      default: return `${fdTypes[type] ?? String(type)}.${id}`;
    }
  }

  /** Open files of a process (fd order as in its fdinfo image), then its cwd and root. */
  async openFiles(pid: number): Promise<OpenFile[]> {
    const ids = await readIds(this.store, pid);
    const out: OpenFile[] = [];
    for (const fd of await readFdinfo(this.store, ids.filesId)) {
      out.push({ fd: String(fd.fd), type: fdTypes[fd.type] ?? String(fd.type), path: await this.filePath(fd.id, fd.type) });
    }
    const fs = await readFs(this.store, pid);
    out.push({ fd: 'cwd', type: '', path: await this.filePath(fs.cwdId, fdTypes.REG) });
    out.push({ fd: 'root', type: '', path: await this.filePath(fs.rootId, fdTypes.REG) });
    return out;
  }

  /** Sockets among a process's fds (inet, unix, packet, netlink), as crit's ExploreSk reads them. */
  async sockets(pid: number): Promise<SocketInfo[]> {
    const ids = await readIds(this.store, pid);
    const out: SocketInfo[] = [];
    for (const fd of await readFdinfo(this.store, ids.filesId)) {
      const f = await this.file(fd.id);
      const s: SocketInfo = { fd: fd.fd, fdType: fdTypes[fd.type] ?? String(fd.type), family: '', protocol: '', type: '', state: '', srcAddr: '', srcPort: 0, dstAddr: '', dstPort: 0, sendBuf: 0, recvBuf: 0 };
      if (fd.type === fdTypes.INETSK) {
        const k = f?.isk;
        if (k) Object.assign(s, {
          state: named(TCP_STATE, k.state), family: named(FAMILY, k.family), protocol: named(PROTOCOL, k.proto), type: named(SOCK_TYPE, k.type),
          srcAddr: formatIp(k.srcAddr), srcPort: k.srcPort, dstAddr: formatIp(k.dstAddr), dstPort: k.dstPort,
          sendBuf: k.opts?.soSndbuf ?? 0, recvBuf: k.opts?.soRcvbuf ?? 0,
        });
      } else if (fd.type === fdTypes.UNIXSK) {
        const k = f?.usk;
        if (k) Object.assign(s, {
          state: named(TCP_STATE, k.state), type: named(SOCK_TYPE, k.type), srcAddr: Buffer.from(k.name).toString('utf8'),
          sendBuf: k.opts?.soSndbuf ?? 0, recvBuf: k.opts?.soRcvbuf ?? 0,
        });
      } else if (fd.type === fdTypes.PACKETSK) {
        const k = f?.psk;
        if (k) Object.assign(s, { type: named(SOCK_TYPE, k.protocol), protocol: named(PROTOCOL, k.protocol), sendBuf: k.opts?.soSndbuf ?? 0, recvBuf: k.opts?.soRcvbuf ?? 0 });
      } else if (fd.type === fdTypes.NETLINKSK) {
        const k = f?.nlsk;
        if (k) Object.assign(s, { state: named(TCP_STATE, k.state), protocol: named(PROTOCOL, k.protocol), type: named(SOCK_TYPE, k.protocol), sendBuf: k.opts?.soSndbuf ?? 0, recvBuf: k.opts?.soRcvbuf ?? 0 });
      } else {
        continue;
      }
      out.push(s);
    }
    return out;
  }
}

/** Every process of a tree, depth first, parents before children. */
export function flattenTree(root: ProcessNode | undefined): ProcessNode[] {
  const out: ProcessNode[] = [];
  const seen = new Set<ProcessNode>();
  const walk = (n: ProcessNode) => {
    if (seen.has(n)) return;
    seen.add(n);
    out.push(n);
    n.children.forEach(walk);
  };
  if (root) walk(root);
  return out;
}

/** The subtree rooted at `pid`, or undefined. */
export function findProcess(root: ProcessNode | undefined, pid: number): ProcessNode | undefined {
  return flattenTree(root).find((n) => n.pid === pid);
}
