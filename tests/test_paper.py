"""The transcribed paper tables (data/paper/*.json, robustbook.paper): schema, spot checks
against the paper texts (expected values typed from ../shared/papers, not from the JSON),
and internal consistency."""

import math

import pytest

from robustbook import paper

EXPECTED_KEYS = {
    "fpr_table1", "fpr_table2", "fpr_table3", "fpr_table4", "fpr_table5",
    "fpr_ijcai_table1", "fpr_ijcai_table2", "fpr_table6", "fpr_attention",
    "aelf_table2", "aelf_table3", "aelf_table4", "aelf_table5", "aelf_table6",
    "rlfat_table1a", "rlfat_table1b", "rlfat_table1c", "rlfat_table2a", "rlfat_table2b",
}
# tables whose columns are not (natural, robust) accuracies
NO_NATURAL_PAIRS = {"fpr_table4", "fpr_table6", "fpr_attention", "rlfat_table2a", "rlfat_table2b"}


def test_every_expected_table_exists():
    assert set(paper.keys()) == EXPECTED_KEYS


@pytest.mark.parametrize("key", sorted(EXPECTED_KEYS))
def test_schema(key):
    d = paper.load(key)
    assert d["key"] == key
    ijcai = key.startswith("fpr_ijcai") or key in ("fpr_table6", "fpr_attention")
    expected_paper = "FP&R (IJCAI)" if ijcai else {"fpr": "FP&R", "aelf": "AELF", "rlfat": "RLFAT"}[key.split("_")[0]]
    assert d["paper"] == expected_paper
    assert d["source"].split(" ")[0].endswith(".txt") and ("Table" in d["source"] or "Section" in d["source"])
    assert d["unit"] == ("gradient_norm" if key.startswith("rlfat_table2") else "percent")
    assert d["claims"] and d["rows"] and d["columns"]
    for row in d["rows"]:
        assert list(row["values"]) == d["columns"]
        assert "label" in row, f"{key}: row {row['method']!r} has no label"
        if row.get("uncertain"):
            assert row.get("note"), f"{key}: uncertain row {row['method']!r} needs a note"
        for v in row["values"].values():
            if v is not None and d["unit"] == "percent":
                assert 0.0 <= v <= 100.0
            if v is not None:
                assert math.isfinite(v) and v >= 0
    if key not in NO_NATURAL_PAIRS:
        assert d.get("natural_of"), f"{key}: robust columns need natural_of"
    assert paper.as_frame(key).shape == (len(d["rows"]), len(d["columns"]))


def test_unknown_key_lists_available():
    with pytest.raises(ValueError, match="fpr_table2"):
        paper.load("fpr_table99")


def test_load_returns_copies():
    paper.load("fpr_table1")["rows"].clear()
    assert paper.load("fpr_table1")["rows"]


def test_value_lookup_by_label_method_and_method_key():
    assert paper.value("fpr_ijcai_table2", "Madry et al.", "Natural") == 80.79  # paper row name
    assert paper.value("fpr_ijcai_table2", "Madry et al. (2017)", "Natural") == 80.79  # our label
    assert paper.value("rlfat_table1b", "rlfat_t", "PGD") == 58.75  # unique method_key
    with pytest.raises(KeyError, match="several"):
        paper.value("aelf_table3", "jt", "N")
    with pytest.raises(KeyError, match="unknown column"):
        paper.value("fpr_table1", "AT-reg", "Robust")
    with pytest.raises(KeyError, match="several"):
        paper.value("aelf_table4", "TR^{λ=3}", "Natural")  # printed twice: reported by two works
    with pytest.raises(KeyError, match="no row"):
        paper.value("fpr_table1", "TRADES", "Natural")
    assert paper.value("aelf_table4", "AELFs", "A*(0.031)") is None
    assert math.isnan(paper.as_frame("aelf_table4").loc["AELFs", "A*(0.031)"])


