// Type declarations for sseguard.js, the browser client of an sseguard hub.

/** A transport: Server-Sent Events over fetch, WebSocket, or JSON long polling. */
export type Transport = 'sse' | 'ws' | 'poll';

/** Replaces the browser globals the client uses; for tests. */
export interface Environment {
  fetch?: typeof fetch;
  WebSocket?: typeof WebSocket;
  setTimeout?: (fn: () => void, ms: number) => unknown;
  clearTimeout?: (handle: unknown) => void;
  /** A number in [0, 1), as Math.random. */
  random?: () => number;
  /** Where `online` and `offline` are listened for; null for nowhere. */
  window?: EventTarget | null;
  navigator?: { onLine?: boolean } | null;
  location?: { origin: string } | null;
}

export interface Options {
  /** The topics to read: one name or several; a pattern such as "orders/*" (passed unchanged) reads every topic under its prefix. */
  topics: string | string[];
  /** The hub's base URL, such as "https://events.example"; default: the page's origin. */
  url?: string;
  /** Start after this event ID ("0" replays all retained history); default: from now. */
  lastEventId?: string;
  /** The transports in order of preference; default ['sse', 'ws', 'poll']. */
  transports?: Transport[];
  /** ms a stream may take to send its first byte (a WebSocket to open); default 5000. */
  firstByteTimeout?: number;
  /** The hub's stream.heartbeat in ms; a stream silent for twice this failed; default 15000. */
  heartbeat?: number;
  /** ms before a better transport is tried again, doubling after each failed try; default 60000. */
  upgradeInterval?: number;
  /** The cap of that interval; default 960000 (16 minutes). */
  maxUpgradeInterval?: number;
  /** Backoff base in ms when the hub sent no retry: hint; default 1000. */
  retryMin?: number;
  /** Backoff cap in ms; default 30000. */
  retryMax?: number;
  /** Seconds a poll may wait at the hub for an event (capped by poll.max_wait); default 25. */
  pollWait?: number;
  /** Send cookies to another origin (credentials: 'include'); default true. */
  withCredentials?: boolean;
  /** The hub's auth.query_param, when query tokens are enabled there. */
  tokenParam?: string;
  /** The token sent in that query parameter. Prefer an HttpOnly cookie. */
  token?: string;
  /** Endpoint paths; default { sse: '/events', ws: '/ws', poll: '/api/poll' }. */
  paths?: { sse?: string; ws?: string; poll?: string };
  /** Test hooks. */
  env?: Environment;
}

/** The fields of a `message` event. */
export interface Message {
  id: string;
  /** The event's topic; over SSE with several topics or a pattern, "" (the stream does not say). */
  topic: string;
  /** The event type: "message" unless the publisher set one. */
  type: string;
  data: string;
  transport: Transport;
}

export interface TransportDetail { transport: Transport; previous: Transport | null; reason: string }
export interface OpenDetail { transport: Transport }
export interface ResetDetail { reason: string; message: string; transport: Transport }
export interface ErrorDetail {
  /** The problem's `error` code, or network, offline, transport_failed, http_NNN. */
  error: string;
  status: number;
  /** The problem's detail, or what failed. */
  message: string;
  transport: Transport | null;
  /** True when the subscription stopped (401, 403). */
  fatal: boolean;
  retryAfter?: number;
}
export interface CloseDetail { reason: string; message: string; status: number }

/** A DOM event whose detail's fields are also its own properties (but a message's type is eventType). */
export type SubscriptionEvent<D> = Event & { readonly detail: D } & Readonly<Omit<D, 'type'>>;
export type MessageEvent = SubscriptionEvent<Message> & { readonly eventType: string };

export interface SubscriptionEventMap {
  message: MessageEvent;
  open: SubscriptionEvent<OpenDetail>;
  transport: SubscriptionEvent<TransportDetail>;
  reset: SubscriptionEvent<ResetDetail>;
  error: SubscriptionEvent<ErrorDetail>;
  close: SubscriptionEvent<CloseDetail>;
}

export class Subscription extends EventTarget {
  constructor(options: Options);
  /** The ID of the last event delivered ("" before any). */
  readonly lastEventId: string;
  readonly transport: Transport | null;
  readonly readyState: 'connecting' | 'open' | 'closed';
  readonly topics: string[];
  /** Stops for good. */
  close(): void;
  addEventListener<K extends keyof SubscriptionEventMap>(type: K, listener: (ev: SubscriptionEventMap[K]) => void, options?: boolean | AddEventListenerOptions): void;
  addEventListener(type: string, listener: EventListenerOrEventListenerObject | null, options?: boolean | AddEventListenerOptions): void;
  removeEventListener<K extends keyof SubscriptionEventMap>(type: K, listener: (ev: SubscriptionEventMap[K]) => void, options?: boolean | EventListenerOptions): void;
  removeEventListener(type: string, listener: EventListenerOrEventListenerObject | null, options?: boolean | EventListenerOptions): void;
}

/** new Subscription({ ...options, topics }). */
export function subscribe(topics: string | string[], options?: Omit<Options, 'topics'>): Subscription;

/** The event-stream parser the SSE transport uses. */
export function parser(on: {
  event: (e: { id: string | undefined; type: string; data: string }) => void;
  retry?: (ms: number) => void;
  comment?: () => void;
}): (chunk: string) => void;

/** Retry-After (seconds or an HTTP date) in milliseconds; 0 when absent or invalid. */
export function retryAfter(value: string | null): number;
