// The web app in a real browser: Debian's headless chromium driven by playwright-core
// (both installed by the project's scripts), against the real pumptwind started by
// web_fixture (which is also the pumps' gateway). Every wait is on a DOM or protocol
// condition with a bounded timeout, never a sleep.
//
//   PUMPTWIN_WEB_FIXTURE      the web_fixture binary (ctest sets it)
//   PUMPTWIN_WEB_NODE_MODULES the npm install of server/web/package.json (playwright-core)
//   PUMPTWIN_CHROMIUM         default /usr/bin/chromium
//   PUMPTWIN_WEB_SCREENSHOTS  a directory: screenshots of each page are written there
//                             (docs/images/web-*.png are made this way, docs/web.md)
//   PUMPTWIN_WEB_ALERTS       alerts raised for the latency figure (default 8)
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { createRequire } from 'node:module';
import { mkdirSync } from 'node:fs';
import path from 'node:path';

const require = createRequire(path.join(path.resolve(process.env.PUMPTWIN_WEB_NODE_MODULES || '.'), 'package.json'));
const { chromium } = require('playwright-core');

const WAIT = 30000;  // bound of every DOM wait (generous: the suite runs tests in parallel)
const shots = process.env.PUMPTWIN_WEB_SCREENSHOTS || '';
if (shots) mkdirSync(shots, { recursive: true });

let fixture, lines, ready, browser, base;
const pendingAcks = [];

function nextLine(timeoutMs = 120000) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('web_fixture said nothing in time')), timeoutMs);
    pendingAcks.push((l) => { clearTimeout(timer); resolve(l); });
  });
}

async function stall(seq) {
  fixture.stdin.write(`stall ${seq}\n`);
  const msg = await nextLine();
  assert.equal(msg.event, 'acked');
  assert.equal(msg.seq, seq);
  return msg.ack_ms;
}

async function shot(page, name) {
  if (shots) await page.screenshot({ path: path.join(shots, `web-${name}.png`), fullPage: true });
}

async function loginPage(context, token, name = '') {
  const page = await context.newPage();
  const errors = [];
  // Script errors; a refused request the test makes on purpose is logged too, not counted.
  page.on('console', (m) => { if (m.type() === 'error' && !/Failed to load resource/.test(m.text())) errors.push(m.text()); });
  page.on('pageerror', (e) => errors.push(String(e)));
  // When each alert stream was asked for (a refused tab's retries are timed from these).
  page.watches = [];
  page.on('request', (r) => {
    if (r.url().includes('/v1/alerts:watch')) {
      page.watches.push(Date.now());
      if (page.onWatch) page.onWatch();
    }
  });
  await page.goto(base + '/');
  await page.waitForSelector('#login-token', { timeout: WAIT });
  if (name) await page.fill('#login-name', name);
  await page.fill('#login-token', token);
  await page.press('#login-token', 'Enter');  // the keyboard submits
  await page.waitForSelector('#worklist tbody tr', { timeout: WAIT });
  page.errors = errors;
  return page;
}

before(async () => {
  fixture = spawn(process.env.PUMPTWIN_WEB_FIXTURE, [], { stdio: ['pipe', 'pipe', 'inherit'] });
  lines = createInterface({ input: fixture.stdout });
  lines.on('line', (l) => {
    const waiter = pendingAcks.shift();
    if (waiter) waiter(JSON.parse(l));
  });
  ready = await nextLine();
  assert.equal(ready.event, 'ready');
  base = `http://127.0.0.1:${ready.http_port}`;
  browser = await chromium.launch({
    executablePath: process.env.PUMPTWIN_CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage',
      '--disable-background-networking', '--disable-extensions', '--no-first-run',
      '--disable-sync', '--disable-quic', '--disable-component-update', '--mute-audio'],
  });
});

after(async () => {
  if (browser) await browser.close();
  if (fixture) {
    fixture.stdin.write('quit\n');
    const code = await new Promise((r) => fixture.on('exit', r));
    assert.equal(code, 0, 'pumptwind stopped cleanly');
  }
});

test('pages carry a strict CSP; / leads to the app', async () => {
  const r = await fetch(base + '/', { redirect: 'manual' });
  assert.equal(r.status, 302);
  assert.equal(r.headers.get('location'), '/app/');
  const app = await fetch(base + '/app/');
  assert.equal(app.status, 200);
  const csp = app.headers.get('content-security-policy');
  assert.match(csp, /default-src 'self'/);
  assert.match(csp, /script-src 'self'(;|$)/);
  assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval|https?:/);
  assert.equal(app.headers.get('x-frame-options'), 'DENY');
  const html = await app.text();
  assert.doesNotMatch(html, /<script>|<style|\sstyle=|\son[a-z]+=/, 'no inline script, style or handler');
  assert.equal((await fetch(base + '/app/vendor/uPlot.iife.min.js')).status, 200);
  assert.equal((await fetch(base + '/app/nothing.js')).status, 404);
});

