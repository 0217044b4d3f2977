// What `start` prints, and writes to `<bundle>/address` (containerd 1.7 re-reads that file with
// the same parser after a restart):
//  - ttrpc, task API v2 (default): `unix:///run/containerd/s/<hash>` — every containerd ≥1.7
//    accepts it;
//  - gRPC (FERRY_PROTOCOL=grpc): {"version":2,"address":"/run/…","protocol":"grpc"} — a bare
//    path, containerd adds `unix://` itself;
//  - FERRY_TASK_API_VERSION=3 (containerd 2.x only; 1.7 refuses version 3): the JSON form
//    with "version":3, so containerd calls containerd.task.v3.Task.

export type Protocol = 'ttrpc' | 'grpc';

export interface BootstrapChoice { protocol: Protocol; version: 2 | 3 }

export function bootstrapChoice(env: NodeJS.ProcessEnv): BootstrapChoice {
  const protocol: Protocol = (env.FERRY_PROTOCOL ?? '').toLowerCase() === 'grpc' ? 'grpc' : 'ttrpc';
  const version = env.FERRY_TASK_API_VERSION === '3' ? 3 : 2;
  return { protocol, version };
}

export function bootstrapText(socketPath: string, c: BootstrapChoice): string {
  if (c.protocol === 'grpc') return JSON.stringify({ version: c.version, address: socketPath, protocol: 'grpc' });
  if (c.version === 3) return JSON.stringify({ version: 3, address: `unix://${socketPath}`, protocol: 'ttrpc' });
  return `unix://${socketPath}`;
}
