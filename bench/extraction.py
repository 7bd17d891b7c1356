"""Extraction quality and speed on the scrapinghub article-extraction-benchmark pages.

What is measured: the 181 real pages of ``../shared/corpus/aeb`` (gzip HTML plus
``ground-truth.json``) run through two extractors, side by side in one process:

* ``ours``  -- ``worker.extract.document.page_document(html, url, min_chars)``, the exact
  code path of the workers (trafilatura ``bare_extraction`` with metadata, headline
  removal, the feed/page text choice); the bytes are decoded with
  ``worker.fetch.decode.decode_html(raw, "")`` like a fetched page without a charset
  header. A page whose document is refused (``ExtractionError``) scores as empty text.
* ``plain`` -- ``trafilatura.extract(html)`` with its defaults, on the same decoded text.

Scoring follows the benchmark's ``evaluate.py`` (scrapinghub/article-extraction-benchmark):
text is split into ``\\w+`` tokens (case kept), then into 4-token shingles (a text of
fewer than 4 tokens is one short shingle, an empty text none). Per page, the multisets
of shingles give TP/FP/FN (normalised by their sum, so long pages weigh no more). Page
precision is TP/(TP+FP), recall TP/(TP+FN), both 1.0 when FP = FN = 0, both 0.0 when
TP and the other count are 0. Precision is averaged over pages where TP+FP > 0, recall
over pages where TP+FN > 0, and F1 = 2PR/(P+R) from the two averages. Bootstrap
confidence intervals are not computed.

Speed: pages per second of each extractor over the same pages (wall time of the
extraction calls alone, one process, one core; decoding is done beforehand). The two
extractors alternate page by page so machine noise hits both alike.

Exit status 1 when our F1 is below plain trafilatura's (a quality gate), else 0.
"""

from __future__ import annotations

import argparse
import gzip
import json
import re
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import trafilatura
from common import CORPUS, code_revision

from worker.config import Settings
from worker.errors import ExtractionError
from worker.extract.document import page_document
from worker.fetch.decode import decode_html

DEFAULT_CORPUS = CORPUS
SHINGLE = 4
_TOKEN = re.compile(r"\w+")


@dataclass(frozen=True)
class Page:
    """One benchmark page: its id, source URL, decoded HTML and expected body text."""

    page_id: str
    url: str
    html: str
    truth: str


@dataclass
class Score:
    """Shingle matches of one page, normalised so that tp + fp + fn == 1 (or all 0)."""

    tp: float
    fp: float
    fn: float

    def precision(self) -> float | None:
        if self.tp + self.fp == 0:
            return None  # not counted in the average
        return 1.0 if self.fp == self.fn == 0 else self.tp / (self.tp + self.fp)

    def recall(self) -> float | None:
        if self.tp + self.fn == 0:
            return None
        return 1.0 if self.fp == self.fn == 0 else self.tp / (self.tp + self.fn)


@dataclass
class Result:
    """Scores and timing of one extractor over the corpus."""

    name: str
    scores: list[Score] = field(default_factory=list)
    seconds: float = 0.0
    empty: int = 0

    def f1(self) -> float:
        """F1 from the page-averaged precision and recall (unrounded)."""
        precision, recall = self.precision(), self.recall()
        return 2 * precision * recall / (precision + recall) if precision + recall else 0.0

    def precision(self) -> float:
        return _mean([s.precision() for s in self.scores])

    def recall(self) -> float:
        return _mean([s.recall() for s in self.scores])

    def summary(self) -> dict[str, float | int | str]:
        pages = len(self.scores)
        return {
            "extractor": self.name,
            "pages": pages,
            "empty": self.empty,
            "precision": round(self.precision(), 4),
            "recall": round(self.recall(), 4),
            "f1": round(self.f1(), 4),
            "pages_per_s": round(pages / self.seconds, 1) if self.seconds else 0.0,
        }


def _mean(values: list[float | None]) -> float:
    kept = [v for v in values if v is not None]
    return sum(kept) / len(kept) if kept else 0.0


