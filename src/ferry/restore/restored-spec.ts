// The OCI spec of a restored container: spec.dump as the source engine ran it, adapted to this
// containerd. CRIU restores the process exactly as dumped, so what it saw must stay as it was
// (process, mounts by destination, namespace kinds, rlimits, seccomp); what belonged to the old
// host or engine is replaced: root (containerd's bundle rootfs), cgroups path (containerd's
// `/<namespace>/<id>`, as ctr sets it), bind sources that do not exist here, a joined network
// namespace (a new one), the engine's hooks (its binaries), an AppArmor profile not loaded
// here, pod membership (ferry restores a standalone container) and CDI device requests (a
// checkpoint may not ask for devices). The pod/namespace check the shim applies to every
// restore (checkRestoreCompatibility) is run on the result, against the spec as saved.
import * as fs from 'node:fs';
import { FailedPreconditionError } from '../../errors';
import { dropCdiAnnotations } from '../../format/annotations';
import { CriAnnotation } from '../../format/layout';
import type { WarnLogger } from '../../format/warn-logger';
import { checkRestoreCompatibility, SANDBOX_ANNOTATIONS, type SpecForRestore } from '../../checkpoint/restore';
import type { SavedSpec } from './checkpoint-metadata';

/** runc reads this annotation for a container-specific CRIU configuration file. */
export const CRIU_CONFIG_ANNOTATION = 'org.criu.config';

/** Pod-membership annotations besides the sandbox ids (removed with them). */
const POD_ANNOTATIONS = [
  ...SANDBOX_ANNOTATIONS,
  CriAnnotation.sandboxNamespace, CriAnnotation.sandboxUid,
  'io.kubernetes.cri-o.SandboxName', 'io.kubernetes.cri-o.SandboxID',
];

export interface AdaptOptions {
  id: string;
  namespace: string;
  /** Path of the network namespace to join when the saved one was joined by path. */
  netnsPath?: () => Promise<string>;
  /** A CRIU config file (e.g. tcp-established) for runc to use on restore. */
  criuConfigFile?: string;
  log: WarnLogger;
}

function apparmorLoaded(profile: string): boolean {
  try {
    return fs.readFileSync('/sys/kernel/security/apparmor/profiles', 'utf8').split('\n').some((l) => l.split(' ')[0] === profile);
  } catch {
    return false;
  }
}

/** The pod the checkpoint was taken in (its sandbox annotation), or undefined. */
export function podOf(spec: SavedSpec): string | undefined {
  const a = spec.annotations ?? {};
  const k = SANDBOX_ANNOTATIONS.find((key) => a[key]);
  return k ? `${k}=${a[k]}` : undefined;
}

export async function adaptSpec(saved: SavedSpec, o: AdaptOptions): Promise<SavedSpec> {
  const spec = JSON.parse(JSON.stringify(saved)) as SavedSpec;
  spec.root = { path: 'rootfs', ...(saved.root?.readonly ? { readonly: true } : {}) };
  spec.linux.cgroupsPath = `/${o.namespace}/${o.id}`;

  let annotations = dropCdiAnnotations(spec.annotations ?? {}, o.log);
  const pod = podOf(saved);
  if (pod) {
    o.log.warn(`the checkpoint was taken inside a pod (${pod}); it is restored as a standalone container`);
    annotations = Object.fromEntries(Object.entries(annotations).filter(([k]) => !POD_ANNOTATIONS.includes(k)));
  }
  if (annotations[CriAnnotation.containerName] !== undefined) annotations[CriAnnotation.containerName] = o.id;
  if (o.criuConfigFile) annotations[CRIU_CONFIG_ANNOTATION] = o.criuConfigFile;
  else delete annotations[CRIU_CONFIG_ANNOTATION]; // a path from another host is not ours to hand runc
  spec.annotations = annotations;

  if (spec.hooks !== undefined) {
    o.log.warn('dropping the OCI hooks of the checkpoint: they name the source engine\'s programs');
    delete spec.hooks;
  }
  const proc = spec.process as { apparmorProfile?: string; selinuxLabel?: string };
  if (proc.apparmorProfile && !apparmorLoaded(proc.apparmorProfile)) {
    o.log.warn(`AppArmor profile ${proc.apparmorProfile} is not loaded here; the container runs without it`);
    delete proc.apparmorProfile;
  }

  // Namespaces joined by path belonged to the source host (a pod's sandbox, Podman's netns).
  const namespaces = spec.linux.namespaces ?? [];
  for (const ns of namespaces) {
    if (!ns.path) continue;
    if (ns.type === 'network') {
      if (!o.netnsPath) throw new FailedPreconditionError('the checkpoint joined a network namespace by path and no new one can be made');
      ns.path = await o.netnsPath();
      o.log.warn('the restored container gets a new network namespace (loopback only): ferry does not recreate the source\'s network');
    } else if (ns.type === 'pid') {
      throw new FailedPreconditionError(`the checkpoint shares a pid namespace (${ns.path}) with other containers; ferry restores only containers with their own`);
    } else {
      // ipc/uts/cgroup of a pod: CRIU dumped them with the process; it gets its own here.
      delete ns.path;
    }
  }

  // The shim's own rule, on what will run: pod membership and namespace kinds must agree with
  // the checkpoint once the adaptations above are taken into account.
  const savedView: SpecForRestore = {
    annotations: Object.fromEntries(Object.entries(saved.annotations ?? {}).filter(([k]) => !POD_ANNOTATIONS.includes(k))),
    linux: { namespaces: (saved.linux.namespaces ?? []).map((n) => (n.path && n.type !== 'network' ? { type: n.type } : n)) },
  };
  checkRestoreCompatibility(savedView, spec as SpecForRestore);
  return spec;
}
