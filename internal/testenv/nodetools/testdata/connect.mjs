// connect.mjs opens a "connect your account" link (per-user grants, issue
// 16) in headless Chromium driven by puppeteer-core, the way a person does:
// on each user picker (the demo IdP's, then the platform authorization
// server's) it picks the user, on each consent page it clicks Allow
// (screenshot of the platform's consent: connect-consent.png), and it stops
// on the first page with neither (screenshot connect-done.png). Then it
// opens "My connections" (screenshot connections.png).
//
// Usage (nodetools.RunBrowserConnect runs it):
//   MANDATE_PUPPETEER=<puppeteer-core dir> node connect.mjs CONFIG_JSON
// CONFIG_JSON: {"chromium": path, "link": URL, "user": "rita",
//               "connectionsUrl": URL, "screenshotDir": path or "", "userDataDir": path}
// Prints one JSON object (see nodetools.BrowserConnectOutput) or one with "error".
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { readFileSync } from 'node:fs';

const dir = process.env.MANDATE_PUPPETEER;
if (!dir) {
  console.error('connect: MANDATE_PUPPETEER is not set');
  process.exit(2);
}
const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8'));
const entry = pkg.exports?.['.']?.import ?? pkg.module ?? 'lib/esm/puppeteer/puppeteer-core.js';
const mod = await import(pathToFileURL(join(dir, typeof entry === 'string' ? entry : entry.default)).href);
const puppeteer = mod.default ?? mod;

const cfg = JSON.parse(process.argv[2]);
const out = { pages: [], pickers: 0, consents: [] };
const where = (u) => {
  const x = new URL(u);
  return x.origin + x.pathname;
};
const shot = async (page, name) => {
  if (cfg.screenshotDir) await page.screenshot({ path: join(cfg.screenshotDir, name), fullPage: true });
};
const visibleText = (page) => page.evaluate(() => document.body.innerText.replace(/\s+/g, ' ').trim());

let browser;
try {
  browser = await puppeteer.launch({
    executablePath: cfg.chromium,
    headless: true,
    userDataDir: cfg.userDataDir,
    args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--no-first-run', '--no-default-browser-check'],
  });
  const page = await browser.newPage();
  await page.setViewport({ width: 900, height: 760, deviceScaleFactor: 1 });
  page.on('framenavigated', (f) => {
    if (f === page.mainFrame()) out.pages.push(where(f.url()));
  });
  const linkOrigin = new URL(cfg.link).origin;
  let res = await page.goto(cfg.link, { waitUntil: 'load', timeout: 30000 });
  for (let step = 0; step < 10; step++) {
    if (await page.$('select[name=username]')) {
      out.pickers++;
      await page.select('select[name=username]', cfg.user);
      [res] = await Promise.all([page.waitForNavigation({ waitUntil: 'load', timeout: 30000 }), page.click('button[type=submit]')]);
      continue;
    }
    const allow = await page.$('button[name=decision][value=allow]');
    if (allow) {
      const c = { url: where(page.url()), title: await page.title(), hasScript: (await page.$$('script')).length > 0 };
      out.consents.push(c);
      if (new URL(page.url()).origin !== linkOrigin) await shot(page, 'connect-consent.png');
      [res] = await Promise.all([page.waitForNavigation({ waitUntil: 'load', timeout: 30000 }), allow.click()]);
      continue;
    }
    break;
  }
  out.final = {
    url: where(page.url()), status: res?.status() ?? 0, title: await page.title(),
    forms: (await page.$$('form')).length, hasScript: (await page.$$('script')).length > 0, text: await visibleText(page),
  };
  await shot(page, 'connect-done.png');
  if (cfg.connectionsUrl) {
    const r = await page.goto(cfg.connectionsUrl, { waitUntil: 'load', timeout: 30000 });
    out.connections = { url: where(page.url()), status: r?.status() ?? 0, title: await page.title(), text: await visibleText(page),
      hasScript: (await page.$$('script')).length > 0 };
    await shot(page, 'connections.png');
  }
  console.log(JSON.stringify(out));
} catch (e) {
  out.error = String(e?.stack ?? e);
  console.log(JSON.stringify(out));
  process.exitCode = 1;
} finally {
  await browser?.close();
}
