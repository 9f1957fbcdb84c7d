// Types of mdgate.js, the gateway's JavaScript client (docs/client-js.md).
// Hand-written; keep in step with mdgate.js.

export type State = "connecting" | "live" | "reconnecting" | "closed";

export interface Options {
  /**
   * WebSocket URLs; after a failure the next one is tried first. Default: this page's /ws.
   * A close 1012 "standby" (the gateway stopped being the active one of a failover pair) moves
   * to the next at once, without the backoff; so does a refused handshake (a standby's 503),
   * each URL once at most until a connection is live again.
   */
  urls?: string[];
  /** Bearer token, or a callback called before each connect (to refresh it). Sent as the subprotocols ["mdgate", "bearer." + token]. */
  token?: string | (() => string | Promise<string>);
  /** Full-jitter backoff bounds in milliseconds (default 500 and 20000). */
  backoff?: { min?: number; max?: number };
}

export interface SubscribeSpec {
  topics?: string[];
  prefixes?: string[];
  /** Send the cached values first (default true). */
  snapshot?: boolean;
  /** What the gateway does when this client falls behind (default "disconnect"). */
  slow?: "disconnect" | "conflate";
  /** At most one update per topic per interval, the latest (throttle_ms). */
  throttleMs?: number;
  /** Tighter lag limit for the connection (max_lag_ms). */
  maxLagMs?: number;
  /** Tighter queue limit for the connection (max_queue_bytes). */
  maxQueueBytes?: number;
}

export interface Update {
  op: "snapshot" | "update";
  topic: string;
  seq: number;
  /** 16 hex digits; seqs compare only within one epoch. */
  epoch: string;
  /** The failover pair's term the value was stamped under; 0 from a gateway that is not one of a pair. */
  term: number;
  /** Ingress time, microseconds since the Unix epoch. */
  ts: number;
  /** The payload: JSON as sent, or base64 when enc is "base64". */
  data?: unknown;
  enc?: "base64";
  /** Instead of data when the publisher sent more than one payload frame. */
  frames?: string[];
  deleted: boolean;
  /** Loaded from the gateway's cache file, not refreshed since. */
  stale: boolean;
  /** Updates before this one are gone (or, with missed 0, not known: another epoch). */
  gap: boolean;
  /** With gap: how many updates of the topic you will never see (0 when not known). */
  missed: number;
  /** Updates this value replaced (conflation or throttle). */
  skipped: number;
  /** An update you missed while away, replayed from the gateway's history on resume (op "update"). */
  replay: boolean;
  /** The first replayed update of its topic, directly after your last seq: nothing was lost. */
  recovered: boolean;
  /**
   * After a failover: this value replaces values you held that the new active never had (the
   * gateway's "diverged", or a higher term with a seq not past yours); a "diverged" event came
   * first, and the topic's seq is reset to this one.
   */
  diverged: boolean;
}

export interface GapEvent { topic: string; missed: number }
/** A topic's replay on resume starts directly after your last seq: every missed update follows, in order. */
export interface RecoveredEvent { topic: string }
export interface EpochEvent { from: string; to: string }
/** A topic's seq went back after a failover: the new active never had the values you held past to.seq (from to.seq on, when to.term is higher than from.term). */
export interface DivergedEvent { topic: string; from: { seq: number; term: number }; to: { seq: number; term: number } }
export interface CutoffEvent { code: number; reason: string }
export interface StateEvent { state: State; url: string }
export interface ErrorEvent { code: string; message: string; id: unknown }

export interface Events {
  update: Update;
  gap: GapEvent;
  recovered: RecoveredEvent;
  epoch: EpochEvent;
  diverged: DivergedEvent;
  cutoff: CutoffEvent;
  state: StateEvent;
  error: ErrorEvent;
}

export interface Subscription {
  /** Unsubscribes what no other subscription of this client still needs. */
  close(): void;
}

export class MdGate {
  constructor(opts?: Options);
  readonly state: State;
  readonly urls: string[];
  /** Registers fn; returns a function that removes it. */
  on<K extends keyof Events>(event: K, fn: (e: Events[K]) => void): () => void;
  off<K extends keyof Events>(event: K, fn: (e: Events[K]) => void): void;
  subscribe(spec: SubscribeSpec): Subscription;
  /** The last seq and epoch seen for topic, and its term when not 0 (as on the wire). */
  last(topic: string): { seq: number; epoch: string; term?: number } | undefined;
  close(): void;
}
