import { Counter, Gauge, type Registry } from 'prom-client';

/** Prometheus metrics of the Kubernetes source, the status writer and leader election. */
export class KubeMetrics {
  readonly events: Counter<'resource' | 'type'>;
  readonly lists: Counter<'resource' | 'reason'>;
  readonly watchFailures: Counter<'resource'>;
  readonly statusWrites: Counter<'kind' | 'result'>;
  readonly leader: Gauge<'lease'>;

  constructor(registry: Registry) {
    const registers = [registry];
    this.events = new Counter({
      name: 'skein_kube_watch_events_total',
      help: 'Watch events received, by resource and event type',
      labelNames: ['resource', 'type'],
      registers,
    });
    this.lists = new Counter({
      name: 'skein_kube_lists_total',
      help: 'Full lists of a resource, by reason: initial, expired (410 Gone), error (after a failed watch), missing (kind not served)',
      labelNames: ['resource', 'reason'],
      registers,
    });
    this.watchFailures = new Counter({
      name: 'skein_kube_watch_failures_total',
      help: 'Lists and watches that failed and were retried with backoff',
      labelNames: ['resource'],
      registers,
    });
    this.statusWrites = new Counter({
      name: 'skein_kube_status_writes_total',
      help: 'Status writes, by kind and result (written, conflict, failed, gone)',
      labelNames: ['kind', 'result'],
      registers,
    });
    this.leader = new Gauge({
      name: 'skein_leader',
      help: '1 while this replica holds the leader Lease',
      labelNames: ['lease'],
      registers,
    });
  }
}
