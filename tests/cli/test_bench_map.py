"""The map benchmark's share of a busy main thread: long tasks may overlap, and only what
falls inside the timed window counts."""

from peaceland.cli.bench_map import covered_ms


def test_overlapping_long_tasks_count_once_and_only_inside_the_window():
    spans = [[0.0, 150.0], [100.0, 200.0], [400.0, 450.0], [900.0, 1_200.0]]
    assert covered_ms(spans, (50.0, 1_000.0)) == 150.0 + 50.0 + 100.0


def test_no_long_task_is_an_idle_main_thread():
    assert covered_ms([], (0.0, 1_000.0)) == 0.0
