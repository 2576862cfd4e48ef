"""The one panel helper every method's dock panel reuses: run a job off the main thread.

:class:`JobRunner` is a small widget (Run / Cancel buttons, a progress bar, a status line and a
"keep best result on cancel" box) that drives any job of :mod:`napari_phase.jobs`:

* ``make_job()`` is called **on the main thread** when Run is pressed. It must read the layer data
  and every parameter *then* (copying arrays), so later edits to the layer don't reach the running
  job. An :class:`~napari_phase.jobs.InputError` raised there is shown as a warning and nothing runs.
* The job runs through :func:`~napari_phase.jobs.forward_job` in napari's ``GeneratorWorker``
  (a ``thread_worker``). Progress lands in the bar and status line; partial results are passed to
  ``on_partial(result)`` on the main thread, throttled; the final result to ``on_result(result)``.
* Cancel sets a :class:`~napari_phase.jobs.CancelToken`; the job stops at its next step. A job that
  returns its best-so-far (``metadata["cancelled"] = True``) has it passed to ``on_result`` only if
  "keep best result on cancel" is ticked (default).
* :class:`~napari_phase.jobs.InputError` from the job -> ``show_warning``; any other exception ->
  ``show_error`` with the message (traceback in the log). Run is enabled again in every case.
* Layers and Qt are touched only in slots on the main thread. If the widget is destroyed while a
  job runs (panel or viewer closed), the job is cancelled and its late signals are ignored.

Headless use (tests): ``runner.start()``, ``runner.cancel()``, ``runner.is_running``, the
``finished(str)`` signal (outcome "done" | "cancelled" | "failed" | "rejected") and
``runner.last_result`` / ``runner.last_error`` / ``runner.status_text``.
"""

from __future__ import annotations

import logging
import time
import traceback
import weakref
from dataclasses import dataclass, field
from typing import Any, Callable

from napari.utils.notifications import show_error, show_info, show_warning
from qtpy.QtCore import Qt, QTimer, Signal
from qtpy.QtWidgets import QCheckBox, QHBoxLayout, QLabel, QProgressBar, QPushButton, QSizePolicy, QVBoxLayout, QWidget

from ..jobs import CancelToken, InputError, JobCancelled, Progress, forward_job
from ..result import PhaseResult

logger = logging.getLogger(__name__)

MakeJob = Callable[[], Any]
ResultCallback = Callable[[PhaseResult], Any]

__all__ = ["JobRunner", "LayerCombo", "warn", "error", "info"]


# Notification helpers shared by the panels (one place to monkeypatch in tests).
def warn(message: str) -> None:
    """A short user-facing warning (napari notification) and a log line."""
    logger.warning(message)
    show_warning(message)


def error(message: str) -> None:
    logger.error(message)
    show_error(message)


def info(message: str) -> None:
    logger.info(message)
    show_info(message)


def uncertainty_message(unc: dict) -> str:
    """What the user is told of a result's σ layers (hidden when added)."""
    if not unc.get("computed"):
        return f"no σ layers: {unc.get('note', '')}"
    if unc.get("calibrated"):
        return "σ layers added (hidden): calibrated on held-out simulations"
    return f"σ layers added but hidden, NOT calibrated against the truth: {unc.get('note', '')}"


@dataclass
class _Outcome:
    kind: str  # "done" | "cancelled" | "failed"
    result: PhaseResult | None = None
    error: BaseException | None = None
    tb: str = ""


@dataclass
class _State:
    """What outlives the widget's C++ object. ``alive`` is read from the widget's wrapper (weakly
    held): no Python callback runs while Qt destroys the widget. (A closure connected to the
    widget's own ``destroyed`` signal did, and crashed PyQt6 when the cyclic garbage collector
    freed the wrapper mid-run: a segmentation fault seen in the full test suite.)"""

    widget: Any = None  # weakref.ref to the runner
    token: Any = None
    worker: Any = None
    extra: dict = field(default_factory=dict)

    @property
    def alive(self) -> bool:
        w = self.widget() if self.widget is not None else None
        return w is not None and not _qt_deleted(w)


def _qt_deleted(obj) -> bool:
    """True once the C++ side of a Qt wrapper is gone (PyQt: sip.isdeleted; PySide: shiboken)."""
    try:
        from qtpy import sip  # PyQt5/6

        return bool(sip.isdeleted(obj))
    except ImportError:
        from qtpy import shiboken  # PySide2/6

        return not shiboken.isValid(obj)


