// Wire identity of api/gen (our .proto files + ts-proto) with containerd's own
// .proto definitions.
//
// The expected bytes below were NOT produced by our code. They come from
// containerd's original .proto files (`git show v2.1.9:<path>` from the mirror:
// api/runtime/task/v2/shim.proto, api/types/event.proto,
// api/services/ttrpc/events/v1/events.proto, api/events/task.proto,
// api/types/runc/options/oci.proto; v1.7.24 runtime/linux/runctypes/runc.proto;
// cgroups v3 cgroup1/stats/metrics.proto as vendored by v1.7.24), compiled with
// `protoc --python_out` and serialised by Google's reference protobuf runtime
// (Debian python3-protobuf 4.21.12). Only the fieldpath options (Go codegen
// annotations, no wire effect) were stripped to compile them. One vector
// (StateResponse) is also decoded by hand below, from containerd's field numbers.

import { Any } from '../../api/gen/google/protobuf/any';
import {
  CreateTaskRequest,
  DeleteResponse,
  PidsResponse,
  StateRequest,
  StateResponse,
  TaskDefinition as TaskV2,
} from '../../api/gen/containerd/task/v2/shim';
import { TaskDefinition as TaskV3 } from '../../api/gen/containerd/task/v3/shim';
import { Status } from '../../api/gen/containerd/types/task/task';
import { TaskExit } from '../../api/gen/containerd/events/task';
import { EventsDefinition, ForwardRequest } from '../../api/gen/containerd/services/events/ttrpc/v1/events';
import * as runcV1 from '../../api/gen/containerd/runc/v1/options';
import * as linuxRunc from '../../api/gen/containerd/linux/runc/runc';
import { Metrics as CgroupV1Metrics } from '../../api/gen/io/containerd/cgroups/v1/metrics';

const hex = (bytes: Uint8Array): string => Buffer.from(bytes).toString('hex');
const bytes = (h: string): Uint8Array => new Uint8Array(Buffer.from(h, 'hex'));

// containerd.runc.v1.Options{binary_name:"runc", systemd_cgroup:true,
// criu_image_path:"/img", task_api_version:3}
const RUNC_OPTIONS = '320472756e63480152042f696d676803';

const CREATE_TASK_REQUEST =
  '0a02633112062f72756e2f621a2c0a076f7665726c617912076f7665726c6179220b6c6f7765726469723d2f6c' +
  '220b75707065726469723d2f7532092f6669666f2f6f75743a092f6669666f2f65727242092f746d702f636b70' +
  '74522e0a1a636f6e7461696e6572642e72756e632e76312e4f7074696f6e731210' +
  RUNC_OPTIONS;

const STATE_RESPONSE = '0a02633112062f72756e2f62189221200332092f6669666f2f6f7574488901520b0880e2cfaa0610959aef3a';
const DELETE_RESPONSE = '0892211089011a060880e2cfaa06';
const TASK_EXIT = '0a026331120263311892212089012a080880e2cfaa061005';
const FORWARD_REQUEST =
  '0a580a080881e2cfaa061007120764656661756c741a0b2f7461736b732f6578697422360a1a636f6e7461696e65' +
  '72642e6576656e74732e5461736b4578697412180a026331120263311892212089012a080880e2cfaa061005';
// Same logical CheckpointOptions{exit, file_locks, empty_namespaces:["network"],
// work_path:"/w", image_path:"/i"} in the two packages: the path numbers swap.
const LINUX_RUNC_CHECKPOINT = '0801280132076e6574776f726b42022f774a022f69';
const RUNC_V1_CHECKPOINT = '0801280132076e6574776f726b42022f694a022f77';
// containerd.linux.runc.CreateOptions{shim_cgroup:"/s", io_uid:1000, io_gid:1000,
// criu_work_path:"/work", criu_image_path:"/img"}
const LINUX_RUNC_CREATE = '4a022f7350e80758e80762052f776f726b6a042f696d67';
const CGROUP_V1_METRICS =
  '120208031a120a100894b4e4f4cb0310011802220305ac0222191080208a02130880e0ffffffffffff7f108080401880808001';
const PIDS_RESPONSE =
  '0a2d084d12290a21636f6e7461696e6572642e72756e632e76312e50726f6365737344657461696c7312040a026531';

