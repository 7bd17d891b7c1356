"""warm_up() loads, before the prefork pool forks, what extraction would load lazily."""

from __future__ import annotations

import subprocess
import sys

# A fresh interpreter: another test of this session may have loaded them already.
PROBE = """
from worker.extract.document import warm_up
warm_up()
from htmldate.extractors import month_words
from trafilatura import external
print(month_words.cache_info().currsize, len(external.JT_STOPLIST or ()))
"""


def test_warm_up_leaves_month_names_and_stoplists_loaded() -> None:
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, check=True)
    month_names, stoplists = (int(n) for n in out.stdout.split())
    assert month_names == 1  # every dateparser locale read once, in the parent
    assert stoplists > 1000  # the words of every justext stoplist
