// The CRI part of the test containerd's config, built from the snippets users copy
// (contrib/kubernetes/containerd-*-ferry*.toml) so that what the tests run is what the docs
// hand out: each snippet goes in verbatim except for two changes that a test machine needs, and
// each change must match exactly once or the build of the config fails (a snippet edited so
// that a change no longer applies is noticed at once, not silently tested in another form):
//  - `runtime_path` names this checkout's shim instead of /usr/local/bin's;
//  - the options table gets `Root = <private dir>`: runc's state root would otherwise be
//    /run/containerd/runc/k8s.io, shared by every CRI containerd on the machine.
// Around the snippets: what a node with kubelet has and this machine lacks (no CNI, no
// CAP_SYS_RESOURCE for the sandbox's oom_score_adj -998, a private pause image and registry
// config), and runc's own handler for side-by-side tests.
import * as fs from 'node:fs';
import * as path from 'node:path';

export type CriContainerdVersion = '1.7' | '2.1';

/** The CRI runtime handlers a test containerd has (handler names as in contrib/). */
export const CRI_HANDLERS = {
  /** runtime_type io.containerd.ferry.v2 (contrib/kubernetes/containerd-*-ferry.toml). */
  ferry: 'ferry',
  /** runtime_type io.containerd.runc.v2 with runtime_path = ferry's shim (…-ferry-as-runc.toml). */
  ferryAsRunc: 'ferry-as-runc',
  /** containerd's own runc shim, the reference. */
  runc: 'runc',
} as const;

export interface CriConfigInput {
  version: CriContainerdVersion;
  repoRoot: string;
  /** The instance's private dir (runc roots, CNI dirs, registry config live under it). */
  dir: string;
  pauseImage: string;
  /** containerd's registry config_path (hosts.toml dirs); created empty when unused. */
  registryConfigDir: string;
}

/** The installed path every snippet names for runtime_path. */
const INSTALLED_SHIM = '/usr/local/bin/containerd-shim-ferry-v2';

export function snippetPath(repoRoot: string, version: CriContainerdVersion, form: 'ferry' | 'ferry-as-runc'): string {
  return path.join(repoRoot, 'contrib', 'kubernetes', `containerd-${version === '1.7' ? '1.7' : '2.x'}-${form}.toml`);
}

/** The prefix of CRI runtime tables in each config schema. */
function runtimesTable(version: CriContainerdVersion): string {
  return version === '1.7' ? 'plugins."io.containerd.grpc.v1.cri".containerd.runtimes' : "plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes";
}

/** Replaces `from` by `to`, which must occur exactly once in `text`. */
function replaceOnce(text: string, from: string, to: string, what: string): string {
  const at = text.indexOf(from);
  if (at < 0 || text.indexOf(from, at + 1) >= 0) {
    throw new Error(`${what}: expected exactly one ${JSON.stringify(from)}; was the snippet changed?`);
  }
  return text.slice(0, at) + to + text.slice(at + from.length);
}

const q = (s: string) => JSON.stringify(s); // TOML basic strings accept JSON string escapes

/** A snippet adapted to this machine (see the header). */
export function adaptSnippet(input: CriConfigInput, form: 'ferry' | 'ferry-as-runc'): string {
  const file = snippetPath(input.repoRoot, input.version, form);
  let text = fs.readFileSync(file, 'utf8');
  const optionsHeader = `[${runtimesTable(input.version)}.${form}.options]`;
  text = replaceOnce(text, `${optionsHeader}\n`, `${optionsHeader}\n    Root = ${q(path.join(input.dir, 'runc', form))}\n`, file);
  if (form === 'ferry-as-runc') {
    const quote = input.version === '1.7' ? '"' : "'";
    text = replaceOnce(text, `runtime_path = ${quote}${INSTALLED_SHIM}${quote}`, `runtime_path = ${q(path.join(input.repoRoot, 'shim', 'containerd-shim-ferry-v2'))}`, file);
  }
  return text;
}

/** runc roots of the handlers (for cleanup: each holds `<namespace>/<container id>` state). */
export function criRuncRoots(dir: string): string[] {
  return Object.values(CRI_HANDLERS).map((h) => path.join(dir, 'runc', h));
}

/** The CRI sections of the test config (appended to the base config). */
export function criConfigToml(input: CriConfigInput): string {
  const { dir } = input;
  const cniBin = path.join(dir, 'cni', 'bin');
  const cniConf = path.join(dir, 'cni', 'net.d');
  for (const d of [cniBin, cniConf, input.registryConfigDir]) fs.mkdirSync(d, { recursive: true });
  const runcRoot = q(path.join(dir, 'runc', CRI_HANDLERS.runc));
  const rt = runtimesTable(input.version);
  const common = [adaptSnippet(input, 'ferry'), adaptSnippet(input, 'ferry-as-runc')];
  if (input.version === '1.7') {
    return [
      '[plugins."io.containerd.grpc.v1.cri"]',
      `  sandbox_image = ${q(input.pauseImage)}`,
      '  restrict_oom_score_adj = true',
      '  enable_cdi = false',
      '  stream_server_address = "127.0.0.1"',
      '  stream_server_port = "0"',
      '  [plugins."io.containerd.grpc.v1.cri".containerd]',
      '    default_runtime_name = "runc"',
      `  [${rt}.runc]`,
      '    runtime_type = "io.containerd.runc.v2"',
      `  [${rt}.runc.options]`,
      `    Root = ${runcRoot}`,
      '  [plugins."io.containerd.grpc.v1.cri".cni]',
      `    bin_dir = ${q(cniBin)}`,
      `    conf_dir = ${q(cniConf)}`,
      '  [plugins."io.containerd.grpc.v1.cri".registry]',
      `    config_path = ${q(input.registryConfigDir)}`,
      '',
      ...common,
    ].join('\n');
  }
  return [
    "[plugins.'io.containerd.cri.v1.images']",
    "  [plugins.'io.containerd.cri.v1.images'.pinned_images]",
    `    sandbox = ${q(input.pauseImage)}`,
    "  [plugins.'io.containerd.cri.v1.images'.registry]",
    `    config_path = ${q(input.registryConfigDir)}`,
    "[plugins.'io.containerd.cri.v1.runtime']",
    '  restrict_oom_score_adj = true',
    '  enable_cdi = false',
    "  [plugins.'io.containerd.cri.v1.runtime'.containerd]",
    "    default_runtime_name = 'runc'",
    `  [${rt}.runc]`,
    "    runtime_type = 'io.containerd.runc.v2'",
    `  [${rt}.runc.options]`,
    `    Root = ${runcRoot}`,
    "  [plugins.'io.containerd.cri.v1.runtime'.cni]",
    `    bin_dirs = [${q(cniBin)}]`,
    `    conf_dir = ${q(cniConf)}`,
    "[plugins.'io.containerd.grpc.v1.cri']",
    "  stream_server_address = '127.0.0.1'",
    "  stream_server_port = '0'",
    '',
    ...common,
  ].join('\n');
}