test('sessions: cookie flags, CSRF on changes, origin of logins, logout', async () => {
  const bad = await fetch(base + '/session', { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ token: 'ptw_wrong' }) });
  assert.equal(bad.status, 401);
  const form = await fetch(base + '/session', { method: 'POST', headers: { 'Content-Type': 'application/x-www-form-urlencoded' }, body: 'token=' + ready.tokens.nurse });
  assert.equal(form.status, 415, 'a cross-site form cannot log in');
  const foreign = await fetch(base + '/session', { method: 'POST', headers: { 'Content-Type': 'application/json', Origin: 'http://evil.example' }, body: JSON.stringify({ token: ready.tokens.nurse }) });
  assert.equal(foreign.status, 403);
  const mismatch = await fetch(base + '/session', { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ name: 'admin', token: ready.tokens.nurse }) });
  assert.equal(mismatch.status, 401);

  const r = await fetch(base + '/session', { method: 'POST', headers: { 'Content-Type': 'application/json', Origin: base }, body: JSON.stringify({ name: 'nurse', token: ready.tokens.nurse }) });
  assert.equal(r.status, 200);
  const who = await r.json();
  assert.equal(who.actor, 'nurse');
  assert.equal(who.role, 'clinician');
  assert.equal(who.clinic, 'north');
  assert.ok(who.csrfToken.length >= 40);
  assert.equal(JSON.stringify(who).includes(ready.tokens.nurse), false, 'the token is never sent back');
  const cookie = r.headers.get('set-cookie');
  assert.match(cookie, /^pt_session=[A-Za-z0-9_-]{43};/);
  assert.match(cookie, /; HttpOnly/);
  assert.match(cookie, /; SameSite=Strict/);
  assert.match(cookie, /; Path=\//);
  assert.match(cookie, /; Max-Age=\d+/);
  const jar = cookie.split(';')[0];

  // Reads with the cookie; the clinic scope is the token's.
  assert.equal((await fetch(base + '/v1/pumps/PN-1/twin', { headers: { Cookie: jar } })).status, 200);
  const south = await fetch(base + '/v1/pumps/PS-1/twin', { headers: { Cookie: jar } });
  assert.equal(south.status, 403);
  assert.match((await south.json()).message, /clinic 'north'/);
  // A change with the cookie and without (or with a wrong) CSRF token is refused.
  const body = JSON.stringify({ type: 'CLINICAL_EVENT_MRI', reason: 'csrf probe' });
  for (const headers of [{ Cookie: jar }, { Cookie: jar, 'X-CSRF-Token': 'x'.repeat(43) }]) {
    const c = await fetch(base + '/v1/pumps/PN-1/events', { method: 'POST', headers: { ...headers, 'Content-Type': 'application/json' }, body });
    assert.equal(c.status, 403);
    assert.match((await c.json()).message, /X-CSRF-Token/);
  }
  // A bearer token needs no CSRF token (no ambient credential).
  const bearer = await fetch(base + '/v1/pumps/PN-1/twin', { headers: { Authorization: 'Bearer ' + ready.tokens.nurse } });
  assert.equal(bearer.status, 200);
  // Logout needs the CSRF token too, and ends the session.
  assert.equal((await fetch(base + '/session', { method: 'DELETE', headers: { Cookie: jar } })).status, 403);
  const out = await fetch(base + '/session', { method: 'DELETE', headers: { Cookie: jar, 'X-CSRF-Token': who.csrfToken } });
  assert.equal(out.status, 200);
  assert.match(out.headers.get('set-cookie'), /Max-Age=0/);
  assert.equal((await fetch(base + '/v1/pumps/PN-1/twin', { headers: { Cookie: jar } })).status, 401);
});

