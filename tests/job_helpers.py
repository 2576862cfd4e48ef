"""Test helper shared by the cancel tests: drive a job and cancel it after a number of yields."""

from napari_phase.jobs import CancelToken, forward_job


def run_cancelling_after(job, n_items: int, items: list | None = None):
    """Run ``job`` (a generator returning a result) through ``forward_job``, cancel after ``n_items``
    progress items, and return its result (the job decides what a cancelled result holds).

    If ``items`` is given, every progress item the job yielded (including any after the cancel) is
    appended to it, so a test can check what it saw, e.g. that the job stopped right at the cancel."""
    token = CancelToken()
    forwarded = forward_job(job, token)
    seen = 0
    try:
        while True:
            item = next(forwarded)
            if items is not None:
                items.append(item)
            seen += 1
            if seen == n_items:
                token.cancel()
    except StopIteration as stop:
        return stop.value
