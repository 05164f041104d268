"""Churn as studies model it (p2pzmq/churn.py): session laws, Poisson arrivals, crash share and the schedule, pure.

Each distribution check compares a statistic of a large seeded sample with its closed form, within six standard
deviations of that statistic: the sample mean's is sqrt(variance / n); the sample median's, asymptotically,
1 / (2 f(median) sqrt(n)) with f the density. Seeded, so no check fails by chance; six deviations, so no bound is
fitted to the seed.
"""
from __future__ import annotations

import math
import random
import statistics

import pytest

from p2pzmq import churn
from p2pzmq.churn import ChurnPlan, Newcomer, SessionLaw, parse_arrival, parse_session
from p2pzmq.errors import UsageError

DRAWS = 100_000


@pytest.mark.parametrize("text, law", [
    ("exp:30m", SessionLaw("exp", 1.0, 1800.0)), ("exp:2.5s", SessionLaw("exp", 1.0, 2.5)),
    ("weibull:0.5:1h", SessionLaw("weibull", 0.5, 3600.0)), ("pareto:1.5:10m", SessionLaw("pareto", 1.5, 600.0)),
    ("exp:1d", SessionLaw("exp", 1.0, 86400.0))])
def test_session_laws_parse(text, law):
    assert parse_session(text) == law


@pytest.mark.parametrize("text", ["", "exp", "exp:", "exp:30", "exp:0s", "exp:-1m", "exp:1m:2", "gamma:1:1m",
                                  "weibull:1m", "weibull:0:1m", "weibull:-1:1m", "weibull:nan:1m", "weibull:x:1m",
                                  "pareto:2:0s", "pareto:2:infs", "weibull:1:1m:1", "EXP:1m"])
def test_bad_session_laws_are_refused_with_one_line(text):
    with pytest.raises(UsageError) as caught:
        parse_session(text)
    assert "\n" not in str(caught.value) and "session=" in str(caught.value)


def test_arrivals():
    assert parse_arrival("poisson:0.5") == 0.5 and parse_arrival("poisson:0") == 0
    for text in ("poisson", "poisson:", "poisson:-1", "poisson:nan", "uniform:1", "poisson:1/s", "poisson:inf"):
        with pytest.raises(UsageError, match="arrival="):
            parse_arrival(text)


LAWS = [SessionLaw("exp", 1.0, 600.0), SessionLaw("weibull", 0.6, 1800.0), SessionLaw("weibull", 2.0, 60.0),
        SessionLaw("pareto", 3.0, 120.0), SessionLaw("pareto", 1.5, 300.0), SessionLaw("pareto", 0.8, 60.0)]


@pytest.mark.parametrize("law", LAWS, ids=lambda law: f"{law.kind}-{law.shape}")
def test_session_draws_have_their_closed_form_median_and_mean(law):
    rng = random.Random(f"{law}")
    sample = [law.draw(rng) for _ in range(DRAWS)]
    median_sd = 1 / (2 * law.density(law.median) * math.sqrt(DRAWS))
    assert abs(statistics.median(sample) - law.median) <= 6 * median_sd
    if math.isfinite(law.variance):  # else the sample mean has no standard deviation to bound it with
        assert abs(statistics.fmean(sample) - law.mean) <= 6 * math.sqrt(law.variance / DRAWS)
    assert min(sample) >= (law.scale if law.kind == "pareto" else 0)


def test_closed_forms():
    assert SessionLaw("exp", 1, 10).median == pytest.approx(10 * math.log(2))
    assert SessionLaw("weibull", 1, 10).mean == pytest.approx(10)  # Weibull of shape 1 is exponential
    assert SessionLaw("weibull", 1, 10).variance == pytest.approx(100)
    assert SessionLaw("pareto", 2, 10).mean == 20 and SessionLaw("pareto", 2, 10).variance == math.inf
    assert SessionLaw("pareto", 1, 10).mean == math.inf
    assert SessionLaw("pareto", 3, 10).variance == pytest.approx(100 * 3 / (4 * 1))
    assert SessionLaw("pareto", 3, 10).density(5) == 0


def test_a_session_takes_one_draw_of_the_stream_whatever_the_law():
    for law in LAWS:
        rng, reference = random.Random(1), random.Random(1)
        law.draw(rng)
        reference.random()
        assert rng.getstate() == reference.getstate()


def _plan(seed=3, **changes):
    settings = {"join_rate": 0.5, "leave_rate": 0.0, "crash_fraction": 0.3, "duration": 3600.0, "seed": seed,
                "law": SessionLaw("weibull", 0.7, 600.0)}
    return ChurnPlan(**{**settings, **changes})


def test_the_same_seed_gives_the_same_events_and_another_seed_others():
    peers = list(range(100, 150))
    first = list(churn.events(_plan(), peers, 10.0))
    assert first == list(churn.events(_plan(), peers, 10.0))
    assert first != list(churn.events(_plan(seed=4), peers, 10.0))
    times = [event[0] for event in first]
    assert times == sorted(times) and 10.0 <= times[0] and times[-1] <= 3610.0


def test_every_peer_departs_at_most_once_and_only_after_it_joined():
    peers = list(range(40))
    joined, departed = set(peers), set()
    for _, kind, peer, fate in churn.events(_plan(), peers):
        if kind == "join":
            assert isinstance(peer, Newcomer) and peer not in joined and fate is None
            joined.add(peer)
        else:
            assert peer in joined and peer not in departed and fate in ("killed", "left")
            departed.add(peer)
    assert sorted(peer.index for peer in joined if isinstance(peer, Newcomer)) == list(range(len(joined) - 40))
    assert departed and len(joined) > 40


def test_arrivals_are_poisson_and_crashes_a_share_of_departures():
    rate, duration = 2.0, 20_000.0
    events = list(churn.events(_plan(join_rate=rate, duration=duration, law=SessionLaw("exp", 1, 100.0)), []))
    joins = sum(1 for event in events if event[1] == "join")
    assert abs(joins - rate * duration) <= 6 * math.sqrt(rate * duration)  # a Poisson count: variance = mean
    fates = [event[3] for event in events if event[1] == "depart"]
    crashes = fates.count("killed")
    assert abs(crashes - 0.3 * len(fates)) <= 6 * math.sqrt(len(fates) * 0.3 * 0.7)


def test_without_a_law_sessions_stay_exponential_in_leave_rate():
    plan = ChurnPlan(0.0, 0.01, 0.5, 1e5, seed=2)
    sample = [plan.session() for _ in range(DRAWS)]
    assert abs(statistics.fmean(sample) - 100) <= 6 * 100 / math.sqrt(DRAWS)


def test_no_arrivals_and_no_departures():
    assert list(churn.events(_plan(join_rate=0.0, law=None), [1, 2, 3])) == []