test('a clinician logs in, sees the worklist of the clinic, alerts live, acknowledges, opens a pump', async () => {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const login = await context.newPage();
  await login.goto(base + '/');
  await login.waitForSelector('#login-token', { timeout: WAIT });
  await shot(login, 'login');
  await login.close();

  const page = await loginPage(context, ready.tokens.nurse, 'nurse');
  // The worklist: north's pumps only.
  const rows = await page.$$eval('#worklist tbody tr', (trs) => trs.map((tr) => tr.dataset.pumpId));
  assert.deepEqual(rows.sort(), ['PN-1', 'PN-2']);
  const cookies = await context.cookies();
  const session = cookies.find((c) => c.name === 'pt_session');
  assert.ok(session && session.httpOnly && session.sameSite === 'Strict');
  assert.equal(await page.evaluate(() => document.cookie), '', 'scripts cannot read the session cookie');
  assert.equal(await page.evaluate(() => localStorage.length + sessionStorage.length), 0);

  // Alerts appear live in the inbox: the gateway's sample is acknowledged, then the
  // browser shows the alert; the time between the two is the figure of docs/benchmarks.md.
  await page.click('a[data-nav="alerts"]');
  await page.waitForSelector('#inbox', { state: 'attached', timeout: WAIT });
  await page.waitForSelector('#live.on', { timeout: WAIT });
  await page.evaluate(() => {
    window.__seen = [];
    new MutationObserver(() => {
      const raised = document.querySelector('#inbox li.alert[data-pump="PN-2"][data-type="ALERT_TYPE_MOTOR_STALL"][data-state="ALERT_STATE_RAISED"]');
      const id = raised ? raised.dataset.alertId : '';
      if (id && !window.__seen.some((s) => s.id === id)) window.__seen.push({ id, at: Date.now() });
    }).observe(document.getElementById('inbox'), { childList: true, subtree: true, attributes: true });
  });
  const n = Number(process.env.PUMPTWIN_WEB_ALERTS || 8);
  const latencies = [];
  let seq = 1;
  for (let i = 0; i < n; i++, seq += 2) {
    const ack = await stall(seq);
    await page.waitForFunction((k) => window.__seen.length >= k, i + 1, { timeout: WAIT });
    const seen = await page.evaluate((k) => window.__seen[k], i);
    latencies.push(seen.at - ack);
    if (i < n - 1) {
      await stall(seq + 1);  // recovery: the alert resolves and leaves the inbox
      await page.waitForFunction(() => !document.querySelector('#inbox li.alert[data-pump="PN-2"][data-type="ALERT_TYPE_MOTOR_STALL"]'), null, { timeout: WAIT });
    }
  }
  const sorted = [...latencies].sort((a, b) => a - b);
  const p50 = sorted[Math.floor((sorted.length - 1) / 2)];
  console.log(`WEB_ALERT_LATENCY_MS n=${n} p50=${p50} max=${sorted[sorted.length - 1]} all=${latencies.join(',')}`);
  assert.ok(sorted[sorted.length - 1] < WAIT);

  // Acknowledge the raised alert with a comment (keyboard: type, then Enter on the button).
  const item = page.locator('#inbox li.alert[data-pump="PN-2"][data-type="ALERT_TYPE_MOTOR_STALL"][data-state="ALERT_STATE_RAISED"]');
  await item.locator('summary').press('Enter');  // evidence and alternatives open by keyboard
  await page.waitForSelector('#inbox li.alert details[open] table', { timeout: WAIT });
  await item.locator('textarea').fill('called the patient; programmer check booked');
  await shot(page, 'inbox');
  await item.locator('button.ack-button').focus();
  await page.keyboard.press('Enter');
  await page.waitForSelector('#inbox li.alert[data-pump="PN-2"][data-type="ALERT_TYPE_MOTOR_STALL"][data-state="ALERT_STATE_ACKNOWLEDGED"]', { timeout: WAIT });
  assert.match(await page.textContent('#inbox li.alert[data-pump="PN-2"][data-type="ALERT_TYPE_MOTOR_STALL"]'), /Acknowledged by nurse/);

  // The worklist, with the active alert first.
  await page.click('a[data-nav="worklist"]');
  await page.waitForSelector('#worklist tbody tr[data-pump-id="PN-2"]:not([data-alerts="0"])', { timeout: WAIT });
  assert.equal(await page.$eval('#worklist tbody tr', (tr) => tr.dataset.pumpId), 'PN-2');
  await shot(page, 'worklist');

  // The pump page: every chart drew points.
  await page.click('#worklist a[href="#/pumps/PN-1"]');
  for (const id of ['reservoir', 'dose', 'pressure', 'battery']) {
    await page.waitForSelector(`#chart-${id}[data-points] canvas`, { timeout: WAIT });
    const points = Number(await page.getAttribute(`#chart-${id}`, 'data-points'));
    assert.ok(points > 10, `chart ${id} drew ${points} points`);
  }
  const reservoirPoints = Number(await page.getAttribute('#chart-reservoir', 'data-points'));
  // What-if: half the dose, drawn over the forecast.
  await page.fill('#whatif-dose', '2.5');
  await page.press('#whatif-dose', 'Enter');
  await page.waitForFunction(() => /Drawn over the forecast/.test(document.getElementById('whatif-result').textContent), null, { timeout: WAIT });
  assert.ok(Number(await page.getAttribute('#chart-reservoir', 'data-points')) > reservoirPoints);
  // The refill workflow in mL and mg: 40 mL pump, 20 days at 0.5 mL/day: 30 mL expected.
  await page.fill('#refill-withdrawn', '30');
  await page.fill('#refill-added', '40');
  assert.equal(await page.inputValue('#refill-conc'), '10');  // morphine 10 mg/mL
  await page.click('#refill button[type="submit"]');
  await page.waitForSelector('#refill-verdict', { timeout: WAIT });
  assert.match(await page.textContent('#refill-verdict'), /as expected/);
  await shot(page, 'pump');

  // Another clinic's pump is refused, in the page and through the API.
  await page.goto(base + '/app/#/pumps/PS-1');
  await page.waitForSelector('main .error', { timeout: WAIT });
  assert.match(await page.textContent('main .error'), /not a pump of clinic 'south'|clinic 'north'/);
  const status = await page.evaluate(async () => (await fetch('/v1/pumps/PS-1/twin')).status);
  assert.equal(status, 403);
  // A change made by script with the cookie but not the CSRF token is refused.
  const csrf = await page.evaluate(async () => (await fetch('/v1/pumps/PN-1/events', { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: '{"type":"CLINICAL_EVENT_MRI"}' })).status);
  assert.equal(csrf, 403);
  assert.deepEqual(page.errors, [], 'no script error in the page');

  // Logout ends the session.
  await page.click('#logout');
  await page.waitForSelector('#login-token', { timeout: WAIT });
  assert.equal(await page.evaluate(async () => (await fetch('/session')).status), 401);
  await context.close();
});

