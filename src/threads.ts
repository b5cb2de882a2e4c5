// Kernel thread count. MODELSLICE_NUM_THREADS sets the default (read by the addon).
import { native } from './native.js';

export { startKernelProfile, stopKernelProfile, type KernelProfile } from './native.js';

export function setNumThreads(n: number): void {
  if (typeof n !== 'number' || !Number.isInteger(n) || n < 1 || n > 1024) {
    throw new RangeError(`setNumThreads: n must be an integer in [1, 1024], got ${String(n)}`);
  }
  native.setNumThreads(n);
}

export function getNumThreads(): number {
  return native.getNumThreads();
}

/** Which kernels this process runs: the GEMM instruction set and the kernel thread count. */
export function kernelInfo(): { gemm: string; threads: number } {
  return native.kernelInfo();
}
