// Typed wrapper around the ferry_sys N-API addon (native/ferry_sys.c): the Linux system calls a
// containerd shim needs and Node has no API for. This is the ONLY module that loads the addon;
// everything else imports these functions.
//
// Every system call failure throws an Error with `.code` = errno name ('ENOENT', 'EPERM'),
// `.errno` = the (positive) errno number, `.syscall`, and a message such as
// `mount /a -> /b: Operation not permitted`. Use isErrnoError() to narrow.
import * as fs from 'fs';
import { createRequire } from 'module';
import * as path from 'path';

/** An Error raised by a failed system call in the addon. */
export interface ErrnoError extends Error {
  code: string;
  errno: number;
  syscall: string;
}

/** True if `err` is a system call error with the given errno name (or any, if omitted). */
export function isErrnoError(err: unknown, code?: string): err is ErrnoError {
  // Duck-typed, not instanceof: the addon's Errors come from Node's main context, which is not
  // the global Error of a jest test (or vm) context.
  if (typeof err !== 'object' || err === null) return false;
  const e = err as Partial<ErrnoError>;
  return typeof e.message === 'string' && typeof e.code === 'string' && typeof e.errno === 'number' &&
    (code === undefined || e.code === code);
}

/** Result of reaping a process with waitpidNoHang. */
export interface WaitResult {
  pid: number;
  /** WEXITSTATUS, or 128 + signal number when the process was killed (containerd's convention). */
  exitStatus: number;
  /** True when the process was terminated by a signal. */
  signaled: boolean;
}

/** Handle of a watchFd watcher. */
export interface FdWatcher {
  /** Ends the watcher thread (synchronously); no callback runs afterwards. Idempotent. */
  stop(): void;
}

interface Addon {
  setChildSubreaper(): void;
  waitpidNoHang(pid: number): WaitResult | null;
  spawnProcess(file: string, argv: string[], envp: readonly string[], cwd: string, fds: [number, number, number], onExit: (exitStatus: number, signaled: boolean) => void): number;
  pidfdSupported(): boolean;
  pipe2(flags: number): [number, number];
  dup(fd: number): number;
  setCloexec(fd: number, on: boolean): void;
  setWinsize(fd: number, rows: number, cols: number): void;
  getWinsize(fd: number): { rows: number; cols: number };
  listenUnix(path: string, backlog: number): number;
  detachSession(): void;
  receiveFd(listenFd: number, timeoutMs: number): Promise<{ fd: number; data: string }>;
  mount(source: string, target: string, fstype: string, flags: number, data: string): void;
  umount2(target: string, flags: number): void;
  umount2Async(target: string, flags: number): Promise<void>;
  eventfd(): number;
  mkfifo(path: string, mode: number): void;
  queuedBytes(fd: number): number;
  watchFd(fd: number, onReadable: (value: bigint) => void): FdWatcher;
  createFileFrom(path: string, mode: number, srcFd: number, offset: number, length: number, methods: number, failFirstCopyWith: number): Promise<FileCopyResult>;
  mallocTrim(): boolean;
  mapAsciiFile(file: string): string | null;
  setV8Flags(flags: string): boolean;
  lowMemoryNotification(): boolean;
  constants: Record<string, number>;
}

/** How createFileFrom moved the bytes: in the kernel (copy_file_range, sendfile) or through a buffer. */
export type FileCopyMethod = 'copy_file_range' | 'sendfile' | 'read-write';

export interface FileCopyResult {
  /** Bytes copied: less than asked when the source ended first. */
  copied: number;
  /** The method that copied the last bytes ('none' when nothing was copied). */
  method: FileCopyMethod | 'none';
}

const COPY_METHOD_BITS: Record<FileCopyMethod, number> = { copy_file_range: 1, sendfile: 2, 'read-write': 4 };

let addon: Addon | undefined;

const ADDON_FILE = 'ferry_sys.node';

/**
 * The package root: the nearest directory above `from` holding binding.gyp. Walking up works
 * both for src/sys/*.ts (ts-jest) and for the esbuild bundle dist/shim.js.
 */
