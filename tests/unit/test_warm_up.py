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
import tld.utils
print(month_words.cache_info().currsize, len(external.JT_STOPLIST or ()),
      sum(trie is not None for trie in tld.utils.tld_names.values()))
"""


def test_warm_up_leaves_month_names_stoplists_and_suffixes_loaded() -> None:
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, check=True)
    month_names, stoplists, suffix_lists = (int(n) for n in out.stdout.split())
    assert month_names == 1  # every dateparser locale read once, in the parent
    assert stoplists > 1000  # the words of every justext stoplist
    assert suffix_lists == 1  # the public-suffix list, which courlan reads through tld


KEPT = """
from worker.extract.article import release_memory
from worker.extract.document import warm_up
import justext.core
from trafilatura.utils import line_processing
warm_up()
before = justext.core.define_stoplist.cache_info().currsize
release_memory()
print(before, justext.core.define_stoplist.cache_info().currsize,
      line_processing.cache_info().currsize)
"""


def test_release_memory_keeps_the_stopword_set_and_drops_the_rest() -> None:
    out = subprocess.run([sys.executable, "-c", KEPT], capture_output=True, text=True, check=True)
    before, after, lines = (int(n) for n in out.stdout.split())
    assert before == after == 1  # built once in warm_up, not again after every reset
    assert lines == 0  # trafilatura's own caches are still emptied


FROZEN = """
import gc
from worker.workerproc import warm_before_fork
warm_before_fork()
gc.collect()
print(len(gc.get_objects()), gc.get_freeze_count())
"""


def test_the_prefork_parent_freezes_what_it_loaded() -> None:
    out = subprocess.run([sys.executable, "-c", FROZEN], capture_output=True, text=True, check=True)
    scanned, frozen = (int(n) for n in out.stdout.split())
    # a child's full collection (one every RESET_CACHES_EVERY pages) scans only its own
    assert frozen > 50_000
    assert scanned < 5_000
