"""The network model's pure parts (p2pzmq/netmodel.py): parsing, placements, draws, partitions, the tie rule and
latency summaries, against brute force on seeded data.

Statistical checks use bounds of six standard deviations of the statistic, derived from the model's own variance:
the data are seeded, so a check cannot fail by chance, and a bound so derived is not fitted to one seed.
"""
from __future__ import annotations

import heapq
import math
import random
import statistics
from fractions import Fraction

import pytest

from p2pzmq import netmodel
from p2pzmq.errors import UsageError
from p2pzmq.netmodel import Model, parse_latency


@pytest.mark.parametrize("text, seconds", [("250us", 250e-6), ("50ms", 0.05), ("1.5s", 1.5), ("0ms", 0.0),
                                           (".5s", 0.5), ("2e3us", 2e-3), ("7.s", 7.0)])
def test_durations_carry_a_unit(text, seconds):
    assert netmodel.parse_duration(text, "x") == pytest.approx(seconds, rel=1e-12)


@pytest.mark.parametrize("text", ["50", "-5ms", "nanms", "infs", "1e400s", "5 ms", "5MS", "5m", "", "ms", "5ms5",
                                  "+5ms", "0x10ms"])
def test_durations_without_a_unit_or_not_finite_or_negative_are_refused(text):
    with pytest.raises(UsageError) as caught:
        netmodel.parse_duration(text, "--latency constant:" + text)
    assert "\n" not in str(caught.value) and "--latency" in str(caught.value)


def test_session_durations_also_take_minutes_hours_and_days():
    assert netmodel.parse_duration("30m", "x", netmodel.SESSION_UNITS) == 1800
    assert netmodel.parse_duration("2h", "x", netmodel.SESSION_UNITS) == 7200
    assert netmodel.parse_duration("1d", "x", netmodel.SESSION_UNITS) == 86400


def test_every_model_parses():
    assert parse_latency("none") is netmodel.NONE
    constant = parse_latency("constant:50ms")
    assert (constant.kind, constant.low, constant.high) == ("constant", 0.05, 0.05)
    uniform = parse_latency("uniform:1ms:2ms")
    assert (uniform.low, uniform.high) == (0.001, 0.002)
    assert parse_latency("uniform:3ms:3ms").high == 0.003
    lognormal = parse_latency("lognormal:80ms:0.6")
    assert (lognormal.median, lognormal.sigma) == (0.08, 0.6)
    coords = parse_latency("coords:10ms:100ms")
    assert (coords.base, coords.span) == (0.01, 0.1)
    assert constant.text == "constant:50ms"


@pytest.mark.parametrize("text", ["", "nothing", "none:1ms", "constant", "constant:", "constant:1ms:2ms",
                                  "uniform:2ms:1ms", "uniform:1ms", "lognormal:0ms:1", "lognormal:5ms:-1",
                                  "lognormal:5ms:nan", "lognormal:5ms:1ms", "coords:1ms", "coords:-1ms:1ms",
                                  "constant:inf", "constant:50", "matrix:", "CONSTANT:1ms"])
def test_bad_models_are_refused_with_one_line(text):
    with pytest.raises(UsageError) as caught:
        parse_latency(text)
    assert "\n" not in str(caught.value)


