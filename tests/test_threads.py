"""ThreadTuner choice logic with a fake clock and fake thread setter (nothing is timed)."""

from __future__ import annotations

import pytest

from napari_phase.threads import ThreadTuner, default_candidates


class FakeMachine:
    """A clock that advances by cost[threads] per step; the thread count the tuner sets."""

    def __init__(self, cost: dict[int, float], threads: int = 7) -> None:
        self.cost = dict(cost)
        self.threads = threads
        self.now = 0.0
        self.history: list[int] = []

    def clock(self) -> float:
        return self.now

    def get(self) -> int:
        return self.threads

    def set(self, n: int) -> None:
        self.threads = n

    def run(self, tuner: ThreadTuner, n: int) -> None:
        for _ in range(n):
            with tuner.step():
                self.history.append(self.threads)
                self.now += self.cost[self.threads]


def make(machine: FakeMachine, **kw) -> ThreadTuner:
    kw.setdefault("candidates", (1, 2))
    return ThreadTuner(clock=machine.clock, get_threads=machine.get, set_threads=machine.set, **kw)


def test_picks_the_faster_count_either_way():
    for cost, best in (({1: 0.05, 2: 0.09}, 1), ({1: 0.08, 2: 0.05}, 2)):  # within 2x: both fully probed
        m = FakeMachine(cost)
        with make(m, probe_steps=3, recheck_every=1000) as t:
            m.run(t, 50)
            assert t.threads == best
            # probing costs warm-up + 3 steps per candidate, then every step runs on the best
            assert m.history[8:] == [best] * 42
            s = t.summary()
            assert s["threads"] == best and s["tuned"] and len(s["probes"]) == 1
            assert s["probes"][0]["step_ms"] == {"1": pytest.approx(1e3 * cost[1]), "2": pytest.approx(1e3 * cost[2])}
        assert m.threads == 7  # the caller's count is restored


def test_rechecks_and_follows_a_load_change():
    m = FakeMachine({1: 0.05, 2: 0.03})
    t = make(m, probe_steps=2, recheck_every=20, slowdown=100.0)
    m.run(t, 30)
    assert t.threads == 2
    m.cost = {1: 0.05, 2: 0.5}  # two busy processes arrive: 2 threads now spin-wait
    m.run(t, 40)
    assert t.threads == 1
    assert len(t.probes) >= 2 and t.probes[-1]["chosen"] == 1
    t.close()
    assert m.threads == 7


def test_slowdown_triggers_an_early_probe():
    m = FakeMachine({1: 0.05, 2: 0.03})
    t = make(m, probe_steps=3, recheck_every=10_000, slowdown=2.0)
    m.run(t, 20)
    assert t.threads == 2 and len(t.probes) == 1
    m.cost = {1: 0.05, 2: 0.4}
    m.run(t, 3 + 8)  # three slow steps trigger the probe; the probe takes 8 steps
    assert len(t.probes) == 2 and t.threads == 1


def test_ties_prefer_fewer_threads_and_warmup_is_not_counted():
    m = FakeMachine({1: 0.05, 2: 0.05})
    first = {"done": False}
    t = make(m, probe_steps=2, warmup_steps=1)
    for _ in range(10):
        with t.step():
            # the first step after a switch is slow (allocations): it must not decide the choice
            m.now += 5.0 if not first["done"] else m.cost[m.threads]
            first["done"] = True
    assert t.threads == 1


def test_fixed_and_disabled():
    m = FakeMachine({3: 0.1})
    t = make(m, candidates=(3,))
    assert m.threads == 3  # fixed count applied at once, no probing
    m.run(t, 5)
    assert t.summary()["tuned"] is False and t.summary()["threads"] == 3
    t.close()
    assert m.threads == 7
    m2 = FakeMachine({1: 0.1})
    off = ThreadTuner.for_device("cuda", clock=m2.clock, get_threads=m2.get, set_threads=m2.set)
    with off.step():
        pass
    assert off.threads is None and off.summary() == {"threads": None, "tuned": False} and m2.threads == 7


