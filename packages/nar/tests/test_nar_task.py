import numpy as np
import pytest
import torch
from lightning.pytorch import seed_everything
from nar_helpers import tiny_dm, tiny_model, tiny_trainer
from rsim.nar.tasks import NoisyLabelTask


def test_nar_elr_fit_keeps_state_on_device_and_checkpoints(tmp_path):
    seed_everything(0)
    dm = tiny_dm(tmp_path)
    model = tiny_model(method="nar_elr", p1_zero=0.6, p2_zero=0.3, p2_one=0.3)
    trainer = tiny_trainer(tmp_path)
    trainer.fit(model, datamodule=dm)
    noisy = dm.noisy_labels
    assert noisy is not None and (tmp_path / "noisy.npz").is_file()
    n, c = noisy.noisy.shape
    for name in ("y_start", "nar_labels", "nar_weights", "elr_target", "sat_target", "clean_labels"):
        assert getattr(model, name).shape == (n, c)
    torch.testing.assert_close(model.y_start, torch.from_numpy(noisy.noisy).float())
    # labels differ from y_start only where a flip was decided; weights are 0/1
    changed = model.nar_labels != model.y_start
    assert set(model.nar_weights.unique().tolist()) <= {0.0, 1.0}
    assert (model.elr_target > 0).all()  # every sample was seen and its EMA target updated
    # one diagnostics row per epoch, logged and written
    assert len(model.correction_history) == 2
    assert "nar/deact_count" in trainer.callback_metrics
    assert (tmp_path / "nar_diagnostics.csv").is_file() and (tmp_path / "nar_diagnostics.png").stat().st_size > 0
    flips = model.correction_history[-1]["flip1_count"] + model.correction_history[-1]["flip0_count"]
    assert int(changed.sum()) == int(flips)
    # checkpointed buffers come back, also outside a trainer (buffers resized from the checkpoint)
    ckpt = tmp_path / "m.ckpt"
    trainer.save_checkpoint(ckpt)
    back = NoisyLabelTask.load_from_checkpoint(ckpt, map_location="cpu")
    torch.testing.assert_close(back.elr_target, model.elr_target)
    torch.testing.assert_close(back.nar_weights, model.nar_weights)


@pytest.mark.parametrize("method", ["bce", "elr", "sat", "asl", "nar", "nar_sat"])
def test_every_method_trains_one_batch(tmp_path, method):
    seed_everything(0)
    dm = tiny_dm(tmp_path, add_rate=0.3)
    model = tiny_model(method=method, sat_warmup_epochs=0, p2_zero="dynamic", p1_one="cw", p2_one="cw")
    before = model.sat_target.clone()
    trainer = tiny_trainer(tmp_path, max_epochs=1, limit_train_batches=1, limit_val_batches=1)
    trainer.fit(model, datamodule=dm)
    loss = trainer.callback_metrics["train/loss"]
    assert torch.isfinite(loss)
    if method in ("sat", "nar_sat"):
        assert not torch.equal(model.sat_target, torch.from_numpy(dm.noisy_labels.noisy).float()) or before.numel()
    if method.startswith("nar"):
        assert model.correction_history and "nar/flip1" in trainer.callback_metrics
    else:
        assert not model.correction_history


def test_elr_target_is_the_ema_of_probabilities(tmp_path):
    seed_everything(0)
    dm = tiny_dm(tmp_path)
    dm.setup("fit")
    model = tiny_model(method="elr", elr_beta=0.7)
    model.init_label_state(dm.noisy_labels.noisy, dm.noisy_labels.clean)
    batch = dm.transform_batch(next(iter(dm.train_dataloader())), train=False)
    batch = dm.replace_train_labels(batch)
    model.training_step(batch, 0)
    with torch.no_grad():
        p = torch.sigmoid(model(batch["image"])).clamp(1e-4, 1 - 1e-4)
    idx = batch["index"]
    torch.testing.assert_close(model.elr_target[idx], 0.3 * p, atol=1e-5, rtol=1e-4)
    untouched = torch.ones(len(model.elr_target), dtype=torch.bool)
    untouched[idx] = False
    assert (model.elr_target[untouched] == 0).all()
    np.testing.assert_array_equal(batch["label"].numpy(), dm.noisy_labels.noisy[idx.numpy()])


def test_eval_probability_pass(tmp_path):
    seed_everything(0)
    dm = tiny_dm(tmp_path)
    model = tiny_model(method="nar", nrl_prob_source="eval", warm_start_epochs=1)
    trainer = tiny_trainer(tmp_path, max_epochs=1, limit_val_batches=1)
    trainer.fit(model, datamodule=dm)
    assert len(model.correction_history) == 1


def test_bad_options_raise():
    with pytest.raises(ValueError, match="method"):
        NoisyLabelTask(method="coteaching")
    with pytest.raises(ValueError, match="out of order"):
        NoisyLabelTask(p1_one=0.5, p2_one=0.2)
    with pytest.raises(ValueError, match="loss_norm"):
        NoisyLabelTask(loss_norm="sum")
