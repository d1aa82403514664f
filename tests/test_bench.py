"""The serving benchmark's own measurements that need no server."""

import os

from scripts import bench
from tools.load import Stats

STAT = """cpu  126406 0 41397 337515 599 0 583 672 0 0
cpu0 67831 0 17220 167549 303 0 212 152 0 0
cpu1 58575 0 24176 169966 295 0 370 520 0 0
intr 1 2 3
"""


def test_stolen_time_is_read_per_cpu_from_proc_stat() -> None:
    tick_ms = 1000 / os.sysconf("SC_CLK_TCK")
    assert bench.stolen_ms(STAT) == {"cpu0": 152 * tick_ms, "cpu1": 520 * tick_ms}


def test_stolen_time_during_a_run_is_the_difference_on_the_server_core_then_the_load_core() -> None:
    before = {"cpu0": 1520.0, "cpu1": 5200.0}
    after = {"cpu0": 1550.0, "cpu1": 5450.0}
    assert bench.stolen_during(before, after) == "30 ms / 250 ms"


def test_this_machine_reports_a_steal_count_for_each_cpu() -> None:
    stolen = bench.stolen_ms()
    assert set(stolen) >= {f"cpu{c}" for c in sorted(os.sched_getaffinity(0))}
    assert all(value >= 0 for value in stolen.values())


def test_the_large_artifact_is_rebuilt_when_an_older_generator_made_it(tmp_path, monkeypatch) -> None:
    import json

    from models.bench_artifact import GENERATION

    monkeypatch.setattr(bench, "ROOT", tmp_path)
    out = bench.large_artifacts(3_000)
    manifest = out / "current" / "manifest.json"
    assert json.loads(manifest.read_text())["source"]["generation"] == GENERATION
    built = manifest.stat().st_mtime_ns
    assert bench.large_artifacts(3_000) == out and manifest.stat().st_mtime_ns == built  # kept
    old = json.loads(manifest.read_text())
    old["source"]["generation"] = GENERATION - 1
    manifest.write_text(json.dumps(old))
    bench.large_artifacts(3_000)
    assert json.loads(manifest.read_text())["source"]["generation"] == GENERATION  # rebuilt


def test_the_t_score_ratio_times_both_artifacts_in_turn(tmp_path) -> None:
    """Five rounds, each the large artifact's median over the small one's: sorted, positive."""
    from models.bench_artifact import build

    small, large = tmp_path / "small", tmp_path / "large"
    build(small, n_items=1_000, n_users=200, hidden=32, log=lambda m: None)
    build(large, n_items=4_000, n_users=200, hidden=32, log=lambda m: None)
    ratios = bench.t_score_ratio(small, large, rounds=5, per_round=10)
    assert len(ratios) == 5 and ratios == sorted(ratios) and all(0 < r < float("inf") for r in ratios)
    assert os.sched_getaffinity(0) == {0, 1}  # the process is unpinned again


def test_the_open_loop_row_is_the_run_of_median_p99() -> None:
    def run(p99_ms: float) -> Stats:
        return Stats(latencies=[0.001] * 99 + [p99_ms / 1000] * 2)

    runs = [run(5), run(80), run(12)]
    assert bench.median_run(runs) is runs[2]
    assert bench.median_run(runs[:2]) is runs[1]
