// A copy of test/fixtures/runc-wrapper.sh in a directory of its own, given to a task as its
// runtime binary (Options.BinaryName): the ctr flags that name it for the lane's runtime, the
// calls it recorded, and switches (files beside it) that make it misbehave.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { REPO_ROOT } from './containerd';
import { isGoShim, type Lane } from './lanes';

export interface WrapperCall {
  command: string;
  cwd: string;
  /** Whether config.json was readable from the working directory. */
  config: boolean;
  /** ./init.pid after a create (else '-'). */
  pid: string;
  args: string;
}

export type WrapperSwitch = 'fatal-create' | 'stderr-start' | 'kill-created' | 'hold-exec' | 'exec-release' | 'slow-kill-all' | 'slow-kill-exit';

export class RuncWrapper {
  readonly dir: string;
  readonly binary: string;

  constructor() {
    this.dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ferry-runc-wrapper-'));
    this.binary = path.join(this.dir, 'runc');
    fs.copyFileSync(path.join(REPO_ROOT, 'test/fixtures/runc-wrapper.sh'), this.binary);
    fs.chmodSync(this.binary, 0o755);
  }

  /**
   * `ctr run` / `ctr c create` flags naming the wrapper: ctr sends containerd.runc.v1.Options
   * with --runc-binary only to io.containerd.runc.v2; ferry gets it through a runtime config
   * file (runtimeoptions.v1.Options), as CRI configs give it.
   */
  runFlags(lane: Lane): string[] {
    if (isGoShim(lane)) return ['--runc-binary', this.binary];
    const config = path.join(this.dir, 'runtime.toml');
    fs.writeFileSync(config, `BinaryName = ${JSON.stringify(this.binary)}\n`);
    return ['--runtime-config-path', config];
  }

  set(name: WrapperSwitch, on = true): void {
    const p = path.join(this.dir, name);
    if (on) fs.writeFileSync(p, '');
    else fs.rmSync(p, { force: true });
  }

  has(file: 'exec-held'): boolean {
    return fs.existsSync(path.join(this.dir, file));
  }

  calls(): WrapperCall[] {
    let text = '';
    try { text = fs.readFileSync(path.join(this.dir, 'calls'), 'utf8'); } catch { return []; }
    return text.split('\n').filter(Boolean).map((line) => {
      const m = /^(\S+) cwd=(.*?) config=(yes|no) pid=(\S+) args=(.*)$/.exec(line);
      if (!m) throw new Error(`unexpected wrapper record: ${line}`);
      return { command: m[1]!, cwd: m[2]!, config: m[3] === 'yes', pid: m[4]!, args: m[5]! };
    });
  }

  remove(): void {
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}
