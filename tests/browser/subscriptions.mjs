// GraphQL subscriptions of the booking host, driven with the real clients:
// graphql-ws (`graphql-transport-ws` over WebSocket, at ws://HOST/graphql)
// and graphql-sse (distinct connections mode, at http://HOST/graphql/stream).
//
//   BOOKING_URL=http://127.0.0.1:8000 node tests/browser/subscriptions.mjs <scenario>
//
// Scenarios: ws-seat-map, sse-seat-map, ws-booking-status, ws-limits,
// two-hosts (needs BOOKING_URL_B). Other env: PER_CONNECTION (subscriptions
// one WebSocket may hold, default 10), INIT_TIMEOUT_MS (the server's
// connection_init timeout, default 10000).
//
// Latencies (…LatencyMs) are ms from the mutation's HTTP response to the
// subscription message (negative: the message came first); …SinceRequestMs
// count from when the mutation was sent.
//
// Prints exactly one JSON line: {"ok": true, "scenario": ..., ...figures}
// (exit 0) or {"ok": false, "error": "...", ...figures so far} (exit 1).
// Every wait is bounded (10 s, the init timeout + 2 s for 4408) and the
// whole run is cut at 60 s. Protocol notes: /work/notes/live-protocol.md.
import { createClient as createWsClient } from 'graphql-ws';
import { createClient as createSseClient } from 'graphql-sse';
import WebSocket from 'ws';
import { readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';

const SCENARIO = process.argv[2] || '';
const BASE = (process.env.BOOKING_URL || '').replace(/\/+$/, '');
const BASE_B = (process.env.BOOKING_URL_B || '').replace(/\/+$/, '');
const PER_CONNECTION = Number(process.env.PER_CONNECTION || 10);
const INIT_TIMEOUT_MS = Number(process.env.INIT_TIMEOUT_MS || 10000);
const PER_USER = Number(process.env.PER_USER || 20);
const IDLE_MS = Number(process.env.IDLE_MS || 60000);
const WAIT_MS = 10_000;
const SCENARIO_MS = 60_000;
const SHOWTIME = 'showtime_456';
const SEAT_COUNT = 50; // rows A–E × 1–10

const figures = { scenario: SCENARIO };
const cleanups = []; // run in reverse at the end, errors ignored
const now = () => performance.now();
const ms = (x) => Math.round(x * 10) / 10;
const sleep = (t) => new Promise((resolve) => setTimeout(resolve, t));

const wsUrl = (base) => base.replace(/^http/, 'ws') + '/graphql';
const sseUrl = (base) => base + '/graphql/stream';

class Failure extends Error {}
const fail = (message) => {
  throw new Failure(message);
};
const check = (condition, message) => condition || fail(message);

function withTimeout(promise, timeoutMs, what) {
  let timer;
  return Promise.race([
    promise,
    new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Failure(`timed out after ${timeoutMs} ms waiting for ${what}`)), timeoutMs);
    }),
  ]).finally(() => clearTimeout(timer));
}

/** Short text for whatever a client handed to sink.error. */
function describe(err) {
  if (Array.isArray(err)) return `error message ${JSON.stringify(err)}`;
  if (err && typeof err === 'object' && 'code' in err && 'reason' in err)
    return `socket closed ${err.code} ${JSON.stringify(String(err.reason))}`;
  if (err instanceof Error) return `${err.name}: ${err.message}`;
  if (err && typeof err === 'object' && err.type === 'error') return `WebSocket error: ${err.message || err.error?.message || 'unknown'}`;
  return String(err);
}

// ---------------------------------------------------------------- HTTP side

async function login(base, userId) {
  const res = await withTimeout(
    fetch(`${base}/book/login`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ userId, password: 'demo' }),
    }),
    WAIT_MS,
    `login of ${userId}`,
  );
  const body = await res.json().catch(() => null);
  check(res.status === 200 && body?.token, `login of ${userId} at ${base}: ${res.status} ${JSON.stringify(body)}`);
  return body.token;
}

/** POST /graphql; retries 429 (rate limit) within the wait bound. */
async function graphql(base, token, query, variables = {}) {
  const started = now();
  for (;;) {
    const res = await withTimeout(
      fetch(`${base}/graphql`, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          accept: 'application/graphql-response+json, application/json',
          ...(token ? { authorization: `Bearer ${token}` } : {}),
        },
        body: JSON.stringify({ query, variables }),
      }),
      WAIT_MS,
      'a /graphql answer',
    );
    if (res.status === 429 && now() - started < WAIT_MS) {
      const after = Number(res.headers.get('retry-after')) || 0.1;
      await res.arrayBuffer().catch(() => {});
      await sleep(Math.min(Math.max(after * 1000, 20), 500));
      continue;
    }
    const body = await res.json().catch(() => null);
    return { status: res.status, body, at: now(), sentAt: started };
  }
}

