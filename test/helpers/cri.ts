// A small client of Kubernetes' CRI (runtime.v1.RuntimeService and ImageService) over
// containerd's gRPC socket, speaking what kubelet speaks: there is no crictl on this machine.
// The messages come from api/proto/k8s/cri/v1/api.proto (wire-identical to k8s.io/cri-api).
//
// Besides the raw calls (`cri.runtime('createContainer', {...})`), it has the few sequences a
// kubelet runs for a pod — `runPod`, `startContainer`, `removePod` — with kubelet's choices
// where a test does not care (host networking, a log directory, labels kubelet sets).
import * as grpc from '@grpc/grpc-js';
import * as fs from 'node:fs';
import * as path from 'node:path';
import {
  ContainerConfig, ContainerState, ImageServiceDefinition, NamespaceMode, PodSandboxConfig, RuntimeServiceDefinition,
} from '../../api/gen/k8s/cri/v1/api';
import { sleep } from './procfs';

interface Codec<T> {
  encode(m: T): { finish(): Uint8Array };
  decode(b: Uint8Array): T;
  fromPartial(o: unknown): T;
}

interface MethodDef { name: string; requestType: unknown; responseType: unknown }
type Methods<S extends { methods: Record<string, MethodDef> }> = S['methods'];
type Req<M extends MethodDef> = M['requestType'] extends Codec<infer T> ? T : never;
type Res<M extends MethodDef> = M['responseType'] extends Codec<infer T> ? T : never;

type RuntimeMethods = Methods<typeof RuntimeServiceDefinition>;
type ImageMethods = Methods<typeof ImageServiceDefinition>;
export type RuntimeMethod = keyof RuntimeMethods;
export type ImageMethod = keyof ImageMethods;
/** Request/response types by method, e.g. `RuntimeRequest<'createContainer'>`. */
export type RuntimeRequest<M extends RuntimeMethod> = Req<RuntimeMethods[M]>;
export type RuntimeResponse<M extends RuntimeMethod> = Res<RuntimeMethods[M]>;
export type ImageRequest<M extends ImageMethod> = Req<ImageMethods[M]>;
export type ImageResponse<M extends ImageMethod> = Res<ImageMethods[M]>;

/** Partial at every level, as ts-proto's fromPartial accepts. */
export type DeepPartial<T> = T extends Uint8Array | string | number | boolean | undefined
  ? T
  : T extends Array<infer U>
    ? Array<DeepPartial<U>>
    : T extends object
      ? { [K in keyof T]?: DeepPartial<T[K]> }
      : T;

/** A failed CRI call: the gRPC status code and containerd's message. */
export interface CriError extends Error {
  code: grpc.status;
  details: string;
}

export function isCriError(err: unknown): err is CriError {
  return err instanceof Error && typeof (err as Partial<CriError>).code === 'number';
}

export interface CriTarget {
  /** containerd's gRPC socket (CRI is served on the same socket). */
  address: string;
}

export interface PodOptions {
  name: string;
  /** Kubernetes namespace of the pod (metadata.namespace; default "default"). */
  namespace?: string;
  uid?: string;
  runtimeHandler?: string;
  /** Directory for container logs (PodSandboxConfig.log_directory). */
  logDirectory: string;
  /**
   * Pid namespace of the pod's containers: CONTAINER (kubelet's default: each container its
   * own) or POD (`shareProcessNamespace: true`: one pid namespace, the sandbox's).
   */
  pidMode?: NamespaceMode;
  labels?: Record<string, string>;
}

export interface Pod {
  id: string;
  config: PodSandboxConfig;
  runtimeHandler: string;
}

export class CriClient {
  private readonly client: grpc.Client;

  constructor(readonly target: CriTarget) {
    this.client = new grpc.Client(`unix://${target.address}`, grpc.credentials.createInsecure(), {
      'grpc.max_receive_message_length': 16 * 1024 * 1024,
    });
  }

  close(): void {
    this.client.close();
  }

  private call<Q, R>(service: string, def: MethodDef, request: unknown, timeoutMs: number): Promise<R> {
    const reqCodec = def.requestType as Codec<Q>;
    const resCodec = def.responseType as Codec<R>;
    return new Promise<R>((resolve, reject) => {
      this.client.makeUnaryRequest(
        `/${service}/${def.name}`,
        (m: Q) => Buffer.from(reqCodec.encode(m).finish()),
        (b: Buffer) => resCodec.decode(b),
        reqCodec.fromPartial(request),
        new grpc.Metadata(),
        { deadline: Date.now() + timeoutMs },
        (err, res) => (err ? reject(err) : resolve(res!)),
      );
    });
  }

  /** One RuntimeService call; rejects with a CriError. */
  runtime<M extends RuntimeMethod>(method: M, request: DeepPartial<RuntimeRequest<M>>, timeoutMs = 120000): Promise<RuntimeResponse<M>> {
    const def = RuntimeServiceDefinition.methods[method] as MethodDef;
    return this.call(RuntimeServiceDefinition.fullName, def, request, timeoutMs);
  }

