// The runtime options a task is created with. containerd's Go client picks the option type by
// runtime name: `io.containerd.runc.*` gets containerd.runc.v1.Options, any other name (ferry's)
// the older containerd.linux.runc.CreateOptions. Both are decoded into one shape here.
import { Options as RuncV1Options } from '../../api/gen/containerd/runc/v1/options';
import { CreateOptions as LinuxRuncCreateOptions } from '../../api/gen/containerd/linux/runc/runc';
import type { Any } from '../../api/gen/google/protobuf/any';
import { InvalidArgumentError } from '../errors';
import { decodeRuntimeConfigOptions, parseFlatToml, runtimeConfigText, type TomlValue } from './runtime-config-file';

export interface RuntimeOptions {
  binaryName: string;
  root: string;
  systemdCgroup: boolean;
  noPivotRoot: boolean;
  noNewKeyring: boolean;
  shimCgroup: string;
  ioUid: number;
  ioGid: number;
  criuPath: string;
  criuImagePath: string;
  criuWorkPath: string;
}

/** runc's default state root (`<root>/<namespace>`), as the Go shim uses. */
export const DEFAULT_RUNC_ROOT = '/run/containerd/runc';

export function defaultRuntimeOptions(): RuntimeOptions {
  return {
    binaryName: 'runc', root: DEFAULT_RUNC_ROOT, systemdCgroup: false, noPivotRoot: false,
    noNewKeyring: false, shimCgroup: '', ioUid: 0, ioGid: 0, criuPath: '', criuImagePath: '', criuWorkPath: '',
  };
}

/** The message name of an Any's type URL (`…/containerd.runc.v1.Options` → `containerd.runc.v1.Options`). */
export function typeName(any: Any): string {
  const url = any.typeUrl;
  return url.slice(url.lastIndexOf('/') + 1);
}

export function decodeRuntimeOptions(any: Any | undefined): RuntimeOptions {
  const o = defaultRuntimeOptions();
  if (!any || (!any.typeUrl && any.value.length === 0)) return o;
  switch (typeName(any)) {
    case 'containerd.runc.v1.Options': {
      const v = RuncV1Options.decode(any.value);
      return {
        binaryName: v.binaryName || o.binaryName, root: v.root || o.root, systemdCgroup: v.systemdCgroup,
        noPivotRoot: v.noPivotRoot, noNewKeyring: v.noNewKeyring, shimCgroup: v.shimCgroup,
        ioUid: v.ioUid, ioGid: v.ioGid, criuPath: v.criuPath, criuImagePath: v.criuImagePath, criuWorkPath: v.criuWorkPath,
      };
    }
    case 'containerd.linux.runc.CreateOptions': {
      const v = LinuxRuncCreateOptions.decode(any.value);
      return {
        ...o, noPivotRoot: v.noPivotRoot, noNewKeyring: v.noNewKeyring, shimCgroup: v.shimCgroup,
        ioUid: v.ioUid, ioGid: v.ioGid, criuImagePath: v.criuImagePath, criuWorkPath: v.criuWorkPath,
      };
    }
    case 'runtimeoptions.v1.Options':
      return fromConfig(o, parseFlatToml(runtimeConfigText(decodeRuntimeConfigOptions(any.value))));
    default:
      throw new InvalidArgumentError(`unsupported runtime options type ${JSON.stringify(any.typeUrl)}`);
  }
}

/** runc Options' TOML names (as containerd's CRI config writes them) → our fields. */
const CONFIG_KEYS: Record<string, keyof RuntimeOptions> = {
  BinaryName: 'binaryName', Root: 'root', SystemdCgroup: 'systemdCgroup', NoPivotRoot: 'noPivotRoot',
  NoNewKeyring: 'noNewKeyring', ShimCgroup: 'shimCgroup', IoUid: 'ioUid', IoGid: 'ioGid',
  CriuPath: 'criuPath', CriuImagePath: 'criuImagePath', CriuWorkPath: 'criuWorkPath',
};

function fromConfig(defaults: RuntimeOptions, values: Map<string, TomlValue>): RuntimeOptions {
  const o: RuntimeOptions = { ...defaults };
  for (const [key, value] of values) {
    const field = CONFIG_KEYS[key];
    if (!field) continue; // other runtimes' keys (e.g. a shared CRI table) are not ours to refuse
    const want = typeof defaults[field];
    if (typeof value !== want) throw new InvalidArgumentError(`runtime config ${key}: expected a ${want}, got ${JSON.stringify(value)}`);
    (o as unknown as Record<string, TomlValue>)[field] = value;
  }
  if (!o.binaryName) o.binaryName = defaults.binaryName;
  if (!o.root) o.root = defaults.root;
  return o;
}
