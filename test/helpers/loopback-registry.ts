// A plain-HTTP image registry on loopback (Debian's docker-registry, distribution 2.8) for the
// CRI restore tests. containerd 2.1.9's CRI restore pulls config.dump's rootfsImageRef with the
// Go client's default resolver, which speaks plain HTTP to localhost/127.0.0.1 and reads no
// hosts.toml and no CA: a TLS-only registry on 127.0.0.1 cannot serve that pull. (The TLS
// registry for containerd 1.7's Transfer service is test/helpers/registry.ts.)
// Started and stopped by pid on a free port; its storage lives in a private temp dir.
import { ChildProcess, execFile, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { promisify } from 'node:util';

export interface LoopbackRegistry {
  /** host:port, e.g. 127.0.0.1:40123; an image reference is `${host}/name:tag`. */
  host: string;
  dir: string;
  /** Copies an OCI layout tar (test/helpers/image.ts) to `${host}/${repoTag}` with skopeo. */
  push(ociArchive: string, repoTag: string): Promise<void>;
  /** How many manifest GETs of `repo` the registry has answered so far (from its access log). */
  manifestPulls(repo: string): number;
  stop(): Promise<void>;
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as net.AddressInfo).port;
      srv.close(() => resolve(port));
    });
  });
}

function get(host: string, p: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const [hostname, port] = host.split(':');
    const req = http.request({ host: hostname, port: Number(port), path: p, method: 'GET', timeout: 5000 }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('timeout', () => req.destroy(new Error('registry request timed out')));
    req.on('error', reject);
    req.end();
  });
}

/** Starts the registry and waits until /v2/ answers. */
export async function startLoopbackRegistry(): Promise<LoopbackRegistry> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ferry-cri-registry-'));
  const host = `127.0.0.1:${await freePort()}`;
  const config = path.join(dir, 'config.yml');
  const logPath = path.join(dir, 'registry.log');
  fs.writeFileSync(config, [
    'version: 0.1',
    'log:',
    '  level: info',
    '  accesslog:',
    '    disabled: false',
    'storage:',
    '  filesystem:',
    `    rootdirectory: ${path.join(dir, 'storage')}`,
    'http:',
    `  addr: ${host}`,
    '',
  ].join('\n'));
  const logFd = fs.openSync(logPath, 'a');
  let proc: ChildProcess;
  try {
    proc = spawn('/usr/bin/docker-registry', ['serve', config], { stdio: ['ignore', logFd, logFd] });
  } finally {
    fs.closeSync(logFd);
  }
  proc.once('error', () => undefined);
  const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
  const stop = async () => {
    if (proc.exitCode === null && proc.signalCode === null) {
      proc.kill('SIGTERM');
      const t = setTimeout(() => proc.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(t);
    }
    fs.rmSync(dir, { recursive: true, force: true });
  };
  const deadline = Date.now() + 20000;
  for (;;) {
    try {
      if ((await get(host, '/v2/')) === 200) break;
    } catch {
      /* not listening yet */
    }
    if (proc.exitCode !== null || Date.now() > deadline) {
      const log = fs.readFileSync(logPath, 'utf8');
      await stop();
      throw new Error(`docker-registry did not start on ${host}:\n${log}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    host,
    dir,
    stop,
    push: async (ociArchive, repoTag) => {
      await promisify(execFile)('skopeo', ['copy', '--quiet', '--dest-tls-verify=false', `oci-archive:${ociArchive}`, `docker://${host}/${repoTag}`], { timeout: 60000 });
    },
    manifestPulls: (repo) => {
      const log = fs.readFileSync(logPath, 'utf8');
      const re = new RegExp(`"(?:GET|HEAD) /v2/${repo.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}/manifests/`, 'g');
      return (log.match(re) ?? []).length;
    },
  };
}