  /** One ImageService call; rejects with a CriError. */
  image<M extends ImageMethod>(method: M, request: DeepPartial<ImageRequest<M>>, timeoutMs = 120000): Promise<ImageResponse<M>> {
    const def = ImageServiceDefinition.methods[method] as MethodDef;
    return this.call(ImageServiceDefinition.fullName, def, request, timeoutMs);
  }

  /** RunPodSandbox as kubelet sends it for a hostNetwork pod (no CNI needed). */
  async runPod(o: PodOptions): Promise<Pod> {
    const namespace = o.namespace ?? 'default';
    const uid = o.uid ?? `uid-${o.name}-${process.pid}`;
    fs.mkdirSync(o.logDirectory, { recursive: true, mode: 0o755 });
    const config: DeepPartial<PodSandboxConfig> = {
      metadata: { name: o.name, uid, namespace, attempt: 0 },
      // kubelet leaves the hostname empty for hostNetwork pods (they share the node's UTS namespace).
      hostname: '',
      logDirectory: o.logDirectory,
      labels: {
        'io.kubernetes.pod.name': o.name,
        'io.kubernetes.pod.namespace': namespace,
        'io.kubernetes.pod.uid': uid,
        ...(o.labels ?? {}),
      },
      annotations: { 'kubernetes.io/config.source': 'api' },
      linux: {
        cgroupParent: '',
        securityContext: {
          namespaceOptions: { network: NamespaceMode.NODE, pid: o.pidMode ?? NamespaceMode.CONTAINER, ipc: NamespaceMode.POD },
        },
      },
    };
    const runtimeHandler = o.runtimeHandler ?? '';
    const r = await this.runtime('runPodSandbox', { config, runtimeHandler });
    return { id: r.podSandboxId, config: PodSandboxConfig.fromPartial(config), runtimeHandler };
  }

  /**
   * CreateContainer + StartContainer of one container in `pod`, the way kubelet does (labels,
   * log path `<name>/0.log` under the pod's log directory). Returns the container id.
   */
  async startContainer(pod: Pod, c: DeepPartial<ContainerConfig> & { metadata: { name: string } }): Promise<string> {
    const id = await this.createContainer(pod, c);
    await this.runtime('startContainer', { containerId: id });
    return id;
  }

  async createContainer(pod: Pod, c: DeepPartial<ContainerConfig> & { metadata: { name: string } }): Promise<string> {
    const name = c.metadata.name;
    const config: DeepPartial<ContainerConfig> = {
      logPath: path.join(name, '0.log'),
      ...c,
      labels: {
        'io.kubernetes.container.name': name,
        'io.kubernetes.pod.name': pod.config.metadata!.name,
        'io.kubernetes.pod.namespace': pod.config.metadata!.namespace,
        'io.kubernetes.pod.uid': pod.config.metadata!.uid,
        ...(c.labels ?? {}),
      },
      linux: {
        ...(c.linux ?? {}),
        securityContext: {
          namespaceOptions: pod.config.linux?.securityContext?.namespaceOptions,
          ...(c.linux?.securityContext ?? {}),
        },
      },
    };
    const r = await this.runtime('createContainer', { podSandboxId: pod.id, config, sandboxConfig: pod.config });
    return r.containerId;
  }

  /** ContainerStatus's state. */
  async containerState(id: string): Promise<ContainerState> {
    return (await this.runtime('containerStatus', { containerId: id })).status!.state;
  }

  /** Waits until the container reports `state`; returns its status. */
  async waitForState(id: string, state: ContainerState, timeoutMs = 30000): Promise<RuntimeResponse<'containerStatus'>['status']> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const s = (await this.runtime('containerStatus', { containerId: id })).status!;
      if (s.state === state) return s;
      if (Date.now() > deadline) throw new Error(`container ${id} never reached ${ContainerState[state]}; it is ${ContainerState[s.state]} (${s.reason} ${s.message})`);
      await sleep(100);
    }
  }

  /** StopPodSandbox + RemovePodSandbox (CRI stops and removes the pod's containers too). */
  async removePod(podId: string): Promise<void> {
    await this.runtime('stopPodSandbox', { podSandboxId: podId });
    await this.runtime('removePodSandbox', { podSandboxId: podId });
  }

  /** Removes every pod this containerd's CRI knows (cleanup between and after tests). */
  async removeAllPods(): Promise<void> {
    const pods = await this.runtime('listPodSandbox', {});
    for (const p of pods.items) await this.removePod(p.id);
  }
}

/** A container command that counts once a second into /tmp/count (and to its log). */
export const COUNTER_COMMAND = ['/bin/sh', '-c', 'i=0; while :; do i=$((i+1)); echo $i > /tmp/count; echo $i; sleep 1; done'];

/** kubelet's checkpoint location: `<dir>/checkpoint-<pod>_<namespace>-<container>-<RFC3339>.tar`. */
export function kubeletCheckpointLocation(dir: string, pod: string, namespace: string, container: string, at = new Date()): string {
  const rfc3339 = at.toISOString().replace(/\.\d{3}Z$/, 'Z');
  return path.join(dir, `checkpoint-${pod}_${namespace}-${container}-${rfc3339}.tar`);
}