class _WidgetToken(CancelToken):
    """A CancelToken that also reads as cancelled once its panel is destroyed (checked by the job
    between steps), so closing a panel stops its job without a callback from Qt's destructor."""

    def __init__(self, state: _State) -> None:
        super().__init__()
        self._owner = state

    @property
    def cancelled(self) -> bool:
        if not self._event.is_set() and not self._owner.alive:
            self._event.set()
        return self._event.is_set()


def _drive(job, token):
    """Worker body: forward the job, and turn every ending into a returned _Outcome.

    (superqt's GeneratorWorker treats a RuntimeError from the generator as "worker deleted" and
    then emits neither `errored` nor `finished`; catching everything here avoids a stuck panel.)
    """
    try:
        result = yield from forward_job(job, token)
    except JobCancelled:
        return _Outcome("cancelled")
    except BaseException as exc:  # noqa: BLE001 - reported to the user on the main thread
        return _Outcome("failed", error=exc, tb=traceback.format_exc())
    if result is not None and not isinstance(result, PhaseResult):
        return _Outcome("failed", error=TypeError(f"job returned {type(result).__name__}, not a PhaseResult"))
    if result is not None and result.cancelled:
        return _Outcome("cancelled", result=result)
    if result is None:
        return _Outcome("cancelled" if token.cancelled else "failed", error=None if token.cancelled else RuntimeError("the job returned no result"))
    return _Outcome("done", result=result)


def _as_progress(item) -> Progress | None:
    if isinstance(item, Progress):
        return item
    if isinstance(item, tuple) and len(item) >= 2:
        return Progress(*item[:4])
    return None


def _fmt_seconds(s: float) -> str:
    if s < 10:
        return f"{s:.1f} s"
    if s < 60:
        return f"{s:.0f} s"
    if s < 3600:
        return f"{s // 60:.0f} min {s % 60:02.0f} s"
    return f"{s // 3600:.0f} h {(s % 3600) // 60:02.0f} min"


