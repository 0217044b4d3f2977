// The runtime options containerd writes on `start`'s stdin (a protobuf Any: the container's
// runtime options, or the task's when given), read as the Go shim's manager reads them
// (shim.ReadRuntimeOptions). Only `shim_cgroup` matters at start; an unreadable or unknown
// value is ignored there (Create decodes the options again and reports errors properly).
import * as fs from 'node:fs';
import { Any } from '../../api/gen/google/protobuf/any';
import { decodeRuntimeOptions, defaultRuntimeOptions, type RuntimeOptions } from '../service/runtime-options';

export function readStartOptions(): RuntimeOptions {
  // containerd gives a pipe (Go's exec with a bytes reader) or /dev/null when there are no
  // options. Read only a pipe, socket or file: never block on a terminal or another device.
  // (fstat rather than tty.isatty: `start` is on containerd's critical path and node:tty
  // would be compiled for this one question.)
  if (!readableOptionsSource(0)) return defaultRuntimeOptions();
  let data: Buffer;
  try {
    data = fs.readFileSync(0);
  } catch {
    return defaultRuntimeOptions();
  }
  if (data.length === 0) return defaultRuntimeOptions();
  try {
    return decodeRuntimeOptions(Any.decode(data));
  } catch {
    return defaultRuntimeOptions();
  }
}

function readableOptionsSource(fd: number): boolean {
  try {
    const st = fs.fstatSync(fd);
    return st.isFIFO() || st.isSocket() || st.isFile();
  } catch {
    return false;
  }
}