/** A mutation's payload object; fails on GraphQL errors unless `tolerate`. */
async function mutate(base, token, field, query, variables) {
  const { status, body, at, sentAt } = await graphql(base, token, query, variables);
  const value = body?.data?.[field];
  if (!value) fail(`${field}: ${status} ${JSON.stringify(body)}`);
  return { value, at, sentAt };
}

const CREATE = `mutation($u: String!, $s: String!, $n: [String!]!) {
  createBooking(userId: $u, showtimeId: $s, seatNumbers: $n) {
    success message code lockId booking { id status lockExpiresAt seats } } }`;
const PAY = `mutation($b: String!, $d: String!) {
  processPayment(bookingId: $b, paymentMethod: "credit_card", paymentDetails: $d) {
    success message code booking { id status failureReason } } }`;
const CANCEL = `mutation($b: String!) { cancelBooking(bookingId: $b) { success message booking { id status } } }`;
const EXTEND = `mutation($b: String!, $k: String) {
  extendBookingLock(bookingId: $b, idempotencyKey: $k) { success message code booking { id status lockExpiresAt } } }`;
const SEATS = `query($s: String!) { showtimeSeats(showtimeId: $s) { seats { number status } } }`;

const SEAT_MAP = `subscription($s: String!) { seatMap(showtimeId: $s) { showtimeId snapshot seats { number status } } }`;
const BOOKING_STATUS = `subscription($b: String!) { bookingStatus(bookingId: $b) { id status lockExpiresAt } }`;

async function currentSeats(base, token) {
  const { status, body } = await graphql(base, token, SEATS, { s: SHOWTIME });
  const seats = body?.data?.showtimeSeats?.seats;
  check(Array.isArray(seats), `showtimeSeats: ${status} ${JSON.stringify(body)}`);
  return new Map(seats.map((seat) => [seat.number, seat.status]));
}

function pickAvailable(seatMap, count, avoid = new Set()) {
  const free = [...seatMap].filter(([n, s]) => s === 'AVAILABLE' && !avoid.has(n)).map(([n]) => n);
  check(free.length >= count, `only ${free.length} AVAILABLE seats left in ${SHOWTIME}`);
  // Random, so that runs sharing a host rarely want the same seats.
  for (let i = free.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [free[i], free[j]] = [free[j], free[i]];
  }
  return free.slice(0, count).sort();
}

/**
 * createBooking of `count` AVAILABLE seats (taken from `seatsNow()`),
 * trying other seats if someone else got them first.
 */
async function book(base, token, userId, count, seatsNow) {
  const tried = new Set();
  for (let attempt = 0; attempt < 4; attempt++) {
    const seats = pickAvailable(await seatsNow(), count, tried);
    const result = await mutate(base, token, 'createBooking', CREATE, { u: userId, s: SHOWTIME, n: seats });
    if (result.value.success && result.value.booking?.id) return { ...result, seats, id: result.value.booking.id };
    if (result.value.code !== 'SEATS_UNAVAILABLE') fail(`createBooking ${seats}: ${JSON.stringify(result.value)}`);
    seats.forEach((seat) => tried.add(seat));
  }
  fail('createBooking: seats kept being taken');
}

// ------------------------------------------------------- subscription feeds

/** Collects what one subscription's sink receives, with arrival times. */
class Feed {
  constructor(name) {
    this.name = name;
    this.items = []; // {value, t}
    this.ended = null; // {kind: 'complete'|'error', value, t}
    this.wakers = new Set();
  }
  get sink() {
    return {
      next: (value) => {
        this.items.push({ value, t: now() });
        this.wake();
      },
      error: (value) => {
        this.ended ??= { kind: 'error', value, t: now() };
        this.wake();
      },
      complete: () => {
        this.ended ??= { kind: 'complete', t: now() };
        this.wake();
      },
    };
  }
  wake() {
    for (const waker of [...this.wakers]) waker();
  }
  endText() {
    if (!this.ended) return 'still open';
    return this.ended.kind === 'complete' ? 'completed' : describe(this.ended.value);
  }
  /** Waits until `done(items)` returns something truthy; returns it. */
  async until(done, what, timeoutMs = WAIT_MS) {
    const deadline = now() + timeoutMs;
    for (;;) {
      const found = done(this.items);
      if (found) return found;
      if (this.ended) fail(`${this.name}: ${this.endText()} while waiting for ${what}`);
      const left = deadline - now();
      if (left <= 0)
        fail(`${this.name}: timed out after ${timeoutMs} ms waiting for ${what}; got ${JSON.stringify(this.items.map((i) => i.value)).slice(0, 1500)}`);
      await new Promise((resolve) => {
        const timer = setTimeout(wakeUp, left);
        const self = this;
        function wakeUp() {
          clearTimeout(timer);
          self.wakers.delete(wakeUp);
          resolve();
        }
        this.wakers.add(wakeUp);
      });
    }
  }
  /** Waits for the stream to end or to carry GraphQL errors. */
  async outcome(what, timeoutMs = WAIT_MS) {
    return this.until(
      (items) => {
        const withErrors = items.find((i) => Array.isArray(i.value?.errors) && i.value.errors.length);
        if (withErrors) return { kind: 'next-with-errors', errors: withErrors.value.errors, items };
        if (this.ended?.kind === 'error') {
          const value = this.ended.value;
          if (Array.isArray(value)) return { kind: 'error-message', errors: value, items };
          return { kind: 'failed', text: describe(value), value, items };
        }
        if (this.ended) return { kind: 'completed-without-errors', items };
        return null;
      },
      what,
      timeoutMs,
    ).catch((err) => {
      if (this.ended) return { kind: 'failed', text: this.endText(), items: this.items };
      throw err;
    });
  }
}

