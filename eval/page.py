"""Wrap an article body in help-centre chrome whose churn the corpus can vary.

A real page around the article changes on its own: the "updated" stamp, vote counters, the
copyright year, rotating link tokens and the consent banner. Each pair may set these per side.
"""

from __future__ import annotations

from typing import Any

BANNERS = {
    "onetrust": '<div id="onetrust-banner-sdk" class="otFlat"><p>We use cookies to improve '
    "your experience and for personalised advertising.</p><button id="
    '"onetrust-accept-btn-handler">Accept All Cookies</button></div>',
    "cookiebot": '<div id="CybotCookiebotDialog"><h2>This website uses cookies</h2><p>We and '
    "our partners process personal data such as your IP address.</p>"
    "<a>Allow all</a> <a>Deny</a></div>",
    "didomi": '<div id="didomi-host"><div class="didomi-popup"><p>With your consent, we and '
    "our 812 partners use cookies to store and access information on your device.</p>"
    "<button>Agree and close</button></div></div>",
    "trustarc": '<div id="truste-consent-track"><p>This site uses cookies. By continuing you '
    "agree to our cookie policy.</p><button>Accept</button></div>",
    "usercentrics": '<div id="usercentrics-root"><p>Privacy settings: we use technologies '
    "like cookies to process data.</p></div>",
    "quantcast": '<div class="qc-cmp2-container"><p>We value your privacy. We and our partners '
    "store information on a device. You may object to legitimate interest.</p></div>",
    "none": "",
}

DEFAULT_CHROME: dict[str, Any] = {
    "updated": "Updated over a week ago",
    "votes": "1,204",
    "views": "58,311",
    "year": "2025",
    "token": "3f2a9c1e-7b4d-4c1a-9e2f-51d0a8c6b7e4",
    "banner": "onetrust",
}


def render(provider: str, title: str, body: str, chrome: dict[str, Any]) -> str:
    values = {**DEFAULT_CHROME, **chrome}
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title} | {provider} Help Center</title>
<script>window.intercomSettings = {{"app_id": "{values["token"]}"}};</script>
<link rel="stylesheet" href="/assets/app-{values["token"][:8]}.css"></head>
<body>
{BANNERS[values["banner"]]}
<header class="header"><a href="/" class="logo">{provider} Help Center</a>
<nav><a href="/en/collections/privacy">Privacy</a> <a href="/en/">All collections</a></nav>
</header>
<main id="main-content"><article class="article">
<div class="article__meta"><p>Written by the {provider} team</p><p>{values["updated"]}</p></div>
{body}
<section class="article__feedback"><p>Did this answer your question?</p>
<p>{values["votes"]} people found this helpful · {values["views"]} views</p></section>
<p class="article__more">Still stuck? <a href="https://help.example.org/redirect/website.v1.{
        values["token"]
    }">Contact us</a></p>
</article></main>
<footer><p>© {values["year"]} {provider}. All rights reserved.</p></footer>
</body></html>"""