def test_exception_inside_a_step_is_not_counted_and_restores():
    m = FakeMachine({1: 0.05, 2: 0.6})
    t = make(m)
    with pytest.raises(RuntimeError):
        with t.step():
            m.now += 99.0
            raise RuntimeError("boom")
    assert t.steps == 0
    t.close()
    assert m.threads == 7


def test_bad_candidates_and_defaults():
    with pytest.raises(ValueError):
        ThreadTuner(candidates=())
    with pytest.raises(ValueError):
        ThreadTuner(candidates=(0, 1))
    assert default_candidates(2) == (1, 2)
    assert default_candidates(16) == (1, 2, 3, 4)
    assert default_candidates(1) == (1,)


def test_real_torch_count_restored():
    torch = pytest.importorskip("torch")
    before = torch.get_num_threads()
    with ThreadTuner(candidates=(1,)) as t:
        with t.step():
            assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before


def test_a_much_slower_candidate_is_dropped_after_one_step():
    m = FakeMachine({1: 0.05, 2: 0.15})
    t = make(m, probe_steps=3, warmup_steps=1, slowdown=2.0)
    m.run(t, 10)
    # 1: warm-up + 3 timed; 2: warm-up + 1 timed (3x slower: dropped); then 1 thread
    assert m.history[:6] == [1, 1, 1, 1, 2, 2] and m.history[6:] == [1] * 4
    assert t.threads == 1 and t.probes[0]["step_ms"]["2"] == pytest.approx(150.0)


def test_a_far_slower_candidate_is_dropped_after_its_warm_up():
    m = FakeMachine({1: 0.05, 2: 1.0})  # 20x slower (2 threads on a busy 2-core CPU): > 2 x slowdown
    t = make(m, probe_steps=3, warmup_steps=1, slowdown=2.0)
    m.run(t, 10)
    assert m.history[:5] == [1, 1, 1, 1, 2] and m.history[5:] == [1] * 5  # no timed step on 2
    assert t.threads == 1 and t.probes[0]["step_ms"] == {"1": pytest.approx(50.0), "2": pytest.approx(1000.0)}


def test_steps_of_different_size_are_compared_per_unit_of_work():
    m = FakeMachine({1: 0.01, 2: 0.006})  # seconds per unit: 2 threads faster
    t = make(m, probe_steps=2, warmup_steps=0)
    for work in (8, 8, 64, 64):  # 1 thread probed on short steps, 2 on long ones
        with t.step(work=work):
            m.now += m.cost[m.threads] * work
    assert t.threads == 2  # raw step times (0.08 s vs 0.38 s) would pick 1
    assert t.probes[0]["step_ms"] == {"1": pytest.approx(10.0), "2": pytest.approx(6.0)}


def test_a_remembered_choice_skips_the_probe_until_the_load_changes():
    from napari_phase.threads import forget

    forget()
    m = FakeMachine({1: 0.05, 2: 0.5})
    with make(m, probe_steps=2, warmup_steps=1, remember="job") as first:
        m.run(first, 10)
    assert first.threads == 1 and len(first.probes) == 1 and not first.summary()["remembered"]
    m.history.clear()
    with make(m, probe_steps=2, warmup_steps=1, remember="job", slowdown=2.0) as second:
        m.run(second, 5)
        assert m.history == [1] * 5 and second.probes == [] and second.summary()["remembered"]
        m.cost = {1: 0.5, 2: 0.1}  # the load changed: 1 thread is now 10x slower than remembered
        m.run(second, 2 + 6)  # two slow steps trigger the probe (warm-up + 2 timed per candidate)
        assert len(second.probes) == 1 and second.threads == 2
    with make(m, remember="other") as other:  # another key: probes
        assert other.probing
    forget("job")
    with make(m, remember="job") as again:
        assert again.probing
    forget()