const codesOf = (errors) => (errors || []).map((e) => e?.extensions?.code ?? null);

function wsClient(base, token, extra = {}) {
  const closes = [];
  const client = createWsClient({
    url: wsUrl(base),
    webSocketImpl: WebSocket,
    connectionParams: token ? { authorization: `Bearer ${token}` } : undefined,
    // A test wants to see a drop, not have it papered over by a reconnect.
    retryAttempts: 0,
    connectionAckWaitTimeout: WAIT_MS,
    on: { closed: (event) => closes.push({ code: event?.code, reason: String(event?.reason ?? '') }) },
    ...extra,
  });
  client.closes = closes;
  cleanups.push(() => client.dispose());
  return client;
}

function sseClient(base, token) {
  const client = createSseClient({
    url: sseUrl(base),
    headers: token ? { authorization: `Bearer ${token}` } : {},
    // A non-2xx answer or a dropped stream would otherwise be retried 5
    // times over ~40 s before the sink hears of it.
    retryAttempts: 0,
  });
  cleanups.push(() => client.dispose());
  return client;
}

function subscribe(client, name, query, variables) {
  const feed = new Feed(name);
  const dispose = client.subscribe({ query, variables }, feed.sink);
  cleanups.push(dispose);
  feed.dispose = dispose;
  return feed;
}

/** Waits for the seat map's first message, which must be a full snapshot. */
async function snapshotOf(feed) {
  const first = await feed.until((items) => items[0], 'the first seatMap message');
  const update = first.value?.data?.seatMap;
  check(!first.value?.errors, `${feed.name}: first message has errors ${JSON.stringify(first.value)}`);
  check(update?.snapshot === true, `${feed.name}: first message is not a snapshot: ${JSON.stringify(first.value)}`);
  check(update.showtimeId === SHOWTIME, `${feed.name}: snapshot of ${update.showtimeId}`);
  check(update.seats.length === SEAT_COUNT, `${feed.name}: snapshot has ${update.seats.length} seats, not ${SEAT_COUNT}`);
  return new Map(update.seats.map((seat) => [seat.number, seat.status]));
}

/** The seat map as the feed tells it now (snapshot + later changes). */
function stateOf(feed) {
  const state = new Map();
  for (const { value } of feed.items) {
    const update = value?.data?.seatMap;
    if (!update) continue;
    if (update.snapshot) state.clear();
    for (const seat of update.seats) state.set(seat.number, seat.status);
  }
  return state;
}

/**
 * Waits until non-snapshot messages after index `from` have shown every one
 * of `seats` with `status`; returns when the last of them arrived and how
 * many messages carried them.
 */
async function seatsReach(feed, from, seats, status, what) {
  return feed.until(
    (items) => {
      const seen = new Map();
      let messages = 0;
      for (let i = from; i < items.length; i++) {
        const update = items[i].value?.data?.seatMap;
        if (!update) fail(`${feed.name}: unexpected message ${JSON.stringify(items[i].value)}`);
        if (update.snapshot) fail(`${feed.name}: a second snapshot arrived (reconnected?) while waiting for ${what}`);
        let relevant = false;
        for (const seat of update.seats) {
          if (!seats.includes(seat.number)) continue;
          relevant = true;
          if (seat.status === status) seen.set(seat.number, items[i]);
          else seen.delete(seat.number);
        }
        if (relevant) messages++;
        if (seen.size === seats.length) {
          // One booking's seats change together: one batch, one message.
          const last = new Map(update.seats.map((seat) => [seat.number, seat.status]));
          if (!seats.every((n) => last.get(n) === status))
            fail(`${feed.name}: ${what} came split over ${messages} messages, not in one batch`);
          return { t: items[i].t, index: i + 1, messages };
        }
      }
      return null;
    },
    what,
  );
}

