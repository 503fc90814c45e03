"""A latency predictor's fit options, chosen per build by cross-validation on its own networks."""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from pathlib import Path

import pytest

from vision_backbones.measure import predictor as predictor_module
from vision_backbones.measure import predictor_fit
from vision_backbones.measure.predictor import KernelPredictor, NetworkSample, fingerprint
from vision_backbones.measure.predictor_build import load_or_build
from vision_backbones.measure.predictor_fit import FIT_CHOICES, FitChoice, choose_fit, held_out_errors


def _errors_by_option(shares: dict[tuple[bool, bool], int]) -> Callable[..., dict[str, list[float]]]:
    """A stand-in for held_out_errors: of 10 networks, ``shares[(alignment, profiler_cost)]`` within ±10 %
    (pooled repeats or not)."""

    def errors(predictor: KernelPredictor, options: dict[str, bool], **_: object) -> dict[str, list[float]]:
        within = shares[(options["alignment"], options["profiler_cost"])] - options["pool_repeats"]
        return {"zoo": [0.01] * within + [0.5] * (10 - within)}

    return errors


def test_the_rule_takes_the_best_share_and_the_simpler_fit_on_a_tie(monkeypatch: pytest.MonkeyPatch) -> None:
    predictor = KernelPredictor(fingerprint())
    monkeypatch.setattr(
        predictor_fit,
        "held_out_errors",
        _errors_by_option({(False, False): 6, (True, False): 8, (False, True): 7, (True, True): 7}),
    )
    chosen = choose_fit(predictor)
    assert chosen.name == "alignment"
    assert chosen.options == {"pool_repeats": False, "alignment": True, "profiler_cost": False}
    assert chosen.shares["alignment"] == 80.0 and chosen.shares["pooled repeats + alignment"] == 70.0
    assert chosen.shares["plain"] == 60.0 and len(chosen.shares) == len(FIT_CHOICES)
    monkeypatch.setattr(
        predictor_fit,
        "held_out_errors",
        _errors_by_option({(False, False): 7, (True, False): 6, (False, True): 7, (True, True): 7}),
    )
    assert choose_fit(predictor).name == "plain"  # a tie goes to the simplest


def _network(
    label: str,
    family: str,
    origin: str,
    rng: random.Random,
    ms_per_10_mmacs: float,
    widths: tuple[int, ...] = (16, 32, 64),
) -> NetworkSample:
    kernels = []
    for _ in range(12):
        c, o, h = rng.choice(widths), rng.choice(widths), rng.choice((8, 16, 32))
        macs = c * o * h * h * 9
        row = [c, o, h, h, 3, 3, 1, 1, 1, 1, macs, c * h * h, o * h * h, o * c * 9, 0.0]
        kernels.append(("conv", [float(v) for v in row], ms_per_10_mmacs * macs / 1e7))
    return NetworkSample(label, family, kernels, sum(ms for _, _, ms in kernels), origin)


def test_held_out_errors_ask_the_benchmarks_two_questions() -> None:
    """Registered family ``slow`` runs its convs 3x slower than the others: predicted without it, it reads
    about a third of its time. Space ``wide``'s members run 3x slower too, on their own widths: each is
    predicted with the space seen through its other members (within 25 %), except the one member of its own
    widths and 9x cost, which no fold without it saw (a fit that saw it would read it right)."""
    rng = random.Random(0)
    predictor = KernelPredictor(fingerprint())
    predictor.samples = [_network(f"n{i}", f"f{i % 3}", "zoo", rng, 1.0) for i in range(30)]
    predictor.samples += [_network(f"z{i}", "slow", "zoo", rng, 3.0, (24, 48, 96)) for i in range(10)]
    predictor.samples += [_network(f"s{i}", "wide", "space:wide", rng, 3.0, (160, 320)) for i in range(9)]
    predictor.samples.append(_network("odd", "wide", "space:wide", rng, 9.0, (240,)))
    errors = held_out_errors(predictor, {"alignment": False, "profiler_cost": False})
    assert sorted(errors) == ["space:wide", "zoo"] and len(errors["space:wide"]) == 10 and len(errors["zoo"]) == 40
    assert max(errors["zoo"][30:]) < -0.5  # family slow, sorted last: never seen
    assert max(abs(e) for e in errors["zoo"][:30]) < 0.25
    assert sum(abs(e) < 0.25 for e in errors["space:wide"]) == 9 and min(errors["space:wide"]) < -0.5  # odd: unseen
    seen = predictor.fit()
    assert all(abs(seen.predict_sample(s) / s.network_ms - 1) < 0.25 for s in predictor.samples[30:])


