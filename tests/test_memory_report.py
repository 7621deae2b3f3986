"""The end-of-run memory report as `cockpit run` prints it, from the engine's run_finished payload.

The CPU form is checked on real runs (test_cli_run, test_distributed); the GPU form needs CUDA, so
here it is fed the payload engine.memory.gpu.MemorySampler.report() writes on a GPU.
"""

from __future__ import annotations

from cockpit.headless import memory_lines

H100_RUN = {
    "device": "NVIDIA H100 80GB HBM3",
    "total_mb": 81559.0,
    "start_reserved_mb": 15770.0,
    "peak_reserved_mb": 21504.0,
    "peak_allocated_mb": 19968.0,
    "training_mb": 5734.0,
    "peak_pct": 26.4,
    "training_pct": 7.0,
    "peak_rss_mb": 3100.0,
}


def test_gpu_report_names_the_gpu_its_total_the_start_the_peak_and_the_training_share():
    (line,) = memory_lines(H100_RUN)
    assert line == (
        "memory: NVIDIA H100 80GB HBM3, 79.6 GiB; 15.4 GiB reserved at the start, peak 21.0 GiB (26.4%), "
        "training added 5.6 GiB (7.0%)"
    )


def test_the_estimate_is_set_against_the_measured_peak():
    estimate = {"type": "estimate", "allocated_bytes": int(21.5 * 2**30)}
    lines = memory_lines(H100_RUN, estimate)
    assert lines[-1] == "  estimate 21.5 GiB allocated vs measured peak 19.5 GiB: 1.10x"


def test_several_gpus_list_each_ranks_peak():
    report = {**H100_RUN, "ranks": [{"rank": 0, "peak_reserved_mb": 21504.0}, {"rank": 1, "peak_reserved_mb": 20480.0}]}
    assert memory_lines(report)[1] == "  peak per GPU (rank 0..1): 21.0 GiB, 20.0 GiB"


def test_no_report_prints_nothing():
    assert memory_lines(None) == [] and memory_lines({}) == []