# (key, row, column, value as printed in the paper text)
SPOT = [
    # FP&R conference (001_...)
    ("fpr_table1", "Madry et al. (2017)", "Natural", 98.72),
    ("fpr_table1", "AT-reg", "White box", 95.69),
    ("fpr_table1", "AT-reg", "Black box", 96.90),
    ("fpr_table2", "Madry et al. (2017)", "Natural", 80.79),
    ("fpr_table2", "AT-att-reg", "White box, PGD 20 steps", 44.58),
    ("fpr_table2", "AT-att", "Natural", 82.75),
    ("fpr_table2", "AT-reg", "White box, CW 100 steps", 42.87),
    ("fpr_table2", "AT-att", "Black box, CW 100 steps", 58.13),
    ("fpr_table3", "AT-att", "Natural", 86.48),
    ("fpr_table3", "AT-att-reg", "White box, PGD 5 steps", 53.23),
    ("fpr_table3", "Madry et al. (2017)", "Black box, PGD 200 steps", 62.73),
    ("fpr_table4", "Madry et al. (2017)", "With clipping, Test data", 26.78),
    ("fpr_table4", "Ours (AT-att-reg)", "Without clipping, Test data", 31.59),
    ("fpr_table5", "AT-reg", "Natural", 49.53),
    ("fpr_table5", "AT-att-reg", "Black box, CW 30 steps", 29.81),
    ("fpr_table5", "Madry et al. (2017)", "White box, PGD 20 steps", 19.65),
    # FP&R IJCAI (000_...)
    ("fpr_ijcai_table1", "AT-reg", "Natural", 98.97),
    ("fpr_ijcai_table1", "AT-reg", "White box", 95.95),
    ("fpr_ijcai_table1", "AT-reg", "Transfer", 96.90),
    ("fpr_ijcai_table2", "AT-att-reg", "Natural", 81.20),
    ("fpr_ijcai_table2", "AT-att-reg", "White, PGD 5", 53.38),
    ("fpr_ijcai_table2", "AT-att-reg", "White, PGD 20", 45.20),
    ("fpr_ijcai_table2", "AT-att", "Natural", 82.43),
    ("fpr_ijcai_table2", "AT-att", "White, PGD 100", 40.85),
    ("fpr_table6", "AT-reg", "CW 30", 42.96),
    ("fpr_table6", "ALP", "CW 30", 39.17),
    ("fpr_table6", "ALP", "CW 100", 39.15),
    ("fpr_attention", "natural, non-linear attention", "Natural", 92.87),
    ("fpr_attention", "natural, linear attention", "Natural", 91.34),
    # AELF (004_... / 002_...)
    ("aelf_table2", "AELFs", "natural N(U)", 75.33),
    ("aelf_table2", "AT", "adversarial N(U)", 27.08),
    ("aelf_table2", "ST", "natural N", 99.54),
    ("aelf_table2", "JT", "adversarial N(R)", 68.77),
    ("aelf_table3", "ST", "N", 92.08),
    ("aelf_table3", "AT (Madry)", "N", 81.16),
    ("aelf_table3", "JT 0.6:0.4", "N", 84.85),
    ("aelf_table3", "JT* 0.5:0.5", "A*(10)", 41.35),
    ("aelf_table3", "TRADES beta=3", "A*(5)", 44.93),
    ("aelf_table3", "AELFs 0.4:0.6", "A*(5)", 45.90),
    ("aelf_table3", "AELFs 0.6:0.4", "A*(10)", 40.07),
    ("aelf_table4", "AELFs", "A*(0.031) without random start", 55.39),
    ("aelf_table4", "AELFs* (LeakyReLU)", "A*(0.031) with random start", 56.80),
    ("aelf_table4", "ST", "Natural", 95.33),
    ("aelf_table4", "LLR (Qin et al., 2019)", "A*(0.031)", 22.05),
    ("aelf_table5", "AELFs* (LeakyReLU)", "A*(0.03)", 27.11),
    ("aelf_table5", "ST", "Natural", 80.27),
    ("aelf_table6", "AELFs", "adversarial N(U)", 48.68),
    ("aelf_table6", "JT", "natural N(R)", 93.99),
    # RLFAT (003_...)
    ("rlfat_table1a", "PGDAT", "N attack", 34.80),
    ("rlfat_table1a", "RLFAT_T", "No attack", 72.38),
    ("rlfat_table1b", "RLFAT_T", "PGD", 58.75),
    ("rlfat_table1b", "TRADES", "CW", 49.80),
    ("rlfat_table1c", "TRADES", "CW", 24.66),
    ("rlfat_table1c", "RLFAT_P", "N attack", 32.53),
    ("rlfat_table2a", "TRADES", "CIFAR-10 brightness -0.15", 0.88),
    ("rlfat_table2a", "TRADES", "CIFAR-10 brightness +0.15", 0.90),
    ("rlfat_table2a", "PGDAT", "CIFAR-100 brightness -0.15", 3.93),
    ("rlfat_table2b", "RLFAT_T", "CIFAR-100 gamma 1.2", 0.88),
    ("rlfat_table2b", "RLFAT_P", "STL-10 gamma 0.8", 0.30),
]


