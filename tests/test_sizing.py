"""Size recommendation (bodyshape.sizing, ``bodyshape size``) against analytic answers."""

from __future__ import annotations

import json
import math

import pytest
from click.testing import CliRunner
from scipy.stats import norm

from bodyshape.cli import main
from bodyshape.sizing import (SD_PER_MAE, ChartError, load_chart, read_measurements,
                              recommend, shipped_charts)

CHART = """# a test chart
garment,size,chest_cm,waist_cm
tops,S,80-90,
tops,M,90-100,
tops,L,100-110,
"""


def chart_file(tmp_path, text=CHART, name="chart.csv"):
    path = tmp_path / name
    path.write_text(text)
    return load_chart(path)


def one(values, chart, errors=None):
    (rec,) = recommend(values, chart, errors)
    return rec


def test_inside_a_size_is_good_and_sure(tmp_path):
    rec = one({"chest_cm": 95.0}, chart_file(tmp_path), {"chest_cm": 0.8})
    assert rec.size == "M" and rec.between is None and not rec.outside_chart
    (fit,) = rec.fits
    assert (fit.fit, fit.low_cm, fit.high_cm, fit.off_cm) == ("good", 90, 100, 0)
    sd = 0.8 * SD_PER_MAE
    p_m = norm.cdf(5 / sd) - norm.cdf(-5 / sd)
    p_s = norm.cdf(-5 / sd) - norm.cdf(-15 / sd)
    assert rec.confidence == pytest.approx(p_m / (p_m + 2 * p_s), rel=1e-6)
    assert "M: chest good" in rec.note and "% sure" in rec.note


def test_on_a_boundary_is_between_sizes_at_even_odds(tmp_path):
    rec = one({"chest_cm": 100.0}, chart_file(tmp_path), {"chest_cm": 2.0})
    assert rec.between == ("M", "L")
    sd = 2.0 * SD_PER_MAE
    half = norm.cdf(0) - norm.cdf(-10 / sd)
    assert rec.confidence == pytest.approx(half / (2 * half + norm.cdf(-10 / sd)
                                                   - norm.cdf(-20 / sd)), rel=1e-6)


def test_sd_from_mae_is_the_normal_relation():
    # E|X| of a zero-mean normal is sd * sqrt(2/pi)
    assert SD_PER_MAE * math.sqrt(2 / math.pi) == pytest.approx(1.0)


@pytest.mark.parametrize("chest, size, fit, off", [(130.0, "L", "tight", 20.0),
                                                   (60.0, "S", "loose", -20.0)])
def test_outside_every_size(tmp_path, chest, size, fit, off):
    rec = one({"chest_cm": chest}, chart_file(tmp_path), {"chest_cm": 1.0})
    assert rec.size == size and rec.outside_chart and rec.confidence is None
    assert (rec.fits[0].fit, rec.fits[0].off_cm) == (fit, pytest.approx(off))
    assert "outside the chart" in rec.note


def test_without_known_errors_there_is_no_confidence(tmp_path):
    rec = one({"chest_cm": 95.0}, chart_file(tmp_path))
    assert rec.size == "M" and rec.confidence is None and "sure" not in rec.note


def test_measurements_disagreeing_give_between_sizes(tmp_path):
    text = ("garment,size,chest_cm,waist_cm\n"
            "tops,M,90-100,70-80\n"
            "tops,L,100-110,80-90\n")
    rec = one({"chest_cm": 95.0, "waist_cm": 85.0}, chart_file(tmp_path, text),
              {"chest_cm": 1.0, "waist_cm": 1.0})
    assert rec.between == ("M", "L")
    assert {f.name: f.fit for f in rec.fits} in ({"chest_cm": "good", "waist_cm": "tight"},
                                                 {"chest_cm": "loose", "waist_cm": "good"})


def test_targets_reach_halfway_to_neighbours(tmp_path):
    text = "garment,size,waist_cm\nb,76,76\nb,80,80\nb,86,86\n"
    sizes = chart_file(tmp_path, text).garments["b"]
    assert [(s.ranges["waist_cm"].low_cm, s.ranges["waist_cm"].high_cm) for s in sizes] == \
        [(74, 78), (78, 83), (83, 89)]


def test_ease_stretch_and_inches(tmp_path):
    text = ("garment,size,chest_in,inseam_cm,ease_cm,stretch_pct\n"
            "t,A,40-44,80-85,4,10\n"
            "t,B,44-48,80-85,4,10\n")
    a = chart_file(tmp_path, text).garments["t"][0]
    lo, hi = 40 * 2.54 - 4, (44 * 2.54 - 4) * 1.1
    assert (a.ranges["chest_cm"].low_cm, a.ranges["chest_cm"].high_cm) == \
        (pytest.approx(lo), pytest.approx(hi))
    # ease and stretch apply to girths only
    assert (a.ranges["inseam_cm"].low_cm, a.ranges["inseam_cm"].high_cm) == (80, 85)


