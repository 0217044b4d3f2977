// Removes a container the way `ctr run --rm` / `ctr c rm` do — task (killed first if it runs),
// container record, its snapshot — plus the per-container state a ferry restore made for it
// (network namespace, substitute bind sources), named in the record's label.
import { deleteContainer, findContainer, removeSnapshot, type Connection } from '../containerd';
import { ContainerState, STATE_DIR_LABEL } from './container-state';
import { removeTask } from './restore-task';

export async function removeContainer(conn: Connection, id: string): Promise<void> {
  const record = await findContainer(conn, id);
  await removeTask(conn, id);
  if (!record) return;
  await deleteContainer(conn, id);
  if (record.snapshotKey) {
    await removeSnapshot(conn, record.snapshotter, record.snapshotKey).catch((err: { code?: number }) => {
      if (err.code !== 5 /* NOT_FOUND */) throw err;
    });
  }
  const stateDir = record.labels[STATE_DIR_LABEL];
  if (stateDir) await ContainerState.removeDir(stateDir);
}
