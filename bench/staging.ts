// Staging speed: src/format/archive-staging.ts's stageCheckpointArchive (the defensive
// unpacker ferry uses for untrusted checkpoint archives) against GNU `tar -xf` of the same
// archive, plain tar (`tar -xf`), tar+gzip (`tar -xzf`) and tar+zstd (`tar --zstd -xf`). The archive looks like a CRIU checkpoint: a few large page
// images (half random, half zero pages: CRIU images of real processes compress partly) plus
// many small image files.
//
// Both unpack into a tmpfs (/dev/shm unless BENCH_STAGE_DIR says otherwise): ferry stages into
// the task's bundle, which lives in containerd's state dir, /run/containerd — a tmpfs on usual
// hosts. On this VM's ext4 (mounted with `discard`) a removal before each sample made every
// extraction 5-10x slower and noisy (0.12 s → ~1 s for 68 MiB with GNU tar alone), which would
// measure the disk, not the unpacker.
import { execFileSync, spawn } from 'node:child_process';
import { randomFillSync } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { stageCheckpointArchive } from '../src/format/archive-staging';
import type { WarnLogger } from '../src/format/warn-logger';
import { BenchContext, envCount } from './context';
import { msSince, ratio, summarize, Summary } from './stats';

export interface StagingFormatResult {
  format: 'tar' | 'tar+gzip' | 'tar+zstd';
  /** The GNU tar command it was compared with. */
  tarCommand: string;
  archiveMiB: number;
  ferryMs: Summary;
  gnuTarMs: Summary;
  /** Uncompressed content MiB per second, medians. */
  ferryMiBps: number;
  gnuTarMiBps: number;
  /** ferry time / tar time (median): above 1 means ferry is slower. */
  ratio: number;
}

export interface StagingResult {
  n: number;
  /** Where the archives were unpacked, and that filesystem's type. */
  destination: string;
  contentMiB: number;
  files: number;
  gnuTar: string;
  formats: StagingFormatResult[];
}

const PAGE = 4096;

/** Writes `bytes` of alternating random and zero 4 KiB pages. */
function writePageImage(file: string, bytes: number): void {
  const fd = fs.openSync(file, 'w');
  const chunk = Buffer.alloc(1 << 20);
  try {
    for (let written = 0; written < bytes; written += chunk.length) {
      chunk.fill(0);
      for (let off = 0; off < chunk.length; off += 2 * PAGE) randomFillSync(chunk, off, PAGE);
      fs.writeSync(fd, chunk, 0, Math.min(chunk.length, bytes - written));
    }
  } finally {
    fs.closeSync(fd);
  }
}

function buildContent(dir: string, totalMiB: number): { files: number; bytes: number } {
  const smallCount = 2000;
  const small = Buffer.alloc(2048);
  let bytes = 0;
  // Small CRIU-like images (core-*.img, fdinfo-*.img, ...): 2000 × 2 KiB ≈ 4 MiB.
  fs.mkdirSync(path.join(dir, 'criu-small'), { recursive: true });
  for (let i = 0; i < smallCount; i++) {
    randomFillSync(small);
    fs.writeFileSync(path.join(dir, 'criu-small', `fdinfo-${i}.img`), small);
    bytes += small.length;
  }
  const big = Math.max(1, totalMiB * 2 ** 20 - bytes);
  const sizes = [Math.floor(big * 0.7), Math.floor(big * 0.2), big - Math.floor(big * 0.7) - Math.floor(big * 0.2)];
  sizes.forEach((s, i) => writePageImage(path.join(dir, `pages-${i + 1}.img`), s));
  fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify({ ociVersion: '1.0.2' }));
  return { files: smallCount + sizes.length + 1, bytes: bytes + big };
}

function runTar(flags: string[], archive: string, dest: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const p = spawn('tar', [...flags, archive, '-C', dest], { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    p.stderr.on('data', (d: Buffer) => (err += d.toString()));
    p.once('error', reject);
    p.once('close', (code) => (code === 0 ? resolve() : reject(new Error(`tar -xf ${archive}: exit ${code}: ${err}`))));
  });
}