// -------------------------------------------------------------- scenarios

async function seatMapScenario(transport) {
  const subscriberToken = await login(BASE, 'user_456');
  const bookerToken = await login(BASE, 'user_123');
  const client = transport === 'ws' ? wsClient(BASE, subscriberToken) : sseClient(BASE, subscriberToken);
  const feed = subscribe(client, `${transport} seatMap`, SEAT_MAP, { s: SHOWTIME });
  const t0 = now();
  await snapshotOf(feed);
  figures.snapshotMs = ms(now() - t0);
  figures.snapshotSeats = SEAT_COUNT;

  const round = async (label, finalPayment, finalStatus) => {
    const from = feed.items.length;
    const booking = await book(BASE, bookerToken, 'user_123', 2, async () => stateOf(feed));
    const locked = await seatsReach(feed, from, booking.seats, 'LOCKED', `${booking.seats} LOCKED`);
    const paid = await mutate(BASE, bookerToken, 'processPayment', PAY, { b: booking.id, d: finalPayment });
    const after = await seatsReach(feed, locked.index, booking.seats, finalStatus, `${booking.seats} ${finalStatus}`);
    figures[label] = {
      seats: booking.seats,
      payment: { success: paid.value.success, code: paid.value.code ?? null, status: paid.value.booking?.status },
      lockedLatencyMs: ms(locked.t - booking.at),
      lockedSinceRequestMs: ms(locked.t - booking.sentAt),
      lockedMessages: locked.messages,
      [`${finalStatus.toLowerCase()}LatencyMs`]: ms(after.t - paid.at),
      [`${finalStatus.toLowerCase()}SinceRequestMs`]: ms(after.t - paid.sentAt),
      [`${finalStatus.toLowerCase()}Messages`]: after.messages,
    };
  };
  await round('declined', 'card_declined', 'AVAILABLE');
  if (transport === 'sse') await round('paid', 'card_token_xyz', 'BOOKED');
  check(!feed.ended, `${feed.name}: ${feed.endText()} before the end of the test`);
  figures.messages = feed.items.length;
}