@pytest.mark.parametrize("text, message", [
    ("garment,size\nt,S\n", "header needs"),
    ("garment,size,chest_cm,colour\nt,S,80-90,red\n", "unknown column(s) colour"),
    ("garment,size,chest_cm\nt,S,90-80\n", "runs backwards"),
    ("garment,size,chest_cm\nt,S,abc\n", "not a number"),
    ("garment,size,chest_cm\nt,S,90\n", "lone target"),
    ("garment,size,chest_cm\nt,S,90-100\nt,M,80-90\n", "smallest to the largest"),
    ("garment,size,chest_cm\nt,S,80-90,1\n", ":2: 4 cells"),
    ("garment,size,chest_cm\nt,S,80-90\nt,S,90-100\n", "lists a size twice"),
    ("# only a comment\n", "empty"),
])
def test_bad_charts_are_refused_with_one_line(tmp_path, text, message):
    with pytest.raises(ChartError) as err:
        chart_file(tmp_path, text)
    assert message in str(err.value) and "\n" not in str(err.value)
    assert "chart.csv" in str(err.value)


def test_unknown_chart_name_lists_the_shipped_ones():
    with pytest.raises(ChartError, match="womens_tops"):
        load_chart("no_such_chart")


def test_shipped_charts_are_contiguous_and_cite_the_standard():
    charts = shipped_charts()
    assert set(charts) == {"womens_tops", "womens_bottoms", "mens_tops", "mens_bottoms"}
    for name, path in charts.items():
        assert "EN 13402-3" in path.read_text() and "ISO 8559-2" in path.read_text()
        for garment, sizes in load_chart(name).garments.items():
            assert garment == name
            for m in sizes[0].ranges:
                edges = [(s.ranges[m].low_cm, s.ranges[m].high_cm) for s in sizes]
                for (_, hi), (lo, _) in zip(edges, edges[1:]):
                    assert hi == pytest.approx(lo), (name, m)


def test_example_body_gets_the_sizes_its_measurements_say():
    # chest 91.4 cm lies in EN 13402-3's women's M (90-98) and men's S (86-94)
    body = {"chest_cm": 91.4, "waist_cm": 76.2, "hip_cm": 102.6}
    assert one(body, load_chart("womens_tops")).size == "M"
    assert one(body, load_chart("mens_tops")).size == "S"
    assert one(body, load_chart("mens_bottoms")).size == "76"


def test_missing_measurement_is_one_line(tmp_path):
    with pytest.raises(ValueError, match="needs chest_cm"):
        recommend({"waist_cm": 80.0}, chart_file(tmp_path))
    with pytest.raises(ValueError, match="no garment 'coats'"):
        recommend({"chest_cm": 80.0}, chart_file(tmp_path), garment="coats")


def test_read_measurements_formats(tmp_path):
    flat = tmp_path / "flat.json"
    flat.write_text(json.dumps({"chest_in": 36.0, "shop_id": "x"}))
    assert read_measurements(flat) == ({"chest_cm": pytest.approx(91.44)}, {})
    full = tmp_path / "m.json"
    full.write_text(json.dumps({"measurements": {"chest_cm": 91.4},
                                "errors": {"chest_cm": 2.2}}))
    assert read_measurements(full) == ({"chest_cm": 91.4}, {"chest_cm": 2.2})
    for bad in ("[1, 2]", '{"chest_cm": "big"}', '{"chest_cm": NaN}', "{", '{"x": 1}'):
        flat.write_text(bad)
        with pytest.raises(ValueError):
            read_measurements(flat)


def test_cli_size(tmp_path):
    m = tmp_path / "m.json"
    m.write_text(json.dumps({"measurements": {"chest_cm": 95.0}, "errors": {"chest_cm": 1}}))
    (tmp_path / "c.csv").write_text(CHART)
    run = CliRunner().invoke
    res = run(main, ["size", str(m), "--chart", str(tmp_path / "c.csv")])
    assert res.exit_code == 0 and res.output.startswith("tops: M: chest good"), res.output
    res = run(main, ["size", str(m), "--chart", str(tmp_path / "c.csv"), "--json", "--units",
                     "in"])
    (rec,) = json.loads(res.output)
    assert rec["size"] == "M" and rec["fits"][0]["measurement"] == "chest_in"
    assert rec["fits"][0]["value"] == pytest.approx(95 / 2.54, abs=0.05)
    res = run(main, ["size", str(m), "--chart", "nope"])
    assert res.exit_code == 2 and res.output.startswith("error: nope: no such size chart")
    res = run(main, ["size", str(m), "--chart", "mens_bottoms"])
    assert res.exit_code == 2 and "needs waist_cm" in res.output