export function findPackageRoot(from: string = __dirname): string {
  for (let dir = path.resolve(from); ; dir = path.dirname(dir)) {
    if (fs.existsSync(path.join(dir, 'binding.gyp'))) return dir;
    if (path.dirname(dir) === dir) throw new Error(`ferry_sys: no binding.gyp above ${from}; is ferry installed?`);
  }
}

/** Loads the addon on first use, so modules that import this one start without it. */
function native(): Addon {
  if (addon === undefined) {
    // Beside the bundle (dist/, or $PREFIX/lib/ferry once installed), else the build tree's.
    const beside = path.join(__dirname, ADDON_FILE);
    const file = fs.existsSync(beside) ? beside : path.join(findPackageRoot(), 'build', 'Release', ADDON_FILE);
    // A require esbuild cannot see: the .node file stays outside the bundle and is loaded at runtime.
    const runtimeRequire = createRequire(file);
    try {
      addon = runtimeRequire(file) as Addon;
    } catch (err) {
      throw new Error(`ferry_sys: cannot load ${file} (build it with node-gyp rebuild): ${(err as Error).message}`, { cause: err });
    }
  }
  return addon;
}

/** The addon's compile-time constants (kernel header values), for tests that check MS below. */
export function nativeConstants(): Readonly<Record<string, number>> {
  return native().constants;
}

function checkFd(fd: number, what = 'fd'): void {
  if (!Number.isInteger(fd) || fd < 0) throw new RangeError(`${what} must be a non-negative integer, got ${fd}`);
}

/**
 * prctl(PR_SET_CHILD_SUBREAPER, 1). After `runc create` exits, the container's init (and later
 * `runc exec` processes) are re-parented to the nearest subreaper; the shim must be it so it can
 * reap them and report their exit status. Node has no API for this.
 */
export function setChildSubreaper(): void {
  native().setChildSubreaper();
}

/**
 * waitpid(pid, WNOHANG): reaps `pid` if it has exited, returns null while it runs. Only a single
 * positive pid is accepted: waitpid(-1) would steal children that libuv spawned and waits for
 * by pid, and their child_process 'exit' event would never fire (NOTES.md §3). Throws ECHILD
 * if `pid` is not (or no longer) our child.
 */
export function waitpidNoHang(pid: number): WaitResult | null {
  if (!Number.isInteger(pid) || pid <= 0) throw new RangeError(`waitpidNoHang needs one positive pid, got ${pid}`);
  return native().waitpidNoHang(pid);
}

/**
 * Starts `file` (looked up in the daemon's PATH when it has no slash) with `argv` (argv[0]
 * included), the environment `envp` ("KEY=value" strings) and working directory `cwd` ('' =
 * the daemon's), and returns its pid. posix_spawnp: glibc clones with CLONE_VM|CLONE_VFORK, so
 * the daemon's page tables are not copied as by fork() (child_process); the call returns once
 * the child has exec'd, and an exec failure throws its errno (ENOENT, EACCES, .syscall
 * 'posix_spawnp'). `fds` become the child's 0, 1, 2 (null = /dev/null); every other fd is
 * closed in the child. Signal dispositions are reset to the defaults and the signal mask is
 * empty, as in libuv's children. The umask is this process's at the call.
 *
 * The child is not libuv's: the addon watches its pidfd in libuv's epoll (a uv_poll handle that
 * keeps the event loop alive, no thread, no SIGCHLD listener), reaps it with waitpid(pid) and
 * calls `onExit` with its status (128 + signal when `signaled`). A subreaper's scan must leave
 * the pid alone meanwhile (Reaper.leaveToOwner). Needs pidfd_open (Linux 5.3; pidfdSupported).
 */
export function spawnProcess(
  file: string, argv: readonly string[], envp: readonly string[], cwd: string,
  fds: readonly [number | null, number | null, number | null], onExit: (exitStatus: number, signaled: boolean) => void,
): number {
  if (file === '' || file.includes('\0')) throw new RangeError(`spawnProcess needs a file name, got ${JSON.stringify(file)}`);
  if (argv.length === 0) throw new RangeError('spawnProcess needs argv[0]');
  for (const s of [...argv, ...envp, cwd]) {
    if (typeof s !== 'string' || s.includes('\0')) throw new RangeError('spawnProcess: arguments, environment and cwd must be strings without NUL');
  }
  const nums = fds.map((fd) => {
    if (fd === null) return -1;
    checkFd(fd);
    return fd;
  }) as [number, number, number];
  return native().spawnProcess(file, [...argv], envp, cwd, nums, onExit);
}

