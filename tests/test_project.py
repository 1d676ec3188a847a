"""Projections that know their limits: the worse-than-uniform crossing, the cap, the critical data size."""

import math

import numpy as np
import pytest

from qid.laws.registry import get_law
from qid.laws.projection import capped_qid, critical_data_size, critical_data_table, uniform_guess_loss, worse_than_uniform_crossing

UNIFIED = get_law("ouyang_unified")
PUBLISHED = UNIFIED.parameter_sets["published"].values
LOSS16 = get_law("pythia_loss16")
LOSS16_PUBLISHED = LOSS16.parameter_sets["published"].values
PYTHIA_VOCAB = 50_304


def laws_at(N, P):
    return (lambda D: LOSS16(LOSS16_PUBLISHED, N=N, D=D)), (lambda D: UNIFIED(PUBLISHED, N=N, D=D, P=P))


@pytest.mark.parametrize("P, expected", [(2, 3.06e12), (3, 2.13e14)])
def test_crossing_is_searched_from_the_minimum_not_from_an_untrained_model(P, expected):
    loss16, qid = laws_at(7e9, P)
    crossing = worse_than_uniform_crossing(loss16, qid, PYTHIA_VOCAB)
    assert crossing == pytest.approx(expected, rel=0.01)
    bound = uniform_guess_loss(PYTHIA_VOCAB)
    assert loss16(crossing) + qid(crossing) == pytest.approx(bound, abs=1e-8)
    assert loss16(1e6) > bound  # a scan from 1e6 tokens would stop at once: the old chapter-01 bug


def test_critical_data_size_is_where_the_quantized_loss_stops_falling():
    loss16, qid = laws_at(7e9, 3)
    tokens, lowest = critical_data_size(loss16, qid)
    assert lowest == pytest.approx(loss16(tokens) + qid(tokens))
    for factor in (0.9, 1.1):
        assert loss16(tokens * factor) + qid(tokens * factor) > lowest
    table = critical_data_table({"unified": (lambda N, D: LOSS16(LOSS16_PUBLISHED, N=N, D=D),
                                             lambda N, D, P: UNIFIED(PUBLISHED, N=N, D=D, P=P))}, {"7B": 7e9}, [2, 3, 4])
    assert list(table["D_star"].diff().dropna() > 0) == [True, True]  # fewer bits: the minimum comes earlier
    assert table.loc[table["bits"] == 3, "D_star"].iloc[0] == pytest.approx(tokens, rel=1e-6)


def test_cap_never_exceeds_ln_v_and_flags_what_it_capped():
    loss16 = np.array([3.0, 3.0])
    qid = np.array([0.5, 8300.0])
    capped, flagged = capped_qid(loss16, qid, 1024)
    assert list(flagged) == [False, True]
    assert capped[1] == pytest.approx(math.log(1024) - 3.0) and capped[0] == 0.5
