from __future__ import annotations

import os
from pathlib import Path

from worker.config import available_cpus


def own_cpus() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def test_without_a_quota_every_cpu_the_process_may_run_on(tmp_path: Path) -> None:
    assert available_cpus(tmp_path) == own_cpus()
    (tmp_path / "cpu.max").write_text("max 100000\n")
    assert available_cpus(tmp_path) == own_cpus()


def test_a_cgroup_v2_quota_caps_it_rounded_up(tmp_path: Path) -> None:
    (tmp_path / "cpu.max").write_text("50000 100000\n")  # docker run --cpus 0.5
    assert available_cpus(tmp_path) == 1
    (tmp_path / "cpu.max").write_text(f"{100000 * own_cpus() + 1} 100000\n")
    assert available_cpus(tmp_path) == own_cpus()  # never more than it may run on


def test_a_cgroup_v1_quota_caps_it(tmp_path: Path) -> None:
    (tmp_path / "cpu").mkdir()
    (tmp_path / "cpu" / "cpu.cfs_period_us").write_text("100000\n")
    (tmp_path / "cpu" / "cpu.cfs_quota_us").write_text("-1\n")
    assert available_cpus(tmp_path) == own_cpus()
    (tmp_path / "cpu" / "cpu.cfs_quota_us").write_text("100000\n")
    assert available_cpus(tmp_path) == 1


def test_garbage_in_the_files_is_no_quota(tmp_path: Path) -> None:
    (tmp_path / "cpu.max").write_text("nonsense\n")
    assert available_cpus(tmp_path) == own_cpus()
