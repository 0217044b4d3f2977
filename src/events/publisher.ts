// Publishes task events to containerd over ttrpc (`TTRPC_ADDRESS`), in order: one queue, one
// Forward at a time, so /tasks/start is never overtaken by /tasks/exit. A failed Forward is
// retried with backoff (containerd may be restarting); events are dropped only after the
// retries run out, and that is logged.
import { Envelope, ForwardRequest } from '../../api/gen/containerd/services/events/ttrpc/v1/events';
import type { Any } from '../../api/gen/google/protobuf/any';
import { TtrpcClient } from '../protocol/ttrpc/client';
import { toTimestamp } from '../service/timestamps';
import type { Logger } from '../log';

export interface TaskEvent { topic: string; event: Any }

const RETRIES = 5;
const FORWARD_TIMEOUT_MS = 5000;

export class EventPublisher {
  private readonly queue: TaskEvent[] = [];
  private draining: Promise<void> | null = null;
  private client: TtrpcClient | null = null;

  constructor(private readonly ttrpcAddress: string, private readonly namespace: string, private readonly log: Logger) {}

  publish(topic: string, event: Any): void {
    this.queue.push({ topic, event });
    if (!this.draining) this.draining = this.drain().finally(() => { this.draining = null; });
  }

  /** Resolves when every queued event has been forwarded (or given up on). */
  async flush(): Promise<void> {
    while (this.draining) await this.draining;
  }

  close(): void {
    this.client?.close();
    this.client = null;
  }

  private async drain(): Promise<void> {
    for (let e = this.queue.shift(); e; e = this.queue.shift()) {
      const payload = ForwardRequest.encode({
        envelope: Envelope.fromPartial({ timestamp: toTimestamp(new Date()), namespace: this.namespace, topic: e.topic, event: e.event }),
      }).finish();
      for (let attempt = 1; ; attempt++) {
        try {
          const client = await this.connect();
          await client.call('containerd.services.events.ttrpc.v1.Events', 'Forward', payload, { timeoutMs: FORWARD_TIMEOUT_MS });
          this.log.debug(`published ${e.topic}`);
          break;
        } catch (err) {
          this.client?.close();
          this.client = null;
          if (attempt >= RETRIES) {
            this.log.error(`failed to publish event ${e.topic}: ${(err as Error).message}`);
            break;
          }
          await new Promise((r) => setTimeout(r, 100 * 2 ** attempt));
        }
      }
    }
  }

  private async connect(): Promise<TtrpcClient> {
    if (!this.client) {
      const path = this.ttrpcAddress.replace(/^unix:\/\//, '');
      this.client = await TtrpcClient.connect(path, 2000);
      this.client.on('close', () => { this.client = null; });
    }
    return this.client;
  }
}