def _write(tmp_path, text, name="sites.csv"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_a_matrix_file_gives_sites_and_delays_in_seconds(tmp_path):
    model = parse_latency("matrix:" + _write(tmp_path, "ams, nyc,tok\n0,40,120\n40,0,90.5\n120,90.5,0\n"))
    assert model.sites == ("ams", "nyc", "tok")
    assert model.delays[1] == (0.04, 0.0, 0.0905)


def test_a_matrix_path_may_hold_colons(tmp_path):
    assert parse_latency("matrix:" + _write(tmp_path, "a\n5\n", "a:b.csv")).delays == ((0.005,),)


@pytest.mark.parametrize("text, says", [
    ("", "empty"), ("\n\n", "empty"), ("a,b\n0,1\n", "not square"), ("a,b\n0,1\n1\n", "not square"),
    ("a,b\n0,1\n1,0\n2,2\n", "not square"), ("a,b\n0,x\n1,0\n", "not a non-negative number"),
    ("a,b\n0,-1\n1,0\n", "not a non-negative number"), ("a,b\n0,nan\n1,0\n", "not a non-negative number"),
    ("a,b\n0,inf\n1,0\n", "not a non-negative number"), ("a,a\n0,1\n1,0\n", "each site once"),
    ("a,\n0,1\n1,0\n", "each site once")])
def test_bad_matrix_files_are_refused_with_one_line(tmp_path, text, says):
    with pytest.raises(UsageError, match=says) as caught:
        parse_latency("matrix:" + _write(tmp_path, text))
    assert "\n" not in str(caught.value)


def test_a_missing_or_binary_matrix_file_is_refused(tmp_path):
    with pytest.raises(UsageError, match="cannot read"):
        parse_latency(f"matrix:{tmp_path}/absent.csv")
    (tmp_path / "bin.csv").write_bytes(b"\xff\xfe\x00")
    with pytest.raises(UsageError, match="not a text"):
        parse_latency(f"matrix:{tmp_path}/bin.csv")


@pytest.mark.parametrize("parse", [netmodel.parse_jitter, netmodel.parse_loss])
def test_jitter_and_loss_are_from_0_to_below_1(parse):
    assert parse("0") == 0 and parse("0.25") == 0.25 and parse("0.999") == 0.999
    for text in ("1", "1.0", "-0.1", "nan", "inf", "", "abc", "5%", "0.1ms"):
        with pytest.raises(UsageError):
            parse(text)


def test_clocks():
    assert netmodel.parse_clock("virtual") == "virtual" and netmodel.parse_clock("real") == "real"
    with pytest.raises(UsageError, match="virtual or real"):
        netmodel.parse_clock("wall")


# -- placements and draws --------------------------------------------------------------------------------------


def _ids(count, seed=7):
    rng = random.Random(seed)
    return [rng.getrandbits(160) for _ in range(count)]


@pytest.mark.parametrize("text", ["coords:5ms:100ms", "matrix"])
def test_a_place_depends_on_the_id_and_seed_not_on_the_order(tmp_path, text):
    if text == "matrix":
        text = "matrix:" + _write(tmp_path, "a,b,c\n0,1,2\n1,0,3\n2,3,0\n")
    latency = parse_latency(text)
    ids = _ids(300)
    forward, backward = Model(latency, seed=11), Model(latency, seed=11)
    places = [forward.place(peer) for peer in ids]
    assert [backward.place(peer) for peer in reversed(ids)] == places[::-1]
    assert Model(latency, seed=11).place(ids[150]) == places[150]  # alone, first
    other = [Model(latency, seed=12).place(peer) for peer in ids]
    assert sum(a != b for a, b in zip(places, other)) > 150
    if latency.kind == "coords":
        assert all(0 <= x < 1 and 0 <= y < 1 for x, y in places)
        assert len(set(places)) == len(places)
    else:
        counts = [places.count(site) for site in range(3)]  # binomial(300, 1/3): mean 100, sd 8.2
        assert all(abs(count - 100) <= 6 * math.sqrt(300 * 1 / 3 * 2 / 3) for count in counts)


def test_models_without_places_place_nothing():
    assert Model(parse_latency("constant:1ms"), seed=1).place(5) is None


def test_the_same_seed_gives_the_same_draws_and_each_message_takes_three():
    latency = parse_latency("lognormal:40ms:0.8")
    first, second = Model(latency, 0.2, 0.1, seed=5), Model(latency, 0.2, 0.1, seed=5)
    pairs = [(random.Random(n).getrandbits(160), random.Random(-n).getrandbits(160)) for n in range(500)]
    assert [first.draw(*pair) for pair in pairs] == [second.draw(*pair) for pair in pairs]
    assert [first.draw(1, 2) for _ in range(50)] != [Model(latency, 0.2, 0.1, seed=6).draw(1, 2) for _ in range(50)]
    constant = Model(parse_latency("constant:1ms"), seed=9)
    reference = random.Random("p2pzmq-messages:9")
    for _ in range(7):
        constant.draw(1, 2)
        for _ in range(3):
            reference.random()
        assert constant.getstate() == reference.getstate()


def test_a_restored_stream_goes_on_as_the_saved_one():
    model = Model(parse_latency("uniform:1ms:9ms"), 0.3, 0.2, seed=4)
    model.draw(1, 2)
    state = model.getstate()
    ahead = [model.draw(3, 4) for _ in range(20)]
    model.setstate(state)
    assert [model.draw(3, 4) for _ in range(20)] == ahead


def test_loss_is_drawn_with_probability_p():
    draws = 40_000
    for loss in (0.01, 0.1, 0.5):
        model = Model(parse_latency("constant:1ms"), loss=loss, seed=3)
        lost = sum(model.draw(1, 2) is None for _ in range(draws))
        assert abs(lost - draws * loss) <= 6 * math.sqrt(draws * loss * (1 - loss))
    assert all(Model(netmodel.NONE, seed=3).draw(1, 2) == 0.0 for _ in range(100))


def test_jitter_multiplies_by_a_uniform_draw_in_1_minus_f_to_1_plus_f():
    draws, jitter = 20_000, 0.25
    model = Model(parse_latency("constant:10ms"), jitter, seed=8)
    factors = [model.draw(1, 2) / 0.01 for _ in range(draws)]
    assert min(factors) >= 1 - jitter and max(factors) <= 1 + jitter
    assert min(factors) < 1 - jitter + 0.001 and max(factors) > 1 + jitter - 0.001
    sd = 2 * jitter / math.sqrt(12)  # of a uniform draw of width 2F
    assert abs(statistics.fmean(factors) - 1) <= 6 * sd / math.sqrt(draws)


def test_uniform_delays_cover_lo_to_hi():
    draws = 20_000
    model = Model(parse_latency("uniform:2ms:6ms"), seed=1)
    delays = [model.draw(1, 2) for _ in range(draws)]
    assert 0.002 <= min(delays) < 0.0021 and 0.0059 < max(delays) <= 0.006
    assert abs(statistics.fmean(delays) - 0.004) <= 6 * (0.004 / math.sqrt(12)) / math.sqrt(draws)


def test_lognormal_delays_have_the_median_and_sigma_asked_for():
    draws, median, sigma = 40_000, 0.05, 0.7
    model = Model(parse_latency(f"lognormal:50ms:{sigma}"), seed=2)
    logs = [math.log(model.draw(1, 2) / median) for _ in range(draws)]
    # log(delay / median) is normal(0, sigma): its mean has sd sigma/sqrt(n), its variance sd sigma²·sqrt(2/(n-1))
    assert abs(statistics.fmean(logs)) <= 6 * sigma / math.sqrt(draws)
    assert abs(statistics.variance(logs) - sigma ** 2) <= 6 * sigma ** 2 * math.sqrt(2 / (draws - 1))


def test_coords_and_matrix_delays_follow_the_places(tmp_path):
    ids = _ids(40)
    coords = Model(parse_latency("coords:5ms:100ms"), seed=3)
    for a, b in zip(ids, ids[1:] + ids[:1]):
        (ax, ay), (bx, by) = coords.place(a), coords.place(b)
        assert coords.draw(a, b) == pytest.approx(0.005 + 0.1 * math.sqrt((ax - bx) ** 2 + (ay - by) ** 2))
    rows = [[(i * 7 + j * 3) % 11 for j in range(4)] for i in range(4)]
    text = "w,x,y,z\n" + "".join(",".join(map(str, row)) + "\n" for row in rows)
    matrix = Model(parse_latency("matrix:" + _write(tmp_path, text)), seed=3)
    for a, b in zip(ids, ids[1:] + ids[:1]):
        assert matrix.draw(a, b) == rows[matrix.place(a)][matrix.place(b)] / 1000


# -- partitions ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("count, k", [(2, 2), (10, 3), (97, 5), (100, 100)])
def test_groups_are_balanced_complete_and_independent_of_order(count, k):
    ids = _ids(count, seed=count)
    partition = netmodel.partition_groups(ids, k, seed=4)
    assert set(partition.groups) == set(ids) and set(partition.groups.values()) == set(range(k))
    sizes = partition.sizes()
    assert sum(sizes) == count and max(sizes) - min(sizes) <= 1
    assert netmodel.partition_groups(list(reversed(ids)), k, seed=4) == partition
    for a in ids[:20]:
        for b in ids[:20]:
            assert partition.blocked(a, b) == (partition.groups[a] != partition.groups[b])


def test_a_partition_seed_changes_the_split_and_newcomers_are_in_group_0():
    ids = _ids(50)
    assert netmodel.partition_groups(ids, 2, 1) != netmodel.partition_groups(ids, 2, 2)
    partition = netmodel.partition_groups(ids, 2, 1)
    newcomer = 12345
    assert partition.group(newcomer) == 0
    assert all(partition.blocked(newcomer, peer) == (partition.groups[peer] == 1) for peer in ids)


def test_partition_ids_cuts_the_chosen_from_the_rest():
    ids = _ids(10)
    partition = netmodel.partition_ids(ids, ids[:3])
    assert partition.sizes() == [7, 3]
    assert partition.blocked(ids[0], ids[5]) and not partition.blocked(ids[0], ids[1])
    assert not partition.blocked(ids[5], ids[6])


@pytest.mark.parametrize("make, says", [
    (lambda ids: netmodel.partition_ids(ids, [ids[0], 42]), "no peer has id 42"),
    (lambda ids: netmodel.partition_ids(ids, [41, 42]), r"no peer has id 41 \(and 1 more\)"),
    (lambda ids: netmodel.partition_ids(ids, ids), "some peers but not all"),
    (lambda ids: netmodel.partition_ids(ids, []), "some peers but not all"),
    (lambda ids: netmodel.partition_groups(ids, 1), "from 2"),
    (lambda ids: netmodel.partition_groups(ids, 11), "from 2"),
    (lambda ids: netmodel.partition_groups(ids, 2.0), "from 2")])
def test_bad_partitions_are_refused(make, says):
    with pytest.raises(UsageError, match=says):
        make(_ids(10))


# -- the tie rule ----------------------------------------------------------------------------------------------


def test_ticks_make_equal_times_equal_however_they_were_summed():
    assert 0.1 + 0.2 != 0.3 and netmodel.ticks(0.1 + 0.2) == netmodel.ticks(0.3)


def test_deliveries_come_by_time_then_sender_then_send_order_whatever_order_they_are_queued_in():
    rng = random.Random(13)
    senders = [rng.getrandbits(160) for _ in range(6)]
    sent = [(rng.choice((0.001, 0.002, 0.003)), rng.choice(senders)) for _ in range(400)]  # many ties
    order = netmodel.DeliveryOrder()
    keyed = [(order.key(due, sender), index) for index, (due, sender) in enumerate(sent)]
    queue = list(keyed)
    rng.shuffle(queue)
    heapq.heapify(queue)
    delivered = [heapq.heappop(queue)[1] for _ in range(len(queue))]

    def brute(index):
        due, sender = sent[index]
        return (round(due * 10 ** 9), sender, sum(1 for earlier in sent[:index] if earlier[1] == sender))

    assert delivered == sorted(range(len(sent)), key=brute)
    assert len({key for key, _ in keyed}) == len(sent)


# -- latency summaries -----------------------------------------------------------------------------------------


def _brute_percentile(values, p):
    return min(v for v in values if Fraction(sum(1 for w in values if w <= v), len(values)) >= Fraction(p, 100))


@pytest.mark.parametrize("seed", range(30))
def test_summaries_agree_with_brute_force(seed):
    rng = random.Random(seed)
    size = rng.choice([1, 2, 3, 9, 10, 11, 99, 100, 101, rng.randint(1, 400)])
    pick = rng.choice([lambda: rng.expovariate(20), lambda: rng.choice([0.001, 0.002, 0.01]),
                       lambda: rng.lognormvariate(-3, 2), lambda: rng.uniform(0, 1e-4)])
    seconds = [pick() for _ in range(size)]
    summary = netmodel.summarize(seconds)
    ms = [value * 1000 for value in seconds]
    assert summary["unit"] == "ms" and summary["count"] == size
    assert summary["mean"] == round(statistics.fmean(ms), 3)
    for p in (50, 90, 99):
        assert summary[f"p{p}"] == round(_brute_percentile(ms, p), 3)
    assert summary["max"] == round(max(ms), 3)
    buckets = summary["histogram"]
    assert sum(bucket["count"] for bucket in buckets) == size
    assert buckets[0]["count"] and buckets[-1]["count"]
    for bucket in buckets:
        assert bucket["count"] == sum(1 for value in ms if bucket["from"] <= value < bucket["to"])
        assert bucket["from"] in netmodel.HISTOGRAM_EDGES_MS
    assert all(a["to"] == b["from"] for a, b in zip(buckets, buckets[1:]))


def test_an_empty_summary_and_bad_samples():
    assert netmodel.summarize([]) == {"unit": "ms", "count": 0, "mean": None, "p50": None, "p90": None,
                                      "p99": None, "max": None, "histogram": []}
    for bad in ([-0.001], [math.nan], [0.1, math.inf], [0.1, math.nan, 0.2]):
        with pytest.raises(ValueError):
            netmodel.summarize(bad)


def test_a_histogram_reaches_beyond_its_table():
    buckets = netmodel.summarize([1e6])["histogram"]
    assert buckets[-1]["from"] <= 1e9 < buckets[-1]["to"] and buckets[-1]["count"] == 1
