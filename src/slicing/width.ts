// The width rule lives beside the layers (nn/width.ts); this path stays for
// the code outside nn/ that has always imported it from here.
export { checkRate, activeGroups, sliceWidth } from '../nn/width.js';