test('an admin sees the audit log', async () => {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await loginPage(context, ready.tokens.admin);
  await page.click('#nav-audit');
  await page.waitForSelector('#audit tbody tr', { timeout: WAIT });
  const methods = await page.$$eval('#audit tbody tr td:nth-child(5)', (tds) => tds.map((td) => td.textContent));
  assert.ok(methods.some((m) => /AcknowledgeAlert/.test(m)), methods.join(' '));
  assert.ok(methods.some((m) => /RecordRefill/.test(m)), methods.join(' '));
  await shot(page, 'audit');
  await context.close();
});

// The fixture's server holds at most 3 alert streams. A tab refused one keeps its worklist,
// says it is reconnecting and when, and asks again after a growing wait (never at once, as a
// refused EventSource would let a busy server be hammered); once a stream is free it is live.
test('a tab refused an alert stream retries after a growing wait, then goes live', async () => {
  const contexts = [];  // one browser session each
  const held = [];
  let refused = null;
  const statusText = (p) => p.textContent('#live');
  for (let i = 0; i < 4 && !refused; ++i) {
    contexts.push(await browser.newContext({ viewport: { width: 1280, height: 900 } }));
    const page = await loginPage(contexts.at(-1), ready.tokens.nurse, 'nurse');
    await page.waitForFunction(() => /^(live|reconnecting in)/.test(document.getElementById('live').textContent),
      null, { timeout: WAIT });
    if ((await statusText(page)) === 'live') held.push(page); else refused = page;
  }
  assert.ok(refused, `every one of ${held.length} tabs got a stream: the server's maximum is 3`);
  assert.match(await statusText(refused), /^reconnecting in \d+ s$/);
  assert.ok(await refused.isVisible('#worklist tbody tr'), 'the worklist stays');
  // Two more tries, each after a wait (1 s, then 2 s, each jittered down to half).
  await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`only ${refused.watches.length} tries in time`)), WAIT);
    refused.onWatch = () => { if (refused.watches.length >= 3) { clearTimeout(timer); resolve(); } };
    refused.onWatch();
  });
  const w = refused.watches;
  assert.ok(w[1] - w[0] >= 450, `second try ${w[1] - w[0]} ms after the first`);
  assert.ok(w[2] - w[1] >= 950, `third try ${w[2] - w[1]} ms after the second`);
  // Streams freed (the server notices a closed tab at its next keepalive, within 15 s):
  // the refused tab goes live on a later try.
  for (const p of held) await p.close();
  await refused.waitForFunction(() => document.getElementById('live').textContent === 'live',
    null, { timeout: 60000 });
  // (A refused EventSource is reported on the console by the browser itself.)
  assert.deepEqual(refused.errors.filter((e) => !/EventSource/.test(e)), []);
  for (const c of contexts) await c.close();
});