def test_the_score_weighs_the_registered_models_and_the_space_members_alike() -> None:
    errors = {"zoo": [0.0] * 8 + [0.5] * 2, "space:a": [0.0] * 5 + [0.5] * 5, "space:b": [0.0] * 10}
    assert predictor_fit.score(errors) == pytest.approx((80.0 + 75.0) / 2)
    assert predictor_fit.score({"zoo": [0.0] * 3 + [0.5]}) == 75.0
    with pytest.raises(ValueError, match="no measured build networks"):
        predictor_fit.score({})


def test_a_build_chooses_its_fit_and_an_older_cache_gets_a_choice_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = tmp_path / "kernels.json"

    def tiny() -> KernelPredictor:
        return load_or_build(
            cache, models=["mobilenet_v3_small", "mnasnet0_5"], per_space=0, budget_s=0, image_size=64, synthetic=0
        )

    built = tiny()
    assert built.fit_choice is not None and built.fit_choice.name in FIT_CHOICES
    assert set(built.fit_choice.shares) == set(FIT_CHOICES)
    chosen = {"pool_repeats": built.pool_repeats, "alignment": built.alignment, "profiler_cost": built.profiler_cost}
    assert chosen == built.fit_choice.options
    stored = json.loads(cache.read_text())
    assert stored["fit_choice"]["name"] == built.fit_choice.name
    assert tiny().fit_choice == built.fit_choice  # read back with the cache

    calls: list[str] = []

    def counted(predictor: KernelPredictor) -> FitChoice:
        calls.append("chose")
        name = "pooled repeats + alignment + profiler cost"
        return FitChoice(name, dict(FIT_CHOICES[name]), {}, 0.0)

    monkeypatch.setattr(predictor_module, "choose_fit", counted)
    del stored["fit_choice"]  # a cache written before builds chose their fit
    cache.write_text(json.dumps(stored))
    older = tiny()
    assert calls == ["chose"] and older.alignment and older.profiler_cost and older.pool_repeats
    assert json.loads(cache.read_text())["samples"] == stored["samples"]  # the measurements kept as they were
    assert tiny().fit_choice == older.fit_choice and calls == ["chose"]  # saved: not chosen again
    stored["fit_choice"] = {"name": "plain", "shares": {}}  # chosen by stop 35's rule (no "rule" stored)
    cache.write_text(json.dumps(stored))
    assert tiny().fit_choice == older.fit_choice and calls == ["chose", "chose"]  # chosen again by this rule


def test_a_fit_choice_of_an_unknown_name_is_one_line() -> None:
    with pytest.raises(ValueError, match=r"fit choice 'magic' is not one of \['alignment', "):
        FitChoice.from_json({"name": "magic", "shares": {}})
    with pytest.raises(ValueError, match="unknown fit options"):
        predictor_fit.with_options(KernelPredictor(fingerprint()), {"depth": True})


def test_pooled_repeats_learn_a_configuration_at_the_median_of_every_time_it_was_timed() -> None:
    """One conv configuration timed in five networks at 1, 1, 9, 9, 9 ms (the first two first): pooled, the
    forest learns it at 9 ms; otherwise at the first network's 1 ms (each prediction is blended by the
    forest with its neighbours, fillers at about 0.4 ms)."""
    row = [40.0, 40.0, 16.0, 16.0, 3.0, 3.0, 1.0, 1.0, 1.0, 1.0, 40 * 40 * 256 * 9, 10240.0, 10240.0, 14400.0, 0.0]
    rng = random.Random(0)
    fillers = [_network(f"n{i}", f"f{i % 3}", "zoo", rng, 1.0) for i in range(10)]  # other rows for the forest
    repeated = [
        NetworkSample(f"r{i}", f"g{i}", [("conv", row, ms)], ms) for i, ms in enumerate((1.0, 1.0, 9.0, 9.0, 9.0))
    ]
    predictor = KernelPredictor(fingerprint(), samples=repeated + fillers)
    probe = [("conv", row)]
    first = predictor.fit(kind_scales=False).predict_kernels(probe)[0]
    predictor.pool_repeats = True
    pooled = predictor.fit(kind_scales=False).predict_kernels(probe)[0]
    assert first < 1.5 and pooled > 2 * first
