"""Devices: `auto` is the CPU here, an explicit cuda without a GPU is a clear UserError
before any work, and the choice travels in TrainConfig and the CLI."""

from __future__ import annotations

import contextlib

import pytest
import torch

from safety_models import cli
from safety_models.errors import UserError
from safety_models.modeling import devices
from safety_models.modeling.training import TrainConfig, fit, pretrain

no_gpu = pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA GPU")


def test_auto_is_a_gpu_only_where_torch_sees_one(monkeypatch):
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert devices.resolve_device("auto") == torch.device(expected)
    assert devices.resolve_device(None) == torch.device(expected)
    assert devices.resolve_device("cpu") == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert devices.resolve_device("auto") == torch.device("cuda")


@no_gpu
def test_auto_is_the_cpu_on_this_machine():
    assert devices.resolve_device("auto") == torch.device("cpu")


@no_gpu
@pytest.mark.parametrize("name", ["cuda", "cuda:0", "CUDA"])
def test_cuda_without_a_gpu_says_what_to_do(name):
    with pytest.raises(UserError, match="no CUDA GPU.*--device cpu"):
        devices.resolve_device(name)


def test_unknown_device_names_the_choices():
    with pytest.raises(UserError, match="expected one of auto, cpu, cuda"):
        devices.resolve_device("tpu")


def test_mixed_precision_only_on_cuda():
    for training in (True, False):
        assert isinstance(devices.autocast(torch.device("cpu"), training),
                          contextlib.nullcontext)


def test_train_config_carries_the_device():
    assert TrainConfig().device == "auto"
    cfg = TrainConfig(category="traffic", device="cpu")
    assert TrainConfig.from_dict(cfg.to_dict()) == cfg
    # A job or checkpoint written before the option existed reads as 'auto'.
    old = {k: v for k, v in cfg.to_dict().items() if k != "device"}
    assert TrainConfig.from_dict(old).device == "auto"


@no_gpu
def test_fit_and_pretrain_refuse_cuda_before_any_work():
    import numpy as np

    counts = np.zeros((10, 4, 4), np.float32)
    with pytest.raises(UserError, match="no CUDA GPU"):
        fit(counts, None, None, TrainConfig(device="cuda"))
    with pytest.raises(UserError, match="no CUDA GPU"):
        pretrain([], device="cuda")


def test_cli_choices_are_the_libraries():
    assert cli.DEVICE_CHOICES == devices.DEVICE_CHOICES


@no_gpu
@pytest.mark.parametrize("argv", [
    ["train", "--category", "crime", "--device", "cuda"],
    ["pretrain", "--device", "cuda"],
    ["predict", "--category", "crime", "--out", "x.csv", "--device", "cuda"],
    ["evaluate", "--category", "crime", "--device", "cuda"],
])
def test_cli_device_cuda_without_a_gpu_is_exit_2_with_the_reason(argv, capsys, tmp_path,
                                                                 monkeypatch):
    monkeypatch.setenv("SAFETY_MODELS_HOME", str(tmp_path))
    monkeypatch.delenv("SAFETY_MODELS_DB_URL", raising=False)
    assert cli.main(argv) == cli.EXIT_USER_ERROR
    assert "no CUDA GPU" in capsys.readouterr().err
    assert not (tmp_path / "safety_models.db").exists()   # refused before opening the store
