"""The hub in headless Chromium (Debian's), driven by Playwright: what an
account owner does by hand, end to end, against a running maximin.

Usage: hub.py BASE_URL SCREENSHOT_DIR
Prints one line per step; exits non-zero on the first failure.
"""

import base64
import hashlib
import hmac
import json
import os
import re
import struct
import subprocess
import sys
import time

from playwright.sync_api import expect, sync_playwright

BASE, SHOTS = sys.argv[1], sys.argv[2]
EMAIL, PASSWORD = "owner@example.com", "Blue-Kettle-42-river"
os.makedirs(SHOTS, exist_ok=True)


def totp(secret, at):
    """RFC 6238 with the standard library, apart from the server's code."""
    key = base64.b32decode(secret + "=" * (-len(secret) % 8))
    mac = hmac.new(key, struct.pack(">Q", int(at) // 30), hashlib.sha1).digest()
    o = mac[19] & 0x0F
    return "%06d" % ((struct.unpack(">I", mac[o : o + 4])[0] & 0x7FFFFFFF) % 1_000_000)


def curl(path, key):
    out = subprocess.run(
        ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", BASE + path,
         "-H", "Authorization: Bearer " + key],
        capture_output=True, text=True, check=True,
    )
    return int(out.stdout)


def cli(*args):
    """The server's own CLI on its data dir (and database), as the operator."""
    env = {k: v for k, v in os.environ.items() if k not in ("MAXIMIN_DATA_DIR", "MAXIMIN_CONFIG")}
    subprocess.run(
        [os.environ["MAXIMIN_CLI"], *args, "--data-dir", os.environ["MAXIMIN_CLI_DATA_DIR"], "--json"],
        env=env, check=True, capture_output=True,
    )


CURRENT = {"page": None}


def step(text):
    print("step:", text, flush=True)


def unlabelled(page):
    """Form controls no label names (accessibility: every field has one)."""
    return page.evaluate(
        """() => [...document.querySelectorAll('input:not([type=hidden]), select, textarea')]
             .filter(e => !(e.labels && e.labels.length) && !e.getAttribute('aria-label')
                          && !e.closest('label'))
             .map(e => e.name || e.id)"""
    )


def low_contrast(page):
    """Text whose contrast with its background is under WCAG AA (4.5:1, or
    3:1 for large text), computed from the styles the browser applied."""
    return page.evaluate(
        """() => {
          const parse = c => { const m = c.match(/rgba?\\(([^)]+)\\)/); if (!m) return null;
            const p = m[1].split(',').map(x => parseFloat(x));
            return {r: p[0], g: p[1], b: p[2], a: p.length > 3 ? p[3] : 1}; };
          const lum = ({r, g, b}) => { const f = v => { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); };
            return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b); };
          const behind = el => { for (let e = el; e; e = e.parentElement) {
              const c = parse(getComputedStyle(e).backgroundColor); if (c && c.a > 0.5) return c; }
            return parse(getComputedStyle(document.documentElement).backgroundColor) || {r: 255, g: 255, b: 255, a: 1}; };
          const bad = [];
          for (const el of document.querySelectorAll('body *')) {
            if (el.closest('svg, .sr, option') || el.disabled) continue;
            if (![...el.childNodes].some(n => n.nodeType === 3 && n.textContent.trim())) continue;
            const st = getComputedStyle(el);
            if (st.visibility === 'hidden' || st.display === 'none') continue;
            const fg = parse(st.color), bg = behind(el);
            const [hi, lo] = [lum(fg), lum(bg)].sort((a, b) => b - a);
            const ratio = (hi + 0.05) / (lo + 0.05);
            const size = parseFloat(st.fontSize), bold = parseInt(st.fontWeight) >= 700;
            const need = size >= 24 || (size >= 18.66 && bold) ? 3 : 4.5;
            if (ratio < need) bad.push(el.tagName + '.' + el.className + ' "' + el.textContent.trim().slice(0, 30) + '": ' + ratio.toFixed(2));
          }
          return bad.slice(0, 10);
        }"""
    )


def run(p):
    browser = p.chromium.launch(
        executable_path=os.environ.get("MAXIMIN_CHROMIUM", "/usr/bin/chromium"),
        args=["--no-sandbox"],
    )
    ctx = browser.new_context(viewport={"width": 1280, "height": 900})
    page = ctx.new_page()
    CURRENT["page"] = page
    page.on("dialog", lambda d: d.accept())
    errors = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)

    step("sign up")
    page.goto(BASE + "/hub")
    expect(page).to_have_url(BASE + "/hub/login")
    page.get_by_role("link", name="Create an account").click()
    page.get_by_label("E-mail address").fill(EMAIL)
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_label("Password again").fill(PASSWORD)
    page.get_by_role("button", name="Create account").click()
    expect(page.get_by_role("heading", name="Overview")).to_be_visible()
    cookies = {c["name"]: c for c in ctx.cookies()}
    session = cookies["maximin_session"]
    assert session["httpOnly"] and session["sameSite"] == "Lax", session
    assert session["expires"] == -1, "a session cookie ends with the browser"

    step("enrol TOTP")
    page.get_by_role("link", name="Security").click()
    page.get_by_role("button", name="Set up two-factor sign-in").click()
    expect(page.locator(".qr svg")).to_be_visible()
    secret = page.locator("#totp-secret").inner_text().strip()
    page.get_by_label("Code from the app").fill(totp(secret, time.time()))
    page.get_by_role("button", name="Turn on").click()
    codes = page.locator("#recovery-codes li").all_inner_texts()
    assert len(codes) == 10, codes
    expect(page.get_by_text("Two-factor sign-in is on")).to_be_visible()

    step("log out, log in with the code")
    page.get_by_role("button", name="Log out").click()
    expect(page.get_by_role("heading", name="Log in")).to_be_visible()
    page.get_by_label("E-mail address").fill(EMAIL)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", name="Two-factor sign-in")).to_be_visible()
    # The next step's code: the enrolment used this step's, and a code works once.
    page.get_by_label("The 6-digit code").fill(totp(secret, time.time() + 30))
    page.get_by_role("button", name="Continue").click()
    expect(page.get_by_role("heading", name="Overview")).to_be_visible()

    step("create a key and use it with curl")
    page.get_by_role("link", name="API keys").click()
    page.get_by_label("Name").fill("browser")
    page.get_by_role("button", name="Create key").click()
    key = page.locator("#secret").inner_text().strip()
    assert key.startswith("mmx_live_"), key
    assert curl("/v1/models", key) == 200
    page.get_by_role("link", name="Back to the keys").click()
    assert key not in page.content(), "the secret is shown once"

    step("the request is in the key's usage")
    page.get_by_role("link", name="browser").click()
    expect(page.get_by_text("GET /v1/models")).to_be_visible()

    step("revoke the key; curl is refused")
    page.get_by_role("link", name="Back to the keys").click()
    page.get_by_label("confirm").check()
    page.get_by_role("button", name="Revoke").click()
    expect(page.get_by_text("The key is revoked")).to_be_visible()
    assert curl("/v1/models", key) == 401

    step("playground: chat, streamed")
    page.get_by_role("link", name="Playground").click()
    page.get_by_label("Model").select_option("gemma-3-270m")
    page.get_by_label("Message").fill("Say hello in three words.")
    page.get_by_role("button", name="Send").click()
    expect(page.locator("#pg-text-out")).to_have_text(re.compile(r"\S"), timeout=120_000)
    # The stream ran to its end (metered whole) before moving on.
    expect(page.locator("#pg-output")).to_have_attribute("aria-busy", "false", timeout=120_000)
    expect(page.locator("#pg-curl")).to_contain_text("/v1/chat/completions")
    expect(page.locator("#pg-curl")).to_contain_text("$MAXIMIN_API_KEY")
    assert "mmx_live_" not in page.content(), "no key in the playground page"

    step("playground: speech, playable")
    page.get_by_role("link", name="Speech (text to audio)").click()
    page.get_by_label("Model").select_option("speech-2.8-hd")
    page.get_by_label("Text").fill("Hello from the playground.")
    page.get_by_role("button", name="Send").click()
    audio = page.locator("#pg-output audio")
    expect(audio).to_be_visible(timeout=120_000)
    page.wait_for_function(
        "() => { const a = document.querySelector('#pg-output audio'); return a && a.duration > 0.3; }",
        timeout=30_000,
    )
    expect(page.locator("#pg-curl")).to_contain_text("/v1/t2a_v2")

    step("the playground's requests are in usage")
    page.get_by_role("link", name="Usage").click()
    expect(page.locator("svg.chart").first).to_be_visible()
    expect(page.get_by_role("cell", name="gemma-3-270m")).to_be_visible()
    expect(page.get_by_role("cell", name="speech-2.8-hd")).to_be_visible()

    step("a support ticket")
    page.get_by_role("link", name="Support").click()
    page.get_by_label("Subject").fill("Invoice question")
    page.get_by_label("Message").fill("Where do I find the invoice for November?")
    page.get_by_role("button", name="Open ticket").click()
    expect(page.get_by_role("heading", name="Invoice question")).to_be_visible()

    step("the operator's view")
    cli("users", "operator", EMAIL)
    page.goto(BASE + "/hub/operator")
    expect(page.get_by_role("heading", name="Upstreams")).to_be_visible()
    page.get_by_label("USD for " + EMAIL).fill("5")
    page.get_by_role("button", name="Grant").first.click()
    expect(page.get_by_text("The credit is granted.")).to_be_visible()

    step("screenshots at desktop and phone width")
    pages = [
        "/hub", "/hub/keys", "/hub/usage", "/hub/billing", "/hub/playground",
        "/hub/files", "/hub/support", "/hub/members", "/hub/privacy",
        "/hub/security", "/hub/operator",
    ]
    for width, height, name in [(1280, 900, "desktop"), (390, 844, "phone")]:
        page.set_viewport_size({"width": width, "height": height})
        for path in pages:
            page.goto(BASE + path)
            missing = unlabelled(page)
            assert not missing, f"{path}: fields without a label: {missing}"
            slug = path.strip("/").replace("/", "-")
            page.screenshot(path=f"{SHOTS}/{slug}-{name}.png", full_page=True)
            wide = page.evaluate(
                """() => [...document.querySelectorAll('body *')]
                     .filter(e => !e.closest('.scroll, pre') && e.getBoundingClientRect().right > window.innerWidth + 1)
                     .map(e => e.tagName + (e.id ? '#' + e.id : '') + (e.className ? '.' + e.className : ''))"""
            )
            assert not wide, f"{path} is wider than {width}px: {wide}"
            sideways = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
            assert sideways <= 1, f"{path} scrolls sideways by {sideways}px at {width}px"
            poor = low_contrast(page)
            assert not poor, f"{path}: text under AA contrast: {poor}"
    page.set_viewport_size({"width": 1280, "height": 900})

    step("the dark theme, chosen in the preference cookie")
    page.goto(BASE + "/hub")
    page.get_by_label("Theme").select_option("dark")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_text("Preferences saved.")).to_be_visible()
    prefs = {c["name"]: c for c in ctx.cookies()}["maximin_prefs"]
    assert prefs["expires"] > time.time() + 360 * 86400, "a 12-month cookie"
    assert set(c["name"] for c in ctx.cookies()) == {"maximin_session", "maximin_prefs"}, "no other cookie"
    for path in pages:
        page.goto(BASE + path)
        assert page.evaluate("document.documentElement.dataset.theme") == "dark"
        poor = low_contrast(page)
        assert not poor, f"{path} (dark): text under AA contrast: {poor}"
        slug = path.strip("/").replace("/", "-")
        page.screenshot(path=f"{SHOTS}/{slug}-dark.png", full_page=True)

    step("export the privacy data and open the JSON")
    page.goto(BASE + "/hub/privacy")
    page.get_by_role("button", name="Export my data").click()
    link = page.locator("#export-download")
    expect(link).to_be_visible(timeout=60_000)
    resp = page.request.get(link.get_attribute("href"))
    assert resp.ok, resp.status
    doc = resp.json()
    assert doc["object"] == "privacy_export" and doc["account_id"], list(doc)
    assert "browser" in json.dumps(doc["categories"]), "the key made above is in the export"

    step("close the account")
    page.goto(BASE + "/hub/privacy")
    account_id = page.locator("label[for=close-confirm] code").inner_text().strip()
    page.get_by_label("Type the account id").fill(account_id)
    page.get_by_role("button", name="Close this account").click()
    expect(page.get_by_role("heading", name="Account closed")).to_be_visible()
    assert curl("/v1/models", key) == 401

    ctx.clear_cookies()
    for width, height, name in [(1280, 900, "desktop"), (390, 844, "phone")]:
        page.set_viewport_size({"width": width, "height": height})
        for path in ["/hub/login", "/hub/signup"]:
            page.goto(BASE + path)
            assert not unlabelled(page), path
            page.screenshot(path=f"{SHOTS}/{path.strip('/').replace('/', '-')}-{name}.png", full_page=True)

    assert not errors, f"console errors: {errors}"
    browser.close()


with sync_playwright() as pw:
    try:
        run(pw)
    except BaseException:
        # A failure leaves a screenshot and the page's text beside the others.
        page = CURRENT["page"]
        if page is not None:
            page.screenshot(path=f"{SHOTS}/FAILED.png", full_page=True)
            print("page at failure:", page.url, page.inner_text("main")[:3000], flush=True)
        raise
print("hub browser test: OK", flush=True)
