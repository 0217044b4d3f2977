// `ferry inspect SRC`: what a checkpoint holds, without restoring it (forensic checkpointing,
// KEP-2008). The same facts and JSON keys as checkpointctl's `inspect`, from every kind of
// checkpoint ferry reads (src/format/checkpoint-source.ts), plus `--verify` (is it complete
// enough to restore) and `--memory` (checkpointctl's memparse).
import type { Command } from 'commander';
import { InvalidArgumentError } from '../../errors';
import { openCheckpointSource } from '../../format/checkpoint-source';
import { countBytes, inspectCheckpoint, type InspectJson, type PsJson } from '../../format/checkpoint-inspect';
import { CheckpointImages, flattenTree } from '../../format/criu/explore';
import type { CliContext } from '../context';
import { renderTree, type TreeNode } from './tree-output';
import { hexdump, memoryMatches } from './memory-output';

interface InspectFlags {
  psTree?: boolean; psTreeCmd?: boolean; psTreeEnv?: boolean; files?: boolean; sockets?: boolean; mounts?: boolean;
  stats?: boolean; metadata?: boolean; all?: boolean; pid?: string; format: string; verify?: boolean;
  memory?: string | boolean; search?: string; searchRegex?: string; context: string;
}

function parseNonNegative(v: string, what: string): number {
  if (!/^\d+$/.test(v) || !Number.isSafeInteger(Number(v))) throw new InvalidArgumentError(`${what} must be a non-negative integer, not ${JSON.stringify(v)}`);
  return Number(v);
}

function psTreeNode(p: PsJson): TreeNode {
  const kids: TreeNode[] = [];
  if (p.cmdline !== undefined) kids.push({ label: `Command line: ${p.cmdline.trimEnd()}` });
  if (p.environment_variables) kids.push({ label: 'Environment variables', children: Object.entries(p.environment_variables).map(([k, v]) => ({ label: `${k}=${v}` })) });
  for (const c of p.children ?? []) kids.push(psTreeNode(c));
  const state = p.task_state && p.task_state !== 'Alive' ? ` (${p.task_state})` : '';
  return { label: `[${p.pid}${state}]  ${p.command}`, children: kids };
}

