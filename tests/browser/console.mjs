// Drives lull's operators' console in the distribution's headless Chromium (Debian's
// `chromium`; a browser build downloaded by a tool does not install everywhere), with
// playwright-core from npm. tests/console.rs starts a real `lull serve` with a loopback sink,
// makes open windows, a parked batch and a paused conversation, and runs this script with:
//
//   LULL_CONSOLE  the ops listener's base URL (http://127.0.0.1:PORT)
//   LULL_KEYS     JSON {"parked": KEY, "paused": KEY, "open": KEY}
//   LULL_TEXT     the text of the open conversation's message (hidden until revealed)
//   LULL_SHOTS    where to write a screenshot of each page (PNG)
//
// It prints one `clicked: ...` line per action and exits 0, or throws (exit 1) naming what the
// page did not show. What the sink and the store hold afterwards is checked by the Rust test.
import { chromium } from 'playwright-core';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const base = process.env.LULL_CONSOLE;
const keys = JSON.parse(process.env.LULL_KEYS);
const secretText = process.env.LULL_TEXT;
const shots = process.env.LULL_SHOTS;

const profile = mkdtempSync(join(tmpdir(), 'lull-console-chromium-'));
const context = await chromium.launchPersistentContext(profile, {
  executablePath: '/usr/bin/chromium',
  headless: true,
  args: [
    '--no-sandbox',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
    '--disable-gpu',
    '--no-first-run',
  ],
  viewport: { width: 1100, height: 760 },
});

function expect(cond, what) {
  if (!cond) throw new Error(`console: ${what}`);
}

async function text(page) {
  return page.locator('body').innerText();
}

async function shot(page, name) {
  await page.screenshot({ path: join(shots, name) });
}

const convLink = (key) => `a[href="/console/conversation?key=${encodeURIComponent(key)}"]`;

try {
  const page = context.pages()[0] ?? (await context.newPage());
  // Only the console itself may be loaded: the page has no script and fetches nothing else.
  const foreign = [];
  page.on('request', (r) => {
    if (!r.url().startsWith(base)) foreign.push(r.url());
  });

  // The tenants page, with the chart of the last hour.
  let resp = await page.goto(`${base}/console`);
  expect(resp.status() === 200, `GET /console answered ${resp.status()}`);
  expect((await page.locator('h1').innerText()) === 'Tenants', 'no Tenants heading');
  expect((await page.locator('figure.chart svg').count()) === 1, 'no chart');
  await shot(page, 'console-tenants.png');

  // The tenant's page: the parked batch first, the open window and the paused conversation.
  await page.click('a[href="/console/tenants/default"]');
  let body = await text(page);
  expect(body.includes('Tenant default'), 'tenant page heading');
  const parkedRow = page.locator('tr', { has: page.locator(convLink(keys.parked)) }).first();
  expect((await parkedRow.innerText()).includes('parked'), 'the parked batch is not listed as parked');
  expect((await parkedRow.innerText()).includes('HTTP 422'), 'the parked batch shows no 422 attempt');
  const pausedRow = page.locator('tr', { has: page.locator(convLink(keys.paused)) }).first();
  expect((await pausedRow.innerText()).includes('paused'), 'the paused conversation is not listed as paused');
  const openRow = page.locator('tr', { has: page.locator(convLink(keys.open)) }).first();
  expect((await openRow.innerText()).includes('window open'), 'the open window is not listed');
  expect(!body.includes(secretText), 'message text shown on the tenant page');
  await shot(page, 'console-tenant.png');

  // The parked conversation: its attempt, its timeline, then Redrive.
  await page.locator(convLink(keys.parked)).first().click();
  body = await text(page);
  expect(body.includes('refused by the sink (422)'), 'the parked conversation does not say why it waits');
  expect(body.includes('hand-off failed: HTTP 422'), 'the timeline has no failed attempt');
  await shot(page, 'console-conversation.png');
  await page.click('button:has-text("Redrive pending batches")');
  body = await text(page);
  expect(body.includes('Done: redrive started for 1 pending batch(es)'), `redrive: ${body.slice(0, 300)}`);
  console.log(`clicked: redrive ${keys.parked}`);

  // The paused conversation: Resume.
  await page.goto(`${base}/console/tenants/default`);
  await page.locator(convLink(keys.paused)).first().click();
  body = await text(page);
  expect(body.includes('paused (admin) until'), 'the paused conversation does not say why it waits');
  await page.click('button:has-text("Resume the bot")');
  body = await text(page);
  expect(body.includes('Done: resumed'), `resume: ${body.slice(0, 300)}`);
  console.log(`clicked: resume ${keys.paused}`);

  // The open window: text hidden until revealed; then Pause for 2 h.
  await page.goto(`${base}/console/tenants/default`);
  await page.locator(convLink(keys.open)).first().click();
  body = await text(page);
  expect(!body.includes(secretText), 'message text shown before the reveal');
  expect(body.includes('will be due by quiet'), 'the open window does not say what it waits for');
  await page.click('button:has-text("Show message text")');
  body = await text(page);
  expect(body.includes(secretText), 'the reveal did not show the message text');
  console.log(`clicked: show message text ${keys.open}`);
  await shot(page, 'console-revealed.png');
  await page.selectOption('select[name="for"]', '2h');
  await page.click('button:has-text("Pause the bot")');
  body = await text(page);
  expect(body.includes('Done: paused until'), `pause: ${body.slice(0, 300)}`);
  expect(!body.includes(secretText), 'message text still shown after the action');
  console.log(`clicked: pause 2h ${keys.open}`);

  expect(foreign.length === 0, `requests outside the console: ${foreign.join(', ')}`);
} finally {
  await context.close();
  rmSync(profile, { recursive: true, force: true });
}
