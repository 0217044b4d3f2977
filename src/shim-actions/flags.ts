// The shim's command line, parsed as Go's `flag` package does (containerd builds it for Go
// shims): `-name value`, `-name=value`, `--name value`; booleans take no value; the first
// argument that is not a flag is the action (`start`, `delete`; none = run the daemon).

export interface ShimFlags {
  namespace: string;
  address: string;
  publishBinary: string;
  id: string;
  bundle: string;
  socket: string;
  debug: boolean;
  version: boolean;
  action: string;
  /** The arguments as given, minus the action (what the daemon is started with). */
  argsWithoutAction: string[];
}

const STRING_FLAGS: Record<string, keyof ShimFlags> = {
  namespace: 'namespace', address: 'address', 'publish-binary': 'publishBinary', id: 'id',
  bundle: 'bundle', socket: 'socket',
};
const BOOL_FLAGS: Record<string, keyof ShimFlags> = { debug: 'debug', v: 'version' };

export function parseFlags(argv: string[]): ShimFlags {
  const f: ShimFlags = {
    namespace: '', address: '', publishBinary: '', id: '', bundle: '', socket: '',
    debug: false, version: false, action: '', argsWithoutAction: [],
  };
  const rest: string[] = [];
  let i = 0;
  for (; i < argv.length; i++) {
    const a = argv[i];
    if (!a.startsWith('-') || a === '-' ) break;
    if (a === '--') { i++; break; }
    const body = a.replace(/^--?/, '');
    const eq = body.indexOf('=');
    const name = eq >= 0 ? body.slice(0, eq) : body;
    if (name in BOOL_FLAGS) {
      const v = eq >= 0 ? body.slice(eq + 1) : 'true';
      (f as unknown as Record<string, unknown>)[BOOL_FLAGS[name]] = v === 'true' || v === '1';
      rest.push(a);
    } else if (name in STRING_FLAGS) {
      let v: string;
      if (eq >= 0) { v = body.slice(eq + 1); rest.push(a); }
      else {
        v = argv[++i] ?? '';
        rest.push(a, v);
      }
      (f as unknown as Record<string, unknown>)[STRING_FLAGS[name]] = v;
    } else {
      throw new Error(`flag provided but not defined: -${name}`);
    }
  }
  f.action = argv[i] ?? '';
  f.argsWithoutAction = [...rest, ...argv.slice(i + 1)];
  return f;
}