@pytest.mark.parametrize("key,row,column,expected", SPOT)
def test_spot_values(key, row, column, expected):
    assert paper.value(key, row, column) == expected


METHOD_KEYS = {
    "fpr_table2": {"Madry et al. (2017)": "pgd_at", "AT-reg": "at_reg", "AT-att": "at_att", "AT-att-reg": "at_att_reg"},
    "fpr_table6": {"ALP": "alp", "AT-reg": "at_reg"},
    "aelf_table3": {"ST": "st", "AT (Madry)": "pgd_at", "JT 0.4:0.6": "jt", "JT* 0.4:0.6": "jt_star",
                    "TRADES beta=1": "trades", "AELFs 0.4:0.6": "aelfs"},
    "rlfat_table1b": {"PGDAT": "pgd_at", "TRADES": "trades", "RLFAT_P": "rlfat_p", "RLFAT_T": "rlfat_t"},
}


def test_method_keys_and_reported_rows():
    for key, expected in METHOD_KEYS.items():
        rows = {r["label"]: r for r in paper.load(key)["rows"]}
        for label, mk in expected.items():
            assert rows[label]["method_key"] == mk
    # other papers' reported numbers carry no method_key
    for key in ("aelf_table4", "aelf_table5"):
        for r in paper.load(key)["rows"]:
            assert ("method_key" in r) == ("reported" not in r.get("note", "")), (key, r["method"])


def test_method_keys_exist_in_registry():
    from robustbook import methods

    used = {r["method_key"] for k in paper.keys() for r in paper.load(k)["rows"] if "method_key" in r}
    assert used <= set(methods.names())


def test_labels_match_presets_where_they_share_a_key():
    from robustbook import presets

    for key, exp in presets.EXPERIMENTS.items():
        if key not in EXPECTED_KEYS:
            continue
        ours = {r["label"] for r in paper.load(key)["rows"]}
        theirs = {label for label, _ in exp.runs}
        assert ours & theirs, f"{key}: no preset label matches a paper row"


@pytest.mark.parametrize("key", sorted(EXPECTED_KEYS - NO_NATURAL_PAIRS))
def test_robust_accuracy_not_above_natural(key):
    """A row where a robust accuracy exceeds its natural accuracy must be flagged, not fixed."""
    d = paper.load(key)
    for row in d["rows"]:
        for robust, natural in d["natural_of"].items():
            r, n = row["values"][robust], row["values"][natural]
            if r is not None and n is not None and r > n:
                assert row.get("uncertain") and any(row["method"] in u for u in d.get("uncertain", [])), (
                    f"{key}: {row['method']} {robust}={r} > {natural}={n} is not flagged")


