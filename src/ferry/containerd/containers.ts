// containerd.services.containers.v1.Containers: container records (metadata: spec, runtime,
// snapshot, labels). A container record is not a task: the task is the running process.
import { Container, ContainersDefinition } from '../../../api/gen/containerd/services/containers/v1/containers';
import type { Any } from '../../../api/gen/google/protobuf/any';
import type { Connection, Partial2 } from './connection';

export type { Container };

/** The type URL containerd's client gives an OCI runtime spec. */
export const SPEC_TYPE_URL = 'types.containerd.io/opencontainers/runtime-spec/1/Spec';

export async function getContainer(conn: Connection, id: string): Promise<Container> {
  const r = await conn.unary(ContainersDefinition, 'get', { id });
  if (!r.container) throw new Error(`container ${id}: containerd returned no record`);
  return r.container;
}

/** The container, or undefined when containerd has none with this id. */
export async function findContainer(conn: Connection, id: string): Promise<Container | undefined> {
  try {
    return await getContainer(conn, id);
  } catch (err) {
    if ((err as { code?: number }).code === 5 /* NOT_FOUND */) return undefined;
    throw err;
  }
}

export async function listContainers(conn: Connection, filters: string[] = []): Promise<Container[]> {
  return (await conn.unary(ContainersDefinition, 'list', { filters })).containers;
}

export async function createContainer(conn: Connection, container: Partial2<Container>): Promise<Container> {
  const r = await conn.unary(ContainersDefinition, 'create', { container });
  return r.container!;
}

export async function deleteContainer(conn: Connection, id: string): Promise<void> {
  await conn.unary(ContainersDefinition, 'delete', { id });
}

/** The container's OCI spec, parsed from its Any (JSON). */
export function containerSpec<T = Record<string, unknown>>(container: Container): T {
  if (!container.spec || container.spec.value.length === 0) throw new Error(`container ${container.id} has no spec`);
  return JSON.parse(Buffer.from(container.spec.value).toString('utf8')) as T;
}

/** An OCI spec as containerd stores it: JSON in an Any. */
export function specAny(spec: unknown): Any {
  return { typeUrl: SPEC_TYPE_URL, value: Buffer.from(JSON.stringify(spec)) };
}