class JobRunner(QWidget):
    """Run / Cancel / progress for one job at a time (see module docstring).

    Parameters
    ----------
    make_job : callable returning a job generator; called on the main thread at start.
    on_result : called on the main thread with the final PhaseResult (also a kept cancelled one).
    on_partial : called on the main thread with partial results, at most every ``partial_interval_s``.
    run_text : label of the main button.
    name : what the status line calls the job ("SIPRAD", ...).
    on_run : what the Run button calls instead of ``start()`` (a panel that builds its own context).
    """

    started = Signal()
    #: emitted once per start() with the outcome: "done", "cancelled", "failed" or "rejected"
    finished = Signal(str)

    def __init__(
        self,
        make_job: MakeJob | None = None,
        *,
        on_result: ResultCallback | None = None,
        on_partial: ResultCallback | None = None,
        run_text: str = "Run",
        name: str = "job",
        keep_checkbox: bool = True,
        on_run: Callable[[], Any] | None = None,
        partial_interval_s: float = 0.3,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self._make_job = make_job
        self._on_result = on_result
        self._on_partial = on_partial
        self.name = name
        self.partial_interval_s = float(partial_interval_s)
        self._state = _State()
        self._current: dict[str, Any] = {}
        self._pending_partial: PhaseResult | None = None
        self._last_partial_t = 0.0
        self._t0 = 0.0
        self._actions: list[QPushButton] = []
        self.last_result: PhaseResult | None = None
        self.last_error: BaseException | None = None
        self.last_outcome: str = ""

        self.run_button = QPushButton(run_text)
        self.run_button.setToolTip(f"Start {name} on the chosen layer with the parameters above")
        self.run_button.clicked.connect((lambda *_: on_run()) if on_run is not None else (lambda *_: self.start()))
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setToolTip("Stop after the current step (the best result so far can be kept)")
        self.cancel_button.setEnabled(False)
        self.cancel_button.clicked.connect(self.cancel)
        self.keep_box = QCheckBox("keep best result on cancel")
        self.keep_box.setChecked(True)
        self.keep_box.setToolTip("If you cancel an iterative solver, add its best result so far as '(cancelled)' layers")
        self.keep_box.setVisible(keep_checkbox)
        self.progress_bar = QProgressBar()
        self.progress_bar.setRange(0, 1000)
        self.progress_bar.setValue(0)
        self.progress_bar.setTextVisible(True)
        self.progress_bar.setFormat("idle")
        self.status_label = QLabel("")
        self.status_label.setWordWrap(True)
        self.status_label.setTextInteractionFlags(Qt.TextSelectableByMouse)
        self.status_label.setSizePolicy(QSizePolicy.Preferred, QSizePolicy.Minimum)

        self._buttons = QHBoxLayout()
        self._buttons.setContentsMargins(0, 0, 0, 0)
        self._buttons.addWidget(self.run_button)
        self._buttons.addWidget(self.cancel_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(4)
        layout.addLayout(self._buttons)
        layout.addWidget(self.keep_box)
        layout.addWidget(self.progress_bar)
        layout.addWidget(self.status_label)

        self._partial_timer = QTimer(self)
        self._partial_timer.setSingleShot(True)
        self._partial_timer.timeout.connect(self._flush_partial)

        self._state.widget = weakref.ref(self)

    # ------------------------------------------------------------------ public API
    @property
    def is_running(self) -> bool:
        return self._state.worker is not None

    @property
    def status_text(self) -> str:
        return self.status_label.text()

    def add_action(self, text: str, make_job: MakeJob | None = None, *, slot: Callable[[], Any] | None = None, on_result=None,
                   on_partial=None, name: str | None = None, tooltip: str = "") -> QPushButton:
        """Another button (e.g. "SITIE preview"), disabled while a job runs. It either runs
        ``make_job`` through this runner or calls ``slot()`` (which calls :meth:`start` itself)."""
        button = QPushButton(text)
        if tooltip:
            button.setToolTip(tooltip)
        if slot is not None:
            button.clicked.connect(lambda *_: slot())
        else:
            button.clicked.connect(lambda *_: self.start(make_job, on_result=on_result, on_partial=on_partial, name=name))
        self._buttons.insertWidget(len(self._actions), button)
        self._actions.append(button)
        return button

    def start(self, make_job: MakeJob | None = None, *, on_result=None, on_partial=None, name: str | None = None) -> bool:
        """Build the job now (main thread: inputs captured) and run it in a worker thread.

        Returns False if a job is running already (nothing emitted: the running job's
        ``finished`` is still to come) or if ``make_job`` rejected the inputs (``finished("rejected")``).
        """
        if self.is_running:
            self._set_status(f"{self.name} is still running; cancel it first")
            return False
        make_job = make_job or self._make_job
        if make_job is None:
            raise ValueError("JobRunner.start: no make_job given")
        job_name = name or self.name
        try:
            job = make_job()
        except InputError as exc:
            self._reject(job_name, exc)
            return False
        except Exception as exc:  # noqa: BLE001 - a bug or an unexpected input: say so, stay usable
            logger.exception("%s could not start", job_name)
            self.last_error = exc
            self._set_status(f"{job_name} could not start: {exc}")
            error(f"{job_name} could not start: {exc}")
            self.last_outcome = "rejected"
            self.finished.emit("rejected")
            return False
        if job is None:  # make_job already told the user why
            self.last_outcome = "rejected"
            self.finished.emit("rejected")
            return False

        from napari.qt.threading import GeneratorWorker

        token = _WidgetToken(self._state)
        worker = GeneratorWorker(_drive, job, token)
        self._state.token = token
        self._state.worker = worker
        self._current = {
            "name": job_name,
            "on_result": on_result if on_result is not None else self._on_result,
            "on_partial": on_partial if on_partial is not None else self._on_partial,
            "outcome": None,
            "progress": None,
        }
        self.last_result = None
        self.last_error = None
        self._pending_partial = None
        self._last_partial_t = 0.0
        self._t0 = time.perf_counter()
        worker.yielded.connect(self._on_yielded)
        worker.returned.connect(self._on_returned)
        worker.errored.connect(self._on_errored)
        worker.aborted.connect(self._on_aborted)
        worker.finished.connect(self._on_finished)
        self._set_busy(True)
        self.progress_bar.setRange(0, 0)  # busy until the first progress report
        self.progress_bar.setFormat(f"{job_name}: starting")
        self._set_status(f"{job_name}: starting…")
        self.started.emit()
        worker.start()
        return True

    def cancel(self) -> None:
        """Ask the running job to stop at its next step (cooperative; the UI stays responsive)."""
        if self._state.token is None or not self.is_running:
            return
        self._state.token.cancel()
        self.cancel_button.setEnabled(False)
        self._set_status(f"{self._current.get('name', self.name)}: cancelling after the current step…")

    def wait(self, timeout_ms: int = 10000) -> bool:
        """Process events until the running job has finished (for scripts and tests)."""
        from qtpy.QtWidgets import QApplication

        end = time.perf_counter() + timeout_ms / 1000
        while self.is_running and time.perf_counter() < end:
            QApplication.processEvents()
            time.sleep(0.005)
        QApplication.processEvents()
        return not self.is_running

    # ------------------------------------------------------------------ worker slots (main thread)
    def _on_yielded(self, item) -> None:
        if not self._state.alive:
            return
        progress = _as_progress(item)
        if progress is None:
            return
        self._current["progress"] = progress
        name = self._current.get("name", self.name)
        elapsed = time.perf_counter() - self._t0
        if progress.total:
            self.progress_bar.setRange(0, 1000)
            self.progress_bar.setValue(int(1000 * progress.fraction))
            self.progress_bar.setFormat(f"{name}: {progress.step}/{progress.total}")
        eta = ""
        if progress.total and 0.02 < progress.fraction < 1 and elapsed > 2:
            left = elapsed * (1 - progress.fraction) / progress.fraction
            eta = f", ~{_fmt_seconds(left)} left" if left >= 1 else ""
        if not (self._state.token is not None and self._state.token.cancelled):
            msg = progress.message or ""
            text = msg if msg.lower().startswith(name.lower()) else (f"{name} – {msg}" if msg else name)
            self._set_status(f"{text} ({_fmt_seconds(elapsed)}{eta})")
        if progress.partial is not None and self._current.get("on_partial") is not None:
            self._pending_partial = progress.partial
            wait = self.partial_interval_s - (time.perf_counter() - self._last_partial_t)
            if wait <= 0:
                self._flush_partial()
            elif not self._partial_timer.isActive():
                self._partial_timer.start(int(wait * 1000) + 1)

    def _flush_partial(self) -> None:
        if not self._state.alive or not self.is_running:
            return
        partial, self._pending_partial = self._pending_partial, None
        callback = self._current.get("on_partial")
        if partial is None or callback is None:
            return
        self._last_partial_t = time.perf_counter()
        try:
            callback(partial)
        except Exception:  # noqa: BLE001 - a preview must never kill the run
            logger.exception("live preview failed")

    def _on_returned(self, outcome) -> None:
        if self._state.alive:
            self._current["outcome"] = outcome

    def _on_errored(self, exc) -> None:  # only if _drive itself failed
        if self._state.alive:
            self._current["outcome"] = _Outcome("failed", error=exc, tb="".join(traceback.format_exception(type(exc), exc, exc.__traceback__)))

    def _on_aborted(self) -> None:
        if self._state.alive:
            self._current["outcome"] = _Outcome("cancelled")

    def _on_finished(self) -> None:
        if not self._state.alive:
            return
        self._partial_timer.stop()
        self._pending_partial = None
        outcome: _Outcome = self._current.get("outcome") or _Outcome("cancelled")
        name = self._current.get("name", self.name)
        elapsed = _fmt_seconds(time.perf_counter() - self._t0)
        self._state.worker = None
        self._state.token = None
        kind = outcome.kind
        try:
            if kind == "done":
                self.last_result = outcome.result
                self._deliver(outcome.result)
                self._set_status(f"{name}: done in {elapsed}")
            elif kind == "cancelled":
                self.last_result = outcome.result
                if outcome.result is not None and self.keep_box.isChecked():
                    self._deliver(outcome.result)
                    self._set_status(f"{name}: cancelled after {elapsed}; best result so far kept as '(cancelled)' layers")
                elif outcome.result is not None:
                    self._set_status(f"{name}: cancelled after {elapsed}; result discarded")
                else:
                    self._set_status(f"{name}: cancelled after {elapsed}")
            else:
                exc = outcome.error
                self.last_error = exc
                if isinstance(exc, InputError):
                    self._set_status(f"{name}: {exc}")
                    warn(f"{name}: {exc}")
                else:
                    logger.error("%s failed:\n%s", name, outcome.tb or repr(exc))
                    text = f"{type(exc).__name__}: {exc}" if exc is not None else "unknown error"
                    self._set_status(f"{name} failed – {text}")
                    error(f"{name} failed – {text}")
        except Exception as exc:  # noqa: BLE001 - showing the result failed: say so, stay usable
            logger.exception("%s: could not show the result", name)
            kind = "failed"
            self.last_error = exc
            self._set_status(f"{name}: could not show the result – {exc}")
            error(f"{name}: could not show the result – {exc}")
        finally:
            self._set_busy(False)
            self.progress_bar.setRange(0, 1000)
            self.progress_bar.setValue(1000 if kind == "done" else 0)
            self.progress_bar.setFormat({"done": "done", "cancelled": "cancelled"}.get(kind, "failed"))
            self.last_outcome = kind
            self._current = {}
        self.finished.emit(kind)

    # ------------------------------------------------------------------ helpers
    def _deliver(self, result: PhaseResult | None) -> None:
        callback = self._current.get("on_result")
        if result is not None and callback is not None:
            callback(result)
        if result is not None and result.metadata.get("uncertainty"):
            info(uncertainty_message(result.metadata["uncertainty"]))

    def _reject(self, name: str, exc: InputError) -> None:
        self.last_error = exc
        self._set_status(f"{name}: {exc}")
        warn(f"{name}: {exc}")
        self.last_outcome = "rejected"
        self.finished.emit("rejected")

    def _set_busy(self, busy: bool) -> None:
        self.run_button.setEnabled(not busy)
        for b in self._actions:
            b.setEnabled(not busy)
        self.cancel_button.setEnabled(busy)

    def _set_status(self, text: str) -> None:
        self.status_label.setText(text)
        self.status_label.setToolTip(text)


# --------------------------------------------------------------------------- layer chooser
class LayerCombo(QWidget):
    """A combo box of the viewer's layers of some types, kept in sync with the layer list.

    ``accept(layer) -> bool`` filters further (e.g. no RGB images). The current choice survives
    layers being added, removed, renamed or reordered; when it disappears the ``default_name``
    layer (or the first one) is chosen. ``layer_changed(layer_or_None)`` fires on every change.
    """

    layer_changed = Signal(object)

    def __init__(self, viewer, layer_types: tuple, *, accept: Callable[[Any], bool] | None = None, default_name: str | None = None,
                 prefer: Callable[[list], Any] | None = None, placeholder: str = "(none)", parent: QWidget | None = None) -> None:
        super().__init__(parent)
        from qtpy.QtWidgets import QComboBox

        self.viewer = viewer
        self.layer_types = tuple(layer_types)
        self.accept = accept
        self.default_name = default_name
        self.prefer = prefer
        self.placeholder = placeholder
        self.combo = QComboBox()
        self.combo.setSizeAdjustPolicy(QComboBox.AdjustToMinimumContentsLengthWithIcon)
        self.combo.setMinimumContentsLength(12)
        self._layers: list = []
        self._current = None
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.combo)
        self.combo.currentIndexChanged.connect(self._index_changed)
        events = viewer.layers.events
        for name in ("inserted", "removed", "reordered", "renamed", "moved"):
            emitter = getattr(events, name, None)
            if emitter is not None:
                emitter.connect(self.refresh)
        self.refresh()

    def candidates(self) -> list:
        out = []
        for layer in reversed(list(self.viewer.layers)):  # top of the layer list first
            if isinstance(layer, self.layer_types) and (self.accept is None or self.accept(layer)):
                out.append(layer)
        return out

    def current_layer(self):
        return self._current if self._current in self._layers else None

    def set_layer(self, layer) -> bool:
        """Choose ``layer`` if it is one of the candidates; returns whether it was chosen."""
        self.refresh()
        if layer not in self._layers:
            return False
        self.combo.setCurrentIndex(self._layers.index(layer))
        return True

    def reset_choices(self, *_):
        self.refresh()

    def refresh(self, *_) -> None:
        layers = self.candidates()
        previous = self._current
        self._layers = layers
        self.combo.blockSignals(True)
        try:
            self.combo.clear()
            if not layers:
                self.combo.addItem(self.placeholder)
                self.combo.setEnabled(False)
            else:
                self.combo.setEnabled(True)
                self.combo.addItems([layer.name for layer in layers])
            chosen = None
            if previous in layers:
                chosen = previous
            elif layers:
                named = [lay for lay in layers if lay.name == self.default_name]
                preferred = self.prefer(layers) if (self.prefer is not None and not named) else None
                chosen = named[0] if named else (preferred if preferred in layers else layers[0])
            if chosen is not None:
                self.combo.setCurrentIndex(layers.index(chosen))
        finally:
            self.combo.blockSignals(False)
        self._current = chosen
        if chosen is not previous:
            self.layer_changed.emit(chosen)

    def _index_changed(self, index: int) -> None:
        layer = self._layers[index] if 0 <= index < len(self._layers) else None
        if layer is not self._current:
            self._current = layer
            self.layer_changed.emit(layer)
