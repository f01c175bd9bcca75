import { Registry } from 'prom-client';

/**
 * Every Prometheus metric Drover exports, in one registry of its own (not
 * prom-client's global one, so two Drovers in one process do not mix).
 * Created only when the config has an `admin:` block: without it, nothing is
 * counted and requests pay nothing.
 */
export class Metrics {
  readonly registry = new Registry();

  /** The exposition text for GET /metrics. */
  text(): Promise<string> {
    return this.registry.metrics();
  }

  /** The Content-Type of text(). */
  get contentType(): string {
    return this.registry.contentType;
  }
}