/** Whether the kernel has pidfd_open (Linux 5.3+), which spawnProcess needs to learn of the exit. */
export function pidfdSupported(): boolean {
  return native().pidfdSupported();
}

/**
 * pipe2: a real kernel pipe. Node's spawn stdio 'pipe' gives socketpairs, and a container
 * started by `runc create` cannot open /dev/stdout on a socket (ENXIO); a pipe works.
 * Both ends are close-on-exec unless `cloexec: false`: by default, because a write end leaked
 * into an unrelated child (the shim spawns runc concurrently) would hold off EOF forever.
 * spawn's stdio still works: child_process dup2()s stdio fds, which clears the flag.
 */
export function pipe2(opts: { cloexec?: boolean; nonblock?: boolean } = {}): [readFd: number, writeFd: number] {
  const c = native().constants;
  const flags = ((opts.cloexec ?? true) ? c.O_CLOEXEC : 0) | (opts.nonblock ? c.O_NONBLOCK : 0);
  return native().pipe2(flags);
}

/**
 * dup with close-on-exec (fcntl F_DUPFD_CLOEXEC). A pty master needs two independent fds
 * (tty.ReadStream and tty.WriteStream each own and close theirs).
 */
export function dup(fd: number): number {
  checkFd(fd);
  return native().dup(fd);
}

/**
 * mkfifo(2): `ferry run` hands containerd FIFOs for a task's stdio and reads them, as ctr does;
 * Node cannot make one. The mode is masked by the umask, as mkfifo(2) does.
 */
export function mkfifo(path: string, mode = 0o600): void {
  if (!Number.isInteger(mode) || mode < 0 || mode > 0o7777) throw new RangeError(`mkfifo mode must be 0..07777, got ${mode}`);
  native().mkfifo(path, mode);
}

/**
 * ioctl FIONREAD: the bytes waiting in a pipe's or FIFO's buffer (from any of its ends). The
 * shim holds its output FIFOs open until containerd's client has read them (src/io/fifo.ts).
 */
export function queuedBytes(fd: number): number {
  checkFd(fd);
  return native().queuedBytes(fd);
}

/** Sets or clears FD_CLOEXEC, e.g. to let one chosen fd survive into a spawned process. */
export function setCloexec(fd: number, on: boolean): void {
  checkFd(fd);
  native().setCloexec(fd, on);
}

/** ioctl TIOCSWINSZ: resizes a container's pty (Task.ResizePty); Node can only resize its own tty. */
export function setWinsize(fd: number, rows: number, cols: number): void {
  checkFd(fd);
  for (const [name, v] of [['rows', rows], ['cols', cols]] as const) {
    if (!Number.isInteger(v) || v < 0 || v > 0xffff) throw new RangeError(`${name} must be 0..65535, got ${v}`);
  }
  native().setWinsize(fd, rows, cols);
}

/** ioctl TIOCGWINSZ: reads a pty's window size (used by tests to check setWinsize). */
export function getWinsize(fd: number): { rows: number; cols: number } {
  checkFd(fd);
  return native().getWinsize(fd);
}

/**
 * A listening AF_UNIX stream socket (close-on-exec) bound at `path`, as a raw fd. It is runc's
 * --console-socket (backlog 1: Node's net.Server cannot receive SCM_RIGHTS, so receiveFd below
 * does the accept itself), and the daemon's socket, made by `start` before the daemon's
 * listener exists (connections wait in the backlog). Close it with fs.closeSync and unlink `path` when done.
 */
export function listenUnix(socketPath: string, backlog = 1): number {
  if (!Number.isInteger(backlog) || backlog < 1 || backlog > 4096) throw new RangeError(`backlog must be an integer in 1..4096, got ${backlog}`);
  return native().listenUnix(socketPath, backlog);
}

