// browser.mjs signs in through the real pages with headless Chromium,
// driven by puppeteer-core (which never downloads a browser: it runs the
// Chromium given). It opens an authorization URL, picks the user on the
// IdP's picker form (no login_hint: the page a person sees), screenshots
// the consent page, clicks Allow, and reports where the browser ended.
//
// Usage (nodetools.RunBrowserSignIn runs it):
//   MANDATE_PUPPETEER=<puppeteer-core dir> node browser.mjs CONFIG_JSON
// CONFIG_JSON: {"chromium": path, "authUrl": URL, "user": "rita",
//               "redirectUri": prefix of the final URL, "screenshot": path or "",
//               "userDataDir": path}
// Prints one JSON object: {"pages":[origin+path…], "picker": bool,
// "consentTitle": "…", "consentHasScript": bool, "final": URL} or {"error": "…", "pages": […]}.
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { readFileSync } from 'node:fs';

const dir = process.env.MANDATE_PUPPETEER;
if (!dir) {
  console.error('browser: MANDATE_PUPPETEER is not set');
  process.exit(2);
}
const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8'));
const entry = pkg.exports?.['.']?.import ?? pkg.module ?? 'lib/esm/puppeteer/puppeteer-core.js';
const mod = await import(pathToFileURL(join(dir, typeof entry === 'string' ? entry : entry.default)).href);
const puppeteer = mod.default ?? mod;

const cfg = JSON.parse(process.argv[2]);
const out = { pages: [] };
const where = (u) => {
  const x = new URL(u);
  return x.origin + x.pathname;
};

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
  await page.goto(cfg.authUrl, { waitUntil: 'load', timeout: 30000 });

  // The IdP's picker: a plain form with a user select.
  if (await page.$('select[name=username]')) {
    out.picker = true;
    await page.select('select[name=username]', cfg.user);
    await Promise.all([page.waitForNavigation({ waitUntil: 'load', timeout: 30000 }), page.click('button[type=submit]')]);
  }

  // Mandate's consent page.
  const allow = await page.$('button[name=decision][value=allow]');
  if (!allow) throw new Error(`no Allow button at ${where(page.url())}: ${(await page.content()).slice(0, 400)}`);
  out.consentTitle = await page.title();
  out.consentHasScript = (await page.$$('script')).length > 0;
  if (cfg.screenshot) await page.screenshot({ path: cfg.screenshot, fullPage: true });
  await Promise.all([page.waitForNavigation({ waitUntil: 'load', timeout: 30000 }), allow.click()]);
  out.final = page.url();
  if (!out.final.startsWith(cfg.redirectUri)) throw new Error(`ended at ${where(out.final)}, not the client's redirect URI`);
  console.log(JSON.stringify(out));
} catch (e) {
  out.error = String(e?.stack ?? e);
  console.log(JSON.stringify(out));
  process.exitCode = 1;
} finally {
  await browser?.close();
}
