// Annotations taken back from a checkpoint (e.g. its saved spec) are untrusted. CDI device
// injection is requested through annotations keyed `cdi.k8s.io/<plugin>` (see the CDI
// package's AnnotationPrefix, vendored by containerd); a checkpoint carrying such a key could
// make the restored container get devices its target container was never granted. So those
// keys are dropped, each with a warning, before checkpoint annotations are merged.
//
// Case: CDI consumers match the prefix case-sensitively, so `CDI.k8s.io/x` requests nothing
// today. We still drop case-insensitively: Kubernetes annotation prefixes are DNS subdomains
// and must be lower case, so no legitimate annotation is lost, and a consumer that folds case
// (or a future one) cannot be fed a device request through a checkpoint.

import { WarnLogger } from './warn-logger';

const CDI_KEY = 'cdi.k8s.io';
const CDI_PREFIX = `${CDI_KEY}/`;

/** True for `cdi.k8s.io` exactly and for `cdi.k8s.io/...` (ASCII case-insensitive). */
export function isCdiAnnotation(key: string): boolean {
  const lower = key.toLowerCase();
  return lower === CDI_KEY || lower.startsWith(CDI_PREFIX);
}

/**
 * Returns a copy of `annotations` without CDI keys, warning once per dropped key. Non-string
 * values (possible when the map was parsed from untrusted JSON) are dropped with a warning too.
 */
export function dropCdiAnnotations(annotations: Record<string, string>, log: WarnLogger): Record<string, string> {
  const kept: [string, string][] = [];
  for (const [key, value] of Object.entries(annotations ?? {})) {
    if (isCdiAnnotation(key)) {
      log.warn(`dropping CDI annotation ${JSON.stringify(key)} from checkpoint: a checkpoint may not request devices`, { annotation: key });
      continue;
    }
    if (typeof value !== 'string') {
      log.warn(`dropping checkpoint annotation ${JSON.stringify(key)}: value is not a string`, { annotation: key });
      continue;
    }
    kept.push([key, value]);
  }
  // fromEntries defines own properties, so a key like "__proto__" stays a plain key.
  return Object.fromEntries(kept);
}

/**
 * Annotations for a restored container: the checkpoint's (CDI keys dropped) overlaid by the
 * target container's own. The target wins on conflicts because its annotations come from the
 * Create request (trusted, chosen by whoever restores); the checkpoint's only fill gaps. The
 * target's own CDI annotations are kept: they were requested by the restorer, not smuggled in.
 */
export function mergeRestoredAnnotations(
  target: Record<string, string>,
  fromCheckpoint: Record<string, string>,
  log: WarnLogger,
): Record<string, string> {
  const merged = new Map(Object.entries(dropCdiAnnotations(fromCheckpoint, log)));
  for (const [key, value] of Object.entries(target ?? {})) {
    if (merged.has(key) && merged.get(key) !== value) {
      log.debug?.(`annotation ${JSON.stringify(key)}: target container's value overrides the checkpoint's`, { annotation: key });
    }
    merged.set(key, value);
  }
  return Object.fromEntries(merged);
}
