"""The serving benchmark's own measurements that need no server."""

import os

from scripts import bench

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
