// `make demo`: a real container through ferry, checkpointed and restored.
// Starts a private containerd 1.7 (its own root, state and socket in a temp dir), imports a
// busybox image built on the spot, runs a counter container with runtime io.containerd.ferry.v2,
// checkpoints it with CRIU (`ctr container checkpoint --task`), removes it, restores it
// (`ctr container restore --live`) and shows the counter continuing where it stopped.
import { startContainerd, type Containerd } from '../test/helpers/containerd';

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

async function count(c: Containerd): Promise<number> {
  const r = await c.ctr(['task', 'exec', '--exec-id', `read-${Date.now()}`, ID, 'cat', '/tmp/count']);
  if (r.code !== 0) throw new Error(`reading the counter failed: ${r.stderr}`);
  return Number.parseInt(r.stdout.trim(), 10);
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function main(): Promise<void> {
  step('starting a private containerd 1.7 and importing a busybox image');
  const c = await startContainerd({ version: '1.7' });
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
    step('the restored container continued where it stopped; cleaning up');
    await ctr(c, ['task', 'kill', '-s', 'KILL', ID]);
    await sleep(500);
    await ctr(c, ['task', 'rm', ID]);
    await ctr(c, ['container', 'rm', ID]);
  } finally {
    await c.stop();
  }
  process.stdout.write('\ndemo: OK\n');
}

main().catch((err: Error) => {
  process.stderr.write(`demo failed: ${err.message}\n`);
  process.exit(1);
});
