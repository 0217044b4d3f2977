// A real image registry on loopback for the tests: Debian's docker-registry (distribution 2.8),
// serving HTTPS with a certificate from a throwaway CA made here. containerd 1.7's Transfer
// service speaks only HTTPS to a registry and reads no hosts config, so the registry must be
// TLS and containerd must trust the CA: start containerd with `registry.containerdEnv()` (it
// sets SSL_CERT_FILE to the system bundle plus our CA, which Go's crypto/x509 reads).
// Started and stopped by pid; its storage and keys live in a private temp dir.
import { ChildProcess, execFileSync, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as https from 'node:https';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';

export interface Registry {
  /** host:port, e.g. 127.0.0.1:40123 — an image reference is `${host}/name:tag`. */
  host: string;
  /** PEM of the CA that signed the registry's certificate. */
  caFile: string;
  /** System CA bundle + our CA, for SSL_CERT_FILE. */
  bundleFile: string;
  dir: string;
  /** Environment for containerd (and ctr) so they trust this registry. */
  containerdEnv(): Record<string, string>;
  /** GET https://host/v2/<path> with the CA; resolves with status and body. */
  get(pathUnderV2: string, headers?: Record<string, string>): Promise<{ status: number; body: Buffer; headers: Record<string, unknown> }>;
  stop(): Promise<void>;
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
export async function startRegistry(): Promise<Registry> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ferry-registry-'));
  const { ca, cert, key } = makeCertificates(dir);
  const bundleFile = path.join(dir, 'bundle.pem');
  fs.writeFileSync(bundleFile, Buffer.concat([fs.existsSync(SYSTEM_BUNDLE) ? fs.readFileSync(SYSTEM_BUNDLE) : Buffer.alloc(0), Buffer.from('\n'), fs.readFileSync(ca)]));
  const port = await freePort();
  const host = `127.0.0.1:${port}`;
  const config = path.join(dir, 'config.yml');
  fs.writeFileSync(config, [
    'version: 0.1',
    'log:',
    '  level: warn',
    'storage:',
    '  filesystem:',
    `    rootdirectory: ${path.join(dir, 'storage')}`,
    '  delete:',
    '    enabled: true',
    'http:',
    `  addr: ${host}`,
    '  tls:',
    `    certificate: ${cert}`,
    `    key: ${key}`,
    '',
  ].join('\n'));
  const logFd = fs.openSync(path.join(dir, 'registry.log'), 'a');
  let proc: ChildProcess;
  try {
    proc = spawn('/usr/bin/docker-registry', ['serve', config], { stdio: ['ignore', logFd, logFd] });
  } finally {
    fs.closeSync(logFd);
  }
  const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
  proc.once('error', () => undefined);
  const caPem = fs.readFileSync(ca);

  const get: Registry['get'] = (p, headers = {}) => new Promise((resolve, reject) => {
    const req = https.request({ host: '127.0.0.1', port, path: `/v2/${p}`, method: 'GET', ca: caPem, headers, timeout: 10000 }, (res) => {
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
      const log = fs.readFileSync(path.join(dir, 'registry.log'), 'utf8');
      await stop();
      throw new Error(`docker-registry did not start on ${host}:\n${log}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    host, caFile: ca, bundleFile, dir, get, stop,
    containerdEnv: () => ({ SSL_CERT_FILE: bundleFile }),
  };
}
