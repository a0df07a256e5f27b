// Types of wsd.js, the client for wsd's chat protocol v1, served by wsd at
// /wsd.js (this file at /wsd.d.ts). The protocol: docs/protocol.md.

/** The subprotocol that selects chat protocol v1: "wsd.v1". */
export declare const PROTOCOL: "wsd.v1";

/** Defaults, in milliseconds. */
export declare const DEFAULTS: Readonly<{
  backoffBase: number;
  backoffCap: number;
  resendWithin: number;
}>;

/** The delay before retry number attempt (0-based): uniform in [0, min(cap, base·2^attempt)). */
export declare function fullJitter(attempt: number, base: number, cap: number, random?: () => number): number;

export interface WsdClientOptions {
  /** The specialKey (with JWT: the token's sub). Required. */
  key: string;
  /** The JWT, sent as token= in the query. */
  token?: string;
  /** Ask for gzip frames (support_gzip=1); ignored where DecompressionStream is missing. */
  gzip?: boolean;
  /** Rooms to join; the first is the connection's first room. "" is the global room. Default [""]. */
  rooms?: string[];
  /** The last K messages to replay for each of rooms the first time it is joined. */
  history?: number;
  /** Back-off: the first retry waits 0..backoffBase ms, none longer than backoffCap ms. */
  backoffBase?: number;
  backoffCap?: number;
  /** A send first written longer ago than this (ms) is failed ("stale") instead of resent. */
  resendWithin?: number;
  /** For tests: the WebSocket constructor, timers, randomness and clock to use. */
  WebSocket?: new (url: string, protocol: string) => WebSocket;
  setTimeout?: (fn: () => void, ms: number) => unknown;
  clearTimeout?: (id: unknown) => void;
  random?: () => number;
  now?: () => number;
}

export type WsdState = "connecting" | "open" | "closed" | "replaced";

export interface Ack {
  room: string;
  seq: number;
  epoch: string;
  /** Server time, Unix milliseconds. */
  ts: number;
  /** true: the send was a repeat of one the server already had; it was not broadcast again. */
  duplicate: boolean;
}

export interface MessageDetail {
  /** The room; null for a direct message to this key (no seq, not recovered). */
  room: string | null;
  seq: number;
  epoch: string;
  ts: number;
  /** The sender's key as wsd knows it ("" for the admin API or another box). */
  from: string;
  /** The sender's id for the send, when it gave one. */
  id?: string;
  /** Plain text: show it with textContent, never as HTML. */
  text: string;
  /** Sent by this client's key. */
  own: boolean;
  /** Part of the history a join asked for. */
  history: boolean;
  /** Part of the replay after a rejoin with since (recovered:true). */
  replay: boolean;
  /** A message to this key alone (POST /publish with "key"), in no room. */
  direct?: boolean;
}

export interface JoinedDetail {
  room: string;
  /** The room's latest seq and its epoch. */
  seq: number;
  epoch: string;
  /** true: every missed message follows (replayed of them). false: there may be a hole. */
  recovered: boolean;
  /** How many messages the replay brings (recovered:true). */
  replayed: number;
  /** The join asked for a replay (since+epoch): a reconnect or a gap. */
  resumed: boolean;
  /** Members of the room. */
  count: number;
  /** The K of a history join, else 0. */
  history: number;
}

export interface PresenceDetail {
  room: string;
  count: number;
  /** Absent when the room or a list is too large: count only. */
  joined?: string[];
  left?: string[];
}

export interface MembersDetail {
  room: string;
  count: number;
  members: string[];
  truncated: boolean;
}

export interface StateDetail {
  state: WsdState;
  /** The close code (0 when not closed). */
  code: number;
  reason: string;
  /** ms until the next attempt, null when none is scheduled. */
  retryIn: number | null;
  /** Failed attempts since the last successful join. */
  attempt: number;
  /** On open: the negotiated extensions and subprotocol. */
  extensions?: string;
  protocol?: string;
}

export interface ErrorDetail {
  /** The protocol's error code, or "decode" / "connect". */
  code: number | string;
  reason: string;
  room?: string;
}

export declare class WsdEvent<T> extends Event {
  readonly detail: T;
}

/** A refused command or a failed send. code: the protocol's, or "closed", "replaced", "left", "unconfirmed", "stale". */
export declare class WsdError extends Error {
  readonly code: number | string;
  readonly room?: string;
}

export interface WsdEventMap {
  message: MessageDetail;
  joined: JoinedDetail;
  left: { room: string };
  presence: PresenceDetail;
  state: StateDetail;
  error: ErrorDetail;
}

export declare class WsdClient extends EventTarget {
  constructor(url: string, opts: WsdClientOptions);
  readonly url: string;
  readonly key: string;
  readonly gzip: boolean;
  readonly state: WsdState;
  /** Rooms joined or being joined, in join order. */
  readonly rooms: string[];
  /** The last seq and epoch seen in a room. */
  position(room: string): { seq: number; epoch: string } | undefined;
  join(room: string, opts?: { history?: number }): Promise<JoinedDetail>;
  leave(room: string): Promise<{ room: string }>;
  /** Resolves once wsd has the message (across reconnects); id is the one its message event carries. */
  send(room: string, text: string): Promise<Ack> & { readonly id: string };
  members(room: string): Promise<MembersDetail>;
  close(): void;
  on<K extends keyof WsdEventMap>(type: K, fn: (detail: WsdEventMap[K]) => void): () => void;
  addEventListener<K extends keyof WsdEventMap>(type: K, fn: (e: WsdEvent<WsdEventMap[K]>) => void, opts?: boolean | AddEventListenerOptions): void;
  addEventListener(type: string, fn: EventListenerOrEventListenerObject | null, opts?: boolean | AddEventListenerOptions): void;
}
