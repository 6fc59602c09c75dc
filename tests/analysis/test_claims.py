"""The verdict rules (pure functions) and the claims report on fixtures with a known verdict."""

from __future__ import annotations

import numpy as np
import pytest

from normlab.analysis import claims, stats
from normlab.analysis.tidy import write_tidy
from normlab.cli import main

from .synthetic_tidy import synthetic_tidy


def test_setting_outcome():
    assert claims.setting_outcome(5, +1.0, 0.001) == "better"
    assert claims.setting_outcome(5, -1.0, 0.001) == "worse"
    assert claims.setting_outcome(5, +1.0, 0.2) == "tie"
    assert claims.setting_outcome(2, +1.0, 0.001) == "untested"  # too few seeds for a verdict
    assert claims.setting_outcome(5, 0.0, float("nan")) == "untested"


def test_fraction_verdict_bounds():
    ok, bad = {"better"}, {"worse"}
    assert claims.fraction_verdict(["better"] * 3, ok, bad, 0.5, strict=True)[0] == "supported"
    assert claims.fraction_verdict(["worse"] * 3, ok, bad, 0.5, strict=True)[0] == "contradicted"
    # ties are neither for a "beats" claim: low power is inconclusive, not a contradiction
    assert claims.fraction_verdict(["tie"] * 3, ok, bad, 0.5, strict=True)[0] == "inconclusive"
    # 17 of 20: 2 failures leave it reachable, 4 do not
    outcomes = ["better"] * 16 + ["worse"] * 2 + ["untested"] * 2
    assert claims.fraction_verdict(outcomes, {"better", "tie"}, bad, 0.85)[0] == "inconclusive"
    outcomes = ["better"] * 16 + ["worse"] * 4
    assert claims.fraction_verdict(outcomes, {"better", "tie"}, bad, 0.85)[0] == "contradicted"
    assert claims.fraction_verdict(["better"] * 17 + ["worse"] * 3, {"better"}, bad, 0.85)[0] == "supported"
    assert claims.fraction_verdict([], ok, bad, 0.5)[0] == "inconclusive"


def test_one_sample_side_and_correlation_verdict():
    assert claims.one_sample_side(np.log([3.0, 3.2, 2.9, 3.1]), np.log(2)) == "above"
    assert claims.one_sample_side(np.log([1.0, 1.1, 0.9, 1.05]), np.log(2)) == "below"
    assert claims.one_sample_side(np.log([1.0, 4.0, 1.5]), np.log(2)) == "unknown"
    assert claims.one_sample_side(np.array([1.0, 1.0, 1.0]), 0.0) == "unknown"  # no variance, no test
    assert claims.correlation_verdict(0.9, 0.01, 0.5, 1.0, 6)[0] == "supported"
    assert claims.correlation_verdict(-0.9, 0.01, -1.0, -0.5, 6)[0] == "contradicted"
    assert claims.correlation_verdict(0.9, 0.01, 0.5, 1.0, 4)[0] == "inconclusive"  # too few datasets
    assert claims.correlation_verdict(0.3, 0.4, -0.5, 0.8, 8)[0] == "inconclusive"


def _verdicts(**fixture):
    tidy = synthetic_tidy(**fixture)
    return {r.id: r for r in claims.evaluate(tidy, stats.compute(tidy))}