/**
 * setsid() and /dev/null on fds 0, 1 and 2: the shim's `start` process, which goes on as the
 * daemon, leaves containerd's session and the pipe containerd reads start's output from
 * (src/shim-actions/start.ts). Throws EPERM if this process leads a process group.
 */
export function detachSession(): void {
  native().detachSession();
}

/**
 * Accepts one connection on `listenFd` and receives one SCM_RIGHTS file descriptor plus the
 * message text (runc sends the pty master with data "/dev/ptmx"). Runs on the libuv threadpool,
 * so the event loop is never blocked; the received fd is close-on-exec and the accepted
 * connection is closed. Rejects with code 'ETIMEDOUT' when nothing arrives within `timeoutMs`,
 * and 'EBADMSG' if the message carried no fd.
 */
export function receiveFd(listenFd: number, timeoutMs: number): Promise<{ fd: number; data: string }> {
  checkFd(listenFd, 'listenFd');
  if (!Number.isInteger(timeoutMs) || timeoutMs < 0 || timeoutMs > 0x7fffffff) {
    throw new RangeError(`timeoutMs must be a non-negative integer, got ${timeoutMs}`);
  }
  return native().receiveFd(listenFd, timeoutMs);
}

/**
 * mount(2): mounts the container rootfs (Task.Create's `rootfs` mounts) and changes
 * propagation. Empty `source`, `fstype` or `data` are passed as NULL (remounts and
 * propagation changes take none).
 */
export function mount(source: string, target: string, fstype: string, flags: number, data: string): void {
  if (!Number.isInteger(flags) || flags < 0) throw new RangeError(`mount flags must be a non-negative integer, got ${flags}`);
  native().mount(source, target, fstype, flags, data);
}

/** umount2(2): unmounts the rootfs at Delete; MNT_DETACH lets a busy mount go lazily. */
export function umount2(target: string, flags: number): void {
  native().umount2(target, flags);
}

/**
 * umount2(2) on the libuv threadpool, for the rootfs at Delete: the last unmount of an overlay
 * syncs its dirty upper dir inside the call (~200 ms after a --rw restore), which must not stop
 * the event loop. Rejects with the errno error (code 'EINVAL' for a path not mounted).
 */
export function umount2Async(target: string, flags: number): Promise<void> {
  return native().umount2Async(target, flags);
}

/** mount(2) flags (Linux UAPI values, identical on every architecture; checked against the headers in tests). */
export const MS = Object.freeze({
  RDONLY: 1,
  NOSUID: 2,
  NODEV: 4,
  NOEXEC: 8,
  SYNCHRONOUS: 16,
  REMOUNT: 32,
  MANDLOCK: 64,
  DIRSYNC: 128,
  NOATIME: 1024,
  NODIRATIME: 2048,
  BIND: 4096,
  REC: 16384,
  PRIVATE: 1 << 18,
  SLAVE: 1 << 19,
  SHARED: 1 << 20,
  RELATIME: 1 << 21,
  STRICTATIME: 1 << 24,
}) as {
  readonly RDONLY: number; readonly NOSUID: number; readonly NODEV: number; readonly NOEXEC: number;
  readonly REMOUNT: number; readonly BIND: number; readonly REC: number; readonly PRIVATE: number;
  readonly SLAVE: number; readonly SHARED: number; readonly NOATIME: number; readonly NODIRATIME: number;
  readonly RELATIME: number; readonly STRICTATIME: number; readonly SYNCHRONOUS: number;
  readonly DIRSYNC: number; readonly MANDLOCK?: number;
};

/** umount2 flag: detach now, clean up when no longer busy. */
export const MNT_DETACH = 2;

/**
 * eventfd(0, EFD_CLOEXEC): a counter fd. cgroup v1 OOM notifications are delivered by
 * registering one in cgroup.event_control; it becomes readable on each OOM.
 */
export function eventfd(): number {
  return native().eventfd();
}

/**
 * Calls `onReadable` with each 8-byte counter read from `fd` (an eventfd). A native thread
 * waits on the fd, so no libuv threadpool thread is held (a blocked fs.read would hold one
 * forever, NOTES.md §3); values reach JS through a thread-safe function. The watcher does not
 * keep the process alive; stop() ends it. It also ends by itself if the fd reports an error
 * or hang-up. The caller still owns `fd` and closes it after stop().
 */
