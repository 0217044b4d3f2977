// `runtimeoptions.v1.Options`: what containerd sends a runtime that is not named
// `io.containerd.runc.*` when options come from configuration — `ctr run --runtime-config-path
// FILE` (config_path), or the CRI plugin's `[…runtimes.X.options]` table serialised as TOML
// (config_body). ferry reads the same keys as runc's Options in that TOML (BinaryName, Root,
// SystemdCgroup, NoPivotRoot, NoNewKeyring, ShimCgroup, IoUid, IoGid, CriuPath, CriuImagePath,
// CriuWorkPath). Only flat `Key = value` lines are understood: strings, booleans, integers.
import * as fs from 'node:fs';
import { BinaryReader } from '@bufbuild/protobuf/wire';
import { InvalidArgumentError } from '../errors';

export interface RuntimeConfigOptions {
  typeUrl: string;
  configPath: string;
  configBody: Uint8Array;
}

export function decodeRuntimeConfigOptions(bytes: Uint8Array): RuntimeConfigOptions {
  const r = new BinaryReader(bytes);
  const out: RuntimeConfigOptions = { typeUrl: '', configPath: '', configBody: new Uint8Array(0) };
  while (r.pos < r.len) {
    const [field, wireType] = r.tag();
    if (field === 1 && wireType === 2) out.typeUrl = r.string();
    else if (field === 2 && wireType === 2) out.configPath = r.string();
    else if (field === 3 && wireType === 2) out.configBody = r.bytes();
    else r.skip(wireType);
  }
  return out;
}

/** The TOML text the options name: the file at config_path, else config_body. */
export function runtimeConfigText(o: RuntimeConfigOptions): string {
  if (o.configPath) {
    try {
      return fs.readFileSync(o.configPath, 'utf8');
    } catch (err) {
      throw new InvalidArgumentError(`runtime config ${o.configPath}: ${(err as Error).message}`);
    }
  }
  return Buffer.from(o.configBody).toString('utf8');
}

export type TomlValue = string | number | boolean;

/** Flat `Key = value` TOML (comments, blank lines and [tables] headers are skipped). */
export function parseFlatToml(text: string): Map<string, TomlValue> {
  const out = new Map<string, TomlValue>();
  for (const [n, raw] of text.split('\n').entries()) {
    const line = raw.trim();
    if (!line || line.startsWith('#') || line.startsWith('[')) continue;
    const m = /^("?)([A-Za-z0-9_.-]+)\1\s*=\s*(.*)$/.exec(line);
    if (!m) throw new InvalidArgumentError(`runtime config line ${n + 1}: cannot parse ${JSON.stringify(line)}`);
    const key = m[2]!;
    const v = m[3]!.replace(/\s+#.*$/, '').trim();
    if (v === 'true' || v === 'false') out.set(key, v === 'true');
    else if (/^[+-]?\d+$/.test(v)) out.set(key, Number(v));
    else if (/^"(?:[^"\\]|\\.)*"$/.test(v)) out.set(key, JSON.parse(v) as string);
    else if (/^'[^']*'$/.test(v)) out.set(key, v.slice(1, -1));
    else throw new InvalidArgumentError(`runtime config line ${n + 1}: unsupported value ${JSON.stringify(v)}`);
  }
  return out;
}