@pytest.mark.parametrize("key", ["fpr_table2", "fpr_table3", "fpr_table5", "fpr_ijcai_table2"])
def test_white_box_accuracy_falls_with_attack_steps(key):
    d = paper.load(key)
    for row in d["rows"]:
        for attack in ("PGD", "CW"):
            cols = [c for c in d["columns"] if c.startswith("White") and f", {attack} " in c]
            vals = [row["values"][c] for c in cols]
            assert len(vals) >= 2 and vals == sorted(vals, reverse=True), (key, row["method"], attack)


def test_ijcai_table2_against_conference():
    conf, ij = paper.load("fpr_table2"), paper.load("fpr_ijcai_table2")
    eq = ij["setting"]["column_equivalents"]
    def vals(d, label):
        return next(r["values"] for r in d["rows"] if r["label"] == label)
    for label in ("Madry et al. (2017)", "AT-reg"):
        assert {eq[c]: v for c, v in vals(ij, label).items()} == vals(conf, label)
    att_reg = {eq[c]: v for c, v in vals(ij, "AT-att-reg").items()}
    assert att_reg["Natural"] != vals(conf, "AT-att-reg")["Natural"]
    assert all(att_reg[c] == vals(conf, "AT-att-reg")[c] for c in conf["columns"] if c.startswith("Black box"))
    # IJCAI Table 6's AT-reg is the narrow Table 2 AT-reg under CW
    assert paper.value("fpr_table6", "AT-reg", "CW 100") == paper.value("fpr_table2", "AT-reg", "White box, CW 100 steps")


def test_aelf_table5_reports_rlfat_table1c():
    pairs = {"AT (Madry et al., 2018; WRN-32)": "PGDAT", "TRADES lambda=6 (Zhang et al., 2019; WRN-32)": "TRADES",
             "RLFAT_P (Song et al., 2020; WRN-32)": "RLFAT_P", "RLFAT_T (Song et al., 2020; WRN-32)": "RLFAT_T"}
    for aelf_label, rlfat_label in pairs.items():
        assert paper.value("aelf_table5", aelf_label, "Natural") == paper.value("rlfat_table1c", rlfat_label, "No attack")
        assert paper.value("aelf_table5", aelf_label, "A*(0.03)") == paper.value("rlfat_table1c", rlfat_label, "PGD")


def test_claims_hold_in_the_numbers():
    # AELF Table 3: JT* beats JT, AELFs beats JT*, at every ratio and column
    for ratio in ("0.4:0.6", "0.5:0.5", "0.6:0.4"):
        for col in ("N", "A*(5)", "A*(10)"):
            jt, star, aelfs = (paper.value("aelf_table3", f"{m} {ratio}", col) for m in ("JT", "JT*", "AELFs"))
            assert jt < star < aelfs
    # RLFAT Table 2: RLFAT_T is the smoothest everywhere
    for key in ("rlfat_table2a", "rlfat_table2b"):
        frame = paper.as_frame(key)
        assert (frame.idxmin() == "RLFAT_T").all()
    # RLFAT Table 1: each RLFAT variant beats its baseline in every column
    for key in ("rlfat_table1a", "rlfat_table1b", "rlfat_table1c"):
        f = paper.as_frame(key)
        assert (f.loc["RLFAT_P"] > f.loc["PGDAT"]).all() and (f.loc["RLFAT_T"] > f.loc["TRADES"]).all()


def test_schema_violations_are_reported():
    good = paper.load("fpr_table1")
    paper._check(good, "fpr_table1")
    for breakage, match in (
        (lambda d: d.pop("claims"), "claims"),
        (lambda d: d.update(unit="percents"), "unit"),
        (lambda d: d["rows"][0]["values"].pop("Natural"), "exactly the columns"),
        (lambda d: d["rows"][0]["values"].update(Natural="98.72%"), "not a number"),
        (lambda d: d["rows"][0].update(method_key="madry"), "method_key"),
        (lambda d: d.update(natural_of={"Robust": "Natural"}), "natural_of"),
    ):
        bad = paper.load("fpr_table1")
        breakage(bad)
        with pytest.raises(ValueError, match=match):
            paper._check(bad, "fpr_table1")
