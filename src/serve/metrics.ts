// Just enough of the Prometheus text exposition format (version 0.0.4) for the
// server: counters with labels, gauges and cumulative histograms.

function formatNumber(v: number): string {
  if (v === Infinity) return '+Inf';
  if (v === -Infinity) return '-Inf';
  if (Number.isNaN(v)) return 'NaN';
  return String(v);
}

function escapeLabel(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');
}

function labelText(labels: Record<string, string>): string {
  const parts = Object.entries(labels).map(([k, v]) => `${k}="${escapeLabel(v)}"`);
  return parts.length === 0 ? '' : `{${parts.join(',')}}`;
}

interface Metric {
  render(): string[];
}

export class Counter implements Metric {
  private readonly values = new Map<string, { labels: Record<string, string>; value: number }>();
  constructor(
    readonly name: string,
    readonly help: string,
  ) {}

  inc(labels: Record<string, string> = {}, by = 1): void {
    const key = labelText(labels);
    const entry = this.values.get(key) ?? { labels, value: 0 };
    entry.value += by;
    this.values.set(key, entry);
  }

  /** Values by the text of their labels, e.g. {'{code="200"}': 3}. */
  snapshot(): Record<string, number> {
    return Object.fromEntries([...this.values].map(([k, e]) => [k, e.value]));
  }

  get(labels: Record<string, string> = {}): number {
    return this.values.get(labelText(labels))?.value ?? 0;
  }

  render(): string[] {
    const lines = [`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} counter`];
    for (const [key, e] of [...this.values].sort(([a], [b]) => a.localeCompare(b))) lines.push(`${this.name}${key} ${formatNumber(e.value)}`);
    return lines;
  }
}

export class Gauge implements Metric {
  constructor(
    readonly name: string,
    readonly help: string,
    private readonly read: () => number,
  ) {}

  render(): string[] {
    return [`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} gauge`, `${this.name} ${formatNumber(this.read())}`];
  }
}

interface HistogramSeries {
  labels: Record<string, string>;
  counts: number[];
  sum: number;
  count: number;
}

/** Cumulative buckets, one series per label set (one unlabelled series when `labelNames` is empty). */
export class Histogram implements Metric {
  readonly buckets: number[];
  private readonly series = new Map<string, HistogramSeries>();

  constructor(
    readonly name: string,
    readonly help: string,
    buckets: readonly number[],
    readonly labelNames: readonly string[] = [],
  ) {
    this.buckets = [...new Set(buckets)].filter((b) => Number.isFinite(b)).sort((a, b) => a - b);
    // An unlabelled histogram shows its zeros before the first observation, as Prometheus clients do.
    if (labelNames.length === 0) this.seriesOf({});
  }

  observe(v: number, labels: Record<string, string> = {}): void {
    const s = this.seriesOf(labels);
    for (let i = 0; i < this.buckets.length; i++) if (v <= this.buckets[i]) s.counts[i]++;
    s.sum += v;
    s.count++;
  }

  /** Observations over every label set. */
  get count(): number {
    let n = 0;
    for (const s of this.series.values()) n += s.count;
    return n;
  }

  get sum(): number {
    let total = 0;
    for (const s of this.series.values()) total += s.sum;
    return total;
  }

  render(): string[] {
    const lines = [`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} histogram`];
    for (const [key, s] of [...this.series].sort(([a], [b]) => a.localeCompare(b))) {
      const withLe = (le: number) => labelText({ ...s.labels, le: formatNumber(le) });
      this.buckets.forEach((b, i) => lines.push(`${this.name}_bucket${withLe(b)} ${s.counts[i]}`));
      lines.push(`${this.name}_bucket${withLe(Infinity)} ${s.count}`, `${this.name}_sum${key} ${formatNumber(s.sum)}`, `${this.name}_count${key} ${s.count}`);
    }
    return lines;
  }

  private seriesOf(labels: Record<string, string>): HistogramSeries {
    const key = labelText(labels);
    let s = this.series.get(key);
    if (s === undefined) {
      s = { labels: { ...labels }, counts: this.buckets.map(() => 0), sum: 0, count: 0 };
      this.series.set(key, s);
    }
    return s;
  }
}

export class Registry {
  private readonly metrics: Metric[] = [];

  add<M extends Metric>(m: M): M {
    this.metrics.push(m);
    return m;
  }

  /** The exposition text (Content-Type: text/plain; version=0.0.4). */
  render(): string {
    return this.metrics.flatMap((m) => m.render()).join('\n') + '\n';
  }
}

export const PROMETHEUS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';