describe('containerd.task.v2 messages', () => {
  const request = CreateTaskRequest.fromPartial({
    id: 'c1',
    bundle: '/run/b',
    rootfs: [{ type: 'overlay', source: 'overlay', options: ['lowerdir=/l', 'upperdir=/u'] }],
    stdout: '/fifo/out',
    stderr: '/fifo/err',
    checkpoint: '/tmp/ckpt',
    options: {
      typeUrl: 'containerd.runc.v1.Options',
      value: runcV1.Options.encode(
        runcV1.Options.fromPartial({ binaryName: 'runc', systemdCgroup: true, criuImagePath: '/img', taskApiVersion: 3 }),
      ).finish(),
    },
  });

  it('encodes CreateTaskRequest (rootfs, checkpoint, options Any) exactly like containerd', () => {
    expect(hex(CreateTaskRequest.encode(request).finish())).toBe(CREATE_TASK_REQUEST);
  });

  it('decodes containerd bytes of CreateTaskRequest and the runc options inside', () => {
    const decoded = CreateTaskRequest.decode(bytes(CREATE_TASK_REQUEST));
    expect(decoded.id).toBe('c1');
    expect(decoded.rootfs).toEqual([{ type: 'overlay', source: 'overlay', target: '', options: ['lowerdir=/l', 'upperdir=/u'] }]);
    expect(decoded.checkpoint).toBe('/tmp/ckpt');
    expect(decoded.terminal).toBe(false);
    expect(decoded.options?.typeUrl).toBe('containerd.runc.v1.Options');
    const options = runcV1.Options.decode(decoded.options!.value);
    expect(options).toMatchObject({ binaryName: 'runc', systemdCgroup: true, criuImagePath: '/img', taskApiVersion: 3, root: '' });
  });

  it('encodes StateResponse with the status enum and exited_at like containerd', () => {
    const state = StateResponse.fromPartial({
      id: 'c1',
      bundle: '/run/b',
      pid: 4242,
      status: Status.STOPPED,
      stdout: '/fifo/out',
      exitStatus: 137,
      exitedAt: { seconds: 1700000000, nanos: 123456789 },
    });
    const encoded = hex(StateResponse.encode(state).finish());
    expect(encoded).toBe(STATE_RESPONSE);
    // By hand, from containerd's numbers: status = 4 (varint) -> key 0x20, STOPPED = 3;
    // exit_status = 9 -> key 0x48, 137 -> 0x89 0x01; exited_at = 10 (bytes) -> key 0x52.
    expect(encoded).toContain('2003');
    expect(encoded).toContain('488901');
    expect(encoded).toContain('520b');
    expect(StateResponse.decode(bytes(STATE_RESPONSE))).toEqual(state);
  });

  it('encodes the DeleteResponse that `shim delete` prints', () => {
    const response = DeleteResponse.fromPartial({ pid: 4242, exitStatus: 137, exitedAt: { seconds: 1700000000, nanos: 0 } });
    expect(hex(DeleteResponse.encode(response).finish())).toBe(DELETE_RESPONSE);
  });

  it('encodes PidsResponse with a runc ProcessDetails Any', () => {
    const response = PidsResponse.fromPartial({
      processes: [
        {
          pid: 77,
          info: {
            typeUrl: 'containerd.runc.v1.ProcessDetails',
            value: runcV1.ProcessDetails.encode({ execId: 'e1' }).finish(),
          },
        },
      ],
    });
    expect(hex(PidsResponse.encode(response).finish())).toBe(PIDS_RESPONSE);
  });

  it('writes nothing for proto3 defaults and keeps containerd enum numbers', () => {
    expect(StateResponse.encode(StateResponse.fromPartial({})).finish()).toHaveLength(0);
    expect([Status.UNKNOWN, Status.CREATED, Status.RUNNING, Status.STOPPED, Status.PAUSED, Status.PAUSING]).toEqual([0, 1, 2, 3, 4, 5]);
  });

  it('skips fields it does not know (a newer containerd may add some)', () => {
    // StateRequest{id:"c1"}, then unknown field 99 (varint 1), then exec_id:"e1".
    const decoded = StateRequest.decode(bytes('0a0263319806011202' + '6531'));
    expect(decoded).toEqual({ id: 'c1', execId: 'e1' });
  });
});

describe('task service definitions', () => {
  it('serves v2 and v3 under their own names with the same methods and codecs', () => {
    expect(TaskV2.fullName).toBe('containerd.task.v2.Task');
    expect(TaskV3.fullName).toBe('containerd.task.v3.Task');
    const names = (d: typeof TaskV2 | typeof TaskV3) => Object.values(d.methods).map((m) => m.name);
    expect(names(TaskV2)).toEqual([
      'State', 'Create', 'Start', 'Delete', 'Pids', 'Pause', 'Resume', 'Checkpoint', 'Kill',
      'Exec', 'ResizePty', 'CloseIO', 'Update', 'Wait', 'Stats', 'Connect', 'Shutdown',
    ]);
    expect(names(TaskV3)).toEqual(names(TaskV2));
    expect(TaskV3.methods.create.requestType).toBe(TaskV2.methods.create.requestType);
    expect(EventsDefinition.fullName).toBe('containerd.services.events.ttrpc.v1.Events');
    expect(EventsDefinition.methods.forward.name).toBe('Forward');
  });
});

