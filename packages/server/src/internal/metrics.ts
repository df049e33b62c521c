/** The protocols a request can come in by. */
export type Protocol = 'grpc' | 'http';

/** Figures the metrics page shows that live elsewhere (the object index). */
export interface StoreFigures {
  readonly objects: number;
  readonly bytes: number;
  readonly maxBytes: number;
  readonly evictions: number;
  readonly evictedBytes: number;
  readonly announcements: number;
}

/** Counters of requests, errors and transferred bytes, rendered in the Prometheus text exposition format. */
export class Metrics {
  readonly #requests = new Map<string, number>();
  readonly #errors = new Map<string, number>();
  readonly #received = new Map<Protocol, number>();
  readonly #sent = new Map<Protocol, number>();
  uploads = 0;
  rejectedUploads = 0;

  /** Counts one request (`failed`: it ended in an error status). */
  request(protocol: Protocol, method: string, failed: boolean): void {
    const key = `${protocol}\u0000${method}`;
    this.#requests.set(key, (this.#requests.get(key) ?? 0) + 1);
    if (failed) this.#errors.set(key, (this.#errors.get(key) ?? 0) + 1);
  }

  /** Counts bytes received (object bodies) and sent (object bodies). */
  transfer(protocol: Protocol, received: number, sent: number): void {
    if (received) this.#received.set(protocol, (this.#received.get(protocol) ?? 0) + received);
    if (sent) this.#sent.set(protocol, (this.#sent.get(protocol) ?? 0) + sent);
  }

  /** Requests counted for one protocol and method (for tests and the CLI). */
  requests(protocol: Protocol, method: string): number {
    return this.#requests.get(`${protocol}\u0000${method}`) ?? 0;
  }

  /** Errors counted for one protocol and method. */
  errors(protocol: Protocol, method: string): number {
    return this.#errors.get(`${protocol}\u0000${method}`) ?? 0;
  }

  /** The Prometheus text format (version 0.0.4). */
  render(store: StoreFigures): string {
    const lines: string[] = [];
    const metric = (name: string, type: 'gauge' | 'counter', help: string, samples: [string, number][]) => {
      lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
      for (const [labels, value] of samples) lines.push(`${name}${labels} ${value}`);
    };
    const byMethod = (map: Map<string, number>): [string, number][] =>
      [...map]
        .sort(([a], [b]) => (a < b ? -1 : 1))
        .map(([key, value]) => {
          const [protocol, method] = key.split('\u0000');
          return [`{protocol="${protocol}",method="${escapeLabel(method ?? '')}"}`, value];
        });
    const byProtocol = (map: Map<Protocol, number>): [string, number][] =>
      (['grpc', 'http'] as const).map((p) => [`{protocol="${p}"}`, map.get(p) ?? 0]);
    metric('fsw_server_objects', 'gauge', 'Objects in the store.', [['', store.objects]]);
    metric('fsw_server_bytes', 'gauge', 'Bytes of all objects in the store.', [['', store.bytes]]);
    metric('fsw_server_max_bytes', 'gauge', 'The size the store is evicted down to stay under.', [
      ['', store.maxBytes],
    ]);
    metric(
      'fsw_server_requests_total',
      'counter',
      'Requests by protocol and method.',
      byMethod(this.#requests),
    );
    metric(
      'fsw_server_errors_total',
      'counter',
      'Requests that ended in an error, by protocol and method.',
      byMethod(this.#errors),
    );
    metric('fsw_server_evictions_total', 'counter', 'Objects removed by eviction.', [['', store.evictions]]);
    metric('fsw_server_evicted_bytes_total', 'counter', 'Bytes freed by eviction.', [
      ['', store.evictedBytes],
    ]);
    metric('fsw_server_uploads_total', 'counter', 'Objects received and verified.', [['', this.uploads]]);
    metric(
      'fsw_server_rejected_uploads_total',
      'counter',
      'Uploads refused because the bytes did not match the digest.',
      [['', this.rejectedUploads]],
    );
    metric(
      'fsw_server_received_bytes_total',
      'counter',
      'Object bytes received.',
      byProtocol(this.#received),
    );
    metric('fsw_server_sent_bytes_total', 'counter', 'Object bytes sent.', byProtocol(this.#sent));
    metric('fsw_server_announcements', 'gauge', 'Running pushes whose objects eviction keeps.', [
      ['', store.announcements],
    ]);
    return `${lines.join('\n')}\n`;
  }
}

function escapeLabel(value: string): string {
  return value.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}