export function watchFd(fd: number, onReadable: (value: bigint) => void): FdWatcher {
  checkFd(fd);
  if (typeof onReadable !== 'function') throw new TypeError('watchFd needs a callback');
  return native().watchFd(fd, onReadable);
}

export interface CreateFileFromOptions {
  /** The methods createFileFrom may use, tried in this order: copy_file_range, sendfile, read-write. Default all (tests narrow it). */
  methods?: FileCopyMethod[];
  /** Tests: the first copy_file_range call fails with this errno name (EXDEV, EINVAL, ENOSYS, EOPNOTSUPP). */
  failFirstCopyWith?: 'EXDEV' | 'EINVAL' | 'ENOSYS' | 'EOPNOTSUPP';
}

/**
 * Creates the new file `path` (O_CREAT|O_EXCL|O_NOFOLLOW: never an existing file, never through
 * a symlink as the last component) and fills it with `length` bytes of `srcFd` from `offset`,
 * then sets `mode` (fchmod, so the umask does not decide) and closes it: all in one job on the
 * libuv threadpool. The bytes are copied inside the kernel (copy_file_range; sendfile across
 * filesystems, where copy_file_range says EXDEV; pread + write if neither works). `srcFd` is read
 * at explicit offsets, so concurrent calls may share it. A source that ends early is no error:
 * `copied` < `length` says so and the caller decides. Rejects with the errno of the failed call
 * (.syscall 'open', 'copy_file_range', 'sendfile', 'pread', 'write', 'fchmod', 'close'); the file
 * may then exist, partly written.
 */
export function createFileFrom(
  path: string, mode: number, srcFd: number, offset: number, length: number, opts: CreateFileFromOptions = {},
): Promise<FileCopyResult> {
  checkFd(srcFd, 'srcFd');
  if (!Number.isInteger(mode) || mode < 0 || mode > 0o7777) throw new RangeError(`mode must be 0..07777, got ${mode}`);
  for (const [name, v] of [['offset', offset], ['length', length]] as const) {
    if (!Number.isSafeInteger(v) || v < 0) throw new RangeError(`${name} must be a non-negative integer, got ${v}`);
  }
  const methods = (opts.methods ?? (Object.keys(COPY_METHOD_BITS) as FileCopyMethod[]))
    .reduce((bits, m) => bits | COPY_METHOD_BITS[m], 0);
  if (methods === 0) throw new RangeError('createFileFrom: no copy method allowed');
  const fail = opts.failFirstCopyWith ? native().constants[opts.failFirstCopyWith] : 0;
  return native().createFileFrom(path, mode, srcFd, offset, length, methods, fail);
}

/**
 * malloc_trim(0): hands the free pages inside glibc's heaps back to the kernel. free() returns
 * only the top of the main arena; what Node's and V8's malloc()s freed in the middle of a heap
 * or in another thread's arena stays resident until this. Returns whether anything was released.
 */
export function mallocTrim(): boolean {
  return native().mallocTrim();
}

/**
 * The contents of `file` as a string backed by a read-only mapping of it (the page cache, shared by
 * every process that maps it) instead of V8's heap; null when the file is empty or not pure ASCII.
 * For program bundles (src/loader/code-cache.ts), whose source V8 keeps for the program's life;
 * the file must only ever be replaced by rename (native/ferry_sys.c says why).
 */
export function mapAsciiFile(file: string): string | null {
  return native().mapAsciiFile(file);
}

/**
 * Sets V8 flags (a space-separated list, as on node's command line) without loading node's `v8`
 * module, which a program started with V8 flags would compile from source. For
 * src/loader/launcher-flags.ts only; false when node does not export V8's function for it.
 */
export function setV8Flags(flags: string): boolean {
  return native().setV8Flags(flags);
}

/**
 * V8's low-memory notification: full collections that also hand V8's free heap memory (an emptied
 * semi-space, free ranges inside pages) back to the kernel, which gc() keeps. For the daemon's
 * memory settler (src/daemon/memory-settler.ts); false when node does not export V8's function.
 */
export function lowMemoryNotification(): boolean {
  return native().lowMemoryNotification();
}