/** The tree for people, in the order and with the branch names of checkpointctl's tree view. */
export function inspectTree(j: InspectJson): string {
  const kids: TreeNode[] = [
    { label: `Image: ${j.image}` }, { label: `ID: ${j.id}` }, { label: `Runtime: ${j.runtime}` }, { label: `Created: ${j.created}` },
  ];
  if (j.checkpointed) kids.push({ label: `Checkpointed: ${j.checkpointed}` });
  kids.push({ label: `Engine: ${j.engine}` });
  if (j.ip) kids.push({ label: `IP: ${j.ip}` });
  if (j.mac) kids.push({ label: `MAC: ${j.mac}` });
  const size: TreeNode[] = [];
  if (j.checkpoint_size.memory_pages_size) size.push({ label: `Memory pages size: ${countBytes(j.checkpoint_size.memory_pages_size)}` });
  if (j.checkpoint_size.amd_gpu_memory_pages_size) size.push({ label: `AMD GPU memory pages size: ${countBytes(j.checkpoint_size.amd_gpu_memory_pages_size)}` });
  kids.push({ label: `Checkpoint size: ${countBytes(j.checkpoint_size.total_size ?? 0)}`, children: size });
  if (j.checkpoint_size.root_fs_diff_size) kids.push({ label: `Root FS diff size: ${countBytes(j.checkpoint_size.root_fs_diff_size)}` });
  if (j.criu) {
    const c: TreeNode[] = [];
    if (j.criu.version) c.push({ label: `Version: ${j.criu.version}` });
    if (j.criu.kernel) c.push({ label: `Host kernel: ${j.criu.kernel}` });
    if (j.criu.image_version !== undefined) c.push({ label: `Image version: ${j.criu.image_version}` });
    if (c.length) kids.push({ label: 'CRIU', children: c });
  }
  if (j.statistics) {
    const s = j.statistics;
    kids.push({ label: 'CRIU dump statistics', children: [
      { label: `Freezing time: ${s.freezing_time ?? 0} µs` }, { label: `Frozen time: ${s.frozen_time ?? 0} µs` },
      { label: `Memdump time: ${s.memdump_time ?? 0} µs` }, { label: `Memwrite time: ${s.memwrite_time ?? 0} µs` },
      { label: `Pages scanned: ${s.pages_scanned ?? 0}` }, { label: `Pages written: ${s.pages_written ?? 0}` },
    ] });
  }
  if (j.metadata) {
    const m: TreeNode[] = [];
    if (j.metadata.pod_name) m.push({ label: `Pod name: ${j.metadata.pod_name}` });
    if (j.metadata.kubernetes_namespace) m.push({ label: `Kubernetes namespace: ${j.metadata.kubernetes_namespace}` });
    if (j.metadata.annotations) m.push({ label: 'Annotations', children: Object.entries(j.metadata.annotations).map(([k, v]) => ({ label: `${k}: ${v}` })) });
    kids.push({ label: 'Metadata', children: m });
  }
  if (j.mounts) kids.push({ label: 'Overview of mounts', children: j.mounts.map((m) => ({ label: `Destination: ${m.destination}`, children: [{ label: `Type: ${m.type}` }, { label: `Source: ${m.source}` }] })) });
  if (j.process_tree) kids.push({ label: 'Process tree', children: [psTreeNode(j.process_tree)] });
  if (j.file_descriptors) {
    kids.push({ label: 'Open files', children: j.file_descriptors.map((f) => ({ label: `[${f.pid}]`, children: (f.open_files ?? []).map((o) => ({ label: `[${o.fd}]  ${o.path}` })) })) });
  }
  if (j.sockets) {
    kids.push({ label: 'Open sockets', children: j.sockets.map((s) => ({ label: `[${s.pid}]`, children: (s.open_sockets ?? []).map((o) => {
      const d = o.data;
      const where = d.src !== undefined || d.src_port !== undefined ? ` ${d.src ?? ''}:${d.src_port ?? 0} -> ${d.dst ?? ''}:${d.dst_port ?? 0}` : d.address !== undefined ? ` ${d.address}` : '';
      const bufs = d.send_buf !== undefined ? ` (↑ ${d.send_buf} ↓ ${d.recv_buf})` : '';
      return { label: `[${o.protocol ?? d.type ?? ''}${d.state ? ` (${d.state})` : ''}]${where}${bufs}` };
    }) })) });
  }
  if (j.verify) {
    kids.push({ label: `Verify: ${j.verify.ok ? 'complete' : 'INCOMPLETE'}`, children: j.verify.problems.map((p) => ({ label: p })) });
  }
  return renderTree({ label: j.container_name || '(unnamed container)', children: kids });
}

async function memoryCommand(ctx: CliContext, src: string, flags: InspectFlags, json: boolean): Promise<void> {
  const source = await openCheckpointSource(src);
  const images = new CheckpointImages(source.images);
  const tree = await images.processTree();
  if (flags.memory === true) {
    const rows: { pid: number; process_name: string; memory_size: number; shared_memory_size: number }[] = [];
    for (const p of flattenTree(tree)) {
      if (!(await images.hasState(p.pid))) continue;
      const mm = await images.mm(p.pid);
      const shared = mm.vmas.filter((v) => (v.flags & 0x01) !== 0).reduce((s, v) => s + Number(v.end - v.start), 0);
      rows.push({ pid: p.pid, process_name: p.comm, memory_size: (await images.memory(p.pid)).size, shared_memory_size: shared });
    }
    if (json) ctx.stdout.write(`${JSON.stringify(rows, null, 2)}\n`);
    else {
      const lines = [['PID', 'PROCESS NAME', 'MEMORY SIZE', 'SHARED MEMORY SIZE'], ...rows.map((r) => [String(r.pid), r.process_name, countBytes(r.memory_size), countBytes(r.shared_memory_size)])];
      const w = lines[0].map((_, i) => Math.max(...lines.map((l) => l[i].length)));
      ctx.stdout.write(lines.map((l) => l.map((c, i) => c.padEnd(w[i])).join('  ').trimEnd()).join('\n') + '\n');
    }
    return;
  }
  const pid = parseNonNegative(String(flags.memory), '--memory PID');
  if (!flattenTree(tree).some((p) => p.pid === pid)) throw new InvalidArgumentError(`no process with PID ${pid} in the checkpoint`);
  if (!(await images.hasState(pid))) throw new InvalidArgumentError(`process ${pid} has no memory in the checkpoint (it was not alive)`);
  const mem = await images.memory(pid);
  if (flags.search !== undefined || flags.searchRegex !== undefined) {
    const context = parseNonNegative(flags.context, '--context');
    const re = flags.searchRegex !== undefined ? new RegExp(flags.searchRegex, 'g') : undefined;
    const matches = await memoryMatches(source.images, mem, images.pageSize, { text: flags.search, re, context });
    if (json) ctx.stdout.write(`${JSON.stringify(matches, null, 2)}\n`);
    else ctx.stdout.write(matches.map((m) => `${m.address}  ${m.context}`).join('\n') + (matches.length ? '\n' : ''));
    return;
  }
  for await (const line of hexdump(source.images, mem, images.pageSize)) ctx.stdout.write(`${line}\n`);
}

