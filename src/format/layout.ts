// One set of names for every checkpoint format ferry reads or writes: the files of a checkpoint
// archive (the layout containerd's CRI, CRI-O and Podman share through checkpointctl's
// lib/metadata.go), the annotations each engine uses to recognise a checkpoint image, and the
// media types of containerd's own checkpoint image. Both programs — the shim and the `ferry`
// command — import these; no other file spells them. Sources for each name:
// ../shared/checkpoint-formats.md (§1.1 files, §2.1 image annotations, §2.2 media types).

/** Files and directories at the top of a checkpoint archive. */
export const ArchiveFile = {
  /** Container metadata JSON: checkpointctl's ContainerConfig, or Podman's full libpod config. */
  configDump: 'config.dump',
  /** The container's OCI runtime spec (JSON). */
  specDump: 'spec.dump',
  /** containerd CRI only: the CRI ContainerStatus as JSON (snake_case keys); its restore requires it. */
  statusDump: 'status.dump',
  /** containerd CRI only: the CRI plugin's own status blob. */
  status: 'status',
  /** Podman: the container's network status (JSON). */
  networkStatus: 'network.status',
  /** The CRIU image directory. */
  checkpointDir: 'checkpoint',
  /** Podman --pre-checkpoint images. */
  preCheckpointDir: 'pre-checkpoint',
  /** Podman named volumes, one tar each. */
  volumesDir: 'volumes',
  /** Podman: tar of the container's /dev/shm. */
  devShmTar: 'devshm-checkpoint.tar',
  /** Changes of the writable layer: plain tar (Podman, CRI-O, ferry) or a gzip OCI layer (containerd CRI). */
  rootfsDiffTar: 'rootfs-diff.tar',
  /** JSON array of paths deleted from the writable layer (Podman, CRI-O, ferry). */
  deletedFiles: 'deleted.files',
  /** CRIU's dump log (copied out of the work dir). */
  dumpLog: 'dump.log',
  restoreLog: 'restore.log',
  /** CRIU's dump statistics (a CRIU service image: stats_entry). */
  statsDump: 'stats-dump',
  statsRestore: 'stats-restore',
  /** CRI-O: the bind mounts the container had (JSON). */
  bindMounts: 'bind.mounts',
  /** Container log under its containerd CRI name, its Podman name, and CRI-O's literal annotation name. */
  containerLog: 'container.log',
  podmanLog: 'ctr.log',
  crioLog: 'io.kubernetes.cri-o.LogPath',
  /** runc writes the fd table of the init into the image dir under this name. */
  descriptorsJson: 'descriptors.json',
} as const;

/** Prefix of the CRIU memory pages images (used for size accounting). */
export const PAGES_PREFIX = 'pages-';
export const AMDGPU_PAGES_PREFIX = 'amdgpu-pages-';

/** The engine that wrote a checkpoint, as checkpointctl names them. */
export type Engine = 'containerd' | 'CRI-O' | 'Podman';

/** spec.dump annotation that names the engine (libpod, cri-o; absent for containerd). */
export const CONTAINER_MANAGER_ANNOTATION = 'io.container.manager';

/** Annotations by which each engine recognises a checkpoint image. */
export const ImageAnnotation = {
  /** containerd CRI (top-level annotations of the image target: manifest or index). */
  containerdName: 'org.criu.checkpoint.container.name',
  /** CRI-O (OCI manifest annotations). */
  crioName: 'io.kubernetes.cri-o.annotations.checkpoint.name',
  /** Podman (`podman run IMG` restores when this one is present). */
  podmanName: 'io.podman.annotations.checkpoint.name',
  podmanRuntimeName: 'io.podman.annotations.checkpoint.runtime.name',
} as const;

/** The `org.criu.checkpoint.` facts checkpointctl's lib defines (cctl lib/annotations.go). */
export const CRIU_ANNOTATION_PREFIX = 'org.criu.checkpoint.';
/** Podman's facts (pm libpod/define/annotations.go). */
export const PODMAN_ANNOTATION_PREFIX = 'io.podman.annotations.checkpoint.';

/** Media types of containerd's own checkpoint image (`ctr c checkpoint`). */
export const ContainerdMediaType = {
  criuTar: 'application/vnd.containerd.container.criu.checkpoint.criu.tar',
  config: 'application/vnd.containerd.container.checkpoint.config.v1+proto',
  options: 'application/vnd.containerd.container.checkpoint.options.v1+proto',
  runtimeName: 'application/vnd.containerd.container.checkpoint.runtime.name',
  runtimeOptions: 'application/vnd.containerd.container.checkpoint.runtime.options+proto',
} as const;

/** Annotations of containerd's own checkpoint index. */
export const ContainerdCheckpointAnnotation = {
  imageRefName: 'org.opencontainers.image.ref.name',
  runtime: 'io.containerd.checkpoint.runtime',
  snapshotter: 'io.containerd.checkpoint.snapshotter',
} as const;

/** containerd CRI's spec annotations (a containerd-flavoured archive carries the container name here). */
export const CriAnnotation = {
  containerType: 'io.kubernetes.cri.container-type',
  containerName: 'io.kubernetes.cri.container-name',
  sandboxId: 'io.kubernetes.cri.sandbox-id',
  sandboxName: 'io.kubernetes.cri.sandbox-name',
  sandboxNamespace: 'io.kubernetes.cri.sandbox-namespace',
  sandboxUid: 'io.kubernetes.cri.sandbox-uid',
  imageName: 'io.kubernetes.cri.image-name',
} as const;

/** Where containerd's CRI puts the CRIU images of a restore: the archive files sit one level up. */
export const CRI_RESTORE_CHECKPOINT_SUBDIR = ArchiveFile.checkpointDir;

/** Standard OCI media types of the checkpoint images ferry writes (no containerd-specific ones). */
export const OciMediaType = {
  index: 'application/vnd.oci.image.index.v1+json',
  manifest: 'application/vnd.oci.image.manifest.v1+json',
  config: 'application/vnd.oci.image.config.v1+json',
  layer: 'application/vnd.oci.image.layer.v1.tar',
  layerGzip: 'application/vnd.oci.image.layer.v1.tar+gzip',
  layerZstd: 'application/vnd.oci.image.layer.v1.tar+zstd',
} as const;

/** OCI layer whiteouts (image-spec layer.md): `.wh.NAME` deletes NAME, `.wh..wh..opq` empties its directory. */
export const WHITEOUT_PREFIX = '.wh.';
export const WHITEOUT_OPAQUE = '.wh..wh..opq';
