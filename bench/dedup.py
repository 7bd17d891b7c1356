"""Near-duplicate detection: precision and recall on real articles, speed and memory.

Labelled set, from the real pages with ground truth in ../shared/corpus/aeb/:
  originals  our extraction of the real page (its own template and URL);
  positives  the same story's ground-truth text under another page template and URL,
             lightly edited as syndication does (a line added, a sentence dropped, a
             word changed, a copyright line) and extracted the same way;
  negatives  held-out real articles never indexed (every other story is a negative too:
             a positive matched to the wrong original counts as a false positive).
Everything goes through the real publish script on an embedded valkey-server: originals
are published, then positives and negatives, and the outcome (article or duplicate, and
``duplicate_of``) is the verdict. Precision and recall are printed at the configured
threshold, and for a few thresholds from the similarities the script reported.

The same pairs are also scored with trafilatura's 64-bit SimHash at several Hamming
distances: the measurement behind choosing MinHash (SimHash cannot separate lightly
edited copies from other stories at any distance that keeps precision).

Then ``--scale`` synthetic signatures are indexed to measure publishes (lookup + insert,
one atomic script) per second and the Redis bytes per indexed article of the
near-duplicate index (MEMORY USAGE of its keys), at a realistic index size.

    .venv/bin/python bench/dedup.py                 # 181 pages, 100,000 synthetic
    .venv/bin/python bench/dedup.py --scale 20000 --json
"""

from __future__ import annotations

import argparse
import gzip
import json
import random
import re
import tempfile
import time
from html import escape
from pathlib import Path
from typing import Any

from common import CORPUS

from worker.config import Settings
from worker.dedup.fingerprint import minhash, minhash_hex
from worker.dedup.index import NearDupIndex
from worker.extract.document import page_document
from worker.fetch.decode import decode_html
from worker.redis import EmbeddedServer
from worker.runtime import Runtime