function fsType(dir: string): string {
  try {
    return execFileSync('stat', ['-f', '-c', '%T', dir], { encoding: 'utf8' }).trim();
  } catch {
    return 'unknown';
  }
}

const quietLog: WarnLogger = { warn: () => undefined };

export async function benchStaging(ctx: BenchContext): Promise<StagingResult> {
  const n = envCount('BENCH_STAGE_N', 5, 1, ctx.quick);
  const contentMiB = Number(process.env.BENCH_STAGE_MIB ?? (ctx.quick ? 64 : 256));
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'ferry-bench-staging-'));
  const destRoot = process.env.BENCH_STAGE_DIR ?? (fs.existsSync('/dev/shm') ? '/dev/shm' : os.tmpdir());
  const destDir = fs.mkdtempSync(path.join(destRoot, 'ferry-bench-staging-'));
  try {
    const src = path.join(work, 'content');
    fs.mkdirSync(src);
    const { files, bytes } = buildContent(src, contentMiB);
    const tarPath = path.join(work, 'checkpoint.tar');
    const gzPath = path.join(work, 'checkpoint.tar.gz');
    execFileSync('tar', ['-cf', tarPath, '-C', src, '.']);
    const zstPath = path.join(work, 'checkpoint.tar.zst');
    execFileSync('sh', ['-c', `gzip -1 -c ${JSON.stringify(tarPath)} > ${JSON.stringify(gzPath)}`]);
    execFileSync('zstd', ['-q', '-1', '-T1', '-o', zstPath, tarPath]);
    fs.rmSync(src, { recursive: true });
    const contentMiBExact = bytes / 2 ** 20;
    const formats: StagingFormatResult[] = [];
    const cases = [['tar', tarPath, ['-xf']], ['tar+gzip', gzPath, ['-xzf']], ['tar+zstd', zstPath, ['--zstd', '-xf']]] as const;
    for (const [format, archive, tarFlags] of cases) {
      const ferry: number[] = [];
      const gnu: number[] = [];
      // The archive is read once first so both start from a warm page cache, and each sample
      // starts after `sync` (not timed) so no one pays for the previous sample's writeback.
      fs.readFileSync(archive);
      execFileSync('sync');
      for (let i = 0; i < n; i++) {
        const order = i % 2 === 0 ? ['ferry', 'gnu'] : ['gnu', 'ferry'];
        for (const who of order) {
          const dest = path.join(destDir, `${who}-${i}`);
          fs.mkdirSync(dest);
          execFileSync('sync');
          const t0 = process.hrtime.bigint();
          if (who === 'ferry') {
            const r = await stageCheckpointArchive(archive, dest, quietLog);
            ferry.push(msSince(t0));
            if (r.skipped.length) throw new Error(`staging skipped entries of a clean archive: ${JSON.stringify(r.skipped.slice(0, 3))}`);
          } else {
            await runTar([...tarFlags], archive, dest);
            gnu.push(msSince(t0));
          }
          fs.rmSync(dest, { recursive: true });
        }
      }
      const ferryMs = summarize(ferry);
      const gnuTarMs = summarize(gnu);
      formats.push({
        format,
        tarCommand: `tar ${tarFlags.join(' ')}`,
        archiveMiB: fs.statSync(archive).size / 2 ** 20,
        ferryMs,
        gnuTarMs,
        ferryMiBps: contentMiBExact / (ferryMs.median / 1000),
        gnuTarMiBps: contentMiBExact / (gnuTarMs.median / 1000),
        ratio: ratio(ferryMs.median, gnuTarMs.median),
      });
      ctx.log(`staging ${format}: ferry ${ferryMs.median.toFixed(0)} ms, GNU tar ${gnuTarMs.median.toFixed(0)} ms`);
    }
    const gnuTar = execFileSync('tar', ['--version'], { encoding: 'utf8' }).split('\n')[0]!;
    return { n, destination: `${destRoot} (${fsType(destRoot)})`, contentMiB: contentMiBExact, files, gnuTar, formats };
  } finally {
    fs.rmSync(destDir, { recursive: true, force: true });
    fs.rmSync(work, { recursive: true, force: true });
  }
}
