// A small driver of Debian's headless Chromium through playwright-core, for
// the browser tests (tests/browser/*.py).  It reads one JSON request a line
// on stdin and answers each with one JSON line on stdout:
//   {"op": "open", "url": U}                 -> {"status": N, "url": U}
//   {"op": "fill", "sel": S, "value": V}     fill a visible input
//   {"op": "setvalue", "sel": S, "value": V} set any input's value (hidden ones too)
//   {"op": "submit", "sel": S}               click, wait for the next page -> {"status", "url"}
//   {"op": "text", "sel": S}                 -> {"text": innerText of the first match, or null}
//   {"op": "count", "sel": S}                -> {"n": matches}
//   {"op": "wait", "sel": S, "text": T}      wait until a match (holding T) is visible
//   {"op": "press", "sel": S, "key": K}      focus the first match and press a key
//   {"op": "click", "sel": S}                click the first match (no navigation)
//   {"op": "viewport", "width": W, "height": H}
//   {"op": "layout"}                         -> {"scrollWidth", "innerWidth"}
//   {"op": "cookies"}                        -> {"cookies": [...]}
//   {"op": "screenshot", "name": N}          -> {"path": ARTIFACTS/N.png}
//   {"op": "violations"}                     -> {"messages": CSP violations seen}
//   {"op": "console"}                        -> {"messages": the page's last console lines}
//   {"op": "quit"}
// Errors answer {"ok": false, "error": "..."}; the rest {"ok": true, ...}.
// Environment: CHROMIUM (the browser binary), ARTIFACTS (screenshot folder).
import { chromium } from 'playwright-core';
import { createInterface } from 'node:readline';
import { existsSync, mkdirSync } from 'node:fs';
import path from 'node:path';

const exe = process.env.CHROMIUM ||
    (existsSync('/usr/lib/chromium/chromium') ? '/usr/lib/chromium/chromium' : '/usr/bin/chromium');
const artifacts = process.env.ARTIFACTS || 'artifacts';
mkdirSync(artifacts, { recursive: true });

const browser = await chromium.launch({
    executablePath: exe,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'],
});
const context = await browser.newContext({ ignoreHTTPSErrors: true });
context.setDefaultTimeout(15000);
const page = await context.newPage();
const violations = [];
const consoleLog = [];
page.on('console', (m) => {
    if (/Content Security Policy/i.test(m.text()))
        violations.push(m.text());
    consoleLog.push(m.type() + ': ' + m.text());
    if (consoleLog.length > 500)
        consoleLog.shift();
});

function answer(obj) {
    process.stdout.write(JSON.stringify(obj) + '\n');
}

async function navigated(action) {
    const [resp] = await Promise.all([page.waitForNavigation(), action()]);
    return { status: resp ? resp.status() : null, url: page.url() };
}

const ops = {
    async open(r) {
        const resp = await page.goto(r.url);
        return { status: resp ? resp.status() : null, url: page.url() };
    },
    async fill(r) {
        await page.locator(r.sel).first().fill(r.value);
        return {};
    },
    async setvalue(r) {
        await page.locator(r.sel).first().evaluate((el, v) => { el.value = v; }, r.value);
        return {};
    },
    async submit(r) {
        return navigated(() => page.locator(r.sel).first().click());
    },
    async text(r) {
        const loc = page.locator(r.sel);
        if (await loc.count() === 0)
            return { text: null };
        return { text: await loc.first().innerText() };
    },
    async count(r) {
        return { n: await page.locator(r.sel).count() };
    },
    async wait(r) {
        let loc = page.locator(r.sel);
        if (r.text !== undefined)
            loc = loc.filter({ hasText: r.text });
        await loc.first().waitFor({ state: 'visible', timeout: r.timeout || 20000 });
        return { text: await loc.first().innerText() };
    },
    async click(r) {
        await page.locator(r.sel).first().click();
        return {};
    },
    async press(r) {
        await page.locator(r.sel).first().press(r.key);
        return {};
    },
    async headers(r) {
        await page.setExtraHTTPHeaders(r.headers);
        return {};
    },
    async viewport(r) {
        await page.setViewportSize({ width: r.width, height: r.height });
        return {};
    },
    async layout() {
        return await page.evaluate(() => ({
            scrollWidth: document.documentElement.scrollWidth,
            innerWidth: window.innerWidth,
        }));
    },
    async cookies() {
        return { cookies: await context.cookies() };
    },
    async screenshot(r) {
        const file = path.join(artifacts, r.name + '.png');
        await page.screenshot({ path: file, fullPage: true });
        return { path: file };
    },
    async console() {
        return { messages: consoleLog };
    },
    async violations() {
        return { messages: violations };
    },
};

const rl = createInterface({ input: process.stdin });
for await (const line of rl) {
    if (line.trim() === '')
        continue;
    let req;
    try {
        req = JSON.parse(line);
    } catch (e) {
        answer({ ok: false, error: 'not JSON: ' + e.message });
        continue;
    }
    if (req.op === 'quit')
        break;
    const fn = ops[req.op];
    if (fn === undefined) {
        answer({ ok: false, error: 'unknown op ' + req.op });
        continue;
    }
    try {
        answer({ ok: true, ...(await fn(req)) });
    } catch (e) {
        answer({ ok: false, error: String(e && e.message ? e.message : e) });
    }
}
await browser.close();
answer({ ok: true, bye: true });
