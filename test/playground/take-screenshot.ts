/**
 * Writes docs/playground.png: the page after one generation on a running gateway (not a test;
 * run by hand after a visible change to the page):
 *   node dist/src/cli.js serve &      # the default random-weight gpt2, realistic timings
 *   node dist/test/playground/take-screenshot.js http://127.0.0.1:8080 docs/playground.png
 */
import { launchBrowser, openPage } from './browser.js';

const PROMPT = 'The gateway streams each token as soon as the model steps it, and';
const NEW_TOKENS = '48';
const WIDTH = 1000;

const [base = 'http://127.0.0.1:8080', out = 'docs/playground.png'] = process.argv.slice(2);
const browser = await launchBrowser();
try {
  const { page, errors } = await openPage(browser, `${base}/`);
  await page.setViewportSize({ width: WIDTH, height: 900 });
  await page.locator('#notice').waitFor();
  await page.fill('#prompt', PROMPT);
  await page.fill('#max-new-tokens', NEW_TOKENS);
  // A warm-up run first: the screenshot should show steady-state timings, not the first load.
  await page.click('#generate');
  await page.locator('#stats').getByText('Finish reason').waitFor();
  await page.click('#generate');
  await page.locator('#status').getByText('Done in').waitFor();
  // Show one token's details, as a hover would.
  await page.hover('#token-chart [data-token-index="6"]');
  await page.screenshot({ path: out, fullPage: true });
  if (errors.length > 0) throw new Error(`console errors: ${errors.join('; ')}`);
  process.stdout.write(`wrote ${out}\n`);
} finally {
  await browser.close();
}
