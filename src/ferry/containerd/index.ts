// The containerd client of the `ferry` command: one file per containerd gRPC service.
export * from './connection';
export * from './version';
export * from './containers';
export * from './tasks';
export * from './images';
export * from './content';
export * from './snapshots';
export * from './diff';
export * from './leases';