async function bookingStatusScenario() {
  const owner = await login(BASE, 'user_123');
  const other = await login(BASE, 'user_456');
  const booking = await book(BASE, owner, 'user_123', 1, () => currentSeats(BASE, owner));
  figures.bookingId = booking.id;
  figures.seats = booking.seats;

  const ownerClient = wsClient(BASE, owner);
  const feed = subscribe(ownerClient, 'ws bookingStatus (owner)', BOOKING_STATUS, { b: booking.id });
  const first = await feed.until((items) => items[0], 'the first bookingStatus message');
  const initial = first.value?.data?.bookingStatus;
  check(!first.value?.errors && initial, `first bookingStatus message: ${JSON.stringify(first.value)}`);
  check(initial.id === booking.id && initial.status === 'PENDING', `first bookingStatus message: ${JSON.stringify(initial)}`);
  check(initial.lockExpiresAt && !Number.isNaN(Date.parse(initial.lockExpiresAt)), `lockExpiresAt: ${initial.lockExpiresAt}`);
  figures.initialLockExpiresAt = initial.lockExpiresAt;

  let from = feed.items.length;
  const extended = await mutate(BASE, owner, 'extendBookingLock', EXTEND, { b: booking.id, k: `ext-${Date.now()}` });
  check(extended.value.success, `extendBookingLock: ${JSON.stringify(extended.value)}`);
  figures.extendResult = { lockExpiresAt: extended.value.booking?.lockExpiresAt, code: extended.value.code ?? null };
  const afterExtend = await feed.until(
    (items) =>
      items.slice(from).find((i) => {
        const b = i.value?.data?.bookingStatus;
        return b && b.status === 'PENDING' && Date.parse(b.lockExpiresAt) >= Date.parse(initial.lockExpiresAt);
      }),
    'a bookingStatus message after extendBookingLock',
  );
  figures.extendedLockExpiresAt = afterExtend.value.data.bookingStatus.lockExpiresAt;
  figures.extendLatencyMs = ms(afterExtend.t - extended.at);

  from = feed.items.length;
  const paid = await mutate(BASE, owner, 'processPayment', PAY, { b: booking.id, d: 'card_token_xyz' });
  check(paid.value.success && paid.value.booking?.status === 'CONFIRMED', `processPayment: ${JSON.stringify(paid.value)}`);
  const confirmed = await feed.until(
    (items) => items.slice(from).find((i) => i.value?.data?.bookingStatus?.status === 'CONFIRMED'),
    'bookingStatus CONFIRMED',
  );
  figures.confirmedLatencyMs = ms(confirmed.t - paid.at);
  check(
    feed.items.every((i) => !i.value?.errors && i.value?.data?.bookingStatus?.id === booking.id),
    `owner's feed: ${JSON.stringify(feed.items.map((i) => i.value))}`,
  );
  figures.ownerMessages = feed.items.map((i) => i.value.data.bookingStatus.status);

  const expectCode = async (feedOf, code, label) => {
    const outcome = await feedOf.outcome(`${code}`);
    const codes = codesOf(outcome.errors);
    figures[label] = {
      surfacedAs: outcome.kind,
      codes,
      ...(outcome.text ? { detail: outcome.text } : {}),
      dataMessages: outcome.items.filter((i) => i.value?.data?.bookingStatus).length,
    };
    check(
      (outcome.kind === 'error-message' || outcome.kind === 'next-with-errors') && codes.includes(code),
      `${feedOf.name}: expected ${code}, got ${JSON.stringify(figures[label])}`,
    );
    check(figures[label].dataMessages === 0, `${feedOf.name}: got booking data besides ${code}`);
    return outcome;
  };

  const otherClient = wsClient(BASE, other);
  await expectCode(subscribe(otherClient, 'ws bookingStatus (user_456)', BOOKING_STATUS, { b: booking.id }), 'FORBIDDEN', 'wsForbidden');
  const anonymous = wsClient(BASE, null);
  await expectCode(subscribe(anonymous, 'ws bookingStatus (no token)', BOOKING_STATUS, { b: booking.id }), 'UNAUTHENTICATED', 'wsUnauthenticated');

  const otherSse = sseClient(BASE, other);
  const sseFeed = subscribe(otherSse, 'sse bookingStatus (user_456)', BOOKING_STATUS, { b: booking.id });
  const sseOutcome = await sseFeed.outcome('FORBIDDEN');
  if (sseOutcome.kind === 'failed' && sseOutcome.value?.response) {
    // A non-2xx answer: record its body too (the protocol wants 200 + next).
    const res = sseOutcome.value.response;
    const text = await withTimeout(res.text(), WAIT_MS, 'the error body').catch(() => '');
    figures.sseForbidden = { surfacedAs: `http-${res.status}`, contentType: res.headers.get('content-type'), body: text.slice(0, 500) };
    fail(`graphql-sse: FORBIDDEN must come as 200 + "event: next" with errors (a ${res.status} is retried by the client as a network error): ${JSON.stringify(figures.sseForbidden)}`);
  }
  figures.sseForbidden = { surfacedAs: sseOutcome.kind, codes: codesOf(sseOutcome.errors), ...(sseOutcome.text ? { detail: sseOutcome.text } : {}) };
  check(
    sseOutcome.kind === 'next-with-errors' && figures.sseForbidden.codes.includes('FORBIDDEN'),
    `graphql-sse: expected a next event with FORBIDDEN, got ${JSON.stringify(figures.sseForbidden)}`,
  );
  await sseFeed.until(() => sseFeed.ended, 'the SSE stream to complete after the error').catch(() => {});
  figures.sseForbidden.then = sseFeed.endText();
}

