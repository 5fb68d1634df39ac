// Browser test of the WabSync dashboard: headless Chromium (Debian's
// /usr/bin/chromium) driven by playwright-core against a real server with
// sandbox sessions. cmd/wabsync/dashboard_test.go starts the server and runs
// this with:
//   WABSYNC_URL          the server's base URL
//   WABSYNC_ADMIN_TOKEN  its admin token
//   WABSYNC_SCREENSHOTS  where to save a screenshot of each step (git-ignored)
// It exits non-zero on the first failed step, and fails on any console error
// or page error that a step did not expect.
import { chromium } from 'playwright-core';
import { createServer } from 'node:http';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const base = process.env.WABSYNC_URL;
const admin = process.env.WABSYNC_ADMIN_TOKEN;
const shots = process.env.WABSYNC_SCREENSHOTS || 'screenshots';
if (!base || !admin) {
  console.error('set WABSYNC_URL and WABSYNC_ADMIN_TOKEN');
  process.exit(2);
}
mkdirSync(shots, { recursive: true });
const TIMEOUT = 20_000;

// api calls the server directly, as the test (not the page) does.
async function api(method, path, body) {
  const res = await fetch(base + '/api/v1' + path, {
    method,
    headers: { Authorization: 'Bearer ' + admin, 'Content-Type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const env = await res.json();
  if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${env.message}`);
  return env.data;
}

async function until(what, fn) {
  const deadline = Date.now() + TIMEOUT;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

// A webhook receiver on 127.0.0.1 (the test server allows private URLs).
const received = [];
const receiver = createServer((req, res) => {
  let body = '';
  req.on('data', (c) => { body += c; });
  req.on('end', () => {
    received.push({ headers: req.headers, body: JSON.parse(body) });
    res.writeHead(200, { 'Content-Type': 'text/plain' });
    res.end('ok');
  });
});
await new Promise((r) => receiver.listen(0, '127.0.0.1', r));
const hookURL = `http://127.0.0.1:${receiver.address().port}/hook`;

const profile = mkdtempSync(join(tmpdir(), 'wabsync-chromium-'));
// A fresh profile each run (playwright passes it as --user-data-dir).
const context = await chromium.launchPersistentContext(profile, {
  executablePath: '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  viewport: { width: 1280, height: 900 },
  colorScheme: 'light',
});

const problems = []; // console errors and page errors nobody expected
let allowed = null; // a RegExp of console errors the current step expects
let stepNo = 0;
let failed = false;

try {
  const page = context.pages()[0] || await context.newPage();
  page.setDefaultTimeout(TIMEOUT);
  page.on('console', (m) => {
    if (m.type() !== 'error') return;
    if (allowed && allowed.test(m.text())) return;
    problems.push(`console error: ${m.text()}`);
  });
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));

  const shot = async (name, { dark = false } = {}) => {
    const file = join(shots, `${String(stepNo).padStart(2, '0')}-${name}.png`);
    await page.screenshot({ path: file, fullPage: true });
    if (dark) {
      await page.emulateMedia({ colorScheme: 'dark' });
      await page.screenshot({ path: file.replace(/\.png$/, '-dark.png'), fullPage: true });
      await page.emulateMedia({ colorScheme: 'light' });
    }
  };
  const step = async (name, fn, opts) => {
    stepNo++;
    console.log(`step ${stepNo}: ${name}`);
    try {
      await fn();
    } finally {
      await shot(name, opts).catch(() => {});
    }
    if (problems.length) throw new Error(`after step "${name}":\n  ${problems.join('\n  ')}`);
    if (await page.locator('#jserror').isVisible()) {
      throw new Error(`error banner after step "${name}": ${await page.locator('#jserror').innerText()}`);
    }
  };
  const textOf = (sel) => page.locator(sel).innerText();
  const waitText = (sel, re) => page.waitForFunction(([s, src]) => {
    const e = document.querySelector(s);
    return e && new RegExp(src).test(e.textContent);
  }, [sel, re.source]);

  // The peer to send to: a second sandbox session, linked at once.
  const bob = (await api('POST', '/sessions', { name: 'bob', engine: 'sandbox', config: { auto_link: true } })).session;
  await api('POST', `/sessions/${bob.id}/connect`);
  const bobPhone = await until('bob connected', async () => {
    const s = await api('GET', `/sessions/${bob.id}`);
    return s.status === 'connected' && s.phone;
  });

  await step('signin-page', async () => {
    await page.goto(base + '/');
    await page.locator('#signin').waitFor();
    await page.getByLabel('Token').waitFor();
  }, { dark: true });

  await step('wrong-token', async () => {
    allowed = /status of 401/; // the browser logs the refused request itself
    await page.getByLabel('Token').fill('WBA|not-the-right-token-0123456789');
    await page.getByRole('button', { name: 'Sign in' }).click();
    await waitText('#signin-error', /unknown or revoked/);
    if (!(await page.locator('#app').isHidden())) throw new Error('the app shows after a wrong token');
    allowed = null;
  }, { dark: true });

  await step('signed-in', async () => {
    await page.getByLabel('Token').fill(admin);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.locator('#app').waitFor();
    await page.locator('[data-session]', { hasText: 'bob' }).waitFor();
    const stored = await page.evaluate(() => sessionStorage.getItem('wabsync.token'));
    if (stored !== admin) throw new Error('the token is not in session storage');
    if ((await context.cookies()).length) throw new Error('the page set a cookie');
    if (page.url() !== base + '/') throw new Error(`the URL changed to ${page.url()}`);
  });

  let aliceID = '';
  let aliceToken = '';
  await step('session-created', async () => {
    await page.getByLabel('Name').fill('alice');
    await page.getByLabel('Engine').selectOption('sandbox');
    await page.getByRole('button', { name: 'Create session' }).click();
    await waitText('#session-name', /^alice$/);
    await waitText('#session-status', /stopped/);
    await page.locator('#token-box').waitFor();
    aliceToken = await textOf('#token-value');
    if (!aliceToken.startsWith('WBT|')) throw new Error(`token shown: ${aliceToken}`);
    aliceID = await textOf('#session-id');
  });

  await step('qr-shown', async () => {
    await page.evaluate(() => { window.__sameDocument = true; });
    await page.getByRole('button', { name: 'Connect', exact: true }).click();
    await waitText('#session-status', /scan qr/);
    await page.waitForFunction(() => {
      const img = document.getElementById('qr-img');
      return img && img.src.startsWith('blob:') && img.complete && img.naturalWidth > 0;
    });
    await page.locator('#qr-img').waitFor({ state: 'visible' });
  }, { dark: true });

  await step('linked', async () => {
    const { qr } = await api('GET', `/sessions/${aliceID}/qr`);
    await api('POST', '/sandbox/scan', { qr });
    await waitText('#session-status', /^connected$/);
    await waitText('#linked', /Linked as \+/);
    await page.locator('#qr-box').waitFor({ state: 'hidden' });
    if (!(await page.evaluate(() => window.__sameDocument))) throw new Error('the page reloaded');
    await page.locator('[data-session]', { hasText: 'alice' }).locator('.badge', { hasText: 'connected' }).waitFor();
  });

  await step('message-delivered', async () => {
    await page.getByLabel('To (phone in E.164 or a JID)').fill(bobPhone);
    await page.getByLabel('Text').fill('Hello from the dashboard');
    await page.getByRole('button', { name: 'Send', exact: true }).click();
    const msg = page.locator('#sent-list [data-message]', { hasText: 'Hello from the dashboard' });
    await msg.waitFor();
    await msg.locator('.badge', { hasText: 'delivered' }).waitFor();
    await page.locator('#event-list li', { hasText: 'message.delivered' }).first().waitFor();
  }, { dark: true });

  await step('file-delivered', async () => {
    await page.getByLabel('To (phone in E.164 or a JID)').fill(bobPhone);
    await page.getByLabel('File', { exact: true }).setInputFiles({ name: 'note.txt', mimeType: 'text/plain', buffer: Buffer.from('a file from the dashboard\n') });
    await page.getByLabel('Caption (for a file)').fill('a note');
    await page.getByRole('button', { name: 'Send', exact: true }).click();
    const msg = page.locator('#sent-list [data-message]', { hasText: 'note.txt' });
    await msg.waitFor();
    await msg.locator('.badge', { hasText: 'delivered' }).waitFor();
  });

  await step('webhook-delivered', async () => {
    await page.getByLabel('URL').fill(hookURL);
    await page.getByRole('button', { name: 'Create webhook' }).click();
    await page.locator('#secret-box').waitFor();
    const secret = await textOf('#secret-value');
    if (!secret.startsWith('whsec_')) throw new Error(`secret shown: ${secret}`);
    const hook = page.locator('#hook-list [data-webhook]', { hasText: hookURL });
    await hook.getByRole('button', { name: 'Send test' }).click();
    const row = page.locator('#delivery-rows tr', { hasText: 'webhook.test' });
    await row.locator('.badge', { hasText: 'succeeded' }).waitFor();
    await row.getByText('HTTP 200').waitFor();
    await until('the receiver got the test event', () => received.some((r) => r.body.type === 'webhook.test'));
    const got = received.find((r) => r.body.type === 'webhook.test');
    if (!got.headers['webhook-signature']) throw new Error('the delivery is not signed');
  }, { dark: true });

  await step('session-token', async () => {
    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.locator('#signin').waitFor();
    if (await page.evaluate(() => sessionStorage.getItem('wabsync.token'))) throw new Error('token kept after sign-out');
    await page.getByLabel('Token').fill(aliceToken);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await waitText('#session-name', /^alice$/);
    await waitText('#session-status', /^connected$/);
    // The list is drawn whole (renderSessions), and may come a moment after
    // the session's card: wait for it, then count.
    await page.locator('[data-session]').first().waitFor();
    const n = await page.locator('[data-session]').count();
    if (n !== 1) throw new Error(`a session token sees ${n} sessions`);
    if (await page.locator('#create-form').isVisible()) throw new Error('a session token sees the create form');
  });

  await step('narrow-screen', async () => {
    await page.setViewportSize({ width: 390, height: 844 });
    await page.locator('#session-card').waitFor();
  }, { dark: true });

  console.log(`ok: ${stepNo} steps; screenshots in ${shots}`);
} catch (err) {
  failed = true;
  console.error(`FAIL: ${err.stack || err}`);
} finally {
  await context.close();
  receiver.close();
  rmSync(profile, { recursive: true, force: true });
}
process.exit(failed ? 1 : 0);
