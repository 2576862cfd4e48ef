"""Test helper shared by the cancel tests: drive a job and cancel it after a number of yields."""

from napari_phase.jobs import CancelToken, forward_job


def run_cancelling_after(job, n_items: int):
    """Run ``job`` (a generator returning a result) through ``forward_job``, cancel after ``n_items``
    progress items, and return its result (the job decides what a cancelled result holds)."""
    token = CancelToken()
    forwarded = forward_job(job, token)
    seen = 0
    try:
        while True:
            next(forwarded)
            seen += 1
            if seen == n_items:
                token.cancel()
    except StopIteration as stop:
        return stop.value