/** A raw graphql-transport-ws socket (the `ws` package): events as promises. */
function rawSocket(base, { pong = true } = {}) {
  const socket = new WebSocket(wsUrl(base), 'graphql-transport-ws');
  const state = { socket, messages: [], closed: null, opened: null, errors: [] };
  let wake = () => {};
  const changed = () => wake();
  socket.on('open', () => {
    state.opened = now();
    changed();
  });
  socket.on('message', (data) => {
    let message;
    try {
      message = JSON.parse(String(data));
    } catch {
      message = { unparsable: String(data).slice(0, 200) };
    }
    if (message.type === 'ping' && pong) socket.send(JSON.stringify(message.payload ? { type: 'pong', payload: message.payload } : { type: 'pong' }));
    state.messages.push(message);
    changed();
  });
  socket.on('close', (code, reason) => {
    state.closed = { code, reason: String(reason), t: now() };
    changed();
  });
  socket.on('error', (err) => {
    state.errors.push(err.message);
    changed();
  });
  state.until = async (done, what, timeoutMs = WAIT_MS) => {
    const deadline = now() + timeoutMs;
    for (;;) {
      const found = done(state);
      if (found) return found;
      const left = deadline - now();
      if (left <= 0) fail(`raw socket: timed out after ${timeoutMs} ms waiting for ${what}`);
      await new Promise((resolve) => {
        const timer = setTimeout(resolve, left);
        wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
  };
  cleanups.push(() => socket.terminate());
  return state;
}

/**
 * Bytes queued on a TCP connection of ours (Linux /proc/net/tcp*): our
 * receive queue, and the server's send queue when its end is on this
 * machine (null otherwise).
 */
function tcpQueues(tcpSocket) {
  const local = tcpSocket?.localPort;
  const remote = tcpSocket?.remotePort;
  if (!local || !remote) return null;
  let receive = null;
  let serverSend = null;
  for (const file of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text;
    try {
      text = readFileSync(file, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n').slice(1)) {
      const cols = line.trim().split(/\s+/);
      if (cols.length < 5) continue;
      const localPort = parseInt(cols[1].split(':').at(-1), 16);
      const remotePort = parseInt(cols[2].split(':').at(-1), 16);
      const [tx, rx] = cols[4].split(':').map((x) => parseInt(x, 16));
      if (localPort === local && remotePort === remote) receive = rx;
      if (localPort === remote && remotePort === local) serverSend = tx;
    }
  }
  return receive === null ? null : { receive, serverSend };
}

async function limitsScenario() {
  // 1. PER_CONNECTION subscriptions on one socket, then one more.
  const client = wsClient(BASE, null);
  const feeds = [];
  for (let i = 1; i <= PER_CONNECTION; i++) feeds.push(subscribe(client, `seatMap #${i}`, SEAT_MAP, { s: SHOWTIME }));
  await Promise.all(feeds.map(snapshotOf));
  figures.snapshots = feeds.length;
  const extra = subscribe(client, `seatMap #${PER_CONNECTION + 1}`, SEAT_MAP, { s: SHOWTIME });
  const outcome = await extra.outcome('TOO_MANY_SUBSCRIPTIONS');
  figures.overLimit = { surfacedAs: outcome.kind, codes: codesOf(outcome.errors), ...(outcome.text ? { detail: outcome.text } : {}) };
  check(
    (outcome.kind === 'error-message' || outcome.kind === 'next-with-errors') && figures.overLimit.codes.includes('TOO_MANY_SUBSCRIPTIONS'),
    `subscription #${PER_CONNECTION + 1}: expected TOO_MANY_SUBSCRIPTIONS, got ${JSON.stringify(figures.overLimit)}`,
  );
  check(outcome.items.filter((i) => i.value?.data).length === 0, `subscription #${PER_CONNECTION + 1} got data besides the error`);
  check(feeds.every((f) => !f.ended), `the first ${PER_CONNECTION} subscriptions must survive: ${feeds.map((f) => f.endText())}`);
  figures.overLimit.othersStillOpen = true;
  await client.dispose();

  // 2. No connection_init → 4408 after the server's init timeout.
  const silent = rawSocket(BASE);
  await silent.until((s) => s.opened || s.closed, 'the WebSocket handshake');
  check(silent.opened, `handshake failed: ${JSON.stringify(silent.closed)} ${silent.errors}`);
  figures.initTimeout = { protocol: silent.socket.protocol };
  check(silent.socket.protocol === 'graphql-transport-ws', `server chose subprotocol ${JSON.stringify(silent.socket.protocol)}`);
  await silent.until((s) => s.closed, 'the close for a missing connection_init', INIT_TIMEOUT_MS + 2000);
  Object.assign(figures.initTimeout, { code: silent.closed.code, reason: silent.closed.reason, afterMs: ms(silent.closed.t - silent.opened) });
  check(silent.closed.code === 4408, `no connection_init: expected close 4408, got ${JSON.stringify(figures.initTimeout)}`);
  check(silent.closed.t - silent.opened >= INIT_TIMEOUT_MS * 0.8, `closed 4408 after ${figures.initTimeout.afterMs} ms, before the ${INIT_TIMEOUT_MS} ms timeout`);

  // 3. A subscriber that stops reading while seats change → 1013.
  await slowConsumer();
}

async function slowConsumer() {
  const token = await login(BASE, 'user_789');
  const slow = rawSocket(BASE);
  await slow.until((s) => s.opened || s.closed, 'the WebSocket handshake');
  check(slow.opened, `handshake failed: ${JSON.stringify(slow.closed)}`);
  slow.socket.send(JSON.stringify({ type: 'connection_init' }));
  await slow.until((s) => s.messages.some((m) => m.type === 'connection_ack') || s.closed, 'connection_ack');
  check(!slow.closed, `closed before ack: ${JSON.stringify(slow.closed)}`);

  // Stop reading. Every seat in every message is inflated with aliases so
  // that the socket buffers (ours, and the server's send buffer of up to
  // 4 MiB) fill after a few dozen changes.
  slow.socket.pause();
  const pausedAt = now();
  const aliases = Array.from({ length: 250 }, (_, i) => `s${i}: status`).join(' ');
  const heavy = `subscription($s: String!) { seatMap(showtimeId: $s) { showtimeId snapshot seats { number status ${aliases} } } }`;
  const subscriptions = Math.max(1, PER_CONNECTION - 1);
  for (let i = 0; i < subscriptions; i++)
    slow.socket.send(JSON.stringify({ id: `slow-${i}`, type: 'subscribe', payload: { query: heavy, variables: { s: SHOWTIME } } }));

  // Changes: user_789 books and cancels (two seat-map messages a round)
  // until the bytes in flight (our receive queue plus, when the server is on
  // this machine, its send queue) stopped growing and then 40 more rounds
  // (80 messages, more than the 64-message queue) went by; at most 8 s.
  let rounds = 0;
  let fullAt = -1;
  const inFlight = [];
  let seen = null;
  let seats = await currentSeats(BASE, token);
  const driveUntil = pausedAt + 8000;
  while (now() < driveUntil && !slow.closed) {
    const { status, body } = await graphql(BASE, token, CREATE, { u: 'user_789', s: SHOWTIME, n: pickAvailable(seats, 2) });
    const created = body?.data?.createBooking;
    if (!created?.success) {
      if (created?.code === 'SEATS_UNAVAILABLE') {
        seats = await currentSeats(BASE, token);
        continue;
      }
      fail(`createBooking as user_789: ${status} ${JSON.stringify(body)}`);
    }
    const cancelled = await graphql(BASE, token, CANCEL, { b: created.booking.id });
    check(cancelled.body?.data?.cancelBooking?.success, `cancelBooking: ${cancelled.status} ${JSON.stringify(cancelled.body)}`);
    rounds++;
    seen = tcpQueues(slow.socket._socket);
    if (!seen || seen.serverSend === null) continue; // server not visible here: drive the whole 8 s
    inFlight.push(seen.receive + seen.serverSend);
    const before = inFlight[inFlight.length - 4];
    if (fullAt < 0 && inFlight.at(-1) > 0 && before !== undefined && inFlight.at(-1) - before < 1024) fullAt = rounds;
    if (fullAt >= 0 && rounds - fullAt >= 40) break;
  }
  figures.slowConsumer = {
    subscriptions,
    rounds,
    seatMapChanges: rounds * 2,
    driveMs: ms(now() - pausedAt),
    bytesQueued: seen,
    buffersFullAtRound: fullAt,
  };

  // Read again: whatever was buffered, then the close frame.
  slow.socket.resume();
  const resumedAt = now();
  await slow.until((s) => s.closed, 'the server to close the slow consumer', WAIT_MS).catch(() => {});
  const nexts = slow.messages.filter((m) => m.type === 'next').length;
  Object.assign(figures.slowConsumer, {
    messagesRead: slow.messages.length,
    nextMessages: nexts,
    errorMessages: slow.messages.filter((m) => m.type === 'error').map((m) => codesOf(m.payload)).slice(0, 5),
    close: slow.closed ? { code: slow.closed.code, reason: slow.closed.reason, afterResumeMs: ms(slow.closed.t - resumedAt) } : null,
  });
  check(slow.closed, `the slow consumer was not closed within ${WAIT_MS} ms of reading again (${rounds} rounds)`);
  check(slow.closed.code === 1013, `the slow consumer: expected close 1013, got ${slow.closed.code} ${JSON.stringify(slow.closed.reason)}`);
}

async function twoHostsScenario() {
  check(BASE_B, 'two-hosts needs BOOKING_URL_B');
  const bookerToken = await login(BASE, 'user_123');
  const subscriberToken = await login(BASE_B, 'user_456');
  const client = wsClient(BASE_B, subscriberToken);
  const feed = subscribe(client, 'ws seatMap on host B', SEAT_MAP, { s: SHOWTIME });
  await snapshotOf(feed);
  const from = feed.items.length;
  const booking = await book(BASE, bookerToken, 'user_123', 2, async () => stateOf(feed));
  const locked = await seatsReach(feed, from, booking.seats, 'LOCKED', `${booking.seats} LOCKED on host B`);
  figures.seats = booking.seats;
  figures.lockedLatencyMs = ms(locked.t - booking.at);
  figures.lockedSinceRequestMs = ms(locked.t - booking.sentAt);
  const cancelled = await mutate(BASE, bookerToken, 'cancelBooking', CANCEL, { b: booking.id });
  check(cancelled.value.success, `cancelBooking: ${JSON.stringify(cancelled.value)}`);
  const freed = await seatsReach(feed, locked.index, booking.seats, 'AVAILABLE', `${booking.seats} AVAILABLE again on host B`);
  figures.availableLatencyMs = ms(freed.t - cancelled.at);
}

/**
 * Per-user limit across connections (the server runs with
 * --subscriptions-per-user PER_USER) and the idle timeout (keep-alive
 * every second, idle after IDLE_MS): a socket that answers no ping is
 * closed with 1001, a graphql-ws client (which answers them) stays.
 */
async function userLimitAndIdleScenario() {
  const token = await login(BASE, 'user_789');
  const first = wsClient(BASE, token);
  const second = wsClient(BASE, token);
  const held = [];
  for (let i = 0; i < PER_USER; i++) {
    held.push(subscribe(i % 2 ? second : first, `user seatMap #${i + 1}`, SEAT_MAP, { s: SHOWTIME }));
  }
  await Promise.all(held.map(snapshotOf));
  const over = subscribe(second, `user seatMap #${PER_USER + 1}`, SEAT_MAP, { s: SHOWTIME });
  const outcome = await over.outcome('TOO_MANY_SUBSCRIPTIONS');
  figures.perUser = { limit: PER_USER, codes: codesOf(outcome.errors) };
  check(figures.perUser.codes.includes('TOO_MANY_SUBSCRIPTIONS'), `subscription #${PER_USER + 1} of one user: ${JSON.stringify(figures.perUser)}`);
  // Leaving frees a place: the user may subscribe again.
  held[0].dispose();
  await new Promise((resolve) => setTimeout(resolve, 200));
  const again = subscribe(second, 'user seatMap after one left', SEAT_MAP, { s: SHOWTIME });
  await snapshotOf(again);
  figures.perUser.freedByLeaving = true;

  const silent = rawSocket(BASE, { pong: false });
  await silent.until((s) => s.opened || s.closed, 'the WebSocket handshake');
  silent.socket.send(JSON.stringify({ type: 'connection_init' }));
  await silent.until((s) => s.messages.some((m) => m.type === 'connection_ack'), 'connection_ack');
  const acked = now();
  await silent.until((s) => s.closed, 'the close of a silent connection', IDLE_MS + 3000);
  figures.idle = { code: silent.closed.code, reason: silent.closed.reason, afterMs: ms(silent.closed.t - acked), pingsSeen: silent.messages.filter((m) => m.type === 'ping').length };
  check(silent.closed.code === 1001, `silent connection: expected 1001, got ${JSON.stringify(figures.idle)}`);
  check(figures.idle.afterMs >= IDLE_MS * 0.8, `closed after ${figures.idle.afterMs} ms, before the ${IDLE_MS} ms idle timeout`);
  check(figures.idle.pingsSeen >= 1, 'the server sent keep-alive pings');
  check(first.closes.length === 0 && second.closes.length === 0, `clients that answer pings stay: ${JSON.stringify([first.closes, second.closes])}`);
  figures.idle.answeringClientsStayed = true;
}

// ------------------------------------------------------------------- main

const scenarios = {
  'ws-seat-map': () => seatMapScenario('ws'),
  'sse-seat-map': () => seatMapScenario('sse'),
  'ws-booking-status': bookingStatusScenario,
  'ws-limits': limitsScenario,
  'ws-user-limit-and-idle': userLimitAndIdleScenario,
  'two-hosts': twoHostsScenario,
};

let finished = false;
function finish(result, code) {
  if (finished) return;
  finished = true;
  for (const cleanup of cleanups.reverse()) {
    try {
      const done = cleanup();
      if (done && typeof done.catch === 'function') done.catch(() => {});
    } catch {
      // closing what is already closed
    }
  }
  process.stdout.write(JSON.stringify(result) + '\n', () => process.exit(code));
}

if (!scenarios[SCENARIO] || !/^https?:\/\//.test(BASE)) {
  console.error(`usage: BOOKING_URL=http://HOST:PORT [BOOKING_URL_B=...] node subscriptions.mjs <${Object.keys(scenarios).join('|')}>`);
  process.exit(2);
}
const watchdog = setTimeout(() => finish({ ok: false, error: `scenario took longer than ${SCENARIO_MS} ms`, ...figures }, 1), SCENARIO_MS);
try {
  const started = now();
  await scenarios[SCENARIO]();
  clearTimeout(watchdog);
  figures.totalMs = ms(now() - started);
  finish({ ok: true, ...figures }, 0);
} catch (err) {
  clearTimeout(watchdog);
  const error = err instanceof Failure ? err.message : `${err?.name || 'Error'}: ${err?.message || String(err)}${err?.cause ? ` (${err.cause.message || err.cause})` : ''}`;
  finish({ ok: false, error, ...figures }, 1);
}