TEMPLATE = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{title}</title>
</head><body><header><nav><a href="/">Front page</a> <a href="/world">World</a></nav></header>
<main><article><h1>{title}</h1>{body}</article><aside>Most read: nothing to see</aside></main>
<footer>Partner Daily, all rights reserved</footer></body></html>"""


def light_edit(text: str, rng: random.Random) -> str:
    """Syndication-style edits: a dateline added, a sentence dropped, words changed."""
    paragraphs = [p for p in text.split("\n") if p.strip()]
    paragraphs.insert(0, rng.choice(["Updated 2 hours ago.", "By Wire Staff", "(Reuters) -"]))
    victim = rng.randrange(1, len(paragraphs))
    sentences = re.split(r"(?<=[.!?])\s+", paragraphs[victim])
    if len(sentences) > 1:
        del sentences[rng.randrange(len(sentences))]
    paragraphs[victim] = " ".join(sentences)
    words = " ".join(paragraphs).split(" ")
    for _ in range(max(len(words) // 60, 1)):
        words[rng.randrange(len(words))] = rng.choice(["said", "reported", "officials", "new"])
    edited = " ".join(words).split("  ")
    return "\n".join([*edited, "Copyright the agency. All rights reserved."])


def load_pages(corpus: Path, limit: int | None) -> list[dict[str, Any]]:
    truth = json.loads((corpus / "aeb" / "ground-truth.json").read_text())
    pages = []
    for page_id, record in sorted(truth.items())[:limit]:
        raw = gzip.decompress((corpus / "aeb" / "html" / f"{page_id}.html.gz").read_bytes())
        body = record.get("articleBody") or ""
        if len(body) >= 400:
            pages.append({"id": page_id, "url": record["url"], "html": decode_html(raw, ""),
                          "body": body, "title": record.get("headline") or page_id})  # fmt: skip
    return pages


def documents(pages: list[dict[str, Any]], rng: random.Random) -> dict[str, list[dict]]:
    """Originals (real pages), positives (other template, edited), negatives (held out)."""
    held_out = len(pages) // 3
    originals, positives, negatives = [], [], []
    for n, page in enumerate(pages):
        doc = page_document(page["html"], page["url"], 200)
        if n < held_out:
            negatives.append(doc)
            continue
        originals.append(doc)
        paragraphs = "".join(
            f"<p>{escape(p)}</p>" for p in light_edit(page["body"], rng).split("\n")
        )
        html = TEMPLATE.format(title=escape(page["title"]), body=paragraphs)
        copy = page_document(html, f"https://partner.example/syndicated/{page['id']}", 200)
        copy["expected"] = doc["id"]
        positives.append(copy)
    return {"originals": originals, "positives": positives, "negatives": negatives}


def fresh_runtime(tmp: Path, server: EmbeddedServer, prefix: str, threshold: float) -> Runtime:
    settings = Settings(
        redis_url=server.url, data_dir=tmp, key_prefix=prefix, stream_prefix=f"{prefix}:news",
        near_dup_threshold=threshold, feeds_file=None, seed_on_start=False,
    )  # fmt: skip
    return Runtime.build(settings, server.url)


def evaluate(rt: Runtime, docs: dict[str, list[dict]]) -> dict[str, Any]:
    for n, doc in enumerate(docs["originals"]):
        rt.publisher.publish(doc, f"orig-{n}")
    verdicts: list[tuple[str | None, str | None, float]] = []  # (expected, matched, sim)
    for kind in ("positives", "negatives"):
        for n, doc in enumerate(docs[kind]):
            outcome = rt.publisher.publish({k: v for k, v in doc.items() if k != "expected"},
                                           f"{kind}-{n}")  # fmt: skip
            matched = outcome.ref if outcome.kind == "duplicate" else None
            similarity = float(outcome.detail) if outcome.kind == "duplicate" else 0.0
            verdicts.append((doc.get("expected"), matched, similarity))
    true_pos = sum(1 for exp, got, _ in verdicts if exp and got == exp)
    flagged = sum(1 for _, got, _ in verdicts if got)
    return {
        "originals": len(docs["originals"]),
        "positives": len(docs["positives"]),
        "negatives": len(docs["negatives"]),
        "precision": round(true_pos / flagged, 4) if flagged else 1.0,
        "recall": round(true_pos / len(docs["positives"]), 4),
        "positive_similarity_min": min((s for e, g, s in verdicts if e and g == e), default=0),
        "false_positive_similarity_max": max(
            (s for e, g, s in verdicts if g and g != e), default=0
        ),
    }


def simhash_scores(docs: dict[str, list[dict]]) -> dict[str, dict[str, float]]:
    """Precision/recall of the best-matching original by SimHash Hamming distance."""
    from trafilatura.deduplication import Simhash

    originals = [(d["id"], Simhash(d["text"]).hash) for d in docs["originals"]]
    queries = [(d.get("expected"), Simhash(d["text"]).hash)
               for kind in ("positives", "negatives") for d in docs[kind]]  # fmt: skip
    scores = {}
    for distance in (3, 6, 10, 14):
        true_pos = flagged = 0
        for expected, value in queries:
            best_id, best = min(((i, (h ^ value).bit_count()) for i, h in originals),
                                key=lambda pair: pair[1])  # fmt: skip
            if best <= distance:
                flagged += 1
                true_pos += best_id == expected
        scores[f"simhash_within_{distance}_bits"] = {
            "precision": round(true_pos / flagged, 4) if flagged else 1.0,
            "recall": round(true_pos / len(docs["positives"]), 4),
        }
    return scores


def synthetic_scale(rt: Runtime, count: int) -> dict[str, Any]:
    """Index ``count`` random signatures; return publishes/s (lookup + insert), lookups/s
    of near duplicates (lookup + duplicate entry) and index bytes per article."""
    rng = random.Random(3)
    docs = []
    for n in range(count):
        words = " ".join(f"w{rng.randrange(10**9)}" for _ in range(60))
        docs.append({"schema": "newswire.article/1", "id": f"{n:032x}", "content_hash": f"{n:032x}",
                     "minhash": minhash_hex(minhash(words)), "text": "x"})  # fmt: skip
    started = time.perf_counter()
    for n, doc in enumerate(docs):
        rt.publisher.publish(doc, f"scale-{n}")
    elapsed = time.perf_counter() - started
    probes = rng.sample(docs, min(2000, count))
    started = time.perf_counter()
    for n, doc in enumerate(probes):  # the same texts under new ids: found as near duplicates
        rt.publisher.publish({**doc, "id": f"{n + count:032x}", "content_hash": "f" * 32}, f"p-{n}")
    lookups = len(probes) / (time.perf_counter() - started)
    prefix = NearDupIndex(rt.settings.key_prefix).namespace
    index_bytes = sum(
        int(rt.client.memory_usage(key) or 0)
        for pattern in (f"{prefix}:nd:*", f"{prefix}:ndh:*", f"{prefix}:ndlog:*")
        for key in rt.client.scan_iter(match=pattern, count=1000)
    )
    return {
        "indexed": count,
        "publishes_per_s": round(count / elapsed, 1),
        "duplicate_lookups_per_s": round(lookups, 1),
        "near_dup_index_bytes_per_article": round(index_bytes / count, 1),
    }


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", type=Path, default=CORPUS)
    parser.add_argument("--limit", type=int, default=None, help="use only the first N pages")
    parser.add_argument("--threshold", type=float, default=Settings().near_dup_threshold)
    parser.add_argument("--scale", type=int, default=100_000, help="synthetic signatures")
    parser.add_argument("--json", action="store_true")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="newswire-bench-dedup-"))
    server = EmbeddedServer.start(tmp)
    try:
        docs = documents(load_pages(args.corpus, args.limit), random.Random(11))
        figures: dict[str, Any] = {"threshold": args.threshold}
        figures |= evaluate(fresh_runtime(tmp, server, "bd", args.threshold), docs)
        for threshold in (0.3, 0.4, 0.6, 0.7):
            result = evaluate(fresh_runtime(tmp, server, f"bd{threshold}", threshold), docs)
            figures[f"at_{threshold}"] = {k: result[k] for k in ("precision", "recall")}
        figures |= simhash_scores(docs)
        if args.scale:
            figures |= synthetic_scale(fresh_runtime(tmp, server, "bs", args.threshold), args.scale)
    finally:
        server.stop()
    print(
        json.dumps(figures) if args.json else "\n".join(f"{k:<34} {v}" for k, v in figures.items())
    )


if __name__ == "__main__":
    main()
