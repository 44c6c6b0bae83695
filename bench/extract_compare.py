"""Extraction and comparison time for large policy pages (about 100 KB to 2 MB of HTML).

Each page is a generated privacy policy as big sites publish them: sections with headings,
paragraphs with links and emphasis, lists, retention tables, and site chrome (styles, icons,
inline app state; about half of the bytes). The "after" page makes the edits a policy
update makes: a sentence about training turned around, a paragraph added, a list item
gone, a table cell changed and the "last updated" date moved. For contrast, a 1 MB help
article that is nearly all text (few elements per KB) gets the same edits.

Timed, each as the median of --repeat runs, with the churn cache cleared before each:
extraction of the new page, comparison (assess) of the stored text with the new one, and
both together, which is what a check of a changed page costs beyond its fetch.

    .venv/bin/python bench/extract_compare.py --sizes 100,500,1000,2000
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from collections.abc import Callable
from typing import Any

from check_now import WORDS, article, site_chrome, write_results

from monitor import churn
from monitor.compare import assess
from monitor.extract import extract

TOPICS = ("Information we collect", "How we use information", "Model training", "Retention")


def sentence(rng: random.Random) -> str:
    words = rng.choices(WORDS, k=rng.randint(12, 28))
    link = rng.random() < 0.2
    text = " ".join(words)
    if link:
        text += f" (see <a href='/privacy/{rng.randint(1, 99)}?utm_source=x'>our settings</a>)"
    return text[0].upper() + text[1:] + "."


def section(rng: random.Random, number: int) -> str:
    title = f"{number}. {TOPICS[number % len(TOPICS)]}"
    paragraphs = "".join(
        f"<p>{' '.join(sentence(rng) for _ in range(rng.randint(2, 5)))}</p>" for _ in range(4)
    )
    items = "".join(
        f"<li><strong>{rng.choice(WORDS)}</strong>: {sentence(rng)}</li>" for _ in range(5)
    )
    rows = "".join(
        f"<tr><td>{rng.choice(WORDS)}</td><td>{rng.randint(1, 36)} months</td></tr>"
        for _ in range(4)
    )
    table = f"<table><tr><th>Data</th><th>Kept for</th></tr>{rows}</table>"
    return f"<section id='s{number}'><h2>{title}</h2>{paragraphs}<ul>{items}</ul>{table}</section>"


def policy(kilobytes: int) -> str:
    """A policy page of about `kilobytes` KB, half of it site chrome."""
    rng = random.Random(kilobytes)
    head, tail = site_chrome(kilobytes, int(kilobytes * 0.77))
    sections, size, number = [], 0, 1
    while size < kilobytes * 512:
        sections.append(section(rng, number))
        size += len(sections[-1])
        number += 1
    body = (
        "<main><article><h1>Privacy Policy</h1><p>Last updated: March 3, 2026</p>"
        + "".join(sections)
        + "</article></main>"
    )
    start = f"<!doctype html><html><head><title>Privacy</title>{head}</head>"
    return f"{start}<body>{body}{tail}</body></html>"


TRAINING = "<p>We do not use your conversations to train our models.</p>"


def updated(html: str) -> str:
    """The same page after a policy update (the page holds TRAINING after its first heading)."""
    html = html.replace("Last updated: March 3, 2026", "Last updated: November 2, 2026")
    html = html.replace("We do not use your conversations", "We may use your conversations", 1)
    middle = html.index("<h2>", len(html) // 2)
    html = html[:middle] + "<p>You can opt out in Settings at any time.</p>" + html[middle:]
    html = html.replace("<li>", "<li hidden>", 1)
    return html.replace(" months</td>", " years</td>", 1)


def median_ms(action: Callable[[], Any], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        churn.mask.cache_clear()
        started = time.perf_counter()
        action()
        times.append((time.perf_counter() - started) * 1000)
    return round(statistics.median(times), 1)


def dense_article(kilobytes: int) -> str:
    """A help article that is nearly all text (few elements per KB), for contrast."""
    return article(0, kilobytes * 1024 // 400, False)


def measure(kilobytes: int, repeat: int, page: Callable[[int], str] = policy) -> dict[str, Any]:
    before_html = page(kilobytes).replace("</h2>", f"</h2>{TRAINING}", 1)
    after_html = updated(before_html)
    old = extract(before_html, base_url="https://example.com/privacy").text
    new = extract(after_html, base_url="https://example.com/privacy").text

    def both() -> None:
        text = extract(after_html, base_url="https://example.com/privacy").text
        assess(old, text)

    severity = assess(old, new).severity
    return {
        "html_kb": round(len(after_html.encode()) / 1024),
        "text_kb": round(len(new.encode()) / 1024),
        "blocks": new.count("\n") + 1,
        "extract_ms": median_ms(
            lambda: extract(after_html, base_url="https://example.com/privacy"), repeat
        ),
        "compare_ms": median_ms(lambda: assess(old, new), repeat),
        "total_ms": median_ms(both, repeat),
        "severity": severity,
        "page": page.__name__,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="100,500,1000,2000", help="page sizes in KB")
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    rows = [measure(int(size), args.repeat) for size in args.sizes.split(",")]
    rows.append(measure(1000, args.repeat, dense_article))
    print(
        f"{'HTML KB':>8}{'text KB':>9}{'blocks':>8}{'extract ms':>12}{'compare ms':>12}"
        f"{'both ms':>10}  page, severity found"
    )
    for row in rows:
        print(
            f"{row['html_kb']:>8}{row['text_kb']:>9}{row['blocks']:>8}{row['extract_ms']:>12}"
            f"{row['compare_ms']:>12}{row['total_ms']:>10}  {row['page']}, {row['severity']}"
        )
    write_results("extract_compare", {"args": vars(args), "rows": rows})


if __name__ == "__main__":
    main()
