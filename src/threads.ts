// Kernel thread count, per calling thread: the main thread and each worker
// thread have their own (and their own pool). MODELSLICE_NUM_THREADS sets the
// default (read by the addon).
import { native } from './native.js';

export { startKernelProfile, stopKernelProfile, type KernelProfile } from './native.js';

/**
 * Sets the kernel threads of the calling thread (a worker thread's setting is
 * its own). At most kernelInfo().maxThreads: 4 per available core, at most 256.
 */
export function setNumThreads(n: number): void {
  native.setNumThreads(checkThreadCount('setNumThreads', 'n', n));
}

/** A kernel thread count within kernelInfo().maxThreads, or a RangeError naming `name`. */
export function checkThreadCount(op: string, name: string, n: unknown): number {
  const limit = native.kernelInfo().maxThreads;
  if (typeof n !== 'number' || !Number.isInteger(n) || n < 1 || n > limit) {
    throw new RangeError(`${op}: ${name} must be an integer in [1, ${limit}] (4 threads per available core, at most 256), got ${String(n)}`);
  }
  return n;
}

export function getNumThreads(): number {
  return native.getNumThreads();
}

/** Which kernels run: the GEMM instruction set, the calling thread's kernel thread count and its limit. */
export function kernelInfo(): { gemm: string; threads: number; maxThreads: number } {
  return native.kernelInfo();
}
