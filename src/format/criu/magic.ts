// The magic numbers that open a CRIU image file (criu/include/magic.h, v4.2). An image starts
// with IMG_COMMON_MAGIC (IMG_SERVICE_MAGIC for the service files stats-dump/stats-restore and
// irmap-cache) and then the type magic of its format; inventory.img is written with its type
// magic only (criu/image.c img_write_magic skips the first magic for CR_FD_INVENTORY), and
// images of the old format version 1 have no first magic at all. Raw images (pages-*.img) have
// no header. Readers accept both forms, as CRIU's own pycriu does.

export const IMG_COMMON_MAGIC = 0x54564319;
export const IMG_SERVICE_MAGIC = 0x55105940;

/** Type magics of the images ferry decodes. */
export const ImageMagic = {
  INVENTORY: 0x58313116,
  PSTREE: 0x50273030,
  CORE: 0x55053847,
  IDS: 0x54432030,
  MM: 0x57492820,
  PAGEMAP: 0x56084025,
  FDINFO: 0x56213732,
  FILES: 0x56303138,
  FS: 0x51403912,
  REG_FILES: 0x50363636,
  PIPES: 0x56513555,
  UNIXSK: 0x54373943,
  INETSK: 0x56443851,
  STATS: 0x57093306,
} as const;

export type ImageKind = keyof typeof ImageMagic;

/** CRTOOLS_IMAGES_V1 (no common magic in image heads) and CRTOOLS_IMAGES_V1_1, the versions CRIU restores. */
export const KNOWN_IMAGE_VERSIONS = [1, 2] as const;

/** Page size of the images: CRIU writes host pages; x86_64 (the architecture ferry runs on) has 4 KiB pages. */
export const PAGE_SIZE = 4096;

/** pagemap_entry.flags (criu/include/pagemap.h). */
export const PE_PARENT = 1;
export const PE_LAZY = 2;
export const PE_PRESENT = 4;

/** core_entry.tc.task_state (criu/include/pstree.h TASK_*). */
export const TaskState = { ALIVE: 1, DEAD: 2, STOPPED: 3, ZOMBIE: 6 } as const;

export function taskStateName(state: number): string {
  switch (state) {
    case TaskState.ALIVE: return 'Alive';
    case TaskState.DEAD: return 'Dead';
    case TaskState.STOPPED: return 'Stopped';
    case TaskState.ZOMBIE: return 'Zombie';
    default: return `Unknown(${state})`;
  }
}

/** File names of the images (criu/image-desc.c). */
export const ImageName = {
  inventory: 'inventory.img',
  pstree: 'pstree.img',
  files: 'files.img',
  regFiles: 'reg-files.img',
  pipes: 'pipes.img',
  unixsk: 'unixsk.img',
  inetsk: 'inetsk.img',
  core: (tid: number) => `core-${tid}.img`,
  ids: (pid: number) => `ids-${pid}.img`,
  mm: (pid: number) => `mm-${pid}.img`,
  fs: (pid: number) => `fs-${pid}.img`,
  pagemap: (pid: number) => `pagemap-${pid}.img`,
  pages: (pagesId: number) => `pages-${pagesId}.img`,
  fdinfo: (filesId: number) => `fdinfo-${filesId}.img`,
} as const;

/** `pagemap-<pid>.img` and `pagemap-shmem-<shmid>.img` (shared memory pages). */
export const PAGEMAP_NAME_RE = /^pagemap-(?:shmem-)?\d+\.img$/;
