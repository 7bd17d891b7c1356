"""The near-duplicate index: how signatures are laid out in Redis.

The lookup and the insert run inside the publish script (lua/publish_article.lua), so
that "is there a near duplicate?" and "I am the original" are one atomic step. This
module prepares that script's arguments. Layout, per generation of ``generation_days``:
16 LSH bands, each band value kept as a 6-byte entry (16 bits of the band | sequence
number) in one of ``2**bucket_bits`` packed strings chosen by the band's full 32 bits
(the fields of one HASH per generation: a lookup costs one HMGET per generation), and a
log of 48-byte records (32 low bytes of the signature | the article id) addressed by
sequence number. Generations older than the dedup window expire as whole keys, so
memory stays bounded without a sweeper. The keys are named after the MinHash family
(``<key_prefix>:mh2:...``): signatures of another family are never compared with these,
and an index of a family no longer made expires with the window.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from worker.dedup.fingerprint import MINHASH_INDEX_TAG, bands

_GOLDEN = 0x9E3779B1


@dataclass(frozen=True)
class NearDupIndex:
    """Parameters of the index; ``threshold`` is the estimated Jaccard similarity at and
    above which an article is a near duplicate of one already published."""

    key_prefix: str
    threshold: float = 0.5
    window_days: float = 30.0
    generation_days: float = 7.0
    bucket_bits: int = 12
    enabled: bool = True

    @property
    def namespace(self) -> str:
        """The prefix of the index's keys (the publish script names them from it)."""
        return f"{self.key_prefix}:{MINHASH_INDEX_TAG}"

    def bucket(self, band_number: int, value: int) -> int:
        """Which packed string of a generation holds this band value."""
        mixed = (value ^ (band_number * _GOLDEN)) * _GOLDEN
        return (mixed >> 7) & ((1 << self.bucket_bits) - 1)

    def script_args(self, signature: tuple[int, ...], article_id: str, now: float) -> list:
        """Arguments 8-16 of the publish script (all '' when the index is disabled)."""
        if not self.enabled:
            return [""] * 9
        span = self.generation_days * 86_400
        back = math.ceil(self.window_days / self.generation_days)
        values = bands(signature)
        return [
            self.namespace,
            self.threshold,
            int(now // span),
            back,
            int((back + 1) * span),
            bytes(v & 0xFF for v in signature),
            b"".join((v >> 16).to_bytes(2, "big") for v in values),
            ",".join(str(self.bucket(i, v)) for i, v in enumerate(values)),
            bytes.fromhex(article_id),
        ]