def test_supported_fixture():
    status = {("ds_tr", "post", "bn", 5): "diverged", ("ds_tr", "post", "rbn", 4): "missing"}
    res = _verdicts(effects={("rbn", None, None): 1.0, ("adanorm", None, None): 1.0, ("bn", "ds_tr", None): -1.0,
                             ("detachnorm", None, None): -1.0},
                    batch_stats_gain={"bn": 0.9}, tid_level={"ds_tr": 4.0, "ds_cls": 3.0, "ds_lm": 1.0},
                    tid_growth={"ds_tr": 3.0, "ds_cls": 3.0}, cond_factor={"rbn": 0.5},
                    train_loss_effects={"ln": -0.3, "bn": -0.3}, valid_loss_effects={"ln": 0.3}, status=status)
    for cid in ("A1", "A2", "A3", "A6", "A7", "A8", "A9", "B2", "B4", "B5"):
        assert res[cid].verdict == "supported", (cid, res[cid].reason)
    assert (res["A7"].n_missing, res["A7"].n_diverged) == (1, 1)  # failed runs are counted in the evidence
    assert res["A7"].n_seeds == "3–5" and res["A7"].n_settings == 6
    assert "17 of 20" in res["A8"].published
    assert any("floor" in e and "structure" in e and "lag" in e for e in res["A6"].evidence)
    assert res["A10"].verdict == "inconclusive" and "test" in res["A10"].reason
    assert res["B3"].verdict == "supported" and res["B3"].n_settings == 4  # measured on our layers
    assert res["A4"].verdict == "inconclusive"  # 3 datasets cannot carry a rank correlation


def test_contradicted_fixture():
    res = _verdicts(effects={("rbn", None, None): -1.0, ("adanorm", None, None): -1.0, ("bn", "ds_lm", None): -1.0,
                             ("detachnorm", None, None): 1.0, ("ln_simple", None, None): -1.0},
                    tid_level={"ds_tr": 1.0, "ds_cls": 1.0, "ds_lm": 4.0}, tid_growth={"ds_lm": 3.0},
                    cond_factor={"rbn": 2.0}, train_loss_effects={"ln": 0.3}, valid_loss_effects={"ln": -0.3})
    for cid in ("A2", "A3", "A5", "A7", "A8", "A9", "B1", "B2", "B4", "B5"):
        assert res[cid].verdict == "contradicted", (cid, res[cid].reason)


def test_no_effect_and_few_seeds_are_inconclusive():
    res = _verdicts(seeds=(1, 2))
    for cid in ("A5", "A7", "B1", "B5"):
        assert res[cid].verdict == "inconclusive", cid
    assert "no significant BN deficit" in res["A1"].reason or res["A1"].verdict == "inconclusive"


def test_image_claims_without_image_runs_say_why():
    res = _verdicts(datasets={"ds_tr": ("translation", "bleu", 30.0, 1.0)}, seeds=(1, 2, 3))
    assert res["A5"].verdict == "inconclusive" and "image, lm" in res["A5"].reason
    assert res["A2"].verdict == "inconclusive" and "no BN runs" in res["A2"].reason


def test_command_writes_the_report(tmp_path):
    tidy = synthetic_tidy(seeds=(1, 2, 3), status={("ds_tr", "pre", "ln", 1): "missing"})
    write_tidy(tidy, tmp_path / "tidy")
    assert main(["stats", "--tidy", str(tmp_path / "tidy"), "--out", str(tmp_path / "stats")]) == 0
    out = tmp_path / "paper_tables" / "claims.md"
    assert main(["claims", "--tidy", str(tmp_path / "tidy"), "--stats", str(tmp_path / "stats"),
                 "--out", str(out)]) == 0
    text = out.read_text()
    assert "Verdict rules" in text and "config test (laptop)" in text and "1 missing" in text
    for cid in list(claims.CLAIM_TEXT):
        assert f"| {cid} |" in text
    assert out.with_suffix(".csv").is_file()


@pytest.mark.parametrize("cid", sorted(claims.CLAIM_TEXT))
def test_every_claim_of_claims_md_has_a_text(cid):
    assert claims.CLAIM_TEXT[cid]


def test_b3_is_contradicted_when_a_statement_fails():
    from normlab.analysis.claims import claim_b3
    from normlab.norms.theory import gradient_theorem_check

    # RMSNorm in LN-simple's place: its gradient does not have zero mean
    bad = gradient_theorem_check(trials=20, statements=(("LN-simple", "rmsnorm", {}, "zero", "le"),))
    res = claim_b3(gradient_theorem_check(trials=20) + bad)
    assert res.verdict == "contradicted" and "LN-simple" in res.reason
    assert sum("FAILS" in e for e in res.evidence) == 1
