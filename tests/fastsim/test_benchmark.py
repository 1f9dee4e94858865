"""``caloforge benchmark``: Geant4 and a model's samplers timed in one run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from caloforge.cli import main
from caloforge.deploy.benchmark import (
    Timing,
    by_parts,
    heun_evaluations,
    markdown,
    sampler_flops,
    samplers_of,
)
from caloforge.fastsim import load_model

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.mark.geant4
def test_benchmark_times_geant4_and_every_sampler(students, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "bench"
    args = ["benchmark", "--model", str(students["factorized"]), "--out", str(out),
            "--energies", "1", "--batches", "1,4", "--threads", "1,2", "--repeats", "2",
            "--budget-s", "0.01", "--no-progress"]  # fmt: skip
    assert main(args) == 0
    assert sorted(p.name for p in out.iterdir()) == ["benchmark.json", "benchmark.md", "benchmark.png"]  # fmt: skip
    result = json.loads((out / "benchmark.json").read_text())
    assert set(result["geant4"]) == {"bare/1", "bare/2", "scored/1", "scored/2"}
    assert set(result["samplers"]) == {
        "teacher (32 steps)",
        "cd (2 steps)",
        "cd (1 step)",
        "ONNX Runtime, cd (1 step)",
    }
    for cells in result["samplers"].values():
        assert set(cells) == {"1/1", "4/1", "1/2", "4/2"}
        assert all(c["median"] > 0 and c["repeats"] >= 1 for c in cells.values())
    assert set(result["matmul_gflops"]) == {"1", "2"}
    text = (out / "benchmark.md").read_text()
    assert "| scored | 1 |" in text
    # the speed-up column is scored Geant4 over the sampler, at the same thread count
    g4 = result["geant4"]["scored/1"]["1.0"]["median"]
    cell = result["samplers"]["cd (1 step)"]["4/1"]["median"]
    assert f"| cd (1 step) | 4 | 1 | {Timing(**result['samplers']['cd (1 step)']['4/1']).format()} | {g4 / cell:.3g} |" in text  # fmt: skip
    # one teacher call of 4 showers outlasts the 0.01 s budget: timed by parts; students in full
    teacher = result["samplers"]["teacher (32 steps)"]
    assert [teacher[k]["by_parts"] for k in ("1/1", "4/1", "1/2", "4/2")] == [False, True, False, True]  # fmt: skip
    assert not any(c["by_parts"] for c in result["samplers"]["cd (1 step)"].values())
    assert "\\* by parts: timed at 1 and 8 Heun steps" in text
    # a second run into the same folder needs --overwrite
    assert main(args) == 1
    assert "--overwrite" in capsys.readouterr().err


def test_flops_of_a_student_are_a_fraction_of_its_teachers(students) -> None:  # type: ignore[no-untyped-def]
    model = load_model(students["calodit"])
    flops = {name: sampler_flops(model, s) for name, s in samplers_of(model).items()}
    teacher, two, one = flops["teacher (32 steps)"], flops["cd (2 steps)"], flops["cd (1 step)"]
    assert one > 0
    assert two == pytest.approx(2 * one, rel=1e-6)
    assert teacher == pytest.approx(63 * one, rel=1e-6)  # 32 Heun steps: 63 evaluations


def test_benchmark_refuses_bad_requests(students, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    base = ["benchmark", "--model", str(students["calodit"]), "--out", str(tmp_path / "b"), "--no-geant4"]  # fmt: skip
    assert main([*base, "--batches", "1,x"]) == 1
    assert "comma-separated" in capsys.readouterr().err
    assert main([*base, "--energies", "5000"]) == 1
    assert "leave the model's range" in capsys.readouterr().err
    assert main([*base, "--threads", "0"]) == 1
    assert ">= 1" in capsys.readouterr().err
    assert not (tmp_path / "b").exists()


def test_the_markdown_marks_what_was_not_timed() -> None:
    from caloforge.deploy.benchmark import BenchmarkResult

    result = BenchmarkResult("m", "par04-siw", [10.0], {"cores": 2, "torch": "x", "caloforge": "y"})
    result.samplers = {"teacher (32 steps)": {"64/2": Timing(10.0, 9.0, 12.0, 3)}}
    result.notes = ["ONNX Runtime not timed: no onnx"]
    text = markdown(result)
    assert "| teacher (32 steps) | 64 | 2 | 10 (9-12) | - |" in text
    assert "ONNX Runtime not timed" in text


def test_by_parts_is_exact_for_a_cost_linear_in_the_evaluations() -> None:
    def cost(evaluations: int) -> float:  # ms per shower: once per call, plus per evaluation
        return 3.0 + 0.5 * evaluations

    short, long = (Timing(cost(e), cost(e) - 1, cost(e) + 2, 3) for e in (1, 15))
    found = by_parts(short, long, (1, 15), heun_evaluations(32))
    assert heun_evaluations(32) == 63
    assert found.median == pytest.approx(cost(63))
    assert (found.low, found.high) == (pytest.approx(cost(63) - 1), pytest.approx(cost(63) + 2))
    assert found.by_parts
    assert found.format().endswith("*")
