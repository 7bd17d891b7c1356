from __future__ import annotations

from worker.workerproc import cpus_for_children


def test_as_many_children_as_cpus_take_one_each() -> None:
    assert cpus_for_children(True, 2, {0, 1}) == [0, 1]
    assert cpus_for_children(True, 3, {5, 2, 9}) == [2, 5, 9]


def test_no_pinning_when_children_and_cpus_differ_or_it_is_off() -> None:
    assert cpus_for_children(True, 3, {0, 1}) == []  # two would share a CPU
    assert cpus_for_children(True, 2, {0, 1, 2, 3}) == []  # the machine is not ours alone
    assert cpus_for_children(True, 1, {0}) == []  # nothing to keep apart
    assert cpus_for_children(False, 2, {0, 1}) == []
