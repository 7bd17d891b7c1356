"""newswire: feeds -> pages -> trafilatura -> dedup -> Redis Streams."""

__version__ = "0.1.0"
