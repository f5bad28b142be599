"""The side-by-side training benchmark's measuring parts: the process-tree sampler sums a child's memory and CPU
time, upstream's step lines are parsed as PaddleOCR's trainer writes them, the measured window skips the warm-up."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCH))

import _sidebyside as sbs  # noqa: E402

# Two consecutive lines of tools/program.py's log at print_batch_step 1 (PaddleOCR 3.x format).
UPSTREAM_LOG = """\
[2026/12/03 14:28:03] ppocr INFO: train from scratch
[2026/12/03 14:28:48] ppocr INFO: epoch: [1/1], global_step: 1, lr: 0.000000, loss: 8.890494, avg_reader_cost: \
1.08660 s, avg_batch_cost: 45.31487 s, avg_samples: 4.0, ips: 0.08827 samples/s, eta: 0:01:30
[2026/12/03 14:30:15] ppocr INFO: epoch: [1/1], global_step: 2, lr: 0.000083, loss: 8.998323, avg_reader_cost: \
0.00732 s, avg_batch_cost: 86.88433 s, avg_samples: 4.0, ips: 0.04604 samples/s, eta: 0:01:06
"""


def test_upstream_step_lines_are_parsed():
    rows = sbs.parse_upstream_log(UPSTREAM_LOG)
    assert [r[1] for r in rows] == [1, 2]
    assert [r[2] for r in rows] == [45.31487, 86.88433]
    assert rows[1][0] - rows[0][0] == 87  # 14:28:48 -> 14:30:15


def test_steady_window_skips_the_warmup():
    assert sbs.steady_window([10.0, 20.0, 25.0, 31.0], warmup=1) == (20.0, 31.0, 2)
    with pytest.raises(RuntimeError, match="only 2 steps"):
        sbs.steady_window([1.0, 2.0], warmup=1)


def test_tree_sampler_sums_a_grandchild_and_its_cpu_time(tmp_path):
    """A parent that starts a child holding 300 MB and spinning: the summed RSS includes the child's memory and the
    tree's CPU time grows while it spins."""
    child = "import time; b = bytearray(300 * 2**20); t = time.time()\nwhile time.time() - t < 1.5: pass"
    parent = f"import subprocess, sys; subprocess.run([sys.executable, '-c', {child!r}])"
    code, usage = sbs.run_tree([sys.executable, "-c", parent], env=sbs.thread_env(1), cwd=tmp_path,
                               log=tmp_path / "log.txt", limit_bytes=8e9)
    assert code == 0, (tmp_path / "log.txt").read_text()
    assert usage.peak_processes >= 2
    assert usage.peak_rss > 300 * 2**20 + usage.peak_rss_main
    t_end = usage.timeline[-1][0]
    assert usage.cpu_between(t_end - 1.0, t_end) > 0.3


def test_memory_guard_stops_the_tree(tmp_path):
    grow = "import time; b = bytearray(400 * 2**20); time.sleep(30)"
    t0 = time.time()
    code, usage = sbs.run_tree([sys.executable, "-c", grow], env=sbs.thread_env(1), cwd=tmp_path,
                               log=tmp_path / "log.txt", limit_bytes=200 * 2**20)
    assert code != 0 and usage.killed_at is not None and usage.killed_at > 200 * 2**20
    assert time.time() - t0 < 20


def test_wb_loader_workers_apart_from_upstreams():
    import argparse

    parser = argparse.ArgumentParser()
    sbs.add_common_arguments(parser, steps=8, warmup=2, batch=4)
    assert sbs.wb_workers(parser.parse_args(["--workers", "3"])) == 3  # both sides alike by default
    args = parser.parse_args(["--workers", "2", "--wb-workers", "0"])
    assert (args.workers, sbs.wb_workers(args)) == (2, 0)  # upstream keeps its 2, wb loads in the trainer
