from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from earmark.errors import EarmarkError, ParameterError
from earmark.features import FeatureConfig, build_frontend
from earmark.models.neural import NeuralModel
from earmark.training import (
    Batch,
    FitContext,
    Objective,
    OptimizerSpec,
    SupervisedObjective,
    TrainConfig,
    Trainer,
    WaveBank,
    read_meta_checkpoint,
    resolve_device,
)

SR = 8_000
FEATURES = FeatureConfig(kind="logmel", n_fft=256, win_length=200, hop_length=100, n_mels=24)


def toy_bank(n: int = 48, seed: int = 0) -> tuple[WaveBank, torch.Tensor]:
    """Three classes of tones (300, 900, 2000 Hz) with noise: easy to learn."""
    rng = np.random.default_rng(seed)
    t = np.arange(SR // 2) / SR
    waves, labels = [], []
    for i in range(n):
        k = i % 3
        f = (300.0, 900.0, 2000.0)[k] * rng.uniform(0.95, 1.05)
        y = 0.3 * np.sin(2 * np.pi * f * t) + 0.02 * rng.standard_normal(t.size)
        waves.append(y[None, : rng.integers(SR // 4, SR // 2)].astype(np.float32))
        labels.append(k)
    return WaveBank(waves), torch.tensor(labels)


def run(
    epochs: int,
    checkpoint: Path | None = None,
    *,
    resume: bool = False,
    stop_after: int | None = None,
    objective: Objective | None = None,
    **cfg,
) -> tuple:
    torch.manual_seed(0)
    net = NeuralModel("seed-cnn", {}, 3, 1).network
    bank, y = toy_bank()
    vbank, vy = toy_bank(12, seed=1)
    config = TrainConfig(
        epochs=epochs, batch_size=16, lr=3e-3, augment="default", device="cpu", **cfg
    )

    def interrupt(record: dict) -> None:
        if stop_after is not None and record["epoch"] == stop_after:
            raise KeyboardInterrupt

    trainer = Trainer(config, objective=objective, checkpoint_dir=checkpoint, on_epoch=interrupt)
    result = trainer.fit(
        net,
        build_frontend(FEATURES, SR),
        bank,
        y,
        vbank,
        vy,
        n_classes=3,
        n_samples=SR // 2,
        sample_rate=SR,
        resume=resume,
    )
    return result, net


def test_training_learns_and_records_history() -> None:
    result, _ = run(6)
    assert result.stopped == "completed" and len(result.history) == 6
    first, last = result.history[0], result.history[-1]
    assert last["train_loss"] < first["train_loss"]
    assert max(r["valid_accuracy"] for r in result.history) > 0.6
    assert {"valid_loss", "valid_f1_macro", "lr", "clips_per_s"} <= set(last)


def test_resume_after_an_interruption_reproduces_the_uninterrupted_run(tmp_path: Path) -> None:
    straight, _ = run(4, tmp_path / "a")
    broken, _ = run(4, tmp_path / "b", stop_after=2)
    assert broken.stopped == "interrupted" and len(broken.history) == 2
    assert read_meta_checkpoint(tmp_path / "b")["state"]["epoch"] == 1
    resumed, _ = run(4, tmp_path / "b", resume=True)
    assert [r["train_loss"] for r in resumed.history] == [r["train_loss"] for r in straight.history]
    for k, v in straight.best_state.items():
        torch.testing.assert_close(resumed.best_state[k], v, rtol=0, atol=0)


def test_early_stopping_and_repeatability() -> None:
    a, _ = run(30, patience=2, monitor="accuracy")
    assert a.stopped == "early stopping" and len(a.history) < 30
    b, _ = run(30, patience=2, monitor="accuracy")
    assert [r["train_loss"] for r in a.history] == [r["train_loss"] for r in b.history]


def test_resume_without_a_checkpoint_says_so(tmp_path: Path) -> None:
    with pytest.raises(EarmarkError, match="no checkpoint"):
        run(2, tmp_path / "nothing", resume=True)


@pytest.fixture(scope="module")
def one_epoch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The checkpoint of a one-epoch run (seed-cnn, 48 toy clips)."""
    checkpoint = tmp_path_factory.mktemp("one-epoch") / "checkpoint"
    run(1, checkpoint)
    return checkpoint


def _relist(d: Path, meta: dict) -> None:
    """Write ``meta`` as the checkpoint's earmark.json with its files' true checksums: what
    someone crafting a checkpoint does (the checksums catch accidents, not intent)."""
    import hashlib
    import json

    for name, facts in meta["files"].items():
        if (d / name).is_file():
            facts["sha256"] = hashlib.sha256((d / name).read_bytes()).hexdigest()
            facts["bytes"] = (d / name).stat().st_size
    (d / "earmark.json").write_text(json.dumps(meta))


def _tensors(d: Path, name: str, change) -> dict:
    """Rewrite the safetensors file ``name`` with ``change(tensors)`` applied."""
    import json

    from safetensors.torch import load_file, save_file

    tensors = load_file(d / name)
    change(tensors)
    save_file(tensors, d / name)
    return json.loads((d / "earmark.json").read_text())


def _first_param(tensors: dict) -> str:
    return sorted(k for k in tensors if k.endswith(".weight"))[0]


def _meta(d: Path) -> dict:
    import json

    return json.loads((d / "earmark.json").read_text())


def _edit(change):
    """A tampering of the checkpoint directory: ``change(meta)``, checksums made to match."""

    def apply(d: Path) -> None:
        meta = _meta(d)
        change(meta)
        _relist(d, meta)

    return apply


def _weights(name: str, change):
    return lambda d: _relist(d, _tensors(d, name, change))


def _grow(tensors: dict) -> None:
    key = _first_param(tensors)
    tensors[key] = torch.zeros(tensors[key].shape[0] + 1, *tensors[key].shape[1:])


def _extra_slot(tensors: dict) -> None:
    tensors["0.bogus"] = torch.zeros(1)


def _bad_step(tensors: dict) -> None:
    tensors["0.step"] = torch.zeros(3)


def _nested(depth: int) -> list:
    out: list = []
    for _ in range(depth - 1):
        out = [out]
    return out


def _small_avg(tensors: dict) -> None:
    tensors["0.exp_avg"] = torch.zeros(2)


TAMPERED = [
    (
        "truncated JSON",
        lambda d: (d / "earmark.json").write_text((d / "earmark.json").read_text()[:200]),
        r"checkpoint/earmark\.json: not valid JSON",
    ),
    (
        "nested 40 deep",
        _edit(lambda m: m["state"].update(history=_nested(40))),
        r"nested \d+ levels deep",
    ),
    (
        "epoch as text",
        _edit(lambda m: m["state"].update(epoch="1")),
        r"state\.epoch: expected an integer",
    ),
    ("negative epoch", _edit(lambda m: m["state"].update(epoch=-1)), r"state\.epoch: must be >= 0"),
    (
        "not a checkpoint",
        _edit(lambda m: m.update(kind="model")),
        r"kind: not a training checkpoint",
    ),
    ("newer version", _edit(lambda m: m.update(schema_version=2)), r"schema_version: 2 is newer"),
    (
        "a path out",
        _edit(lambda m: m["files"].update({"../x": m["files"]["model.safetensors"]})),
        r"files\['\.\./x'\]: '\.\./x' is not a plain name",
    ),
    (
        "no optimizer listed",
        _edit(lambda m: m["files"].pop("optimizer.safetensors")),
        r"lists no optimizer\.safetensors",
    ),
    (
        "no slots",
        _edit(lambda m: m.pop("slots")),
        r"earmark\.json: slots: missing",
    ),
    (
        "a slot name that is not a name",
        _edit(lambda m: m["slots"].update({"0": ["exp_avg", "../x"]})),
        r"earmark\.json: slots\['0'\]\[1\]: not a valid value, got '\.\./x'",
    ),
    (
        "wider weights",
        _weights("model.safetensors", _grow),
        r"model\.safetensors: does not fit the network \(.*weight: shape \[9, 1, 3, 3\], "
        r"not \[8, 1, 3, 3\]\)",
    ),
    (
        "a missing tensor",
        _weights("best.safetensors", lambda t: t.pop(_first_param(t))),
        r"best\.safetensors: does not fit the network \(no '.*weight'\)",
    ),
    (
        "a foreign tensor",
        _weights("model.safetensors", lambda t: t.update(extra=torch.zeros(1))),
        r"does not fit the network \(an unknown tensor 'extra'\)",
    ),
    (
        "weights of another type",
        _weights(
            "model.safetensors", lambda t: t.update({_first_param(t): t[_first_param(t)].double()})
        ),
        r"weight: \[.*\] float64, not \[.*\] float32",
    ),
    (
        "a corrupt optimizer file",
        lambda d: (
            (d / "optimizer.safetensors").write_bytes(b"\x10\x00" + b"\xff" * 200),
            _relist(d, _meta(d)),
        ),
        r"optimizer\.safetensors: not a readable safetensors file",
    ),
    (
        "a slot of the wrong shape",
        _weights("optimizer.safetensors", _small_avg),
        r"optimizer\.safetensors: does not fit the optimizer \(0\.exp_avg: \[2\] float32, not",
    ),
    (
        "a step that is not a scalar",
        _weights("optimizer.safetensors", _bad_step),
        r"0\.step: \[3\] float32, not a floating-point scalar",
    ),
    (
        "a tensor no slot lists",
        _weights("optimizer.safetensors", _extra_slot),
        r"a tensor no slot lists: '0\.bogus'",
    ),
    (
        "state for a parameter the optimizer lacks",
        _edit(lambda m: m["slots"].update({"99": ["step"]})),
        r"state for parameter 99; the optimizer has \d+",
    ),
    (
        "other parameter groups",
        _edit(lambda m: m["param_groups"][0].update(params=[0])),
        r"its parameter groups are not those of this run's optimizer",
    ),
    (
        "a slot without its tensor",
        _edit(lambda m: m["slots"]["0"].append("max_exp_avg_sq")),
        r"no tensor '0\.max_exp_avg_sq'",
    ),
]


@pytest.mark.parametrize(
    ("change", "message"), [c[1:] for c in TAMPERED], ids=[c[0] for c in TAMPERED]
)
def test_a_tampered_checkpoint_is_one_error_line_before_anything_is_used(
    one_epoch: Path, tmp_path: Path, change, message: str
) -> None:
    """Nothing in a checkpoint is trusted: its earmark.json is checked against a schema
    before it is used, and every tensor file against what the run built, even when the
    checksums match (a crafted checkpoint has true ones)."""
    import shutil

    d = shutil.copytree(one_epoch, tmp_path / "checkpoint")
    change(d)
    with pytest.raises(EarmarkError, match=message) as info:
        run(1, d, resume=True)
    assert str(info.value).startswith("cannot resume: ") and "\n" not in str(info.value)


def test_a_checkpoint_tensor_is_measured_before_it_is_read(
    one_epoch: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The names and shapes a weight file's header announces are compared with the network
    before any tensor is read: nothing larger than the network is allocated."""
    import shutil

    import safetensors.torch

    d = shutil.copytree(one_epoch, tmp_path / "checkpoint")
    _weights("model.safetensors", _grow)(d)
    read = []
    monkeypatch.setattr(safetensors.torch, "load_file", lambda *a, **k: read.append(a))
    with pytest.raises(EarmarkError, match=r"model\.safetensors: does not fit the network"):
        run(1, d, resume=True)
    assert read == []


def test_a_checkpoint_is_read_without_pickle(
    one_epoch: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import shutil

    def refuse(*args, **kwargs):
        raise AssertionError("a checkpoint was unpickled")

    monkeypatch.setattr(torch, "load", refuse)
    d = shutil.copytree(one_epoch, tmp_path / "checkpoint")
    resumed, _ = run(1, d, resume=True)  # the one epoch is done: only loaded
    assert len(resumed.history) == 1 and resumed.stopped == "completed"
    assert set(read_meta_checkpoint(d)["files"]) == {
        "model.safetensors",
        "best.safetensors",
        "optimizer.safetensors",
    }


def test_schedules_and_settings() -> None:
    cfg = TrainConfig(epochs=1)
    factors = [cfg.lr_factor(s, 100) for s in range(100)]
    assert factors[0] < 0.1 and max(factors) == pytest.approx(1.0, abs=0.02) and factors[-1] < 0.01
    assert TrainConfig(schedule="constant").lr_factor(50, 100) == 1.0
    with pytest.raises(ParameterError, match="unknown schedule"):
        TrainConfig(schedule="triangle")
    assert resolve_device("cpu").type == "cpu" and resolve_device("auto").type in ("cpu", "cuda")
    if not torch.cuda.is_available():
        with pytest.raises(ParameterError, match="no CUDA GPU"):
            resolve_device("cuda")


def test_wavebank_crops_and_pads() -> None:
    bank = WaveBank([np.arange(10, dtype=np.float32)[None], np.arange(4, dtype=np.float32)[None]])
    centre = bank.batch(torch.tensor([0, 1]), 6)
    assert centre.shape == (2, 1, 6)
    assert centre[0, 0].tolist() == [2, 3, 4, 5, 6, 7] and centre[1, 0].tolist() == [
        0,
        1,
        2,
        3,
        0,
        0,
    ]
    starts = {
        int(bank.batch(torch.tensor([0]), 6, generator=torch.Generator().manual_seed(s))[0, 0, 0])
        for s in range(30)
    }
    assert starts == {0, 1, 2, 3, 4}
    assert bank.batch(torch.tensor([1]), 12).shape == (1, 1, 12)


def test_class_weights_and_balanced_sampling_on_imbalanced_data() -> None:
    bank, y = toy_bank(60)
    keep = torch.cat([torch.nonzero(y == 0).flatten()[:4], torch.nonzero(y != 0).flatten()])
    waves = [bank.data[i, :, : int(bank.lengths[i])].numpy() for i in keep.tolist()]
    small, y_small = WaveBank(waves), y[keep]  # class 0 is rare: 4 of 44 clips
    vbank, vy = toy_bank(12, seed=1)
    for cfg in ({"class_weights": True}, {"balanced_sampling": True}):
        torch.manual_seed(0)
        net = NeuralModel("seed-cnn", {}, 3, 1).network
        config = TrainConfig(epochs=8, batch_size=16, lr=3e-3, augment="none", device="cpu", **cfg)
        result = Trainer(config).fit(
            net,
            build_frontend(FEATURES, SR),
            small,
            y_small,
            vbank,
            vy,
            n_classes=3,
            n_samples=SR // 2,
            sample_rate=SR,
        )
        assert max(r["valid_accuracy"] for r in result.history) > 0.6, cfg


def test_wavebank_centres_short_clips_when_padding_both_sides() -> None:
    waves = [np.arange(1, 11, dtype=np.float32)[None], np.arange(1, 5, dtype=np.float32)[None]]
    bank = WaveBank(waves, pad="both")
    out = bank.batch(torch.tensor([0, 1]), 8)
    assert out[1, 0].tolist() == [0, 0, 1, 2, 3, 4, 0, 0]  # as fix_length(pad="both")
    assert out[0, 0].tolist() == [2, 3, 4, 5, 6, 7, 8, 9]  # longer clips: the centre
    from earmark.audio import fix_length

    np.testing.assert_array_equal(out[1].numpy(), fix_length(waves[1], 8, pad="both"))


def test_keep_last_returns_the_final_weights() -> None:
    result, net = run(3, keep="last", monitor="accuracy")
    assert result.best_epoch == 3
    for k, v in net.state_dict().items():
        torch.testing.assert_close(result.best_state[k], v.cpu(), rtol=0, atol=0)
    with pytest.raises(ParameterError, match="keep"):
        TrainConfig(keep="first")


# -- the objective protocol -------------------------------------------------------------------


def test_the_supervised_objective_gives_the_results_of_the_trainer_before_objectives() -> None:
    # recorded with the Trainer of commit 457eb66 (before objectives plugged in), same run
    default, _ = run(2)
    assert [r["train_loss"] for r in default.history] == pytest.approx(
        [1.0778810580571492, 0.6811161041259766], rel=1e-5
    )
    assert [r["valid_loss"] for r in default.history] == pytest.approx(
        [1.075823148091634, 1.0438454151153564], rel=1e-5
    )
    assert isinstance(Trainer(TrainConfig()).objective, SupervisedObjective)
    assert isinstance(SupervisedObjective(), Objective)


class Tempered(SupervisedObjective):
    """A second optimizer beside the model's: a learned temperature ``t`` on the logits,
    trained on the logits the model's step just improved; ``t`` and a step counter are the
    objective's checkpointed state. Records the order of the losses asked for."""

    def __init__(self, lr_scale: float = 1.0) -> None:
        super().__init__()
        self.t = torch.nn.Parameter(torch.ones(()))
        self.steps = torch.zeros((), dtype=torch.long)
        self.lr_scale, self.calls = lr_scale, []

    def optimizers(self, model):
        extra = OptimizerSpec("temperature", [self.t], lr_scale=self.lr_scale, weight_decay=0.0)
        return [*super().optimizers(model), extra]

    def loss(self, model, batch: Batch, optimizer: str) -> torch.Tensor:
        self.calls.append((batch.epoch, batch.index, optimizer))
        if optimizer == "model":
            return super().loss(model, batch, optimizer)
        self.steps += 1
        with torch.no_grad():
            logits = model(batch.features)
        return torch.nn.functional.cross_entropy(logits * self.t, batch.targets)

    def state_dict(self):
        return {"t": self.t.detach(), "steps": self.steps}

    def load_state_dict(self, state) -> None:
        with torch.no_grad():
            self.t.copy_(state["t"])
        self.steps = state["steps"].clone()


def test_an_objective_with_two_optimizers_steps_both_in_order_and_resumes_exactly(
    tmp_path: Path,
) -> None:
    straight = Tempered()
    a, _ = run(3, tmp_path / "a", objective=straight)
    steps = 3  # 48 clips in batches of 16
    order = [(0, 0, "model"), (0, 0, "temperature"), (0, 1, "model"), (0, 1, "temperature")]
    assert straight.calls[:4] == order
    assert len(straight.calls) == 2 * 3 * steps and int(straight.steps) == 3 * steps
    assert float(straight.t.detach()) != 1.0  # stepped, with the model's learning rate
    frozen = Tempered(lr_scale=0.0)  # lr_scale multiplies the schedule
    run(1, objective=frozen)
    assert float(frozen.t.detach()) == 1.0
    meta = read_meta_checkpoint(tmp_path / "a")
    assert {"optimizer.temperature.safetensors", "objective.safetensors"} <= set(meta["files"])

    broken = Tempered()
    b, _ = run(3, tmp_path / "b", stop_after=2, objective=broken)
    assert b.stopped == "interrupted" and int(broken.steps) == 2 * steps
    resumed = Tempered()
    c, _ = run(3, tmp_path / "b", resume=True, objective=resumed)
    assert resumed.calls[0][0] == 2 and int(resumed.steps) == 3 * steps
    assert float(resumed.t.detach()) == float(straight.t.detach())
    assert [r["train_loss"] for r in c.history] == [r["train_loss"] for r in a.history]
    for k, v in a.best_state.items():
        torch.testing.assert_close(c.best_state[k], v, rtol=0, atol=0)
    # a checkpoint of one objective does not resume another
    with pytest.raises(EarmarkError, match="optimizers"):
        run(3, tmp_path / "b", resume=True)


class MultiLabel(SupervisedObjective):
    """Multi-label targets (rows of 0/1 per class), binary cross-entropy: what the protocol
    must allow without touching the loop."""

    def prepare(self, model, context: FitContext) -> None:
        self.context = context  # (no class counts: rows may hold several classes)

    def epoch_order(self, y_train, generator, epoch):
        return torch.randperm(len(y_train), generator=generator)

    def targets(self, y):
        return y.float()

    def loss(self, model, batch, optimizer):
        logits = model(batch.features).float()
        return torch.nn.functional.binary_cross_entropy_with_logits(logits, batch.targets)

    def validate(self, model, bank, y):
        model.eval()
        with torch.no_grad():
            feats = self.context.frontend(bank.batch(torch.arange(len(bank)), SR // 2))
            logits = model(feats).float()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, y.float())
        exact = ((logits > 0) == (y > 0.5)).all(dim=1).float().mean()
        return {"valid_loss": float(loss), "valid_accuracy": float(exact)}


def mixtures(n: int, seed: int) -> tuple[WaveBank, torch.Tensor]:
    """Clips holding one or two of three tones; targets: which tones."""
    rng = np.random.default_rng(seed)
    t = np.arange(SR // 2) / SR
    waves, rows = [], []
    for i in range(n):
        on = np.zeros(3, dtype=np.float32)
        on[i % 3] = 1
        if i % 2:
            on[(i + 1) % 3] = 1
        y = sum(
            0.3 * np.sin(2 * np.pi * f * t)
            for f, k in zip((300.0, 900.0, 2000.0), on, strict=True)
            if k
        )
        waves.append((y + 0.02 * rng.standard_normal(t.size))[None].astype(np.float32))
        rows.append(on)
    return WaveBank(waves), torch.tensor(np.array(rows))


def test_a_multi_label_objective_trains_in_the_same_loop(tmp_path: Path) -> None:
    torch.manual_seed(0)
    net = NeuralModel("seed-cnn", {}, 3, 1).network
    bank, y = mixtures(48, 0)
    vbank, vy = mixtures(12, 1)
    config = TrainConfig(epochs=3, batch_size=16, lr=3e-3, augment="default", device="cpu")
    result = Trainer(config, objective=MultiLabel(), checkpoint_dir=tmp_path).fit(
        net,
        build_frontend(FEATURES, SR),
        bank,
        y,
        vbank,
        vy,
        n_classes=3,
        n_samples=SR // 2,
        sample_rate=SR,
    )
    first, last = result.history[0], result.history[-1]
    assert last["train_loss"] < 0.8 * first["train_loss"]
    assert last["valid_loss"] < first["valid_loss"]
    assert max(r["valid_accuracy"] for r in result.history) >= 0.5
