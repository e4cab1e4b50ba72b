// Drives Debian's Chromium (playwright-core, no downloaded browser) through the French pages of
// a running voisinage, and prints one JSON object on stdout for tests/browser.rs to check:
//
// - widths: for each page at 390 and 1280 px, document.documentElement.scrollWidth;
// - axe: the axe-core violations of each page kind (default rules), forms unfolded;
// - journey: sign in with the access code → declare a product → give feedback → sign out,
//   through the forms, with the session cookie's attributes as Chromium holds them.
//
// Environment: VSN_BASE (http://127.0.0.1:port), VSN_CODE (a commune access code), VSN_COMMUNE,
// VSN_EPCI, VSN_CATEGORY and VSN_OPTION (what to declare), VSN_OUT (screenshot folder).

import { chromium } from 'playwright-core';
import { createRequire } from 'node:module';
import { readFileSync } from 'node:fs';
import path from 'node:path';

const require = createRequire(import.meta.url);
const axePath = require.resolve('axe-core/axe.min.js');
const env = (k) => {
  const v = process.env[k];
  if (!v) throw new Error(`missing ${k}`);
  return v;
};
const base = env('VSN_BASE');
const out = env('VSN_OUT');
const commune = env('VSN_COMMUNE');
const epci = env('VSN_EPCI');
const category = env('VSN_CATEGORY');
const option = env('VSN_OPTION');

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});

const pages = {
  accueil: '/',
  recherche: '/recherche?q=plou',
  commune: `/communes/${commune}`,
  epci: `/epcis/${epci}`,
  connexion: '/connexion',
};

// axe-core is evaluated through the DevTools protocol, to which the pages' Content-Security-Policy
// (no inline script) does not apply: a script tag added to the page would be refused by it.
const axeSource = readFileSync(axePath, 'utf8');

async function axe(page) {
  await page.evaluate(axeSource);
  return page.evaluate(async () => {
    // eslint-disable-next-line no-undef
    const r = await axe.run(document);
    return r.violations.map((v) => ({ id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.slice(0, 3).map((n) => n.target.join(' ')) }));
  });
}

const result = { widths: [], axe: {}, journey: {} };
try {
  for (const width of [390, 1280]) {
    const ctx = await browser.newContext({ viewport: { width, height: 844 } });
    const page = await ctx.newPage();
    for (const [name, url] of Object.entries(pages)) {
      const resp = await page.goto(base + url);
      const scrollWidth = await page.evaluate(() => document.documentElement.scrollWidth);
      result.widths.push({ page: name, width, status: resp.status(), scrollWidth });
      await page.screenshot({ path: path.join(out, `page-${name}-${width}.png`), fullPage: true });
      if (width === 1280) result.axe[name] = await axe(page);
    }
    await ctx.close();
  }

  // Printed: A4, no navigation nor forms, the map and the tables kept.
  {
    const ctx = await browser.newContext({ viewport: { width: 1280, height: 844 } });
    const page = await ctx.newPage();
    await page.goto(`${base}/epcis/${epci}`);
    await page.emulateMedia({ media: 'print' });
    result.print = await page.evaluate(() => ({
      header: getComputedStyle(document.querySelector('header')).display,
      footer: getComputedStyle(document.querySelector('footer')).display,
      forms: [...document.querySelectorAll('form')].filter((f) => getComputedStyle(f).display !== 'none').length,
      map: getComputedStyle(document.querySelector('svg.carte')).display,
      tables: [...document.querySelectorAll('table')].filter((t) => getComputedStyle(t).display !== 'none').length,
    }));
    await page.pdf({ path: path.join(out, 'page-epci.pdf'), format: 'A4', printBackground: true });
    await ctx.close();
  }

  // The journey, on a phone.
  const ctx = await browser.newContext({ viewport: { width: 390, height: 844 } });
  const page = await ctx.newPage();
  const j = result.journey;
  await page.goto(`${base}/communes/${commune}`);
  await page.click(`a[href="/connexion?suite=/communes/${commune}"]`);
  await page.fill('#code', env('VSN_CODE'));
  await Promise.all([page.waitForNavigation(), page.click('form[action="/connexion"] button[type=submit]')]);
  j.after_sign_in = new URL(page.url()).pathname;
  j.signed_in_as = await page.textContent('div.compte');
  const cookies = await ctx.cookies();
  const s = cookies.find((c) => c.name === 'vsn_session');
  j.cookie = s ? { httpOnly: s.httpOnly, secure: s.secure, sameSite: s.sameSite, length: s.value.length } : null;
  j.document_cookie = await page.evaluate(() => document.cookie);

  // Declare, through the category's form.
  const section = `#categorie-${category}`;
  await page.click(`${section} details:has(form[action$="/adoptions"]) summary`);
  await page.selectOption(`${section} select[name=option]`, option);
  await page.fill(`${section} form[action$="/adoptions"] input[name=depuis]`, '2024-10-08');
  await page.fill(`${section} form[action$="/adoptions"] input[name=postes]`, '3');
  await Promise.all([page.waitForNavigation(), page.click(`${section} form[action$="/adoptions"] button[type=submit]`)]);
  j.after_declare = await page.textContent('p.ok');
  j.declared_line = await page.textContent(`${section} p strong`);

  // Accessibility of the commune page as a writer sees it, every form unfolded.
  await page.setViewportSize({ width: 1280, height: 844 });
  await page.evaluate(() => document.querySelectorAll('details').forEach((d) => (d.open = true)));
  result.axe.commune_forms = await axe(page);
  await page.setViewportSize({ width: 390, height: 844 });
  j.forms_scroll_width = await page.evaluate(() => document.documentElement.scrollWidth);
  await page.screenshot({ path: path.join(out, 'page-commune-forms-390.png'), fullPage: false });
  await page.evaluate(() => document.querySelectorAll('details').forEach((d) => (d.open = false)));

  // Feedback on what was just declared (listed last: its id is the newest).
  const details = page.locator(`${section} details:has(form[action$="/avis"])`).last();
  await details.locator('summary').click();
  const fb = details.locator('form');
  await fb.locator('select[name=fiabilite]').selectOption('4');
  await fb.locator('input[name=incidents]').fill('1');
  await fb.locator('input[name=indisponibilite]').fill('1,5');
  await fb.locator('select[name=support]').selectOption('5');
  await fb.locator('textarea[name=commentaire]').fill('Essai du parcours (test automatique).');
  await Promise.all([page.waitForNavigation(), fb.locator('button[type=submit]').click()]);
  j.after_feedback = await page.textContent('p.ok');

  // Sign out.
  await Promise.all([page.waitForNavigation(), page.click('div.compte button[type=submit]')]);
  j.after_sign_out = new URL(page.url()).pathname + new URL(page.url()).search;
  j.sign_out_notice = await page.textContent('p.ok');
  j.cookie_after = (await ctx.cookies()).some((c) => c.name === 'vsn_session');
  await ctx.close();
} catch (e) {
  result.error = String(e && e.stack ? e.stack : e);
}
await browser.close();
process.stdout.write(JSON.stringify(result));
