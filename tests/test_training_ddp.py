"""Distributed training (earmark.ddp): two gloo processes on the CPU train one network,
write one artifact, resume exactly; torchrun's processes train the same weights; wrong
values are one-line errors. The process tests are slow (each starts training processes)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from safetensors.torch import load_file
from signals import tone
from typer.testing import CliRunner

from earmark import ddp
from earmark.classifier import Classifier
from earmark.cli import app
from earmark.errors import ParameterError
from earmark.features import FeatureConfig, build_frontend
from earmark.models.neural import NeuralModel
from earmark.training import MultiLabelObjective, TrainConfig, Trainer, WaveBank

SR = 8_000
FEATURES = FeatureConfig(kind="logmel", n_fft=256, win_length=200, hop_length=100, n_mels=24)
HERE = Path(__file__).resolve().parent


def toy(n: int = 30, seed: int = 0) -> tuple[WaveBank, torch.Tensor]:
    """Three classes of noisy tones (300, 900, 2000 Hz), lengths varying (random crops)."""
    rng = np.random.default_rng(seed)
    waves, labels = [], []
    for i in range(n):
        k = i % 3
        y = tone((300.0, 900.0, 2000.0)[k] * rng.uniform(0.95, 1.05), 0.5, SR, 0.3)
        y = y + 0.02 * rng.standard_normal(y.size).astype(np.float32)
        waves.append(y[None, : rng.integers(SR // 4, SR // 2)])
        labels.append(k)
    return WaveBank(waves), torch.tensor(labels)


def train(nproc: int, checkpoint: Path | None = None, **kw) -> tuple:
    """A seed-cnn trained on :func:`toy` data (batch 8 of 30 clips: the last batch of each
    epoch is uneven), 2 epochs unless ``epochs`` says otherwise."""
    resume, stop_after = kw.pop("resume", False), kw.pop("stop_after", None)
    objective, y_of = kw.pop("objective", None), kw.pop("targets", lambda y: y)
    torch.manual_seed(0)
    net = NeuralModel("seed-cnn", {}, 3, 1).network
    (bank, y), (vbank, vy) = toy(), toy(9, seed=1)
    cfg = TrainConfig(**{"epochs": 2, "batch_size": 8, "augment": "default", "device": "cpu", **kw})
    steps: list[int] = []

    def on_epoch(record: dict) -> None:
        if record["epoch"] == stop_after:
            raise KeyboardInterrupt

    trainer = Trainer(
        cfg,
        objective=objective,
        checkpoint_dir=checkpoint,
        nproc=nproc,
        on_step=lambda done, total, loss: steps.append(done),
        on_epoch=on_epoch,
    )
    result = trainer.fit(
        net,
        build_frontend(FEATURES, SR),
        bank,
        y_of(y),
        vbank,
        y_of(vy),
        n_classes=3,
        n_samples=SR // 2,
        sample_rate=SR,
        resume=resume,
    )
    return result, steps


def equal_states(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# -- the seam, without processes ------------------------------------------------------------


def test_a_process_alone_is_the_identity() -> None:
    group, idx = ddp.Group(), torch.arange(7)
    assert group.shard(idx) == (idx, 1.0)
    assert group.sum([1.5, 2.0]) == [1.5, 2.0] and group.share({"a": 1}) == {"a": 1}
    net = torch.nn.Linear(2, 2)
    assert group.wrap(net, torch.device("cpu")) is net and not group.stop_before(10**9)


def test_each_process_takes_its_share_weighted_by_its_size() -> None:
    idx = torch.arange(10, 15)  # an uneven last batch of 5 for 2 processes
    parts = [ddp.Group(rank=r, world=2).shard(idx) for r in range(2)]
    assert torch.cat([p for p, _ in parts]).tolist() == idx.tolist()
    assert [len(p) for p, _ in parts] == [3, 2]
    # DDP averages the processes' gradients of weight x their mean loss: each clip then
    # counts 1 / batch size, as in one process
    assert [w / (2 * len(p)) for p, w in parts] == pytest.approx([1 / 5, 1 / 5])
    one = [ddp.Group(rank=r, world=3).shard(torch.tensor([4]))[0].tolist() for r in range(3)]
    assert one == [[4], [4], [4]]  # fewer clips than processes: repeated, none idles


def test_wrong_values_are_one_line_errors(monkeypatch, tmp_path: Path) -> None:
    cfg = TrainConfig(device="cpu")
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ParameterError, match="nproc must be"):
            Trainer(cfg, nproc=bad)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    with pytest.raises(ParameterError, match="needs 2 GPUs, this machine has 1"):
        Trainer(TrainConfig(device="cuda"), nproc=2)
    with pytest.raises(ParameterError, match="needs 2 GPUs"):  # auto would use the GPU
        Trainer(TrainConfig(device="auto"), nproc=2)
    with pytest.raises(ParameterError, match="give device cuda, not cuda:1"):
        Trainer(TrainConfig(device="cuda:1"), nproc=2)
    Trainer(TrainConfig(device="cuda"), nproc=1)  # one process: as always
    monkeypatch.undo()

    class Other:  # any objective but the supervised ones (the sgan's, say)
        pass

    with pytest.raises(ParameterError, match="Other trains in one process"):
        train(2, objective=Other())
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(ParameterError, match="under torchrun"):
        Trainer(cfg, nproc=2)


def test_classical_and_sgan_models_refuse_nproc_before_reading_audio(tmp_path: Path) -> None:
    missing = tmp_path / "none.csv"
    missing.write_text("filepath,label\nnot-there.wav,a\nalso-not.wav,b\n")
    with pytest.raises(ParameterError, match="only networks train in several processes"):
        Classifier("svm").fit(missing, nproc=2)
    with pytest.raises(ParameterError, match="sgan trains in one process"):
        Classifier("sgan").fit(missing, nproc=2)


def test_cli_refuses_nproc_0() -> None:
    result = CliRunner().invoke(app, ["train", "x", "-o", "y", "--nproc", "0"])
    assert result.exit_code == 2 and "--nproc" in result.output


def test_cli_refuses_nproc_for_a_classical_model_as_a_usage_error(tmp_path: Path) -> None:
    args = ["train", tmp_path / "no-data", "-o", tmp_path / "run", "--model", "logreg"]
    result = CliRunner().invoke(app, [str(a) for a in [*args, "--nproc", "2"]])
    assert result.exit_code == 2, result.output
    assert "only networks train in several processes" in " ".join(result.stderr.split())
    assert not (tmp_path / "run").exists()


# -- two processes ----------------------------------------------------------------------------


def _tones(root: Path) -> Path:
    rng = np.random.default_rng(0)
    for k, f in enumerate((300.0, 900.0, 2000.0)):
        (root / f"c{k}").mkdir(parents=True)
        for i in range(8):
            y = tone(f * rng.uniform(0.95, 1.05), 0.25, SR, 0.3)
            sf.write(root / f"c{k}" / f"{i}.wav", y, SR)
    return root


@pytest.mark.slow
def test_two_processes_write_one_artifact_that_loads_and_predicts(tmp_path: Path) -> None:
    import earmark

    data, out = _tones(tmp_path / "data"), tmp_path / "run"
    args = ["train", data, "-o", out, "--model", "seed-cnn", "--sr", SR, "--epochs", 2]
    args += ["--batch-size", 8, "--device", "cpu", "--no-cache", "--nproc", 2, "--json"]
    result = CliRunner().invoke(app, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    meta = json.loads((out / "earmark.json").read_text())
    assert meta["family"] == "neural" and meta["training"]["epochs"] == 2
    assert not any(k.startswith("module.") for k in load_file(out / "model.safetensors"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data", "run"]  # no temp left
    model = earmark.load(out)
    assert model.classes_ == ["c0", "c1", "c2"] and model.model == "seed-cnn"
    assert model.predict(data / "c2" / "0.wav")[0] in model.classes_


@pytest.mark.slow
def test_an_interrupted_run_resumes_to_the_uninterrupted_weights(tmp_path: Path) -> None:
    whole, steps = train(2, tmp_path / "a")
    assert whole.stopped == "completed" and len(whole.history) == 2
    assert steps == list(range(1, 9))  # rank 0's progress reached the hooks here: 4 a epoch
    part, _ = train(2, tmp_path / "b", stop_after=1)
    assert part.stopped == "interrupted" and len(part.history) == 1
    resumed, steps = train(2, tmp_path / "b", resume=True)
    assert steps == [5, 6, 7, 8]
    assert resumed.history == [
        {**r, "seconds": s["seconds"], "clips_per_s": s["clips_per_s"]}
        for r, s in zip(whole.history, resumed.history, strict=True)
    ]
    assert equal_states(resumed.best_state, whole.best_state)


@pytest.mark.slow
def test_multi_label_trains_and_a_process_error_comes_back_as_it_was() -> None:
    def multi_hot(y: torch.Tensor) -> torch.Tensor:
        out = torch.nn.functional.one_hot(y, 3).float()
        out[::4] = 0  # some negatives
        return out

    result, _ = train(2, epochs=1, targets=multi_hot, monitor="map")
    assert result.stopped == "completed" and "valid_map" in result.history[0]
    with pytest.raises(ParameterError, match="monitor map: this run reports"):
        train(2, epochs=1, monitor="map")  # single-label runs report no map
    with pytest.raises(ParameterError, match="needs multi-hot targets"):  # the objective's own
        train(2, epochs=1, objective=MultiLabelObjective())


TORCHRUN = """
import sys
sys.path.insert(0, {tests!r})
import torch.distributed as dist
from safetensors.torch import save_file
from test_training_ddp import train
result, _ = train(1, epochs=1)
save_file(result.best_state, {out!r} + f"/rank{{dist.get_rank()}}.safetensors")
"""


@pytest.mark.slow
def test_torchrun_processes_train_in_their_group_to_the_same_weights(tmp_path: Path) -> None:
    script = tmp_path / "run.py"
    script.write_text(TORCHRUN.format(tests=str(HERE), out=str(tmp_path)))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node"]
    done = subprocess.run([*cmd, "2", str(script)], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    ranks = [load_file(tmp_path / f"rank{r}.safetensors") for r in range(2)]
    # gradients averaged: the processes agree on the weights (the batch-norm statistics
    # each gathers on its share are rank 0's again at every step: DDP broadcasts them)
    weights = [{k: v for k, v in r.items() if "running_" not in k} for r in ranks]
    assert equal_states(weights[0], weights[1])
    spawned, _ = train(2, epochs=1)
    assert equal_states(spawned.best_state, ranks[0])  # nproc=2 is the same training
    alone, _ = train(1, epochs=1)
    assert not equal_states(alone.best_state, ranks[0])  # (the test can tell them apart)
