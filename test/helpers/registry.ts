// A real image registry on loopback for the tests: Debian's docker-registry (distribution 2.8),
// serving HTTPS with a certificate from a throwaway CA made here. containerd 1.7's Transfer
// service speaks only HTTPS to a registry and reads no hosts config, so the registry must be
// TLS and containerd must trust the CA: start containerd with `registry.containerdEnv()` (it
// sets SSL_CERT_FILE to the system bundle plus our CA, which Go's crypto/x509 reads).
// Started and stopped by pid; its storage and keys live in a private temp dir.
//
// `startRegistry({ tls: false })` serves plain HTTP instead: containerd 2.1.9's CRI restore
// pulls config.dump's rootfsImageRef with the Go client's default resolver, which speaks plain
// HTTP to localhost/127.0.0.1 and reads neither hosts.toml nor a CA, so a TLS registry on
// loopback cannot serve that pull (docs/kubernetes.md).
import { ChildProcess, execFileSync, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as https from 'node:https';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';

export interface Registry {
  /** host:port, e.g. 127.0.0.1:40123 — an image reference is `${host}/name:tag`. */
  host: string;
  /** Whether it serves HTTPS (the default) or plain HTTP. */
  tls: boolean;
  /** PEM of the CA that signed the registry's certificate ('' without TLS). */
  caFile: string;
  /** System CA bundle + our CA, for SSL_CERT_FILE ('' without TLS). */
  bundleFile: string;
  dir: string;
  /** Environment for containerd (and ctr) so they trust this registry. */
  containerdEnv(): Record<string, string>;
  /** GET https://host/v2/<path> with the CA (http:// without TLS); resolves with status and body. */
  get(pathUnderV2: string, headers?: Record<string, string>): Promise<{ status: number; body: Buffer; headers: Record<string, unknown> }>;
  /** The registry's log so far (with logRequests, a line per request, e.g. `"GET /v2/x/manifests/…"`). */
  log(): string;
  stop(): Promise<void>;
}

export interface StartRegistryOptions {
  /** Serve HTTPS with a throwaway CA (default true). */
  tls?: boolean;
  /** Log every request (level info: distribution writes its access log there), for log(). */
  logRequests?: boolean;
}

const SYSTEM_BUNDLE = '/etc/ssl/certs/ca-certificates.crt';

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

function makeCertificates(dir: string): { ca: string; cert: string; key: string } {
  const ca = path.join(dir, 'ca.pem');
  const caKey = path.join(dir, 'ca.key');
  const key = path.join(dir, 'registry.key');
  const csr = path.join(dir, 'registry.csr');
  const cert = path.join(dir, 'registry.pem');
  const ext = path.join(dir, 'san.ext');
  const run = (args: string[]) => execFileSync('openssl', args, { stdio: 'pipe' });
  run(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', caKey, '-out', ca, '-days', '2', '-subj', '/CN=ferry test CA']);
  run(['req', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', csr, '-subj', '/CN=127.0.0.1']);
  fs.writeFileSync(ext, 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n');
  run(['x509', '-req', '-in', csr, '-CA', ca, '-CAkey', caKey, '-CAcreateserial', '-out', cert, '-days', '2', '-extfile', ext]);
  return { ca, cert, key };
}

/** Starts a TLS registry on a free loopback port and waits until it answers /v2/. */
export async function startRegistry(opts: StartRegistryOptions = {}): Promise<Registry> {
  const tls = opts.tls ?? true;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ferry-registry-'));
  const certs = tls ? makeCertificates(dir) : undefined;
  const bundleFile = certs ? path.join(dir, 'bundle.pem') : '';
  if (certs) fs.writeFileSync(bundleFile, Buffer.concat([fs.existsSync(SYSTEM_BUNDLE) ? fs.readFileSync(SYSTEM_BUNDLE) : Buffer.alloc(0), Buffer.from('\n'), fs.readFileSync(certs.ca)]));
  const port = await freePort();
  const host = `127.0.0.1:${port}`;
  const config = path.join(dir, 'config.yml');
  fs.writeFileSync(config, [
    'version: 0.1',
    'log:',
    `  level: ${opts.logRequests ? 'info' : 'warn'}`,
    'storage:',
    '  filesystem:',
    `    rootdirectory: ${path.join(dir, 'storage')}`,
    '  delete:',
    '    enabled: true',
    'http:',
    `  addr: ${host}`,
    ...(certs ? ['  tls:', `    certificate: ${certs.cert}`, `    key: ${certs.key}`] : []),
    '',
  ].join('\n'));
  const logPath = path.join(dir, 'registry.log');
  const logFd = fs.openSync(logPath, 'a');
  let proc: ChildProcess;
  try {
    proc = spawn('/usr/bin/docker-registry', ['serve', config], { stdio: ['ignore', logFd, logFd] });
  } finally {
    fs.closeSync(logFd);
  }
  const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
  proc.once('error', () => undefined);
  const caPem = certs ? fs.readFileSync(certs.ca) : undefined;

  const get: Registry['get'] = (p, headers = {}) => new Promise((resolve, reject) => {
    const request = caPem ? https.request : http.request;
    const req = request({ host: '127.0.0.1', port, path: `/v2/${p}`, method: 'GET', ca: caPem, headers, timeout: 10000 }, (res) => {
      const parts: Buffer[] = [];
      res.on('data', (d: Buffer) => parts.push(d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(parts), headers: res.headers }));
    });
    req.on('timeout', () => req.destroy(new Error('registry request timed out')));
    req.on('error', reject);
    req.end();
  });

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
      const r = await get('');
      if (r.status === 200) break;
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
    host, tls, caFile: certs?.ca ?? '', bundleFile, dir, get, stop,
    log: () => fs.readFileSync(logPath, 'utf8'),
    containerdEnv: (): Record<string, string> => (bundleFile ? { SSL_CERT_FILE: bundleFile } : {}),
  };
}
