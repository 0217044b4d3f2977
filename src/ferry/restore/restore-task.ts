// Creates a container's task from an unpacked CRIU image directory through containerd's
// Tasks.Create, so the shim's own restore path runs (for ferry's shim: the content checks,
// verify, the pod/namespace check; for containerd-shim-runc-v2: runc restore's). How a path
// reaches the shim depends on the containerd (read in its tasks service):
//  - 2.x: a checkpoint descriptor with the `RestoreFromPath` annotation (what its CRI sends).
//    containerd then calls the shim's Create and, right after it, Start itself — so the task
//    runs when Create returns (plugins/services/tasks/local.go, core/runtime/v2/shim.go @v2.1.9).
//    It would also apply `<dir>/../rootfs-diff.tar` into the bundle: ferry's image directory has
//    no such sibling, the root file system is already complete in the snapshot.
//  - 1.7 has no path descriptor (a descriptor must be a criu.tar in the content store, which
//    containerd unpacks into a temp dir it never removes, containerd issue 10166). It takes a
//    path in the task options instead: runc Options.criu_image_path, which its tasks service
//    reads for runc's runtime names (getRestorePath @v1.7.24) and ferry's shim reads itself.
//    Create then Start, as for any task.
// Options.criu_work_path points CRIU's logs (restore.log, stats-restore) at ferry's work dir,
// for both shims, so a failure can quote restore.log and --print-stats can read the stats.
import { runcOptionsAny, callTasks, type Connection, type ContainerdVersion, type Mount } from '../containerd';

export interface RestoreTaskRequest {
  containerId: string;
  rootfs: Mount[];
  imagePath: string;
  workPath: string;
  stdout?: string;
  stderr?: string;
  stdin?: string;
}

export function usesRestoreFromPath(version: ContainerdVersion): boolean {
  return version.major >= 2;
}

/** Creates and starts the restored task; returns its pid. */
export async function createRestoredTask(conn: Connection, version: ContainerdVersion, r: RestoreTaskRequest): Promise<number> {
  const fromPath = usesRestoreFromPath(version);
  const options = runcOptionsAny(fromPath ? { criuWorkPath: r.workPath } : { criuImagePath: r.imagePath, criuWorkPath: r.workPath });
  const created = await callTasks(conn, 'create', {
    containerId: r.containerId,
    rootfs: r.rootfs,
    stdin: r.stdin ?? '',
    stdout: r.stdout ?? '',
    stderr: r.stderr ?? '',
    terminal: false,
    options,
    ...(fromPath ? { checkpoint: { mediaType: '', digest: '', size: 0, annotations: { RestoreFromPath: r.imagePath } } } : {}),
  });
  // On 1.7 the restore happens at Start (the shim's Create only records it): Start has the pid.
  if (!fromPath) return (await callTasks(conn, 'start', { containerId: r.containerId, execId: '' })).pid;
  return created.pid;
}

/** Deletes the task (killing it first) if it exists; for rollback. */
export async function removeTask(conn: Connection, containerId: string): Promise<void> {
  await callTasks(conn, 'kill', { containerId, execId: '', signal: 9, all: true }).catch(() => undefined);
  for (let i = 0; i < 50; i++) {
    try {
      await callTasks(conn, 'delete', { containerId });
      return;
    } catch (err) {
      const code = (err as { code?: number }).code;
      if (code === 5 /* NOT_FOUND */) return;
      // FAILED_PRECONDITION: still running; give the kill a moment.
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}
