// The rules of the Prometheus text format (0.0.4) that promtool would check, for
// tests on machines without it: one HELP and one TYPE per family, before its
// samples; sample names of the family (histograms: _bucket, _sum, _count);
// well-formed labels; per label set, histogram buckets ascending in le,
// cumulative, ending at le="+Inf" equal to _count. Empty lines are ignored, as the format says.

export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

const LABELS = /^\{([a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*"(?:,[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*")*)?\}$/;

function parseLabels(text: string): Record<string, string> {
  const labels: Record<string, string> = {};
  for (const m of text.matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[m[1]] = m[2];
  return labels;
}

/** Parses exposition text, throwing on the first broken rule; returns the samples. */
export function checkExposition(text: string): Sample[] {
  if (!text.endsWith('\n')) throw new Error('the text must end with a newline');
  const types = new Map<string, string>();
  const helps = new Set<string>();
  const samples: Sample[] = [];
  const seen = new Set<string>();
  for (const line of text.slice(0, -1).split('\n')) {
    if (line === '') continue; // the format ignores empty lines (prom-client puts one between families)
    const meta = /^# (HELP|TYPE) ([a-zA-Z_:][a-zA-Z0-9_:]*) (.*)$/.exec(line);
    if (meta) {
      const [, kind, name, rest] = meta;
      if (kind === 'HELP') {
        if (helps.has(name)) throw new Error(`HELP for ${name} twice`);
        helps.add(name);
      } else {
        if (types.has(name)) throw new Error(`TYPE for ${name} twice`);
        if (!['counter', 'gauge', 'histogram', 'summary', 'untyped'].includes(rest)) throw new Error(`unknown type ${rest}`);
        if (samples.some((s) => s.name === name || s.name.startsWith(`${name}_`))) throw new Error(`TYPE for ${name} after its samples`);
        types.set(name, rest);
      }
      continue;
    }
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)$/.exec(line);
    if (!m) throw new Error(`not a sample line: ${JSON.stringify(line)}`);
    const [, name, labelText = '', valueText] = m;
    if (labelText !== '' && !LABELS.test(labelText)) throw new Error(`bad labels in ${JSON.stringify(line)}`);
    const value = valueText === '+Inf' ? Infinity : valueText === '-Inf' ? -Infinity : Number(valueText);
    // Prometheus parses NaN in any case (prom-client writes "Nan").
    if (valueText.toLowerCase() !== 'nan' && Number.isNaN(value)) throw new Error(`bad value in ${JSON.stringify(line)}`);
    if (seen.has(name + labelText)) throw new Error(`sample ${name}${labelText} twice`);
    seen.add(name + labelText);
    const family = types.has(name) ? name : name.replace(/_(bucket|sum|count)$/, '');
    const type = types.get(family);
    if (type === undefined) throw new Error(`sample ${name} has no TYPE`);
    if (family !== name && type !== 'histogram' && type !== 'summary') throw new Error(`${name}: suffix on a ${type}`);
    if (type === 'histogram' && family === name) throw new Error(`histogram sample ${name} without a suffix`);
    samples.push({ name, labels: parseLabels(labelText), value });
  }
  for (const [family, type] of types) {
    if (!helps.has(family)) throw new Error(`${family} has no HELP`);
    if (type !== 'histogram') continue;
    const series = new Map<string, { le: number; n: number }[]>();
    const keyOf = (labels: Record<string, string>) =>
      JSON.stringify(
        Object.entries(labels)
          .filter(([k]) => k !== 'le')
          .sort(),
      );
    for (const s of samples.filter((x) => x.name === `${family}_bucket`)) {
      if (s.labels.le === undefined) throw new Error(`${family}_bucket without le`);
      const le = s.labels.le === '+Inf' ? Infinity : Number(s.labels.le);
      const list = series.get(keyOf(s.labels)) ?? [];
      list.push({ le, n: s.value });
      series.set(keyOf(s.labels), list);
    }
    for (const [key, buckets] of series) {
      for (let i = 1; i < buckets.length; i++) {
        if (!(buckets[i].le > buckets[i - 1].le)) throw new Error(`${family}${key}: le not ascending`);
        if (buckets[i].n < buckets[i - 1].n) throw new Error(`${family}${key}: counts not cumulative`);
      }
      const last = buckets[buckets.length - 1];
      if (last.le !== Infinity) throw new Error(`${family}${key}: no le="+Inf" bucket`);
      const count = samples.find((s) => s.name === `${family}_count` && keyOf(s.labels) === key);
      if (count === undefined || count.value !== last.n) throw new Error(`${family}${key}: _count differs from the +Inf bucket`);
      if (!samples.some((s) => s.name === `${family}_sum` && keyOf(s.labels) === key)) throw new Error(`${family}${key}: no _sum`);
    }
  }
  return samples;
}
