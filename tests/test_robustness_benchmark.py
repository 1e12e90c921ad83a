"""benchmarks/robustness.py: the battery of bad inputs and faults runs, classifies every case,
and finds nothing silent beyond the failures it lists as known and open."""

import json

import pytest

from conftest import load_script


def _load():
    return load_script("benchmarks/robustness.py")


@pytest.mark.slow
def test_quick_battery_classifies_every_case_and_nothing_new_is_silent(tmp_path):
    bench = _load()
    report = bench.main(["--quick", "--out", str(tmp_path)])
    rows = report["cases"]
    assert [r["case"] for r in rows] == [c.name for c in bench.CASES]
    assert len({r["case"] for r in rows}) == len(rows)
    for r in rows:
        assert r["category"] in bench.CATEGORIES, r
        assert r["outcome"], r
        if r["category"] in ("clear error", "counted skip", "unclear error"):
            assert r["message"] and "\n" not in r["message"], r
    failures = [r["case"] for r in rows if r["category"] in bench.FAIL_CATEGORIES]
    unknown = [r for r in rows if r["category"] in bench.FAIL_CATEGORIES and r["case"] not in bench.KNOWN_OPEN]
    assert unknown == [], "new silent results or unclear errors (see robustness.md)"
    assert report["summary"]["failures_not_known"] == []
    silent = [r["case"] for r in rows if r["category"] == "silent" and r["case"] not in bench.KNOWN_OPEN]
    assert silent == []
    assert set(bench.KNOWN_OPEN) <= {c.name for c in bench.CASES}
    # the faults ran and left nothing behind; a kill costs at most the steps since the last checkpoint
    by_name = {r["case"]: r for r in rows}
    for name in ("faults/kill-9-during-cache-build", "faults/two-processes-one-cache"):
        assert by_name[name]["category"] == "survived", by_name[name]
    kill = by_name["faults/kill-9-tokenizer-and-resume"]
    assert kill["category"] in ("survived", "skipped"), kill
    if kill["category"] == "survived":
        assert kill["bit_exact"] and 0 <= kill["steps_lost"] <= kill["checkpoint_every"]
    assert by_name["determinism/same-seed"]["category"] == "handled"
    # the written files agree with the returned report
    saved = json.loads((tmp_path / "robustness.json").read_text())
    assert saved["summary"] == json.loads(json.dumps(report["summary"]))
    text = (tmp_path / "robustness.md").read_text()
    assert text.startswith("# Robustness battery") and "Command: `python benchmarks/robustness.py --quick" in text
    assert all(f"`{r['case']}`" in text for r in rows)
    print(f"{len(rows)} cases, {len(failures)} known open: {failures}")


def test_only_filters_cases_and_classifies_a_silent_acceptance(tmp_path, monkeypatch):
    bench = _load()
    report = bench.main(["--only", "encoder/nan-sample", "--out", str(tmp_path)])
    assert [(r["case"], r["category"]) for r in report["cases"]] == [("encoder/nan-sample", "clear error")]
    assert "x[1, 2]" in report["cases"][0]["message"]

    # a case whose input is accepted is reported as silent, with the outcome
    ctx = bench.Context(tmp_path, quick=True)
    row = bench.run_case(bench.Case("demo/silent", "1 + 1", "an error", lambda c: bench.expect_error(
        lambda: 1 + 1, ["x"])), ctx)
    assert row["category"] == "silent" and "accepted" in row["outcome"]
    row = bench.run_case(bench.Case("demo/unclear", "{}['k']", "an error naming k2", lambda c: bench.expect_error(
        lambda: {}["k"], ["k2"], (KeyError,))), ctx)
    assert row["category"] == "unclear error"
    with pytest.raises(SystemExit):
        bench.main(["--only", "no-such-case", "--out", str(tmp_path)])
