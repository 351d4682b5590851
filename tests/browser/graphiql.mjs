// GraphiQL in a real browser: Debian's chromium (headless), driven by
// playwright-core. Opens <base-url>/graphql, types a query into GraphiQL's
// query editor (CodeMirror 5 in GraphiQL 3) with real key presses, clicks
// the run button and waits for the answer in the result pane.
//
//   node tests/browser/graphiql.mjs http://127.0.0.1:8000
//
// Exits 0 and prints the result when the movie title shows up; otherwise
// exits 1 with the page's console errors, failed and off-site requests and
// the path of a screenshot. Env: CHROMIUM (default /usr/bin/chromium).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const QUERY = '{ showtimeSeats(showtimeId: "showtime_456") { showtime { movieTitle } } }';
// host/peers/src/catalog.rs: showtime_456 is Inception.
const MOVIE_TITLE = 'Inception';
const TIMEOUT_MS = 30_000;

const baseUrl = (process.argv[2] || '').replace(/\/+$/, '');
if (!/^https?:\/\//.test(baseUrl)) {
  console.error('usage: node graphiql.mjs <base-url>   (e.g. http://127.0.0.1:8000)');
  process.exit(2);
}
const origin = new URL(baseUrl).origin;

const userDataDir = mkdtempSync(join(tmpdir(), 'graphiql-chromium-'));
const screenshot = join(tmpdir(), `graphiql-failure-${process.pid}.png`);
const consoleErrors = [];
const failedRequests = [];
const offSite = [];

const context = await chromium.launchPersistentContext(userDataDir, {
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
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
  timeout: TIMEOUT_MS,
});

let page;
let ok = false;
try {
  page = context.pages()[0] ?? (await context.newPage());
  page.setDefaultTimeout(TIMEOUT_MS);
  page.on('console', (message) => {
    if (message.type() === 'error') consoleErrors.push(`console: ${message.text()}`);
  });
  page.on('pageerror', (error) => consoleErrors.push(`page error: ${error.message}`));
  page.on('requestfailed', (request) =>
    failedRequests.push(`${request.method()} ${request.url()}: ${request.failure()?.errorText}`),
  );
  // GraphiQL loads the schema (docs, autocompletion) by introspection; it
  // must pass the server's limits, or users get an editor without docs.
  const introspection = [];
  page.on('response', async (response) => {
    const body = response.request().postData() ?? '';
    if (!body.includes('IntrospectionQuery')) return;
    const text = await response.text().catch(() => '');
    const refused = response.status() !== 200 || text.includes('"errors"');
    introspection.push(refused ? `refused (${response.status()}): ${text.slice(0, 300)}` : 'ok');
  });
  page.on('request', (request) => {
    const url = request.url();
    if (/^https?:/.test(url) && new URL(url).origin !== origin) offSite.push(url);
  });

  const response = await page.goto(`${baseUrl}/graphql`, { waitUntil: 'load' });
  if (!response || response.status() !== 200) {
    throw new Error(`GET /graphql answered ${response?.status()}`);
  }

  // GraphiQL 3's editors are CodeMirror 5 instances: a click focuses the
  // hidden textarea that receives key presses.
  const editor = page.locator('.graphiql-query-editor .CodeMirror').first();
  await editor.waitFor({ state: 'visible' });
  await page.locator('text=Headers').first().waitFor({ state: 'visible' });
  await editor.click();
  await page.keyboard.press('Control+A');
  await page.keyboard.press('Backspace');
  // Typed key by key; GraphiQL closes brackets and quotes itself, and
  // typing the closing character steps over the one it inserted.
  await page.keyboard.type(QUERY, { delay: 10 });
  await page.keyboard.press('Escape'); // closes an autocompletion popup, if any
  const typed = await editor.evaluate((element) => element.CodeMirror.getValue());
  if (typed.replace(/\s+/g, ' ').trim() !== QUERY) {
    throw new Error(`the editor holds ${JSON.stringify(typed)} instead of the typed query`);
  }

  await page.locator('button.graphiql-execute-button').click();
  const result = page.locator('.graphiql-response .CodeMirror').first();
  await page.waitForFunction(
    (title) => {
      const element = document.querySelector('.graphiql-response .CodeMirror');
      const text = element?.CodeMirror?.getValue() ?? '';
      return text.includes('"movieTitle"') && text.includes(title);
    },
    MOVIE_TITLE,
    { timeout: TIMEOUT_MS },
  );
  const answer = await result.evaluate((element) => element.CodeMirror.getValue());
  if (offSite.length > 0) {
    throw new Error(`the page reached outside ${origin}: ${offSite.join(', ')}`);
  }
  if (introspection.length === 0 || introspection.some((outcome) => outcome !== 'ok')) {
    throw new Error(`GraphiQL's introspection query: ${introspection.join('; ') || 'never sent'}`);
  }
  console.log(answer);
  ok = true;
} catch (error) {
  console.error(`GraphiQL browser test failed: ${error.message}`);
  if (page) {
    const answer = await page
      .evaluate(() => document.querySelector('.graphiql-response .CodeMirror')?.CodeMirror?.getValue())
      .catch(() => undefined);
    if (answer) console.error(`result pane:\n${answer}`);
    await page.screenshot({ path: screenshot, fullPage: true }).then(
      () => console.error(`screenshot: ${screenshot}`),
      (shotError) => console.error(`no screenshot: ${shotError.message}`),
    );
  }
  for (const line of consoleErrors) console.error(line);
  for (const line of failedRequests) console.error(`request failed: ${line}`);
  for (const url of offSite) console.error(`off-site request: ${url}`);
} finally {
  await context.close().catch(() => {});
  rmSync(userDataDir, { recursive: true, force: true });
}
process.exit(ok ? 0 : 1);
