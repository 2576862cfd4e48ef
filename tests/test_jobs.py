"""The shared job mechanism: progress, cancellation, device choice, result type."""

import json

import numpy as np
import pytest

from napari_phase.jobs import (
    CancelToken,
    InputError,
    JobCancelled,
    Progress,
    available_devices,
    forward_job,
    is_out_of_memory,
    resolve_device,
    run_job,
    with_cpu_fallback,
)
from napari_phase.result import PhaseResult


def counting_job(n, best_effort=True):
    best = None
    try:
        for i in range(n):
            best = np.full((4, 4), i, dtype=np.float32)
            yield Progress(i + 1, n, f"step {i + 1}")
    except JobCancelled:
        if not best_effort or best is None:
            raise
        return PhaseResult({"phase": best}, 1.0, metadata={"method": "count", "cancelled": True})
    return PhaseResult({"phase": best}, 1.0, metadata={"method": "count"})


def test_run_job_reports_every_step_and_returns_result():
    seen = []
    result = run_job(counting_job(5), on_progress=seen.append)
    assert [p.step for p in seen] == [1, 2, 3, 4, 5]
    assert seen[-1].fraction == 1.0
    assert result.phase[0, 0] == 4 and not result.cancelled


def test_cancel_returns_best_so_far_promptly():
    token = CancelToken()
    steps = []

    def on_progress(p):
        steps.append(p.step)
        if p.step == 3:
            token.cancel()

    result = run_job(counting_job(1000), on_progress=on_progress, cancel=token)
    assert result.cancelled
    assert steps[-1] == 3  # no further step ran after the cancel
    assert result.phase[0, 0] == 2


def test_cancel_propagates_when_job_cannot_return_partial():
    token = CancelToken()
    token.cancel()
    with pytest.raises(JobCancelled):
        run_job(counting_job(10, best_effort=False), cancel=token)


def test_forward_job_passes_progress_and_value():
    gen = forward_job(counting_job(2))
    assert isinstance(next(gen), Progress)
    next(gen)
    with pytest.raises(StopIteration) as stop:
        next(gen)
    assert stop.value.value.phase[0, 0] == 1


def test_device_choice():
    assert available_devices()[-1] == "cpu"
    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type == available_devices()[0]
    with pytest.raises(InputError, match="unknown device"):
        resolve_device("tpu")
    import torch

    if not torch.cuda.is_available():
        with pytest.raises(InputError, match="no CUDA"):
            resolve_device("cuda")


def test_out_of_memory_falls_back_to_cpu(monkeypatch):
    import torch

    import napari_phase.jobs as jobs

    calls = []

    def make_job(device):
        calls.append(device.type)
        if device.type != "cpu":
            raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")
        yield Progress(1, 1, "ok")
        return PhaseResult({"phase": np.zeros((2, 2))}, 1.0, metadata={})

    monkeypatch.setattr(jobs, "resolve_device", lambda d: torch.device("meta"))
    messages = []
    result = run_job(with_cpu_fallback(make_job, "cuda"), on_progress=lambda p: messages.append(p.message))
    assert calls == ["meta", "cpu"]
    assert "out of memory" in messages[0]
    assert "ran on cpu" in result.metadata["device_fallback"]
    assert is_out_of_memory(RuntimeError("CUDA out of memory"))
    assert not is_out_of_memory(RuntimeError("shape mismatch"))


def test_other_errors_are_not_swallowed_by_fallback():
    def make_job(device):
        raise ValueError("bad")
        yield  # pragma: no cover

    with pytest.raises(ValueError, match="bad"):
        run_job(with_cpu_fallback(make_job, "cpu"))


def test_result_units_and_metadata_json():
    r = PhaseResult(
        {"phase": np.ones((3, 3)), "bx": np.zeros((3, 3)), "extra": np.zeros(2)},
        pixel_size=2.5,
        metadata={"method": "X", "seed": np.int64(3), "arr": np.arange(3)},
    )
    assert r.unit_of("phase") == "rad" and r.unit_of("bx") == "T·nm" and r.unit_of("extra") == ""
    assert r.by is None and "bx" in r
    meta = json.loads(r.metadata_json())
    assert meta["seed"] == 3 and meta["arr"] == [0, 1, 2]
    assert "X result" in r.summary()
