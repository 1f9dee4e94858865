from __future__ import annotations

import pytest
import yaml

from caloforge.errors import DetectorError
from caloforge.geometry.detectors import builtin_detector_names, detector_from_dict, load_detector

BUILTIN = ["allegro-like", "cld-like", "par04-scipb", "par04-siw", "pbwo4"]


def test_builtin_catalog_is_complete():
    assert builtin_detector_names() == BUILTIN


@pytest.mark.parametrize("name", BUILTIN)
def test_builtin_detectors_load_and_document_their_source(name):
    spec = load_detector(name)
    assert spec.name == name
    assert spec.source
    assert any(s.active for s in spec.slices)
    assert spec.sampling_fraction is not None, "measure it with `caloforge calibrate`"
    assert 0 < spec.sampling_fraction.value <= 1


def test_par04_siw_layer_structure():
    spec = load_detector("par04-siw")
    assert spec.n_layers == 90
    assert spec.inner_radius_mm == 800.0
    assert spec.length_mm == 2000.0
    assert [(s.material, s.thickness_mm, s.active) for s in spec.slices] == [
        ("G4_W", 1.4, False),
        ("G4_Si", 0.3, True),
    ]
    # one mesh z-cell (3.4 mm) spans two W/Si pairs, as in Par04
    assert spec.layer_thickness_mm * 2 == pytest.approx(3.4)


def test_user_yaml_round_trips(tmp_path):
    spec = load_detector("cld-like")
    path = tmp_path / "mine.yaml"
    path.write_text(spec.to_yaml())
    assert load_detector(str(path)) == spec


def _valid() -> dict:
    return yaml.safe_load(load_detector("par04-siw").to_yaml())


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.update(colour="red"), "unknown key"),
        (lambda d: d.pop("n_layers"), "missing key"),
        (lambda d: d.update(n_layers=0), "n_layers must be a positive integer"),
        (lambda d: d.update(inner_radius_mm=-1), "inner_radius_mm must be positive"),
        (lambda d: d["slices"][0].update(thickness_mm="thick"), "thickness_mm must be a number"),
        (
            lambda d: [s.update(active=False) for s in d["slices"]],
            "at least one slice must be active",
        ),
        (lambda d: d.update(slices=[]), "non-empty list"),
        (lambda d: d["sampling_fraction"].update(value=2.0), "must be <= 1"),
        (lambda d: d["sampling_fraction"].update(error="abc"), "error must be in"),
        (lambda d: d["sampling_fraction"].update(error=-5), "error must be in"),
    ],
)
def test_invalid_descriptions_are_rejected(change, message):
    data = _valid()
    change(data)
    with pytest.raises(DetectorError, match=message):
        detector_from_dict(data)


def test_unknown_detector_names_the_choices():
    with pytest.raises(DetectorError, match=r"unknown detector 'atlas'.*par04-siw"):
        load_detector("atlas")


def test_unreadable_and_invalid_yaml(tmp_path):
    with pytest.raises(DetectorError, match="cannot read detector file"):
        load_detector(str(tmp_path / "missing.yaml"))
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed\n")
    with pytest.raises(DetectorError, match="not valid YAML"):
        load_detector(str(bad))
