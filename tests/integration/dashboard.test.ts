/**
 * The dashboard end to end in headless Chromium (Debian's chromium, driven by
 * playwright-core): the page loads, shows the workers, and after a crash drill
 * clicked on the page (asking for the admin token) shows the promotion.
 *
 * Without /usr/bin/chromium (`scripts/setup-browser.sh` installs it; `npm test`
 * runs that) the test is skipped with a loud warning; DBAAS_REQUIRE_BROWSER=1
 * makes that a failure. DBAAS_UPDATE_SCREENSHOT=1 rewrites docs/dashboard.png.
 */
import { existsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DbaasClient } from '../../client/index.js';
import { eventually, startTestCluster, type TestCluster } from './harness.js';

const CHROMIUM = process.env.DBAAS_CHROMIUM ?? '/usr/bin/chromium';
const haveBrowser = existsSync(CHROMIUM);
if (!haveBrowser) {
  const message = `no Chromium at ${CHROMIUM}: the dashboard's browser test is SKIPPED (run scripts/setup-browser.sh, or apt-get install chromium)`;
  if (process.env.DBAAS_REQUIRE_BROWSER === '1') throw new Error(message);
  console.warn(`\n${'!'.repeat(100)}\n!!! WARNING: ${message}\n${'!'.repeat(100)}\n`);
}

// The flags this machine needs (no sandbox as root; no background network, which is closed here).
const CHROMIUM_ARGS = ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];
const ADMIN = 'dashboard-admin-token';
const UPDATE_SCREENSHOT = process.env.DBAAS_UPDATE_SCREENSHOT === '1';
const SCREENSHOT = UPDATE_SCREENSHOT ? path.resolve(import.meta.dirname, '../../docs/dashboard.png') : path.join(os.tmpdir(), 'dbaas-dashboard.png');

let c: TestCluster;
let browser: Browser;
let page: Page;
/** For the screenshot in docs/: steady traffic over half a minute, so the chart has something to show. */
let traffic: Promise<void> | undefined;
let stopTraffic = false;

describe.skipIf(!haveBrowser)('dashboard in headless Chromium', () => {
  beforeAll(async () => {
    c = await startTestCluster({ DBAAS_ADMIN_TOKEN: ADMIN, DBAAS_INITIAL_SLAVES: '2' }, { listen: true });
    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS });
    const context = await browser.newContext({ viewport: { width: 1280, height: 980 } });
    page = await context.newPage();
  });

  afterAll(async () => {
    await browser?.close();
    await c?.close();
  });

  /** Pid, role and state of each row of the workers table. */
  const rows = () =>
    page.$$eval('#workers tbody tr', (trs) => trs.map((tr) => ({ pid: Number(tr.getAttribute('data-pid')), role: tr.getAttribute('data-role'), state: tr.getAttribute('data-state') })));

  it('loads and shows the workers, the autoscaler target and the traffic', async () => {
    const errors: string[] = [];
    page.on('pageerror', (err) => errors.push(err.message));
    page.on('console', (msg) => {
      if (msg.type() === 'error') errors.push(msg.text());
    });
    await page.goto(c.url);
    expect(await page.title()).toContain('dbaas');

    const workers = c.orch.cluster.workersDetail();
    await eventually(async () => (await rows()).length === workers.length, 10_000, 'the workers table');
    expect(await rows()).toEqual(workers.map((w) => ({ pid: w.pid, role: w.role, state: w.state })));
    await eventually(async () => (await page.textContent('#ready')) === 'ready', 10_000, 'the ready badge');
    expect(await page.textContent('#target-slaves')).toBe('2');

    // Some traffic for the chart.
    const db = new DbaasClient({ url: c.url });
    for (let i = 0; i < 20; i++) {
      await db.insert('rides', { i, source: 1, destination: 2 });
      await db.read('rides', { where: { i } });
    }
    await eventually(async () => Number(await page.textContent('#reads-now')) > 0 || (await page.$$('#chart polyline')).length === 3, 15_000, 'the chart');
    expect(errors).toEqual([]);
    if (UPDATE_SCREENSHOT) {
      traffic = (async () => {
        for (let i = 0; !stopTraffic; i++) {
          await db.insert('rides', { i, source: 1, destination: 2 });
          for (let r = 0; r < 3; r++) await db.read('rides', { where: { i }, consistency: 'eventual' });
          await new Promise((resolve) => setTimeout(resolve, 40));
        }
      })();
      await new Promise((resolve) => setTimeout(resolve, 30_000));
    }
  });

  it('runs a crash drill from the page (asking for the admin token) and shows the promotion', async () => {
    const before = c.orch.cluster.workersDetail();
    const oldMaster = before.find((w) => w.role === 'master');
    const lowestSlave = before.filter((w) => w.role === 'slave').sort((a, b) => a.pid - b.pid)[0];
    const dialogs: string[] = [];
    page.on('dialog', (dialog) => {
      dialogs.push(dialog.type());
      // confirm: yes; prompt for the token: give it.
      void dialog.accept(dialog.type() === 'prompt' ? ADMIN : undefined);
    });

    await page.click('#crash-master');
    await page.locator('#drill-result').filter({ hasText: `killed master pid ${oldMaster?.pid}` }).waitFor({ timeout: 10_000 });
    expect(dialogs).toEqual(['confirm', 'prompt']);

    await page.waitForSelector('#events li[data-kind="promotion"]', { timeout: 30_000 });
    const promotion = await page.textContent('#events li[data-kind="promotion"] .reason');
    expect(promotion).toContain(`promoted ${lowestSlave?.id} (pid ${lowestSlave?.pid}) to master`);
    await page.waitForSelector('#events li[data-kind="crash-drill"]');

    // The table follows: the promoted slave is master, and a replacement slave joins.
    await eventually(
      async () => {
        const now = await rows();
        return now.length === before.length && now.some((r) => r.role === 'master' && r.pid === lowestSlave?.pid) && !now.some((r) => r.pid === oldMaster?.pid) && now.every((r) => r.state === r.role);
      },
      30_000,
      'the promoted master and a replacement slave in the table',
    );
    await eventually(async () => (await page.textContent('#ready')) === 'ready', 10_000, 'ready again');
    await page.waitForSelector('#events li[data-kind="replacement"]', { timeout: 30_000 });
    if (UPDATE_SCREENSHOT) await new Promise((resolve) => setTimeout(resolve, 10_000));
    stopTraffic = true;
    await traffic;
    await page.screenshot({ path: SCREENSHOT, fullPage: true });
    expect(existsSync(SCREENSHOT)).toBe(true);

    const metrics = await c.orch.app.inject({ method: 'GET', url: '/metrics' });
    expect(metrics.body).toMatch(/^dbaas_failovers_total 1$/m);
  });
});

