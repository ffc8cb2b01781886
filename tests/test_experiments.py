"""The experiments CLI: quick versions of the studies write their tables and figures."""

import os

import pytest

from mlpbench.lecture import experiments


def test_xor_one_layer_cannot_two_can(tmp_path, capsys):
    assert experiments.main(["xor", "--out", str(tmp_path)]) == 0
    table = (tmp_path / "xor.md").read_text()
    assert "| single layer 2-1 (sigmoid) |" in table and "| no |" in table
    assert "| MLP 2-2-1 (sigmoid) |" in table and "| yes |" in table


@pytest.mark.skipif(not os.environ.get("MLPBENCH_DATA"), reason="real MNIST not available")
@pytest.mark.parametrize("study, extra", [
    ("lecture", ["--runs", "2,4"]), ("lr", ["--train-limit", "2000"]),
    ("l2", ["--train-limit", "300"]), ("activations", ["--train-limit", "300"]),
    ("precision", ["--train-limit", "300"]),
])
def test_quick_studies(tmp_path, study, extra):
    args = [study, "--epochs", "1", "--out", str(tmp_path), *extra]
    if "--train-limit" not in extra:
        args += ["--train-limit", "500"]
    assert experiments.main(args) == 0
    table = (tmp_path / f"{study}.md").read_text()
    assert table.count("\n|") >= 3  # header, rule and at least one run
    assert (tmp_path / f"{study}.png").stat().st_size > 1000
    assert (tmp_path / f"{study}.json").exists()
    if study == "lr":
        assert "diverged" in table and "loss became nan" in table
    if study == "activations":
        assert "ReLU learns 6x faster" in table and "| relu | stock |" in table
        assert "| relu | fused |" in table and "seconds to 97%" in table
    if study == "precision":
        assert "| bf16 | fused |" in table and "| fp32 | stock |" in table


def test_all_runs_every_study(tmp_path, monkeypatch):
    ran = []
    monkeypatch.setattr(experiments, "STUDIES", {name: (lambda args, data, log, name=name:
                                                        ran.append((name, args.seeds)))
                                                 for name in experiments.STUDIES})
    monkeypatch.setattr(experiments, "load_mnist", lambda data_dir: None)
    assert experiments.main(["all", "--out", str(tmp_path)]) == 0
    assert {name for name, _ in ran} == set(experiments.STUDIES)
    assert dict(ran)["lecture"] == "0,1,2" and dict(ran)["activations"] == "0,1"


def test_bad_arguments():
    with pytest.raises(SystemExit):
        experiments.main(["lecture", "--epochs", "0"])
    with pytest.raises(SystemExit):
        experiments.main(["nonsense"])