export function register(program: Command, ctx: CliContext): void {
  program
    .command('inspect')
    .description('show what a checkpoint holds without restoring it (archive, unpacked directory or CRIU image directory)')
    .argument('<source>', 'checkpoint archive (tar, tar.gz, tar.zst), unpacked archive directory, or CRIU image directory')
    .option('--ps-tree', 'the process tree')
    .option('--ps-tree-cmd', 'the process tree with each command line (read from memory pages)')
    .option('--ps-tree-env', 'the process tree with each environment (read from memory pages)')
    .option('--files', 'open files of each process, with cwd and root')
    .option('--sockets', 'sockets of each process')
    .option('--mounts', 'the mounts of spec.dump')
    .option('--stats', "CRIU's dump statistics")
    .option('--metadata', 'pod, namespace and annotations')
    .option('--all', 'everything above')
    .option('-p, --pid <pid>', 'only this process (and its children in the tree)')
    .option('--format <format>', 'tree or json', 'tree')
    .option('--verify', 'check that the checkpoint is complete enough to restore (exit 1 if not)')
    .option('--memory [pid]', "a process's memory as a hexdump; without PID the processes with their memory sizes")
    .option('-s, --search <text>', 'with --memory PID: where TEXT occurs')
    .option('-r, --search-regex <re>', 'with --memory PID: where the regular expression matches')
    .option('-c, --context <n>', 'bytes of context around each match', '10')
    .action(async (src: string, flags: InspectFlags, cmd: Command) => {
      ctx.commandName = 'inspect';
      const globals = ctx.globals(cmd);
      const json = globals.json || flags.format === 'json';
      if (flags.format !== 'tree' && flags.format !== 'json') throw new InvalidArgumentError(`--format must be tree or json, not ${JSON.stringify(flags.format)}`);
      if (flags.memory !== undefined) return memoryCommand(ctx, src, flags, json);
      const all = !!flags.all;
      const source = await openCheckpointSource(src);
      const r = await inspectCheckpoint(source, {
        psTree: all || flags.psTree || flags.psTreeCmd || flags.psTreeEnv, psTreeCmd: all || flags.psTreeCmd, psTreeEnv: all || flags.psTreeEnv,
        files: all || flags.files, sockets: all || flags.sockets, mounts: all || flags.mounts,
        stats: all ? source.files.has('stats-dump') || undefined : flags.stats,
        metadata: all || flags.metadata, verify: flags.verify,
        pid: flags.pid !== undefined ? parseNonNegative(flags.pid, '--pid') : undefined,
      });
      ctx.stdout.write(json ? `${JSON.stringify([r.json], null, 2)}\n` : inspectTree(r.json));
      if (flags.verify && r.report && !r.report.ok) {
        throw new InvalidArgumentError(`checkpoint ${src} is incomplete: ${r.report.problems.map((p) => `${p.file}: ${p.problem}`).join('; ')}`);
      }
    });
}
