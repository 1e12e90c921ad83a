"""eegfm._validation: the one "did you mean" of eegfm and eegfm_video."""

import pytest

from eegfm._validation import check_option, check_positive_int, check_weight, did_you_mean, with_guess


def test_did_you_mean_is_a_sentence_or_nothing():
    assert did_you_mean("stpes", ["steps", "lr"]) == " Did you mean 'steps'?"
    assert did_you_mean("xyz", ["steps", "lr"]) == ""
    assert did_you_mean(3, ["3a"]) == " Did you mean '3a'?"  # compared as str


def test_did_you_mean_offers_up_to_n_names_written_by_show():
    assert did_you_mean("Cz", ["CZ", "Cz1", "Cz2"], n=2) == " Did you mean 'Cz2' or 'Cz1'?"  # difflib's order
    assert did_you_mean("train.stepz", ["train.steps"], show=lambda k: f"--{k}") == " Did you mean --train.steps?"


def test_with_guess_is_an_aside():
    assert with_guess("h_frq", ["h_freq", "l_freq"]) == "'h_frq' (did you mean 'h_freq'?)"
    assert with_guess("zzz", ["h_freq"]) == "'zzz'"


def test_checks_name_the_setting_and_the_value():
    with pytest.raises(ValueError, match=r"^mode must be one of \('mean', 'sample'\), got 'mea'\. Did you mean 'mean'\?$"):
        check_option("mode", "mea", ("mean", "sample"))
    with pytest.raises(ValueError, match=r"^steps must be an integer >= 1, got True$"):
        check_positive_int("steps", True)
    with pytest.raises(ValueError, match=r"^weight must be a non-negative finite number, got nan$"):
        check_weight("weight", float("nan"))
    check_option("mode", "mean", ("mean",))
    check_positive_int("steps", 0, minimum=0)
    check_weight("weight", 0)
