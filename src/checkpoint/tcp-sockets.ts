// Which TCP sockets a container's processes hold, read from /proc: a process's socket fds
// (`socket:[INODE]`) matched against the TCP tables of its network namespace
// (/proc/PID/net/tcp and tcp6). CRIU dumps exactly these, so this is what decides whether a
// CRIU that cannot dump TCP sockets on the running kernel may be asked to (see criu.ts).
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';

export interface TcpSocketUse {
  pid: number;
  fd: number;
  /** 'tcp' or 'tcp6'. */
  family: 'tcp' | 'tcp6';
  localPort: number;
  /** The kernel's state name: LISTEN, ESTABLISHED, ... */
  state: string;
}

/** The kernel's TCP states as /proc/net/tcp numbers them (include/net/tcp_states.h). */
const TCP_STATES: Record<number, string> = {
  1: 'ESTABLISHED', 2: 'SYN_SENT', 3: 'SYN_RECV', 4: 'FIN_WAIT1', 5: 'FIN_WAIT2', 6: 'TIME_WAIT',
  7: 'CLOSE', 8: 'CLOSE_WAIT', 9: 'LAST_ACK', 10: 'LISTEN', 11: 'CLOSING', 12: 'NEW_SYN_RECV',
};

/** A /proc/PID/fd listing is bounded: a process has at most this many fds looked at. */
const MAX_FDS_PER_PROCESS = 65536;

interface TableEntry { family: 'tcp' | 'tcp6'; localPort: number; state: string }

/** Parses a /proc/net/tcp or tcp6 table: socket inode → its local port and state. */
export function parseTcpTable(text: string, family: 'tcp' | 'tcp6'): Map<string, TableEntry> {
  const out = new Map<string, TableEntry>();
  for (const line of text.split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f.length < 10) continue;
    const local = f[1]!;
    const port = Number.parseInt(local.slice(local.lastIndexOf(':') + 1), 16);
    const state = TCP_STATES[Number.parseInt(f[3]!, 16)] ?? `state ${f[3]}`;
    const inode = f[9]!;
    if (inode !== '0' && Number.isFinite(port)) out.set(inode, { family, localPort: port, state });
  }
  return out;
}

async function readOrEmpty(file: string): Promise<string> {
  try { return await fsp.readFile(file, 'utf8'); } catch { return ''; }
}

/**
 * The TCP sockets the processes `pids` hold. Processes that vanish while being read are
 * skipped (a container keeps running while it is looked at).
 */
export async function findTcpSockets(pids: number[], procRoot = '/proc'): Promise<TcpSocketUse[]> {
  const found: TcpSocketUse[] = [];
  // Network namespaces already read, by their /proc/PID/ns/net link.
  const tables = new Map<string, Map<string, TableEntry>>();
  for (const pid of pids) {
    const proc = path.join(procRoot, String(pid));
    let fds: string[];
    try { fds = (await fsp.readdir(path.join(proc, 'fd'))).slice(0, MAX_FDS_PER_PROCESS); } catch { continue; }
    const sockets: { fd: number; inode: string }[] = [];
    for (const name of fds) {
      let target: string;
      try { target = await fsp.readlink(path.join(proc, 'fd', name)); } catch { continue; }
      const m = /^socket:\[(\d+)\]$/.exec(target);
      if (m) sockets.push({ fd: Number(name), inode: m[1]! });
    }
    if (sockets.length === 0) continue;
    let netns: string;
    try { netns = await fsp.readlink(path.join(proc, 'ns', 'net')); } catch { netns = `pid ${pid}`; }
    let table = tables.get(netns);
    if (!table) {
      table = new Map([
        ...parseTcpTable(await readOrEmpty(path.join(proc, 'net', 'tcp')), 'tcp'),
        ...parseTcpTable(await readOrEmpty(path.join(proc, 'net', 'tcp6')), 'tcp6'),
      ]);
      tables.set(netns, table);
    }
    for (const s of sockets) {
      const entry = table.get(s.inode);
      if (entry) found.push({ pid, fd: s.fd, ...entry });
    }
  }
  return found;
}
