// The width rule shared by every sliceable layer (see API.md): a layer of C
// units split into G groups uses k = clamp(ceil(r * G - 1e-9), 1, G) groups at
// rate r, that is its first ceil(C * k / G) units.

/** Checks a slice rate: a finite number in (0, 1]. */
export function checkRate(op: string, rate: unknown): number {
  if (typeof rate !== 'number') throw new TypeError(`${op}: slice rate must be a number, got ${typeof rate}`);
  if (!Number.isFinite(rate) || rate <= 0 || rate > 1) {
    throw new RangeError(`${op}: slice rate must be a finite number in (0, 1], got ${rate}`);
  }
  return rate;
}

/** How many of `groups` groups take part at `rate`. */
export function activeGroups(rate: number, groups: number): number {
  return Math.min(groups, Math.max(1, Math.ceil(rate * groups - 1e-9)));
}

/** How many of `units` units take part at `rate` with `groups` slice groups. */
export function sliceWidth(units: number, rate: number, groups: number): number {
  return Math.ceil((units * activeGroups(rate, groups)) / groups);
}
