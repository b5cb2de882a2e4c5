// The server's Prometheus metrics, through prom-client (the ecosystem's client: its
// exposition, and its default process and Node.js metrics). The classes here wrap its
// instruments with the small API the server uses: each also keeps its own tallies, because
// prom-client reads values asynchronously and the server's metrics() snapshot is synchronous.
import * as prom from 'prom-client';

interface Metric {
  readonly name: string;
  /** The prom-client instrument, registered in the Registry by add(). */
  readonly instrument: prom.Metric;
}

function labelKey(labels: Record<string, string>): string {
  const parts = Object.entries(labels).map(([k, v]) => `${k}="${v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"')}"`);
  return parts.length === 0 ? '' : `{${parts.join(',')}}`;
}

export class Counter implements Metric {
  readonly instrument: prom.Counter;
  private readonly series = new Map<string, [Record<string, string>, number]>();
  constructor(
    readonly name: string,
    readonly help: string,
    labelNames: readonly string[] = [],
  ) {
    this.instrument = new prom.Counter({ name, help, labelNames: [...labelNames], registers: [] });
  }

  inc(labels: Record<string, string> = {}, by = 1): void {
    this.instrument.inc(labels, by);
    const key = labelKey(labels);
    this.series.set(key, [labels, (this.series.get(key)?.[1] ?? 0) + by]);
  }

  /** Values by the text of their labels, e.g. {'{code="200"}': 3}. */
  snapshot(): Record<string, number> {
    return Object.fromEntries([...this.series].map(([key, [, value]]) => [key, value]));
  }

  /** Each label set's value, by the value of one label (e.g. byLabel('rate') -> {'0.5': 40}). */
  byLabel(name: string): Record<string, number> {
    const out: Record<string, number> = {};
    for (const [labels, value] of this.series.values()) out[labels[name]] = (out[labels[name]] ?? 0) + value;
    return out;
  }

  get(labels: Record<string, string> = {}): number {
    return this.series.get(labelKey(labels))?.[1] ?? 0;
  }

  /** The sum over every label set. */
  total(): number {
    let n = 0;
    for (const [, v] of this.series.values()) n += v;
    return n;
  }
}

/** A gauge read when scraped: `read` gives one value, or one per label set. */
export class Gauge implements Metric {
  readonly instrument: prom.Gauge;
  constructor(
    readonly name: string,
    readonly help: string,
    read: () => number | { labels: Record<string, string>; value: number }[],
    labelNames: readonly string[] = [],
  ) {
    this.instrument = new prom.Gauge({
      name,
      help,
      labelNames: [...labelNames],
      registers: [],
      collect() {
        const v = read();
        if (typeof v === 'number') this.set(v);
        else for (const s of v) this.set(s.labels, s.value);
      },
    });
  }
}

/** Cumulative buckets, one series per label set (one unlabelled series when `labelNames` is empty). */
export class Histogram implements Metric {
  readonly buckets: number[];
  readonly instrument: prom.Histogram;
  private n = 0;
  private total = 0;

  constructor(
    readonly name: string,
    readonly help: string,
    buckets: readonly number[],
    labelNames: readonly string[] = [],
  ) {
    this.buckets = [...new Set(buckets)].filter((b) => Number.isFinite(b)).sort((a, b) => a - b);
    this.instrument = new prom.Histogram({ name, help, buckets: this.buckets, labelNames: [...labelNames], registers: [] });
  }

  observe(v: number, labels: Record<string, string> = {}): void {
    this.instrument.observe(labels, v);
    this.n++;
    this.total += v;
  }

  /** Observations over every label set. */
  get count(): number {
    return this.n;
  }

  get sum(): number {
    return this.total;
  }
}

export class Registry {
  private readonly registry = new prom.Registry();

  /**
   * With `processMetrics`, also prom-client's default process and Node.js metrics (CPU,
   * memory, event loop lag, GC), less three gauges whose names end in _total, which
   * `promtool check metrics` flags (their per-type gauges, nodejs_active_handles and the
   * like, remain).
   */
  constructor(options: { processMetrics?: boolean } = {}) {
    if (!options.processMetrics) return;
    prom.collectDefaultMetrics({ register: this.registry });
    for (const name of ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total']) this.registry.removeSingleMetric(name);
  }

  add<M extends Metric>(m: M): M {
    this.registry.registerMetric(m.instrument);
    return m;
  }

  /** The exposition text (Content-Type: PROMETHEUS_CONTENT_TYPE). */
  render(): Promise<string> {
    return this.registry.metrics();
  }
}

export const PROMETHEUS_CONTENT_TYPE: string = prom.Registry.PROMETHEUS_CONTENT_TYPE;
