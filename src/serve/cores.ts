// How many cores a server may plan with: the cores this process may run on, capped by a
// cgroup CPU limit (a container's `cpus` / Kubernetes `limits.cpu`), which Node's
// availableParallelism() does not see: in a 2-CPU pod on a 64-core node it says 64.
import { readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';

/**
 * The CPUs a cgroup limit allows, from cgroup v2's cpu.max ("200000 100000", or "max 100000"
 * for none) or cgroup v1's quota and period in microseconds (quota -1: none); null without a limit.
 */
export function parseCpuLimit(quota: string, period?: string): number | null {
  const parts = quota.trim().split(/\s+/);
  const q = parts[0];
  const p = period === undefined ? parts[1] : period.trim();
  if (q === undefined || q === 'max' || p === undefined) return null;
  const qn = Number(q), pn = Number(p);
  if (!(qn > 0) || !(pn > 0)) return null;
  return qn / pn;
}

function readLimit(): number | null {
  try {
    return parseCpuLimit(readFileSync('/sys/fs/cgroup/cpu.max', 'utf8'));
  } catch {
    // not cgroup v2
  }
  try {
    return parseCpuLimit(readFileSync('/sys/fs/cgroup/cpu/cpu.cfs_quota_us', 'utf8'), readFileSync('/sys/fs/cgroup/cpu/cpu.cfs_period_us', 'utf8'));
  } catch {
    return null;
  }
}

/** Whole cores this process may use: availableParallelism() capped by a cgroup CPU limit (at least 1). */
export function usableCores(): number {
  const limit = readLimit();
  const cores = availableParallelism();
  return Math.max(1, limit === null ? cores : Math.min(cores, Math.floor(limit)));
}
