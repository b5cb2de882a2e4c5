// A small seeded generator (xoshiro128**, seeded through splitmix32) so that
// initialisation, shuffling and augmentation are reproducible and resumable.

function splitmix32(state: { s: number }): number {
  state.s = (state.s + 0x9e3779b9) | 0;
  let z = state.s;
  z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
  z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
  return (z ^ (z >>> 16)) >>> 0;
}

/** Serializable generator state: four 32-bit words plus a cached normal deviate. */
export interface GeneratorState {
  s: [number, number, number, number];
  spareNormal: number | null;
}

export class Generator {
  private s0 = 0;
  private s1 = 0;
  private s2 = 0;
  private s3 = 0;
  private spareNormal: number | null = null;

  constructor(seed: number = Generator.freshSeed()) {
    this.seed(seed);
  }

  static freshSeed(): number {
    return (Math.random() * 0x100000000) >>> 0;
  }

  seed(seed: number): void {
    if (!Number.isFinite(seed)) throw new RangeError(`Generator: seed must be a finite number, got ${seed}`);
    const st = { s: Math.trunc(seed) | 0 };
    this.s0 = splitmix32(st);
    this.s1 = splitmix32(st);
    this.s2 = splitmix32(st);
    this.s3 = splitmix32(st);
    if ((this.s0 | this.s1 | this.s2 | this.s3) === 0) this.s0 = 1;
    this.spareNormal = null;
  }

  /** Uniform 32-bit unsigned integer. */
  nextUint32(): number {
    const result = Math.imul(rotl(Math.imul(this.s1, 5), 7), 9) >>> 0;
    const t = this.s1 << 9;
    this.s2 ^= this.s0;
    this.s3 ^= this.s1;
    this.s1 ^= this.s2;
    this.s0 ^= this.s3;
    this.s2 ^= t;
    this.s3 = rotl(this.s3, 11);
    return result;
  }

  /** Uniform in [0, 1) with 32 bits of resolution. */
  uniform(): number {
    return this.nextUint32() / 0x100000000;
  }

  /** Uniform integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.uniform() * n);
  }

  /** Standard normal deviate (Box-Muller, both values used). */
  normal(): number {
    if (this.spareNormal !== null) {
      const v = this.spareNormal;
      this.spareNormal = null;
      return v;
    }
    let u = 0;
    while (u === 0) u = this.uniform();
    const v = this.uniform();
    const r = Math.sqrt(-2 * Math.log(u));
    this.spareNormal = r * Math.sin(2 * Math.PI * v);
    return r * Math.cos(2 * Math.PI * v);
  }

  getState(): GeneratorState {
    return { s: [this.s0, this.s1, this.s2, this.s3], spareNormal: this.spareNormal };
  }

  setState(state: GeneratorState): void {
    [this.s0, this.s1, this.s2, this.s3] = state.s.map((x) => x | 0) as [number, number, number, number];
    this.spareNormal = state.spareNormal;
  }
}

function rotl(x: number, k: number): number {
  return (x << k) | (x >>> (32 - k));
}

/** The generator used when no seed or generator is given. */
export const defaultGenerator = new Generator();

/** Seeds the default generator, like torch.manual_seed. */
export function manualSeed(seed: number): void {
  defaultGenerator.seed(seed);
}