def shingles(text: str) -> Counter[tuple[str, ...]]:
    """The multiset of 4-token shingles of ``text`` (one short shingle if fewer tokens)."""
    tokens = _TOKEN.findall(text or "")
    count = max(1, len(tokens) - SHINGLE + 1)
    return Counter(t for t in (tuple(tokens[i : i + SHINGLE]) for i in range(count)) if t)


def score(truth: str, predicted: str) -> Score:
    """Compare one page's predicted text with its ground truth."""
    expected, got = shingles(truth), shingles(predicted)
    tp = float(sum((expected & got).values()))
    fp = float(sum((got - expected).values()))
    fn = float(sum((expected - got).values()))
    total = tp + fp + fn
    return Score(tp / total, fp / total, fn / total) if total else Score(0.0, 0.0, 0.0)


def load_pages(corpus: Path, limit: int | None) -> list[Page]:
    """Read and decode the benchmark pages (sorted by id), at most ``limit`` of them."""
    aeb = corpus / "aeb"
    truth = json.loads((aeb / "ground-truth.json").read_text(encoding="utf-8"))
    pages = []
    for page_id in sorted(truth)[:limit]:
        raw = gzip.decompress((aeb / "html" / f"{page_id}.html.gz").read_bytes())
        record = truth[page_id]
        pages.append(
            Page(page_id, record["url"], decode_html(raw, ""), record.get("articleBody") or "")
        )
    return pages


def ours(min_chars: int) -> Callable[[Page], str]:
    """Our worker code path: the article document's ``text``."""

    def run(page: Page) -> str:
        try:
            return str(page_document(page.html, page.url, min_chars)["text"])
        except ExtractionError:
            return ""

    return run


def plain(page: Page) -> str:
    """trafilatura with its defaults."""
    return trafilatura.extract(page.html) or ""


def measure(pages: list[Page], extractors: dict[str, Callable[[Page], str]]) -> list[Result]:
    """Run every extractor on every page, alternating extractors page by page."""
    results = {name: Result(name) for name in extractors}
    for page in pages:
        for name, extract in extractors.items():
            started = time.perf_counter()
            text = extract(page)
            results[name].seconds += time.perf_counter() - started
            results[name].scores.append(score(page.truth, text))
            results[name].empty += not text.strip()
    return list(results.values())


def warm_up(pages: list[Page], extractors: dict[str, Callable[[Page], str]]) -> None:
    """One untimed call each: imports, lxml and trafilatura's lazy set-up."""
    for extract in extractors.values():
        extract(pages[0])


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--limit", type=int, default=None, help="only the first N pages")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    return parser.parse_args(argv)


def report(results: list[Result], min_chars: int, as_json: bool) -> None:
    summaries = [r.summary() for r in results]
    speed = results[1].seconds / results[0].seconds if results[0].seconds else 0.0
    if as_json:
        print(
            json.dumps(
                {
                    "revision": code_revision(),
                    "min_chars": min_chars,
                    "results": summaries,
                    "speed_ours_vs_plain": round(speed, 3),
                }
            )
        )
        return
    print(f"code {code_revision()}")
    print(
        f"{'extractor':<8} {'pages':>5} {'empty':>5} {'precision':>9} {'recall':>7} "
        f"{'F1':>7} {'pages/s':>8}"
    )
    for s in summaries:
        print(
            f"{s['extractor']:<8} {s['pages']:>5} {s['empty']:>5} {s['precision']:>9.4f} "
            f"{s['recall']:>7.4f} {s['f1']:>7.4f} {s['pages_per_s']:>8.1f}"
        )
    print(f"speed ours/plain: {speed:.2f} (pages/s, same pages, alternated page by page)")
    print(f"(ours = page_document(min_chars={min_chars}); plain = trafilatura.extract defaults)")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    pages = load_pages(args.corpus, args.limit)
    if not pages:
        print(f"no pages in {args.corpus / 'aeb'}", file=sys.stderr)
        return 2
    min_chars = Settings(feeds_file=None).min_text_chars
    extractors = {"ours": ours(min_chars), "plain": plain}
    warm_up(pages, extractors)
    results = measure(pages, extractors)  # ours first, then plain
    report(results, min_chars, args.json)
    return 1 if results[0].f1() < results[1].f1() else 0


if __name__ == "__main__":
    sys.exit(main())
