// The booking page (/book): sign in, pick a showtime, watch its seat map
// live, hold seats, extend the hold, pay or cancel, and watch the booking's
// status live. Plain ES2020, no build step; the only dependency is the
// vendored graphql-ws browser build (global `graphqlWs`, see README.md).
//
// Server interface used (all same-origin):
//   POST /book/login   {userId, password} -> {token, userId} | {error: {code, message}}
//   POST /graphql      queries and mutations (GraphQL over HTTP)
//   ws(s)://<host>/graphql  subscriptions seatMap and bookingStatus
//                           (graphql-transport-ws, connection_init payload
//                           {authorization: "Bearer <token>"} when signed in)
'use strict';

(() => {
  const GRAPHQL_PATH = '/graphql';
  const LOGIN_PATH = '/book/login';
  const OTHER = '__other';
  const SESSION_KEY = 'book.session';
  const BOOKING_KEY = 'book.bookingId';
  const REQUEST_TIMEOUT_MS = 15000;
  // While the live connection is down: seat statuses and the booking by
  // plain HTTP every this often, so the page never freezes on old data.
  const FALLBACK_POLL_MS = 10000;
  const RESUBSCRIBE_MS = 5000;
  // Bookings in these statuses may still change: watched live (a
  // CONFIRMED one may yet be cancelled and refunded).
  const LIVE_STATUSES = new Set(['PENDING', 'CONFIRMED']);
  // Close codes after which retrying with the same token is pointless.
  const AUTH_CLOSE_CODES = new Set([4401, 4403]);

  const SHOWTIME_QUERY = `query BookShowtime($showtimeId: String!) {
  showtimeSeats(showtimeId: $showtimeId) {
    showtime { id movieTitle theater startsAt currency totalSeats availableSeats }
    seats { number row priceCents price status }
  }
}`;
  const SEAT_MAP_SUBSCRIPTION = `subscription BookSeatMap($showtimeId: String!) {
  seatMap(showtimeId: $showtimeId) { showtimeId snapshot seats { number status } }
}`;
  const BOOKING_FIELDS = 'id status lockExpiresAt failureReason totalAmount currency seats showtimeId updatedAt';
  const BOOKING_STATUS_SUBSCRIPTION = `subscription BookBookingStatus($bookingId: String!) {
  bookingStatus(bookingId: $bookingId) { ${BOOKING_FIELDS} }
}`;
  const GET_BOOKING_QUERY = `query BookGetBooking($bookingId: String!) {
  getBooking(bookingId: $bookingId) { ${BOOKING_FIELDS} }
}`;
  const CREATE_BOOKING = `mutation BookCreate($userId: String!, $showtimeId: String!, $seatNumbers: [String!]!) {
  createBooking(userId: $userId, showtimeId: $showtimeId, seatNumbers: $seatNumbers) {
    success message code lockId booking { ${BOOKING_FIELDS} }
  }
}`;
  const EXTEND_LOCK = `mutation BookExtend($bookingId: String!) {
  extendBookingLock(bookingId: $bookingId) { success message code booking { ${BOOKING_FIELDS} } }
}`;
  const PROCESS_PAYMENT = `mutation BookPay($bookingId: String!, $paymentDetails: String!) {
  processPayment(bookingId: $bookingId, paymentMethod: "credit_card", paymentDetails: $paymentDetails) {
    success message code booking { ${BOOKING_FIELDS} }
  }
}`;
  const CANCEL_BOOKING = `mutation BookCancel($bookingId: String!) {
  cancelBooking(bookingId: $bookingId) { success message booking { ${BOOKING_FIELDS} } }
}`;

  const $ = (id) => document.getElementById(id);
  const el = {
    connection: $('connection'),
    loginForm: $('login-form'),
    loginUser: $('login-user'),
    loginUserOtherField: $('login-user-other-field'),
    loginUserOther: $('login-user-other'),
    loginPassword: $('login-password'),
    loginButton: $('login-button'),
    signedIn: $('signed-in'),
    signedInUser: $('signed-in-user'),
    logoutButton: $('logout-button'),
    showtime: $('showtime'),
    showtimeOtherField: $('showtime-other-field'),
    showtimeOther: $('showtime-other'),
    showtimeLoad: $('showtime-load'),
    movieTitle: $('movie-title'),
    showDetails: $('show-details'),
    seatMap: $('seat-map'),
    selectionSummary: $('selection-summary'),
    holdButton: $('hold-button'),
    booking: $('booking'),
    bookingId: $('booking-id'),
    bookingSeats: $('booking-seats'),
    bookingTotal: $('booking-total'),
    bookingStatus: $('booking-status'),
    bookingStatusNote: $('booking-status-note'),
    countdown: $('countdown'),
    extendButton: $('extend-button'),
    card: $('card'),
    payButton: $('pay-button'),
    cancelButton: $('cancel-button'),
    message: $('message'),
  };

  const state = {
    token: null,
    userId: null,
    showtimeId: null,
    showtime: null,
    /** seat number -> {number, row, priceCents, price, status, button} */
    seats: new Map(),
    selected: new Set(),
    /** Seats of a createBooking in flight: their LOCKED updates are probably ours. */
    holding: new Set(),
    /** The booking on show: {id, status, lockExpiresAt, totalAmount, currency, seats, ...}. */
    booking: null,
    /** Server clock minus ours, when they differ by more than a few seconds. */
    clockOffsetMs: 0,
    loadGeneration: 0,
    busy: { login: false, load: false, hold: false, extend: false, pay: false, cancel: false },
    /** Idempotency keys kept until an answer arrives, so a retry after a lost answer is safe. */
    pendingKeys: new Map(),
    live: {
      client: null,
      seatSub: null,
      seatSubFor: null,
      bookingSub: null,
      bookingSubFor: null,
      connection: 'off',
      resubscribeTimer: null,
    },
    pollTimer: null,
    messageSeq: 0,
  };

  // ---------------------------------------------------------------- utils

  class ApiError extends Error {
    constructor(code, message, extra = {}) {
      super(message);
      this.code = code;
      Object.assign(this, extra);
    }
  }

  /** A WebSocket close (CloseEvent, or graphql-ws's TerminatedCloseEvent). */
  const isCloseEvent = (value) =>
    Boolean(value) && typeof value === 'object' && typeof value.code === 'number' && 'reason' in value;

  function describeError(error) {
    if (error instanceof ApiError) return error.code ? `${error.code}: ${error.message}` : error.message;
    if (Array.isArray(error)) return describeError(graphqlError(error)); // graphql-ws sink errors
    if (isCloseEvent(error)) {
      return `connection closed (${error.code}${error.reason ? `: ${error.reason}` : ''})`;
    }
    if (error instanceof Event) return 'the live connection failed';
    return (error && error.message) || String(error);
  }

  function graphqlError(errors) {
    const first = (errors && errors[0]) || {};
    const code = (first.extensions && first.extensions.code) || 'GRAPHQL_ERROR';
    return new ApiError(code, first.message || 'the server refused the request', {
      retryable: Boolean(first.extensions && first.extensions.retryable),
    });
  }

  let messageTimer = null;
  function showMessage(text, kind = 'info', { sticky = kind === 'error' } = {}) {
    state.messageSeq += 1;
    el.message.textContent = text;
    el.message.dataset.kind = kind;
    el.message.dataset.seq = String(state.messageSeq);
    clearTimeout(messageTimer);
    if (text) {
      const seq = state.messageSeq;
      messageTimer = setTimeout(() => {
        if (state.messageSeq === seq) el.message.textContent = '';
      }, sticky ? 12000 : 6000);
    }
  }
  const showError = (error, prefix) =>
    showMessage(prefix ? `${prefix}: ${describeError(error)}` : describeError(error), 'error');

  function newKey() {
    const bytes = new Uint8Array(16);
    crypto.getRandomValues(bytes); // works outside secure contexts too
    return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
  }
  /** The same key for the same request until it gets an answer. */
  function keyFor(action) {
    if (!state.pendingKeys.has(action)) state.pendingKeys.set(action, newKey());
    return state.pendingKeys.get(action);
  }

  function noteServerClock(response) {
    const date = Date.parse(response.headers.get('date') || '');
    if (Number.isNaN(date)) return;
    // The Date header has whole seconds: its middle is the best guess.
    const offset = date + 500 - Date.now();
    state.clockOffsetMs = Math.abs(offset) > 3000 ? offset : 0;
  }
  const serverNow = () => Date.now() + state.clockOffsetMs;

  function compareSeatNumbers(a, b) {
    return a.localeCompare(b, 'en', { numeric: true });
  }

  function formatMoney(amount, currency) {
    if (amount === undefined || amount === null || amount === '') return '';
    return currency ? `${amount} ${currency}` : String(amount);
  }

  function formatStart(iso) {
    const date = new Date(iso);
    if (Number.isNaN(date.getTime())) return iso || '';
    try {
      return date.toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'short' });
    } catch {
      return date.toString();
    }
  }

  // ------------------------------------------------------------- requests

  async function postJson(path, body, headers = {}) {
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), REQUEST_TIMEOUT_MS);
    let response;
    try {
      response = await fetch(path, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...headers },
        body: JSON.stringify(body),
        credentials: 'same-origin',
        cache: 'no-store',
        signal: controller.signal,
      });
    } catch (error) {
      throw new ApiError(
        'NETWORK_ERROR',
        controller.signal.aborted ? 'the server did not answer in time' : 'could not reach the server',
        { network: true },
      );
    } finally {
      clearTimeout(timer);
    }
    noteServerClock(response);
    let json = null;
    try {
      json = await response.json();
    } catch {
      json = null;
    }
    return { response, json };
  }

  /** Runs one GraphQL operation over HTTP; resolves with `data`, rejects with an ApiError. */
  async function graphql(query, variables, { auth = true, idempotencyKey } = {}) {
    const headers = { accept: 'application/graphql-response+json, application/json;q=0.9' };
    if (auth && state.token) headers.authorization = `Bearer ${state.token}`;
    if (idempotencyKey) headers['idempotency-key'] = idempotencyKey;
    const { response, json } = await postJson(GRAPHQL_PATH, { query, variables }, headers);
    if (!json || typeof json !== 'object') {
      throw new ApiError(`HTTP_${response.status}`, `the server answered ${response.status} ${response.statusText}`.trim());
    }
    if (Array.isArray(json.errors) && json.errors.length > 0) {
      const error = graphqlError(json.errors);
      if (response.status === 401 || error.code === 'UNAUTHENTICATED') {
        if (state.token && response.status === 401) {
          signOut({ quiet: true });
          error.message += ' (signed out: sign in again)';
          showMessage(`${error.code}: ${error.message}`, 'error');
        }
      }
      throw error;
    }
    if (!json.data) throw new ApiError(`HTTP_${response.status}`, 'the answer holds no data');
    return json.data;
  }

  // ---------------------------------------------------------- live (ws)

  function wsUrl() {
    return `${location.protocol === 'https:' ? 'wss:' : 'ws:'}//${location.host}${GRAPHQL_PATH}`;
  }

  function setConnection(connectionState) {
    state.live.connection = connectionState;
    const text = {
      off: 'Live: off',
      connecting: 'Live: connecting…',
      connected: 'Live: connected',
      reconnecting: 'Live: reconnecting…',
      error: 'Live: disconnected',
      unavailable: 'Live: unavailable',
    }[connectionState] || connectionState;
    if (el.connection.textContent !== text) el.connection.textContent = text;
    el.connection.dataset.state = connectionState;
    el.seatMap.dataset.stale = String(connectionState !== 'connected' && state.seats.size > 0);
    schedulePolling();
  }

  function liveClient() {
    if (state.live.client) return state.live.client;
    if (!window.graphqlWs || typeof window.graphqlWs.createClient !== 'function') {
      setConnection('unavailable');
      return null;
    }
    const token = state.token;
    let everConnected = false;
    const client = window.graphqlWs.createClient({
      url: wsUrl(),
      lazy: true,
      connectionParams: () => (token ? { authorization: `Bearer ${token}` } : {}),
      // Retry for as long as the page is open, also after an `error`
      // event (the default retries only on close events).
      retryAttempts: Number.POSITIVE_INFINITY,
      shouldRetry: (errorOrClose) => !(isCloseEvent(errorOrClose) && AUTH_CLOSE_CODES.has(errorOrClose.code)),
      retryWait: (retries) =>
        new Promise((resolve) =>
          setTimeout(resolve, Math.min(1000 * 2 ** retries, 10000) + Math.floor(Math.random() * 1000)),
        ),
      on: {
        connecting: () => {
          if (state.live.client === client) setConnection(everConnected ? 'reconnecting' : 'connecting');
        },
        connected: () => {
          everConnected = true;
          if (state.live.client === client) setConnection('connected');
        },
        closed: () => {
          if (state.live.client !== client) return;
          const active = state.live.seatSub || state.live.bookingSub;
          setConnection(active ? 'reconnecting' : 'off');
        },
      },
    });
    state.live.client = client;
    return client;
  }

  /** Drops the connection (e.g. the token changed) and subscribes again on a new one. */
  function restartLive() {
    const old = state.live.client;
    stopSeatSubscription();
    stopBookingSubscription();
    state.live.client = null;
    if (old) old.dispose();
    setConnection('off');
    if (state.showtime) startSeatSubscription();
    if (state.booking && state.token && LIVE_STATUSES.has(state.booking.status)) {
      startBookingSubscription(state.booking.id);
    }
  }

  function scheduleResubscribe() {
    clearTimeout(state.live.resubscribeTimer);
    state.live.resubscribeTimer = setTimeout(() => {
      if (state.showtime && !state.live.seatSub) startSeatSubscription();
      if (state.booking && state.token && !state.live.bookingSub && LIVE_STATUSES.has(state.booking.status)) {
        startBookingSubscription(state.booking.id);
      }
    }, RESUBSCRIBE_MS);
  }

  function startSeatSubscription() {
    const client = liveClient();
    if (!client || !state.showtime) return;
    stopSeatSubscription();
    const showtimeId = state.showtime.id;
    delete el.seatMap.dataset.snapshot; // set again by this subscription's first message
    let dispose = null;
    const isCurrent = () => state.live.seatSub === dispose;
    dispose = client.subscribe(
      { query: SEAT_MAP_SUBSCRIPTION, variables: { showtimeId }, operationName: 'BookSeatMap' },
      {
        next: (result) => {
          if (!isCurrent()) return;
          if (result.errors && result.errors.length) {
            showError(graphqlError(result.errors), 'Live seat map');
            return;
          }
          const update = result.data && result.data.seatMap;
          if (update && (!update.showtimeId || update.showtimeId === showtimeId)) {
            applySeatUpdate(update);
            if (update.snapshot) el.seatMap.dataset.snapshot = 'received';
          }
        },
        error: (error) => {
          if (!isCurrent()) return;
          state.live.seatSub = null;
          if (liveAuthFailed(error)) return;
          showError(error, 'Live seat map');
          if (isCloseEvent(error)) setConnection('error');
          scheduleResubscribe();
        },
        complete: () => {
          if (!isCurrent()) return;
          state.live.seatSub = null;
          setConnection(state.live.bookingSub ? state.live.connection : 'off');
          scheduleResubscribe();
        },
      },
    );
    state.live.seatSub = dispose;
    state.live.seatSubFor = showtimeId;
  }

  /** The server refused the token on the live connection: sign out, keep watching seats. */
  function liveAuthFailed(error) {
    if (!isCloseEvent(error) || !AUTH_CLOSE_CODES.has(error.code)) return false;
    if (state.token) {
      signOut({ quiet: true });
      showMessage(`The live connection refused the sign-in (${error.code}${error.reason ? `: ${error.reason}` : ''}): sign in again.`, 'error');
    } else {
      setConnection('error');
      showMessage(`Live updates refused (${error.code}${error.reason ? `: ${error.reason}` : ''}).`, 'error');
    }
    return true;
  }

  function stopSeatSubscription() {
    const dispose = state.live.seatSub;
    state.live.seatSub = null;
    state.live.seatSubFor = null;
    if (dispose) dispose();
  }

  function startBookingSubscription(bookingId) {
    if (state.live.bookingSub && state.live.bookingSubFor === bookingId) return;
    stopBookingSubscription();
    const client = liveClient();
    if (!client) return;
    let dispose = null;
    const isCurrent = () => state.live.bookingSub === dispose;
    dispose = client.subscribe(
      { query: BOOKING_STATUS_SUBSCRIPTION, variables: { bookingId }, operationName: 'BookBookingStatus' },
      {
        next: (result) => {
          if (!isCurrent()) return;
          if (result.errors && result.errors.length) {
            showError(graphqlError(result.errors), 'Live booking status');
            return;
          }
          const booking = result.data && result.data.bookingStatus;
          if (booking) applyBooking(booking);
        },
        error: (error) => {
          if (!isCurrent()) return;
          state.live.bookingSub = null;
          if (liveAuthFailed(error)) return;
          showError(error, 'Live booking status');
          if (isCloseEvent(error)) setConnection('error');
          if (state.booking && LIVE_STATUSES.has(state.booking.status)) scheduleResubscribe();
        },
        complete: () => {
          if (!isCurrent()) return;
          state.live.bookingSub = null;
        },
      },
    );
    state.live.bookingSub = dispose;
    state.live.bookingSubFor = bookingId;
  }

  function stopBookingSubscription() {
    const dispose = state.live.bookingSub;
    state.live.bookingSub = null;
    state.live.bookingSubFor = null;
    if (dispose) dispose();
  }

  /** While the live connection is down, poll over HTTP instead. */
  function schedulePolling() {
    const needed = state.live.connection !== 'connected' && (state.showtime || state.booking);
    if (needed && !state.pollTimer) {
      state.pollTimer = setInterval(pollOnce, FALLBACK_POLL_MS);
    } else if (!needed && state.pollTimer) {
      clearInterval(state.pollTimer);
      state.pollTimer = null;
    }
  }

  async function pollOnce() {
    if (state.live.connection === 'connected') return schedulePolling();
    try {
      if (state.showtime) {
        const showtimeId = state.showtime.id;
        const data = await graphql(SHOWTIME_QUERY, { showtimeId }, { auth: false });
        const result = data.showtimeSeats;
        if (result && state.showtime && state.showtime.id === showtimeId && state.live.connection !== 'connected') {
          applySeatUpdate({ snapshot: true, seats: result.seats.map(({ number, status }) => ({ number, status })) });
        }
      }
      if (state.booking && state.token && LIVE_STATUSES.has(state.booking.status)) {
        const data = await graphql(GET_BOOKING_QUERY, { bookingId: state.booking.id });
        if (data.getBooking) applyBooking(data.getBooking);
      }
    } catch {
      // The indicator already says the page is not live; try again later.
    }
  }

  // ------------------------------------------------------------- session

  function readSession() {
    try {
      const saved = JSON.parse(sessionStorage.getItem(SESSION_KEY) || 'null');
      if (saved && typeof saved.token === 'string' && typeof saved.userId === 'string') return saved;
    } catch {
      // storage off or garbage: not signed in
    }
    return null;
  }

  function writeSession() {
    try {
      if (state.token) {
        sessionStorage.setItem(SESSION_KEY, JSON.stringify({ token: state.token, userId: state.userId }));
      } else {
        sessionStorage.removeItem(SESSION_KEY);
        sessionStorage.removeItem(BOOKING_KEY);
      }
    } catch {
      // the token then only lives in memory
    }
  }

  function rememberBooking(bookingId) {
    try {
      if (bookingId) sessionStorage.setItem(BOOKING_KEY, bookingId);
      else sessionStorage.removeItem(BOOKING_KEY);
    } catch {
      // fine: a reload just forgets the booking on show
    }
  }

  function currentLoginUser() {
    return el.loginUser.value === OTHER ? el.loginUserOther.value.trim() : el.loginUser.value;
  }

  async function signIn(event) {
    event.preventDefault();
    if (state.busy.login) return;
    const userId = currentLoginUser();
    if (!userId) {
      showMessage('Enter a user id.', 'error');
      (el.loginUser.value === OTHER ? el.loginUserOther : el.loginUser).focus();
      return;
    }
    state.busy.login = true;
    el.loginButton.disabled = true;
    el.loginButton.textContent = 'Signing in…';
    try {
      const { response, json } = await postJson(LOGIN_PATH, { userId, password: el.loginPassword.value });
      if (response.ok && json && typeof json.token === 'string') {
        const changedUser = state.userId !== (json.userId || userId);
        state.token = json.token;
        state.userId = json.userId || userId;
        writeSession();
        if (changedUser) clearBooking();
        renderAccount();
        restartLive();
        showMessage(`Signed in as ${state.userId}.`, 'success');
      } else {
        const error = json && json.error;
        const code = (error && error.code) || (json && json.errors && json.errors[0]?.extensions?.code) || `HTTP_${response.status}`;
        const message = (error && error.message) || (json && json.errors && json.errors[0]?.message)
          || (response.status === 404 ? 'sign-in is not available on this server' : `the server answered ${response.status}`);
        showMessage(`Sign-in failed: ${code}: ${message}`, 'error');
      }
    } catch (error) {
      showError(error, 'Sign-in failed');
    } finally {
      state.busy.login = false;
      el.loginButton.disabled = false;
      el.loginButton.textContent = 'Sign in';
      renderControls();
    }
  }

  function signOut({ quiet = false } = {}) {
    state.token = null;
    state.userId = null;
    writeSession();
    clearBooking();
    renderAccount();
    restartLive();
    renderSeats();
    renderControls();
    if (!quiet) showMessage('Signed out.', 'info');
  }

  function renderAccount() {
    const signedIn = Boolean(state.token);
    el.loginForm.hidden = signedIn;
    el.signedIn.hidden = !signedIn;
    el.signedInUser.textContent = state.userId || '';
  }

  // ------------------------------------------------------------ showtime

  function currentShowtimeChoice() {
    return el.showtime.value === OTHER ? el.showtimeOther.value.trim() : el.showtime.value;
  }

  async function loadShowtime(showtimeId) {
    if (!showtimeId) {
      showMessage('Enter a showtime id.', 'error');
      return;
    }
    const generation = ++state.loadGeneration;
    state.busy.load = true;
    stopSeatSubscription();
    state.showtimeId = showtimeId;
    state.showtime = null;
    state.seats = new Map();
    state.selected.clear();
    el.movieTitle.textContent = '';
    el.showDetails.textContent = '';
    el.seatMap.setAttribute('aria-busy', 'true');
    el.seatMap.replaceChildren(placeholder('Loading seats…'));
    renderControls();
    try {
      const params = new URLSearchParams(location.search);
      if (params.get('showtime') !== showtimeId) {
        params.set('showtime', showtimeId);
        history.replaceState(null, '', `${location.pathname}?${params}`);
      }
    } catch {
      // history unavailable (e.g. sandboxed): the URL just does not follow
    }
    try {
      const data = await graphql(SHOWTIME_QUERY, { showtimeId }, { auth: false });
      if (generation !== state.loadGeneration) return;
      const result = data.showtimeSeats;
      if (!result) throw new ApiError('SHOWTIME_NOT_FOUND', `no showtime ${showtimeId}`);
      state.showtime = result.showtime || { id: showtimeId };
      if (!state.showtime.id) state.showtime.id = showtimeId;
      for (const seat of result.seats || []) {
        state.seats.set(seat.number, { ...seat, button: null });
      }
      renderShowInfo();
      buildSeatMap();
      startSeatSubscription();
      schedulePolling();
    } catch (error) {
      if (generation !== state.loadGeneration) return;
      el.seatMap.replaceChildren(placeholder(`Could not load ${showtimeId}: ${describeError(error)}`));
      showError(error, `Showtime ${showtimeId}`);
    } finally {
      if (generation === state.loadGeneration) {
        state.busy.load = false;
        el.seatMap.setAttribute('aria-busy', 'false');
        renderControls();
      }
    }
  }

  function placeholder(text) {
    const p = document.createElement('p');
    p.className = 'placeholder';
    p.textContent = text;
    return p;
  }

  function renderShowInfo() {
    const show = state.showtime;
    if (!show) return;
    el.movieTitle.textContent = show.movieTitle || show.id;
    const details = [show.theater, show.startsAt ? formatStart(show.startsAt) : null];
    const free = [...state.seats.values()].filter((seat) => seat.status === 'AVAILABLE').length;
    details.push(`${free} of ${state.seats.size} seats free`);
    el.showDetails.textContent = details.filter(Boolean).join(' · ');
  }

  function buildSeatMap() {
    const rows = new Map();
    for (const seat of state.seats.values()) {
      const row = seat.row || seat.number.replace(/\d+$/, '') || '?';
      if (!rows.has(row)) rows.set(row, []);
      rows.get(row).push(seat);
    }
    const container = document.createElement('div');
    container.className = 'seat-rows';
    for (const row of [...rows.keys()].sort(compareSeatNumbers)) {
      const line = document.createElement('div');
      line.className = 'seat-row';
      line.setAttribute('role', 'group');
      line.setAttribute('aria-label', `Row ${row}`);
      const label = document.createElement('span');
      label.className = 'row-label';
      label.setAttribute('aria-hidden', 'true');
      label.textContent = row;
      line.append(label);
      for (const seat of rows.get(row).sort((a, b) => compareSeatNumbers(a.number, b.number))) {
        const button = document.createElement('button');
        button.type = 'button';
        button.className = 'seat';
        button.dataset.seat = seat.number;
        const suffix = seat.number.startsWith(row) ? seat.number.slice(row.length) : seat.number;
        button.textContent = suffix || seat.number;
        seat.button = button;
        line.append(button);
      }
      container.append(line);
    }
    if (state.seats.size === 0) {
      el.seatMap.replaceChildren(placeholder('This showtime has no seats.'));
    } else {
      el.seatMap.replaceChildren(container);
    }
    renderSeats();
  }

  /** Seats of this showtime in the booking on show, when it still holds or owns them. */
  function mySeats() {
    const booking = state.booking;
    if (!booking || !state.showtime || (booking.showtimeId && booking.showtimeId !== state.showtime.id)) {
      return { held: new Set(), booked: new Set() };
    }
    const seats = new Set(booking.seats || []);
    if (booking.status === 'PENDING') return { held: seats, booked: new Set() };
    if (booking.status === 'CONFIRMED') return { held: new Set(), booked: seats };
    return { held: new Set(), booked: new Set() };
  }

  function renderSeats() {
    const mine = mySeats();
    const currency = state.showtime && state.showtime.currency;
    for (const seat of state.seats.values()) {
      const button = seat.button;
      if (!button) continue;
      let mark = '';
      let words;
      if (state.selected.has(seat.number)) {
        mark = 'selected';
        words = 'selected by you';
      } else if (mine.held.has(seat.number) && seat.status !== 'AVAILABLE') {
        mark = 'held';
        words = 'held by you';
      } else if (mine.booked.has(seat.number) && seat.status === 'BOOKED') {
        mark = 'booked';
        words = 'booked by you';
      } else {
        words = { AVAILABLE: 'available', LOCKED: 'held by someone', BOOKED: 'taken' }[seat.status] || seat.status;
      }
      if (button.dataset.status !== seat.status) button.dataset.status = seat.status;
      if (mark) button.dataset.mine = mark;
      else delete button.dataset.mine;
      const price = seat.price !== undefined ? `, ${formatMoney(seat.price, currency)}` : '';
      const label = `${seat.number}, ${words}${seat.status === 'AVAILABLE' ? price : ''}`;
      if (button.getAttribute('aria-label') !== label) {
        button.setAttribute('aria-label', label);
        button.title = label;
      }
      button.setAttribute('aria-pressed', String(mark === 'selected'));
      button.disabled = seat.status !== 'AVAILABLE' && mark !== 'selected';
    }
    renderSelection();
  }

  function applySeatUpdate(update) {
    const lost = [];
    const seen = new Set();
    for (const change of update.seats || []) {
      const seat = state.seats.get(change.number);
      if (!seat) continue;
      seen.add(change.number);
      seat.status = change.status;
      if (change.status !== 'AVAILABLE' && state.selected.has(change.number) && !state.holding.has(change.number)) {
        state.selected.delete(change.number);
        lost.push(change.number);
      }
    }
    if (lost.length > 0) {
      showMessage(`${lost.sort(compareSeatNumbers).join(', ')} just went to someone else; pick other seats.`, 'error');
    }
    renderSeats();
    renderShowInfo();
  }

  function toggleSeat(event) {
    const button = event.target.closest('button.seat');
    if (!button || !el.seatMap.contains(button)) return;
    const number = button.dataset.seat;
    const seat = state.seats.get(number);
    if (!seat) return;
    if (state.selected.has(number)) {
      state.selected.delete(number);
    } else if (seat.status === 'AVAILABLE') {
      state.selected.add(number);
    } else {
      return;
    }
    renderSeats();
    renderControls();
  }

  function renderSelection() {
    const chosen = [...state.selected].sort(compareSeatNumbers);
    if (chosen.length === 0) {
      el.selectionSummary.textContent = state.token ? 'No seats selected.' : 'Sign in to hold seats.';
      return;
    }
    let cents = 0;
    let priced = true;
    for (const number of chosen) {
      const seat = state.seats.get(number);
      if (seat && typeof seat.priceCents === 'number') cents += seat.priceCents;
      else priced = false;
    }
    const currency = (state.showtime && state.showtime.currency) || '';
    const total = priced ? ` · ${formatMoney((cents / 100).toFixed(2), currency)}` : '';
    el.selectionSummary.textContent = `Selected: ${chosen.join(', ')}${total}`;
  }

  // ------------------------------------------------------------- booking

  function clearBooking() {
    stopBookingSubscription();
    state.booking = null;
    rememberBooking(null);
    renderBooking();
    renderSeats();
  }

  /** Takes a booking from a mutation answer, a subscription or a poll; never goes back in time. */
  function applyBooking(incoming, { replace = false } = {}) {
    if (!incoming || !incoming.id) return;
    const current = state.booking;
    if (!replace && current && current.id === incoming.id) {
      const before = Date.parse(current.updatedAt || '');
      const after = Date.parse(incoming.updatedAt || '');
      if (!Number.isNaN(before) && !Number.isNaN(after) && after < before) return; // older news
      state.booking = { ...current, ...stripUndefined(incoming) };
    } else if (replace || !current) {
      state.booking = { ...incoming };
    } else {
      return; // about another booking
    }
    const booking = state.booking;
    rememberBooking(booking.id);
    const busy = state.busy.hold || state.busy.extend || state.busy.pay || state.busy.cancel;
    if (current && current.id === booking.id && current.status !== booking.status && !busy) {
      // A change nobody on this page asked for just now (expiry, support,
      // another tab): say so, replacing older news.
      const kind = { CONFIRMED: 'success', CANCELLED: 'info', REFUNDED: 'info' }[booking.status] || 'error';
      showMessage(`Booking ${booking.status}: ${STATUS_NOTES[booking.status] || 'status changed'}.`, kind);
    }
    // Seats this booking holds or owns are known without waiting for seatMap.
    if (state.showtime && (!booking.showtimeId || booking.showtimeId === state.showtime.id)) {
      const seatStatus = { PENDING: 'LOCKED', CONFIRMED: 'BOOKED' }[booking.status];
      if (seatStatus) {
        for (const number of booking.seats || []) {
          const seat = state.seats.get(number);
          if (seat) seat.status = seatStatus;
        }
      }
    }
    if (!LIVE_STATUSES.has(booking.status)) {
      // Final: nothing more to watch.
      stopBookingSubscription();
    }
    renderBooking();
    renderSeats();
    renderControls();
  }

  function stripUndefined(object) {
    const out = {};
    for (const [key, value] of Object.entries(object)) if (value !== undefined) out[key] = value;
    return out;
  }

  const STATUS_NOTES = {
    PENDING: 'held for you: pay before the hold ends',
    CONFIRMED: 'paid, enjoy the film',
    PAYMENT_FAILED: 'the payment was declined; the seats are released',
    FAILED: 'the booking failed; the seats are released',
    CANCELLED: 'cancelled; the seats are released',
    EXPIRED: 'the hold ended before payment; the seats are released',
    REFUNDED: 'cancelled and refunded; the seats are released',
  };

  function renderBooking() {
    const booking = state.booking;
    el.booking.hidden = !booking;
    if (!booking) {
      el.bookingStatus.textContent = '';
      delete el.bookingStatus.dataset.status;
      el.countdown.textContent = '--:--';
      delete el.countdown.dataset.expiresAt;
      return;
    }
    el.bookingId.textContent = booking.id;
    el.bookingSeats.textContent = (booking.seats || []).slice().sort(compareSeatNumbers).join(', ');
    el.bookingTotal.textContent = formatMoney(booking.totalAmount, booking.currency || (state.showtime && state.showtime.currency));
    if (el.bookingStatus.textContent !== booking.status) el.bookingStatus.textContent = booking.status;
    el.bookingStatus.dataset.status = booking.status;
    let note = STATUS_NOTES[booking.status] || '';
    if (booking.failureReason && booking.status !== 'PENDING' && booking.status !== 'CONFIRMED') {
      note = `${note} (${booking.failureReason})`;
    }
    el.bookingStatusNote.textContent = note ? `— ${note}` : '';
    if (booking.lockExpiresAt) el.countdown.dataset.expiresAt = booking.lockExpiresAt;
    tick();
  }

  let lastMinuteWarned = null;
  function tick() {
    const booking = state.booking;
    if (!booking || booking.status !== 'PENDING' || !booking.lockExpiresAt) {
      const text = booking && booking.status !== 'PENDING' ? '--:--' : el.countdown.textContent;
      if (el.countdown.textContent !== text) el.countdown.textContent = text;
      el.countdown.dataset.urgent = 'false';
      el.countdown.dataset.remainingMs = '0';
      return;
    }
    const expires = Date.parse(booking.lockExpiresAt);
    if (Number.isNaN(expires)) {
      el.countdown.textContent = '--:--';
      return;
    }
    const remaining = Math.max(0, expires - serverNow());
    const seconds = Math.ceil(remaining / 1000);
    const text = `${String(Math.floor(seconds / 60)).padStart(2, '0')}:${String(seconds % 60).padStart(2, '0')}`;
    if (el.countdown.textContent !== text) el.countdown.textContent = text;
    el.countdown.dataset.remainingMs = String(remaining);
    el.countdown.dataset.urgent = String(remaining <= 60000);
    if (remaining <= 60000 && remaining > 0 && lastMinuteWarned !== booking.lockExpiresAt) {
      lastMinuteWarned = booking.lockExpiresAt;
      el.bookingStatusNote.textContent = '— less than a minute left: extend the hold or pay';
    }
    if (remaining === 0) {
      el.bookingStatusNote.textContent = '— the hold has ended; waiting for the server to release the seats';
    }
  }

  function renderControls() {
    const booking = state.booking;
    const pending = Boolean(booking && booking.status === 'PENDING');
    const anyBookingBusy = state.busy.hold || state.busy.extend || state.busy.pay || state.busy.cancel;
    const holdReady = Boolean(state.token) && state.selected.size > 0 && Boolean(state.showtime) && !pending && !anyBookingBusy;
    el.holdButton.disabled = !holdReady;
    el.holdButton.textContent = state.busy.hold ? 'Holding…' : pending ? 'Pay or cancel your hold first' : 'Hold seats';
    el.extendButton.disabled = !pending || anyBookingBusy || !state.token;
    el.extendButton.textContent = state.busy.extend ? 'Extending…' : 'Extend hold';
    el.payButton.disabled = !pending || anyBookingBusy || !state.token;
    el.payButton.textContent = state.busy.pay ? 'Paying…' : 'Pay';
    el.card.disabled = !pending || anyBookingBusy;
    const cancellable = Boolean(booking && (booking.status === 'PENDING' || booking.status === 'CONFIRMED'));
    el.cancelButton.disabled = !cancellable || anyBookingBusy || !state.token;
    el.cancelButton.textContent = state.busy.cancel
      ? 'Cancelling…'
      : booking && booking.status === 'CONFIRMED' ? 'Cancel and refund' : 'Cancel booking';
    el.showtimeLoad.disabled = state.busy.load;
  }

  async function runAction(name, work) {
    if (state.busy[name]) return;
    state.busy[name] = true;
    renderControls();
    try {
      await work();
    } catch (error) {
      showError(error);
    } finally {
      state.busy[name] = false;
      renderControls();
    }
  }

  function hold() {
    return runAction('hold', async () => {
      if (!state.token) throw new ApiError('UNAUTHENTICATED', 'sign in first');
      const seatNumbers = [...state.selected].sort(compareSeatNumbers);
      if (seatNumbers.length === 0) throw new ApiError('NO_SEATS', 'select at least one seat');
      const showtimeId = state.showtime.id;
      const action = `hold:${state.userId}:${showtimeId}:${seatNumbers.join(',')}`;
      let data;
      state.holding = new Set(seatNumbers);
      try {
        data = await graphql(
          CREATE_BOOKING,
          { userId: state.userId, showtimeId, seatNumbers },
          { idempotencyKey: keyFor(action) },
        );
      } catch (error) {
        if (!error.network) {
          state.pendingKeys.delete(action);
          dropUnavailableSelection();
        }
        throw error;
      } finally {
        state.holding = new Set();
      }
      state.pendingKeys.delete(action);
      const payload = data.createBooking;
      if (!payload) throw new ApiError('NO_ANSWER', 'the booking was not created');
      if (!payload.success || !payload.booking) {
        dropUnavailableSelection();
        throw new ApiError(payload.code || 'BOOKING_REFUSED', payload.message || 'the booking was not created');
      }
      state.selected.clear();
      stopBookingSubscription();
      applyBooking({ showtimeId, ...payload.booking }, { replace: true });
      if (state.token) startBookingSubscription(payload.booking.id);
      showMessage(`Held ${seatNumbers.join(', ')}: booking ${payload.booking.id}. Pay before the hold ends.`, 'success');
      const still = window.matchMedia && window.matchMedia('(prefers-reduced-motion: reduce)').matches;
      el.booking.scrollIntoView({ block: 'nearest', behavior: still ? 'auto' : 'smooth' });
    });
  }

  /** After a refused hold: selected seats that someone else took meanwhile. */
  function dropUnavailableSelection() {
    for (const number of [...state.selected]) {
      const seat = state.seats.get(number);
      if (!seat || seat.status !== 'AVAILABLE') state.selected.delete(number);
    }
    renderSeats();
  }

  function extend() {
    return runAction('extend', async () => {
      const booking = state.booking;
      if (!booking) return;
      const data = await graphql(EXTEND_LOCK, { bookingId: booking.id });
      const payload = data.extendBookingLock;
      if (!payload) throw new ApiError('NO_ANSWER', 'the hold was not extended');
      if (payload.booking) applyBooking(payload.booking);
      if (!payload.success) {
        throw new ApiError(payload.code || 'LOCK_EXTENSION_REFUSED', payload.message || 'the hold was not extended');
      }
      showMessage(payload.message || 'Hold extended.', 'success');
    });
  }

  function pay() {
    return runAction('pay', async () => {
      const booking = state.booking;
      if (!booking) return;
      const card = el.card.value;
      const action = `pay:${booking.id}:${card}`;
      let data;
      try {
        data = await graphql(
          PROCESS_PAYMENT,
          { bookingId: booking.id, paymentDetails: card },
          { idempotencyKey: keyFor(action) },
        );
      } catch (error) {
        if (!error.network) state.pendingKeys.delete(action);
        throw error;
      }
      state.pendingKeys.delete(action);
      const payload = data.processPayment;
      if (!payload) throw new ApiError('NO_ANSWER', 'the payment was not processed');
      if (payload.booking) applyBooking(payload.booking);
      if (!payload.success) {
        throw new ApiError(payload.code || 'PAYMENT_FAILED', payload.message || 'the payment failed');
      }
      showMessage(payload.message || 'Paid: your seats are booked.', 'success');
    });
  }

  function cancel() {
    return runAction('cancel', async () => {
      const booking = state.booking;
      if (!booking) return;
      const action = `cancel:${booking.id}`;
      let data;
      try {
        data = await graphql(CANCEL_BOOKING, { bookingId: booking.id }, { idempotencyKey: keyFor(action) });
      } catch (error) {
        if (!error.network) state.pendingKeys.delete(action);
        throw error;
      }
      state.pendingKeys.delete(action);
      const payload = data.cancelBooking;
      if (!payload) throw new ApiError('NO_ANSWER', 'the booking was not cancelled');
      if (payload.booking) applyBooking(payload.booking);
      if (!payload.success) throw new ApiError(payload.code || 'CANCEL_REFUSED', payload.message || 'not cancelled');
      showMessage(payload.message || 'Booking cancelled.', 'success');
    });
  }

  async function restoreBooking() {
    let bookingId = null;
    try {
      bookingId = sessionStorage.getItem(BOOKING_KEY);
    } catch {
      bookingId = null;
    }
    if (!bookingId || !state.token) return;
    try {
      const data = await graphql(GET_BOOKING_QUERY, { bookingId });
      if (data.getBooking) {
        applyBooking(data.getBooking, { replace: true });
        if (LIVE_STATUSES.has(data.getBooking.status)) startBookingSubscription(bookingId);
      }
    } catch {
      rememberBooking(null);
    }
  }

  // ---------------------------------------------------------------- init

  function syncOtherFields() {
    el.loginUserOtherField.hidden = el.loginUser.value !== OTHER;
    el.showtimeOtherField.hidden = el.showtime.value !== OTHER;
  }

  function init() {
    el.loginForm.addEventListener('submit', signIn);
    el.logoutButton.addEventListener('click', () => signOut());
    el.loginUser.addEventListener('change', () => {
      syncOtherFields();
      if (el.loginUser.value === OTHER) el.loginUserOther.focus();
    });
    el.showtime.addEventListener('change', () => {
      syncOtherFields();
      if (el.showtime.value === OTHER) {
        el.showtimeOther.focus();
      } else {
        loadShowtime(el.showtime.value);
      }
    });
    el.showtimeLoad.addEventListener('click', () => loadShowtime(currentShowtimeChoice()));
    el.showtimeOther.addEventListener('keydown', (event) => {
      if (event.key === 'Enter') {
        event.preventDefault();
        loadShowtime(currentShowtimeChoice());
      }
    });
    el.seatMap.addEventListener('click', toggleSeat);
    el.holdButton.addEventListener('click', hold);
    el.extendButton.addEventListener('click', extend);
    el.payButton.addEventListener('click', pay);
    el.cancelButton.addEventListener('click', cancel);
    setInterval(tick, 250);
    // Back from a background tab: redraw at once (timers may have slept).
    document.addEventListener('visibilitychange', () => {
      if (!document.hidden) tick();
    });

    if (!window.graphqlWs) {
      showMessage('The live-update script (/book/graphql-ws.min.js) did not load: seats refresh every 10 s instead.', 'error');
    }

    const saved = readSession();
    if (saved) {
      state.token = saved.token;
      state.userId = saved.userId;
    }
    renderAccount();
    renderBooking();

    let initial = 'showtime_456';
    try {
      initial = new URLSearchParams(location.search).get('showtime') || initial;
    } catch {
      // keep the default
    }
    if ([...el.showtime.options].some((option) => option.value === initial && option.value !== OTHER)) {
      el.showtime.value = initial;
    } else {
      el.showtime.value = OTHER;
      el.showtimeOther.value = initial;
    }
    syncOtherFields();
    renderControls();
    loadShowtime(initial).then(restoreBooking);
  }

  if (document.readyState === 'loading') {
    document.addEventListener('DOMContentLoaded', init);
  } else {
    init();
  }
})();
