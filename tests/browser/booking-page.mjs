// The booking page (/book) in a real browser: Debian's chromium (headless),
// driven by playwright-core, two customers at once. Page A (user_123) and
// page B (user_456), each in its own browser context at a phone viewport,
// open the same showtime and wait for the live seat map's snapshot; then
//
//   1. A holds the seats; B must see them turn LOCKED; A's countdown runs
//      and "Extend hold" must not bring lockExpiresAt (or the countdown)
//      earlier;
//   2. A pays with the declined card: A's status PAYMENT_FAILED, B sees the
//      seats AVAILABLE again (timed from A's click);
//   3. A holds them again and pays with the good card: A's status
//      CONFIRMED, and B must see the seats BOOKED within 1 s of A's page
//      showing CONFIRMED;
//   4. (unless CLEANUP=0) A cancels the booking (REFUNDED), so that the seats
//      are free for the next run; a failure here is only a warning.
//
//   BOOKING_URL=http://127.0.0.1:8000 node tests/browser/booking-page.mjs
//
// Env: BOOKING_URL (or the first argument), SHOWTIME (showtime_456), SEATS
// (comma separated; default E9,E10 when both are free, else the first two
// free neighbours from the back row), SCREENSHOT_DIR (PNGs of each step),
// CLEANUP (1), CHROMIUM (/usr/bin/chromium).
//
// Prints one JSON line on stdout: {"ok": true, "lockedAfterMs", "freedAfterMs",
// "bookedAfterMs", ..., "checks": [...]} and exits 0, or {"ok": false,
// "error": "..."} and exits 1 (details on stderr). Every wait is bounded by
// 10 s and the whole run by 60 s. Times are measured in the pages (a
// MutationObserver notes when each seat's data-status changes) on the same
// clock as this process.
import { mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const WAIT_MS = 10_000;
const RUN_MS = 60_000;
const BOOKED_WITHIN_MS = 1_000;
const VIEWPORT = { width: 390, height: 844 };
const USER_A = 'user_123';
const USER_B = 'user_456';
const GOOD_CARD = 'card_token_xyz';
const DECLINED_CARD = 'card_declined';

const baseUrl = (process.env.BOOKING_URL || process.argv[2] || '').replace(/\/+$/, '');
const showtimeId = process.env.SHOWTIME || 'showtime_456';
const wantedSeats = (process.env.SEATS || '')
  .split(',')
  .map((seat) => seat.trim())
  .filter(Boolean);
const screenshotDir = process.env.SCREENSHOT_DIR || '';
const cleanup = process.env.CLEANUP !== '0';

const checks = [];
const warnings = [];
const problems = []; // page errors, CSP violations, off-site requests: fail the run
const consoleErrors = [];
let browser;
const pages = {};
let finished = false;

function emit(result) {
  process.stdout.write(`${JSON.stringify(result)}\n`);
}

async function finish(ok, result) {
  if (finished) return;
  finished = true;
  clearTimeout(watchdog);
  if (!ok) {
    for (const [name, page] of Object.entries(pages)) {
      const dir = screenshotDir || tmpdir();
      const path = join(dir, `booking-page-failure-${name}-${process.pid}.png`);
      await page
        .screenshot({ path, fullPage: true, timeout: 5_000 })
        .then(() => console.error(`screenshot of page ${name}: ${path}`))
        .catch((error) => console.error(`no screenshot of page ${name}: ${error.message}`));
      const state = await page
        .evaluate(() => ({
          status: document.querySelector('#booking-status')?.textContent,
          message: document.querySelector('#message')?.textContent,
          connection: document.querySelector('#connection')?.dataset.state,
          countdown: document.querySelector('#countdown')?.textContent,
        }))
        .catch(() => null);
      if (state) console.error(`page ${name}: ${JSON.stringify(state)}`);
    }
    for (const line of consoleErrors) console.error(line);
    for (const check of checks) console.error(`passed: ${check}`);
  }
  await browser?.close().catch(() => {});
  emit(ok ? result : { ok: false, error: result, checks, ...(warnings.length ? { warnings } : {}) });
  process.exit(ok ? 0 : 1);
}

const watchdog = setTimeout(() => {
  finish(false, `the run took longer than ${RUN_MS / 1000} s`);
}, RUN_MS);

if (!/^https?:\/\//.test(baseUrl)) {
  console.error('usage: BOOKING_URL=http://127.0.0.1:8000 node booking-page.mjs');
  clearTimeout(watchdog);
  emit({ ok: false, error: 'BOOKING_URL (e.g. http://127.0.0.1:8000) is not set' });
  process.exit(2);
}
const origin = new URL(baseUrl).origin;
if (screenshotDir) mkdirSync(screenshotDir, { recursive: true });

/** Installed before the page's own scripts: timestamps of seat and status changes. */
function instrument() {
  const log = { seats: {}, status: [] };
  window.__bookingTest = log;
  const noteSeat = (element) => {
    const seat = element.getAttribute('data-seat');
    const status = element.getAttribute('data-status');
    if (!seat || !status) return;
    const history = (log.seats[seat] ||= []);
    if (history.length === 0 || history[history.length - 1].status !== status) {
      history.push({ status, at: Date.now() });
    }
  };
  let lastStatus = null;
  const noteStatus = () => {
    const text = document.getElementById('booking-status')?.textContent ?? '';
    if (text !== lastStatus) {
      lastStatus = text;
      log.status.push({ status: text, at: Date.now() });
    }
  };
  const observer = new MutationObserver((mutations) => {
    for (const mutation of mutations) {
      if (mutation.type === 'attributes') {
        noteSeat(mutation.target);
      } else {
        for (const node of mutation.addedNodes) {
          if (node.nodeType !== 1) continue;
          if (node.matches('[data-seat]')) noteSeat(node);
          node.querySelectorAll?.('[data-seat]').forEach(noteSeat);
        }
      }
    }
    noteStatus();
  });
  const start = () =>
    observer.observe(document.documentElement, {
      subtree: true,
      childList: true,
      characterData: true,
      attributes: true,
      attributeFilter: ['data-status'],
    });
  if (document.documentElement) start();
  else document.addEventListener('DOMContentLoaded', start);
}

const seatSelector = (seat) => `#seat-map [data-seat="${seat}"]`;

async function shot(name) {
  if (!screenshotDir) return;
  await Promise.all(
    Object.entries(pages).map(([page, handle]) =>
      handle.screenshot({ path: join(screenshotDir, `${name}-${page}.png`), timeout: 5_000 }).catch((error) => {
        warnings.push(`screenshot ${name}-${page}: ${error.message}`);
      }),
    ),
  );
}

async function openPage(name, userId) {
  const context = await browser.newContext({
    viewport: VIEWPORT,
    isMobile: true,
    hasTouch: true,
    deviceScaleFactor: 1,
    serviceWorkers: 'block',
  });
  await context.addInitScript(instrument);
  const page = await context.newPage();
  pages[name] = page;
  page.setDefaultTimeout(WAIT_MS);
  page.setDefaultNavigationTimeout(WAIT_MS);
  page.on('console', (message) => {
    if (message.type() !== 'error') return;
    const text = message.text();
    consoleErrors.push(`page ${name} console: ${text}`);
    if (/Content Security Policy/i.test(text)) problems.push(`page ${name}: ${text}`);
  });
  page.on('pageerror', (error) => problems.push(`page ${name} error: ${error.message}`));
  page.on('request', (request) => {
    const url = request.url();
    if (/^(https?|wss?):/.test(url) && new URL(url.replace(/^ws/, 'http')).origin !== origin) {
      problems.push(`page ${name} reached outside ${origin}: ${url}`);
    }
  });

  const response = await page.goto(`${baseUrl}/book?showtime=${encodeURIComponent(showtimeId)}`, {
    waitUntil: 'load',
  });
  if (!response || response.status() !== 200) {
    throw new Error(`GET /book answered ${response?.status()}`);
  }
  const type = response.headers()['content-type'] || '';
  if (!type.startsWith('text/html')) throw new Error(`GET /book has content-type ${type || '(none)'}`);
  if (!(await page.evaluate(() => typeof window.graphqlWs?.createClient === 'function'))) {
    throw new Error('page ' + name + ': /book/graphql-ws.min.js did not load (no window.graphqlWs)');
  }

  // Sign in.
  const known = await page.$$eval('#login-user option', (options, id) => options.some((o) => o.value === id), userId);
  if (known) {
    await page.selectOption('#login-user', userId);
  } else {
    await page.selectOption('#login-user', '__other');
    await page.fill('#login-user-other', userId);
  }
  await page.fill('#login-password', 'demo');
  await page.click('#login-button');
  await page
    .locator('#signed-in-text')
    .filter({ hasText: `Signed in as ${userId}` })
    .waitFor({ state: 'visible' })
    .catch(async () => {
      const message = await page.textContent('#message').catch(() => '');
      throw new Error(`page ${name}: sign-in as ${userId} failed: ${message || 'no message'}`);
    });

  // The seat map, then the live snapshot on the (re)started connection.
  await page.waitForSelector(`#seat-map [data-seat]`, { state: 'attached' });
  await page
    .waitForFunction(
      () =>
        document.querySelector('#seat-map')?.dataset.snapshot === 'received' &&
        document.querySelector('#connection')?.dataset.state === 'connected',
      null,
      { timeout: WAIT_MS },
    )
    .catch(async () => {
      const state = await page.evaluate(() => ({
        connection: document.querySelector('#connection')?.textContent,
        message: document.querySelector('#message')?.textContent,
      }));
      throw new Error(`page ${name}: no live seat-map snapshot within ${WAIT_MS} ms (${JSON.stringify(state)})`);
    });
  return page;
}

async function seatStatuses(page) {
  return page.$$eval('#seat-map [data-seat]', (buttons) =>
    buttons.map((button) => ({ seat: button.dataset.seat, status: button.dataset.status })),
  );
}

async function chooseSeats(page) {
  const statuses = await seatStatuses(page);
  const byNumber = new Map(statuses.map(({ seat, status }) => [seat, status]));
  if (wantedSeats.length > 0) {
    for (const seat of wantedSeats) {
      if (!byNumber.has(seat)) throw new Error(`seat ${seat} is not in ${showtimeId}'s map`);
      if (byNumber.get(seat) !== 'AVAILABLE') {
        throw new Error(`seat ${seat} is ${byNumber.get(seat)}, not AVAILABLE: pick free ones with SEATS=`);
      }
    }
    return wantedSeats;
  }
  if (byNumber.get('E9') === 'AVAILABLE' && byNumber.get('E10') === 'AVAILABLE') return ['E9', 'E10'];
  // Two free neighbours, from the back row forwards.
  const rows = new Map();
  for (const { seat } of statuses) {
    const row = seat.replace(/\d+$/, '');
    if (!rows.has(row)) rows.set(row, []);
    rows.get(row).push(seat);
  }
  const rowNames = [...rows.keys()].sort((a, b) => b.localeCompare(a, 'en', { numeric: true }));
  for (const row of rowNames) {
    const seats = rows.get(row).sort((a, b) => b.localeCompare(a, 'en', { numeric: true }));
    for (let i = 0; i + 1 < seats.length; i += 1) {
      if (byNumber.get(seats[i]) === 'AVAILABLE' && byNumber.get(seats[i + 1]) === 'AVAILABLE') {
        return [seats[i + 1], seats[i]];
      }
    }
  }
  throw new Error(`${showtimeId} has no two free neighbouring seats`);
}

async function waitSeats(page, name, seats, status) {
  await page
    .waitForFunction(
      ([list, wanted]) =>
        list.every((seat) => document.querySelector(`#seat-map [data-seat="${seat}"]`)?.dataset.status === wanted),
      [seats, status],
      { timeout: WAIT_MS, polling: 'raf' },
    )
    .catch(async () => {
      const now = await page.$$eval(
        '#seat-map [data-seat]',
        (buttons, list) => buttons.filter((b) => list.includes(b.dataset.seat)).map((b) => `${b.dataset.seat}=${b.dataset.status}`),
        seats,
      );
      throw new Error(`page ${name} did not see ${seats.join(',')} ${status} within ${WAIT_MS} ms (now ${now.join(', ')})`);
    });
}

/** When the page saw the last of `seats` turn `status` at or after `since` (epoch ms). */
async function seenAt(page, seats, status, since) {
  const at = await page.evaluate(
    ([list, wanted, after]) =>
      list.map((seat) => {
        const history = window.__bookingTest.seats[seat] || [];
        const change = history.find((entry) => entry.status === wanted && entry.at >= after);
        return change ? change.at : null;
      }),
    [seats, status, since],
  );
  if (at.some((value) => value === null)) throw new Error(`no record of ${seats.join(',')} turning ${status}`);
  return Math.max(...at);
}

async function statusSeenAt(page, status, since) {
  const at = await page.evaluate(
    ([wanted, after]) => window.__bookingTest.status.find((entry) => entry.status === wanted && entry.at >= after)?.at ?? null,
    [status, since],
  );
  if (at === null) throw new Error(`no record of the booking status turning ${status}`);
  return at;
}

/** Waits for #booking-status to show `status` (or one of a list). */
async function waitStatus(page, name, status) {
  const wanted = [status].flat();
  await page
    .waitForFunction((list) => list.includes(document.querySelector('#booking-status')?.textContent), wanted, {
      timeout: WAIT_MS,
      polling: 'raf',
    })
    .catch(async () => {
      const now = await page.textContent('#booking-status').catch(() => '?');
      const message = await page.textContent('#message').catch(() => '');
      throw new Error(`page ${name}: booking status ${now || '(none)'}, not ${wanted.join(' or ')}, after ${WAIT_MS} ms; message: ${message}`);
    });
}

/** Clicks a button and waits for the page's next #message (the action's outcome). */
async function clickForMessage(page, selector) {
  const before = Number(await page.getAttribute('#message', 'data-seq'));
  await page.click(selector);
  await page.waitForFunction(
    (seq) => Number(document.querySelector('#message')?.dataset.seq) > seq,
    before,
    { timeout: WAIT_MS },
  );
  return {
    kind: await page.getAttribute('#message', 'data-kind'),
    text: (await page.textContent('#message')) || '',
  };
}

async function selectSeats(page, seats) {
  for (const seat of seats) {
    await page.click(seatSelector(seat));
    const mine = await page.getAttribute(seatSelector(seat), 'data-mine');
    if (mine !== 'selected') throw new Error(`clicking ${seat} did not select it (data-mine=${mine})`);
  }
}

async function hold(page, seats) {
  await selectSeats(page, seats);
  const started = Date.now();
  await page.click('#hold-button');
  await waitStatus(page, 'A', 'PENDING').catch(async (error) => {
    const message = await page.textContent('#message').catch(() => '');
    throw new Error(`${error.message}${message ? ` (${message})` : ''}`);
  });
  return started;
}

const seconds = (text) => {
  const match = /^(\d+):(\d\d)$/.exec((text || '').trim());
  if (!match) throw new Error(`the countdown shows ${JSON.stringify(text)}, not mm:ss`);
  return Number(match[1]) * 60 + Number(match[2]);
};

async function layoutCheck(page, name) {
  const layout = await page.evaluate(() => {
    const seat = document.querySelector('#seat-map [data-seat]').getBoundingClientRect();
    return {
      scrollWidth: document.documentElement.scrollWidth,
      width: window.innerWidth,
      seat: [Math.round(seat.width * 10) / 10, Math.round(seat.height * 10) / 10],
      viewportMeta: Boolean(document.querySelector('meta[name="viewport"]')),
    };
  });
  if (layout.scrollWidth > layout.width) {
    throw new Error(`page ${name} scrolls sideways: ${layout.scrollWidth} px wide in a ${layout.width} px viewport`);
  }
  if (layout.seat[0] < 28 || layout.seat[1] < 28) {
    throw new Error(`page ${name}: seat buttons are ${layout.seat.join('×')} px (< 28)`);
  }
  if (!layout.viewportMeta) throw new Error(`page ${name} has no viewport meta tag`);
  return layout;
}

function assertNoProblems() {
  if (problems.length > 0) throw new Error(problems.join('; '));
}

try {
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    // Playwright starts the browser on a fresh temporary profile
    // (user-data-dir) and deletes it on close; each context below is a
    // separate session (own sessionStorage, own WebSocket).
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
    timeout: WAIT_MS,
  });

  const [pageA, pageB] = await Promise.all([openPage('A', USER_A), openPage('B', USER_B)]);
  checks.push(`A (${USER_A}) and B (${USER_B}) signed in, live seat map of ${showtimeId} received`);
  const layout = await layoutCheck(pageA, 'A');
  await layoutCheck(pageB, 'B');
  checks.push(`no sideways scroll at ${VIEWPORT.width}×${VIEWPORT.height}, seats ${layout.seat.join('×')} px`);

  const seats = await chooseSeats(pageA);
  await waitSeats(pageB, 'B', seats, 'AVAILABLE');

  // 1. Hold: B sees the seats LOCKED.
  const holdClicked = await hold(pageA, seats);
  await waitSeats(pageB, 'B', seats, 'LOCKED');
  const lockedAfterMs = (await seenAt(pageB, seats, 'LOCKED', holdClicked)) - holdClicked;
  checks.push(`A held ${seats.join(',')}; B saw them LOCKED ${lockedAfterMs} ms after A's click`);
  await shot('1-held');

  // The countdown runs...
  const firstCount = (await pageA.textContent('#countdown')) || '';
  await pageA.waitForFunction(
    (shown) => document.querySelector('#countdown')?.textContent !== shown,
    firstCount,
    { timeout: 3_000 },
  ).catch(() => {
    throw new Error(`the countdown stayed at ${firstCount} for 3 s`);
  });
  const secondCount = (await pageA.textContent('#countdown')) || '';
  if (!(seconds(secondCount) < seconds(firstCount))) {
    throw new Error(`the countdown went from ${firstCount} to ${secondCount}`);
  }
  checks.push(`A's countdown runs (${firstCount} → ${secondCount})`);

  // ...and Extend does not bring the end of the hold closer.
  const expiresBefore = await pageA.getAttribute('#countdown', 'data-expires-at');
  const countBefore = seconds(await pageA.textContent('#countdown'));
  const extended = await clickForMessage(pageA, '#extend-button');
  if (extended.kind === 'error') throw new Error(`Extend hold failed: ${extended.text}`);
  await pageA.waitForFunction(() => !document.querySelector('#extend-button')?.disabled, null, { timeout: WAIT_MS });
  const expiresAfter = await pageA.getAttribute('#countdown', 'data-expires-at');
  const countAfter = seconds(await pageA.textContent('#countdown'));
  if (!(Date.parse(expiresAfter) >= Date.parse(expiresBefore))) {
    throw new Error(`Extend hold moved lockExpiresAt from ${expiresBefore} to ${expiresAfter}`);
  }
  if (countAfter < countBefore) {
    throw new Error(`Extend hold took the countdown down from ${countBefore} s to ${countAfter} s`);
  }
  checks.push(
    `Extend hold: lockExpiresAt ${expiresBefore} → ${expiresAfter} (+${Date.parse(expiresAfter) - Date.parse(expiresBefore)} ms), countdown ${countBefore} s → ${countAfter} s`,
  );

  // 2. Declined card: PAYMENT_FAILED for A, the seats free again for B.
  await pageA.selectOption('#card', DECLINED_CARD);
  const declinedClicked = Date.now();
  await pageA.click('#pay-button');
  await Promise.all([waitStatus(pageA, 'A', 'PAYMENT_FAILED'), waitSeats(pageB, 'B', seats, 'AVAILABLE')]);
  const freedAfterMs = (await seenAt(pageB, seats, 'AVAILABLE', declinedClicked)) - declinedClicked;
  // The status can turn (live) before the payment's answer shows its error.
  await pageA.waitForSelector('#message[data-kind="error"]', { timeout: 10_000 }).catch(() => {});
  const declinedMessage = {
    kind: await pageA.getAttribute('#message', 'data-kind'),
    text: (await pageA.textContent('#message')) || '',
  };
  if (declinedMessage.kind !== 'error' || !declinedMessage.text) {
    throw new Error(`after the declined card A's message is ${JSON.stringify(declinedMessage)}, not an error`);
  }
  checks.push(
    `declined card: A PAYMENT_FAILED ("${declinedMessage.text}"); B saw ${seats.join(',')} AVAILABLE ${freedAfterMs} ms after A's click`,
  );
  await shot('2-declined');

  // 3. Hold again, pay with the good card: B sees BOOKED within 1 s.
  await waitSeats(pageA, 'A', seats, 'AVAILABLE');
  await hold(pageA, seats);
  await waitSeats(pageB, 'B', seats, 'LOCKED');
  await pageA.selectOption('#card', GOOD_CARD);
  const payResponse = pageA.waitForEvent('requestfinished', {
    predicate: (request) => request.url().endsWith('/graphql') && (request.postData() || '').includes('processPayment'),
    timeout: WAIT_MS,
  });
  const payClicked = Date.now();
  await pageA.click('#pay-button');
  await Promise.all([waitStatus(pageA, 'A', 'CONFIRMED'), waitSeats(pageB, 'B', seats, 'BOOKED')]);
  const confirmedAt = await statusSeenAt(pageA, 'CONFIRMED', payClicked);
  const bookedAt = await seenAt(pageB, seats, 'BOOKED', payClicked);
  const bookedAfterMs = bookedAt - confirmedAt;
  const bookedAfterClickMs = bookedAt - payClicked;
  let bookedAfterPayResponseMs = null;
  const payRequest = await payResponse.catch(() => null);
  if (payRequest) {
    const timing = payRequest.timing();
    if (timing.responseEnd >= 0) bookedAfterPayResponseMs = Math.round(bookedAt - (timing.startTime + timing.responseEnd));
  }
  if (bookedAfterMs > BOOKED_WITHIN_MS) {
    throw new Error(`B saw ${seats.join(',')} BOOKED ${bookedAfterMs} ms after A's page showed CONFIRMED (limit ${BOOKED_WITHIN_MS} ms)`);
  }
  const mine = await pageA.$$eval(
    '#seat-map [data-seat]',
    (buttons, list) => buttons.filter((b) => list.includes(b.dataset.seat)).map((b) => b.dataset.mine || ''),
    seats,
  );
  if (!mine.every((mark) => mark === 'booked')) warnings.push(`A's seats are marked ${mine.join(',')}, not booked`);
  checks.push(
    `good card: A CONFIRMED; B saw ${seats.join(',')} BOOKED ${bookedAfterMs} ms after A showed CONFIRMED (${bookedAfterClickMs} ms after the click)`,
  );
  await shot('3-confirmed');
  assertNoProblems();

  // 4. Leave the seats free for the next run.
  if (cleanup) {
    try {
      const cancelled = await clickForMessage(pageA, '#cancel-button');
      if (cancelled.kind === 'error') throw new Error(cancelled.text);
      // A paid booking that is cancelled ends REFUNDED (CANCELLED is for unpaid ones).
      await Promise.all([waitStatus(pageA, 'A', ['REFUNDED', 'CANCELLED']), waitSeats(pageB, 'B', seats, 'AVAILABLE')]);
      const ended = await pageA.textContent('#booking-status');
      checks.push(`cleanup: A cancelled the booking (${ended}: "${cancelled.text}"), B saw the seats AVAILABLE`);
    } catch (error) {
      warnings.push(`cleanup (cancel the confirmed booking) failed: ${error.message}`);
    }
  }
  assertNoProblems();

  await finish(true, {
    ok: true,
    lockedAfterMs,
    freedAfterMs,
    bookedAfterMs,
    bookedAfterClickMs,
    bookedAfterPayResponseMs,
    showtime: showtimeId,
    seats,
    checks,
    ...(warnings.length ? { warnings } : {}),
  });
} catch (error) {
  // Playwright's messages carry a call log and colour codes: the first line is the point.
  const message = String(error?.message ?? error)
    .replace(/\u001b\[[0-9;]*m/g, '')
    .split('\n')[0];
  if (error?.stack) console.error(error.stack);
  await finish(false, problems.length ? `${message}; ${problems.join('; ')}` : message);
}
