// The runtime options a task is created with. containerd's Go client picks the option type by
// runtime name: `io.containerd.runc.*` gets containerd.runc.v1.Options, any other name (ferry's)
// the older containerd.linux.runc.CreateOptions. Both are decoded into one shape here.
import { Options as RuncV1Options } from '../../api/gen/containerd/runc/v1/options';
import { CreateOptions as LinuxRuncCreateOptions } from '../../api/gen/containerd/linux/runc/runc';
import type { Any } from '../../api/gen/google/protobuf/any';
import { InvalidArgumentError } from '../errors';

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
    default:
      throw new InvalidArgumentError(`unsupported runtime options type ${JSON.stringify(any.typeUrl)}`);
  }
}
