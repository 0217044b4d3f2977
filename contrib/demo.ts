// `make demo`: a real container through ferry, checkpointed and restored.
// Starts a private containerd 1.7 (its own root, state and socket in a temp dir), imports a
// busybox image built on the spot, runs a counter container with runtime io.containerd.ferry.v2,
// checkpoints it with CRIU (`ctr container checkpoint --task`), removes it, restores it
// (`ctr container restore --live`) and shows the counter continuing where it stopped. Then the
// same with the `ferry` command: `ferry checkpoint --export` to a zstd archive (the Kubernetes
// layout every engine reads), `ferry restore --import` of it, and `ferry migrate` of the restored
// container to a second containerd (2.1, its own root and state), where it keeps counting.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { startContainerd, type Containerd } from '../test/helpers/containerd';
import { runFerry } from '../test/helpers/ferry-cli';

const RUNTIME = 'io.containerd.ferry.v2';
const ID = 'ferry-demo';
const REF = 'checkpoint/ferry-demo:v1';

function step(msg: string): void {
  process.stdout.write(`\n==> ${msg}\n`);
}

async function ctr(c: Containerd, args: string[]): Promise<string> {
  process.stdout.write(`$ ctr ${args.join(' ')}\n`);
  const r = await c.ctr(args, { timeoutMs: 120_000 });
  if (r.code !== 0) throw new Error(`ctr ${args.join(' ')} failed (${r.code}): ${r.stderr || r.stdout}`);
  if (r.stdout.trim()) process.stdout.write(r.stdout.replace(/^/gm, '  '));
  return r.stdout;
}

async function ferry(c: Containerd, args: string[], env: Record<string, string>): Promise<string> {
  process.stdout.write(`$ ferry ${args.join(' ')}\n`);
  const r = await runFerry(c, args, { env, timeoutMs: 120_000 });
  if (r.code !== 0) throw new Error(`ferry ${args.join(' ')} failed (${r.code}): ${r.stderr || r.stdout}`);
  if (r.stdout.trim()) process.stdout.write(r.stdout.replace(/^/gm, '  '));
  if (r.stderr.trim()) process.stdout.write(r.stderr.replace(/^/gm, '  '));
  return r.stdout;
}

async function count(c: Containerd, id = ID): Promise<number> {
  const r = await c.ctr(['task', 'exec', '--exec-id', `read-${Date.now()}`, id, 'cat', '/tmp/count']);
  if (r.code !== 0) throw new Error(`reading the counter failed: ${r.stderr}`);
  return Number.parseInt(r.stdout.trim(), 10);
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function main(): Promise<void> {
  step('starting a private containerd 1.7 and importing a busybox image');
  const c = await startContainerd({ version: '1.7' });
  let c2: Containerd | undefined;
  try {
    const image = c.image!.name;
    step(`running a counter container through ${RUNTIME}`);
    await ctr(c, ['run', '-d', '--runtime', RUNTIME, image, ID, 'sh', '-c',
      'i=0; while true; do i=$((i+1)); echo $i > /tmp/count; sleep 0.1; done']);
    await sleep(1500);
    const before = await count(c);
    process.stdout.write(`  counter is at ${before}\n`);

    step('checkpointing it with CRIU into a checkpoint image, then removing the container');
    await ctr(c, ['container', 'checkpoint', '--task', '--rw', '--image', ID, REF]);
    await ctr(c, ['task', 'kill', '-s', 'KILL', ID]);
    await sleep(500);
    await ctr(c, ['task', 'rm', ID]);
    await ctr(c, ['container', 'rm', ID]);
    await ctr(c, ['image', 'ls', '-q']);

    step('restoring it from the checkpoint image');
    await ctr(c, ['container', 'restore', '--live', '--rw', ID, REF]);
    const restoredAt = await count(c);
    await sleep(1500);
    const after = await count(c);
    process.stdout.write(`  counter was ${before} at checkpoint, ${restoredAt} right after restore, ${after} now\n`);
    if (!(restoredAt >= before && after > restoredAt && restoredAt < before + 20)) {
      throw new Error('the restored counter did not continue from where it stopped');
    }
    step('the restored container continued where it stopped; removing it');
    await ctr(c, ['task', 'kill', '-s', 'KILL', ID]);
    await sleep(500);
    await ctr(c, ['task', 'rm', ID]);
    await ctr(c, ['container', 'rm', ID]);

    // The same with the ferry command: export, import, and a move to another containerd.
    const env = { FERRY_STATE_DIR: path.join(c.dir, 'ferry-state') };
    const FID = `${ID}-ferry`;
    const archive = path.join(c.dir, `${FID}.tar.zst`);
    step(`ferry: a new counter container, exported as a checkpoint archive (Kubernetes layout, zstd); the container stops`);
    await ctr(c, ['run', '-d', '--runtime', RUNTIME, image, FID, 'sh', '-c',
      'i=0; while true; do i=$((i+1)); echo $i > /tmp/count; sleep 0.1; done']);
    await sleep(1500);
    const atExport = await count(c, FID);
    await ferry(c, ['checkpoint', FID, '--export', archive], env);
    process.stdout.write(`  ${archive}: ${(fs.statSync(archive).size / 1024).toFixed(0)} KiB, counter was at ${atExport}\n`);
    await ctr(c, ['container', 'rm', FID]);

    const ID2 = `${FID}-2`;
    step('ferry: importing it as a new container');
    await ferry(c, ['restore', '--import', archive, '--name', ID2], env);
    const imported = await count(c, ID2);
    process.stdout.write(`  counter continues at ${imported}\n`);
    if (imported < atExport) throw new Error('the imported counter did not continue');

    step('ferry: migrating it to a second containerd (2.1, its own root and state)');
    c2 = await startContainerd({ version: '2.1' });
    await ferry(c, ['migrate', ID2, '--to', c2.address, '--to-namespace', c2.namespace], env);
    await sleep(1000);
    const moved = await count(c2, ID2);
    process.stdout.write(`  on the second containerd the counter is at ${moved}; on the first: ${(await c.ctr(['container', 'ls', '-q'])).stdout.trim() || 'no containers'}\n`);
    if (moved <= imported) throw new Error('the migrated counter did not continue');
    step('cleaning up');
    await ferry(c2, ['rm', ID2], env);
  } finally {
    await c.stop();
    await c2?.stop();
  }
  process.stdout.write('\ndemo: OK\n');
}

main().catch((err: Error) => {
  process.stderr.write(`demo failed: ${err.message}\n`);
  process.exit(1);
});
