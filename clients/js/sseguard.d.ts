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
  /** The topics to read: one name or several; a pattern such as "orders/*" (passed unchanged) reads every topic under its prefix, including topics created later. */
  topics: string | string[];
  /** Ask for join and leave events (presence=1 on SSE and WebSocket; polling has none). The hub refuses it with 400 when none of the topics is tracked by presence.topics. Default false. */
  presence?: boolean;
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
  /** True when the subscription stopped (401, 403, or a 400 in the hub's problem shape). */
  fatal: boolean;
  retryAfter?: number;
}
export interface CloseDetail { reason: string; message: string; status: number }

/** The object of an sseguard.join or sseguard.leave event, as the hub sent it. */
export interface PresenceData {
  topic: string;
  /** The topic's open streams and WebSockets after the change, across the cluster. */
  count: number;
  /** The subject that joined or left; only for a token with the presence claim, never for anonymous subscribers. */
  sub?: string;
  [member: string]: unknown;
}

/** The fields of a `join` or `leave` event. They are not history: no id, and the cursor does not move. */
export interface PresenceDetail {
  topic: string;
  count: number;
  sub?: string;
  /** The parsed object the hub sent. */
  data: PresenceData;
  transport: Transport;
}

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
  /** A subject's first connection to a topic (or an anonymous one); only with the presence option. */
  join: SubscriptionEvent<PresenceDetail>;
  /** A subject's last connection to a topic closed (or an anonymous one); only with the presence option. */
  leave: SubscriptionEvent<PresenceDetail>;
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

/** What GET /api/presence answers. */
export interface Presence {
  topic: string;
  /** Open streams and WebSockets subscribed to the topic by name, across the cluster (polls are not counted). */
  count: number;
  /** Sorted, unique principal subjects; present only for a token with the presence claim. */
  subjects?: string[];
}

export interface PresenceOptions {
  /** The endpoint's path; default "/api/presence". */
  path?: string;
  /** Send cookies to another origin; default true. */
  withCredentials?: boolean;
  /** The hub's auth.query_param, when query tokens are enabled there. */
  tokenParam?: string;
  /** The token sent in that query parameter. */
  token?: string;
  /** ms to wait for the answer; default 10000; 0 for no limit. */
  timeout?: number;
  /** Aborts the request; the promise then rejects as fetch does. */
  signal?: AbortSignal;
  /** Test hooks. */
  env?: Pick<Environment, 'fetch' | 'setTimeout' | 'clearTimeout' | 'location'>;
}

/** How presence() fails: the hub's problem, or network, timeout, bad_answer, http_NNN. */
export class ProblemError extends Error {
  constructor(detail: { error: string; status?: number; message?: string; retryAfter?: number; problem?: object });
  /** The problem's `error` code, or network, timeout, bad_answer, http_NNN. */
  readonly error: string;
  /** The HTTP status; 0 when no answer came. */
  readonly status: number;
  /** Retry-After in ms; 0 when absent. */
  readonly retryAfter: number;
  /** The problem+json body, when the hub sent one. */
  readonly problem?: { type?: string; title?: string; status?: number; detail?: string; error?: string; [member: string]: unknown };
}

/** Who is connected to topic (a name, not a pattern): GET /api/presence. url "" is the page's origin. */
export function presence(url: string, topic: string, options?: PresenceOptions): Promise<Presence>;
