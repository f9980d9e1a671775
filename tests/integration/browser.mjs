// Opens an HTML page in Debian's headless Chromium (playwright-core drives
// /usr/bin/chromium; nothing is downloaded) and reports what a reader would
// see: console errors, page errors, failed requests, the page's SVG charts
// with their rendered sizes, table rows, and a screenshot.
import { chromium } from 'playwright-core';

export async function inspectPage(url, screenshotPath) {
  const browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  try {
    const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    const problems = [];
    page.on('console', (m) => { if (m.type() === 'error' || m.type() === 'warning') problems.push(`console ${m.type()}: ${m.text()}`); });
    page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
    page.on('requestfailed', (r) => problems.push(`request failed: ${r.url()}`));
    const requests = [];
    page.on('request', (r) => requests.push(r.url()));
    const resp = await page.goto(url, { waitUntil: 'load' });
    const svgs = await page.$$eval('svg', (els) => els.map((e) => {
      const b = e.getBoundingClientRect();
      return { width: b.width, height: b.height, title: e.querySelector('title')?.textContent ?? null,
        marks: e.querySelectorAll('rect, path, circle').length };
    }));
    const rows = await page.$$eval('table tbody tr', (els) => els.map((e) => [...e.children].map((c) => c.textContent.trim())));
    const scripts = await page.$$eval('script', (els) => els.length);
    const title = await page.title();
    if (screenshotPath) await page.screenshot({ path: screenshotPath, fullPage: true });
    return { status: resp?.status() ?? null, problems, requests, svgs, rows, scripts, title };
  } finally {
    await browser.close();
  }
}
