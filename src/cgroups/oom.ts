// OOM notification for one container, as the Go shim's pkg/oom/v1 and v2 do it, without any
// polling loop:
//  - v1: an eventfd registered in the memory cgroup's cgroup.event_control against
//    memory.oom_control; the kernel signals it on each OOM in the cgroup (and once more when
//    the cgroup is removed, which is told apart by the cgroup being gone). A native thread
//    waits on the eventfd (src/sys/native.ts watchFd).
//  - v2: inotify (fs.watch) on memory.events; the kernel modifies it on every memory event,
//    and an OOM kill is an increase of its `oom_kill` counter.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { eventfd, watchFd, type FdWatcher } from '../sys/native';
import { kv, parseKeyValues } from './parse';

export interface OomWatcher {
  /** Stops watching; no notification is delivered afterwards. Idempotent. */
  stop(): void;
}

/** cgroup v1: `onOom` runs once per OOM notification the kernel sends for `memoryDir`. */
export function watchOomV1(memoryDir: string, onOom: () => void): OomWatcher {
  const oomControl = path.join(memoryDir, 'memory.oom_control');
  const efd = eventfd();
  let watcher: FdWatcher | undefined;
  try {
    const cfd = fs.openSync(oomControl, 'r');
    try {
      // "<event fd> <control file fd>": the kernel takes its own references, so the control
      // file can be closed at once (the Go code does the same).
      fs.writeFileSync(path.join(memoryDir, 'cgroup.event_control'), `${efd} ${cfd}`);
    } finally {
      fs.closeSync(cfd);
    }
    watcher = watchFd(efd, () => {
      // Removing the cgroup also signals the eventfd: that is not an OOM.
      if (!fs.existsSync(oomControl)) {
        stop();
        return;
      }
      onOom();
    });
  } catch (err) {
    fs.closeSync(efd);
    throw err;
  }
  let stopped = false;
  function stop(): void {
    if (stopped) return;
    stopped = true;
    watcher?.stop();
    fs.closeSync(efd);
  }
  return { stop };
}

/**
 * cgroup v2: `onOom` runs once for each check that finds `oom_kill` in `<dir>/memory.events`
 * higher than before (the counter is read at start, so earlier kills are not reported).
 */
export function watchOomV2(dir: string, onOom: () => void): OomWatcher {
  const eventsFile = path.join(dir, 'memory.events');
  let last = readOomKill(eventsFile) ?? 0n;
  let stopped = false;
  let checking = false;
  let again = false;
  // inotify coalesces nothing for us: one write may give several 'change' events, and a check
  // may be running when the next arrives. Checks run one at a time; a change during a check
  // schedules exactly one more.
  const check = (): void => {
    if (stopped) return;
    if (checking) { again = true; return; }
    checking = true;
    fs.promises.readFile(eventsFile, 'utf8').then((text) => {
      const now = kv(parseKeyValues(text), 'oom_kill');
      if (now > last && !stopped) {
        last = now;
        onOom();
      }
    }, () => {
      // The cgroup is gone (ENOENT/ENODEV): nothing more will happen in it.
      if (!fs.existsSync(eventsFile)) stop();
    }).finally(() => {
      checking = false;
      if (again) { again = false; check(); }
    });
  };
  const watcher = fs.watch(eventsFile, { persistent: false }, () => check());
  watcher.on('error', () => stop());
  function stop(): void {
    if (stopped) return;
    stopped = true;
    watcher.close();
  }
  return { stop };
}

function readOomKill(file: string): bigint | undefined {
  try {
    return kv(parseKeyValues(fs.readFileSync(file, 'utf8')), 'oom_kill');
  } catch {
    return undefined;
  }
}