describe('events', () => {
  it('encodes a TaskExit inside a Forward envelope like containerd 2.1 (and 1.7: same numbers)', () => {
    const exit = TaskExit.fromPartial({ containerId: 'c1', id: 'c1', pid: 4242, exitStatus: 137, exitedAt: { seconds: 1700000000, nanos: 5 } });
    expect(hex(TaskExit.encode(exit).finish())).toBe(TASK_EXIT);
    const forward = ForwardRequest.fromPartial({
      envelope: {
        timestamp: { seconds: 1700000001, nanos: 7 },
        namespace: 'default',
        topic: '/tasks/exit',
        event: { typeUrl: 'containerd.events.TaskExit', value: TaskExit.encode(exit).finish() },
      },
    });
    expect(hex(ForwardRequest.encode(forward).finish())).toBe(FORWARD_REQUEST);

    const decoded = ForwardRequest.decode(bytes(FORWARD_REQUEST));
    expect(decoded.envelope?.topic).toBe('/tasks/exit');
    expect(TaskExit.decode(decoded.envelope!.event!.value)).toEqual(exit);
  });
});

describe('runtime options', () => {
  const checkpoint = { exit: true, fileLocks: true, emptyNamespaces: ['network'], workPath: '/w', imagePath: '/i' };

  it('encodes both CheckpointOptions types with their own field numbers', () => {
    expect(hex(linuxRunc.CheckpointOptions.encode(linuxRunc.CheckpointOptions.fromPartial(checkpoint)).finish())).toBe(LINUX_RUNC_CHECKPOINT);
    expect(hex(runcV1.CheckpointOptions.encode(runcV1.CheckpointOptions.fromPartial(checkpoint)).finish())).toBe(RUNC_V1_CHECKPOINT);
  });

  it('gets image_path wrong when the type URL is ignored, which is why both sets exist', () => {
    expect(linuxRunc.CheckpointOptions.decode(bytes(LINUX_RUNC_CHECKPOINT))).toMatchObject({ imagePath: '/i', workPath: '/w' });
    expect(runcV1.CheckpointOptions.decode(bytes(LINUX_RUNC_CHECKPOINT))).toMatchObject({ imagePath: '/w', workPath: '/i' });
  });

  it('encodes and decodes containerd.linux.runc.CreateOptions', () => {
    const create = { shimCgroup: '/s', ioUid: 1000, ioGid: 1000, criuWorkPath: '/work', criuImagePath: '/img' };
    expect(hex(linuxRunc.CreateOptions.encode(linuxRunc.CreateOptions.fromPartial(create)).finish())).toBe(LINUX_RUNC_CREATE);
    expect(linuxRunc.CreateOptions.decode(bytes(LINUX_RUNC_CREATE))).toMatchObject(create);
  });

  it('decodes an Any payload regardless of our own encoder', () => {
    const any = Any.decode(Any.encode({ typeUrl: 'containerd.runc.v1.Options', value: bytes(RUNC_OPTIONS) }).finish());
    expect(runcV1.Options.decode(any.value).criuImagePath).toBe('/img');
  });
});

describe('cgroup v1 metrics', () => {
  it('keeps 64-bit counters exact (unlimited memory is 9223372036854771712)', () => {
    const metrics = CgroupV1Metrics.fromPartial({
      pids: { current: 3n, limit: 0n },
      cpu: { usage: { total: 123456789012n, kernel: 1n, user: 2n, perCpu: [5n, 300n] } },
      memory: { rss: 4096n, usage: { limit: 9223372036854771712n, usage: 1048576n, max: 2097152n } },
    });
    expect(hex(CgroupV1Metrics.encode(metrics).finish())).toBe(CGROUP_V1_METRICS);
    const decoded = CgroupV1Metrics.decode(bytes(CGROUP_V1_METRICS));
    expect(decoded.memory?.usage?.limit).toBe(9223372036854771712n);
    expect(decoded.cpu?.usage?.perCpu).toEqual([5n, 300n]);
    expect(decoded).toEqual(metrics);
  });
});
