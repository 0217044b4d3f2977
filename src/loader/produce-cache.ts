// `node <the launcher's node flags> build/produce-cache.js BUNDLE [eager]`: writes BUNDLE.cache
// for src/loader/code-cache.ts. contrib/bundle.js runs it at build time, once per bundle, in a
// process started with exactly the node flags the launcher uses: V8 refuses cached data made
// under other flags. `eager` compiles every function now (V8's --no-lazy, reset before the data
// is written so its flag hash matches a normal start); otherwise the cache holds only what V8
// compiles up front, and the rest is compiled lazily on first call as without a cache.
// First, as in entry.ts: the cache is made in the flag state the program runs in.
import './undo-launcher-flags';
import * as fs from 'node:fs';
import * as v8 from 'node:v8';
import * as vm from 'node:vm';
import { buildIdOf, CACHE_MAGIC, scriptSourceOf } from './code-cache';

function produce(file: string, eager: boolean): void {
  const source = fs.readFileSync(file, 'utf8');
  const buildId = buildIdOf(source);
  if (!buildId) throw new Error(`${file}: no build id (contrib/bundle.js writes one)`);
  if (eager) v8.setFlagsFromString('--no-lazy');
  const script = new vm.Script(scriptSourceOf(source), { filename: file });
  if (eager) v8.setFlagsFromString('--lazy');
  const data = script.createCachedData();
  const tmp = `${file}.cache.tmp`;
  fs.writeFileSync(tmp, Buffer.concat([Buffer.from(`${CACHE_MAGIC} ${buildId}\n`, 'latin1'), data]));
  fs.renameSync(tmp, `${file}.cache`);
}

const [file, mode] = process.argv.slice(2);
if (!file) throw new Error('usage: produce-cache.js BUNDLE [eager]');
produce(file, mode === 'eager');
