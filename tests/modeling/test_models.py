"""models.py: shapes, explicit freeze (BatchNorm included), ImageNet loading, checkpoints."""

import io

import pytest
import torch
import torchvision

from safety_models.errors import WeightsMissing
from safety_models.modeling.models import (STAGES, ModelConfig, create_model, freeze_up_to, imagenet_weights_file, load_imagenet_backbone, model_from_checkpoint, model_to_state, trainable_parameters)


# One torch thread and seed 0 for every test here (conftest.py: one_thread).
pytestmark = pytest.mark.usefixtures("one_thread")


def _model(**kw):
    return create_model(ModelConfig(in_channels=5, decoder_width=16, full_res_width=8, **kw))


@pytest.mark.parametrize("shape", [(16, 16), (13, 21), (40, 33)])
def test_output_is_cell_resolution(shape):
    m = _model().eval()
    logit, log_rate = m(torch.randn(2, 5, *shape))
    assert logit.shape == log_rate.shape == (2, *shape)


def test_input_scale_two():
    m = _model(input_scale=2).eval()
    logit, _ = m(torch.randn(1, 5, 17, 23))
    assert logit.shape == (1, 17, 23)


def test_freeze_keeps_weights_and_batchnorm_stats():
    m = _model()
    names = freeze_up_to(m, "layer1")
    assert names and all(n.split(".")[0] in ("adapter", "stem", "layer1") for n in names)
    assert all(not p.requires_grad for n, p in m.named_parameters() if n.split(".")[0] in ("adapter", "stem", "layer1"))
    assert all(p.requires_grad for n, p in m.named_parameters() if n.split(".")[0] in ("layer2", "head"))
    before = {k: v.clone() for k, v in m.state_dict().items()}
    m.train()
    assert not m.stem[1].training and not m.layer1[0].bn1.training    # frozen BN stays in eval
    assert m.layer2[0].bn1.training
    opt = torch.optim.SGD(trainable_parameters(m), lr=0.1, momentum=0.9)
    for _ in range(2):
        logit, log_rate = m(torch.randn(2, 5, 16, 16))
        (logit.square().mean() + log_rate.square().mean() + logit.mean()).backward()
        opt.step()
        opt.zero_grad()
    after = m.state_dict()
    for k, v in before.items():
        top = k.split(".")[0]
        if top in ("adapter", "stem", "layer1"):
            assert torch.equal(v, after[k]), k                            # weights + running stats
    assert not torch.equal(before["layer2.0.bn1.running_mean"], after["layer2.0.bn1.running_mean"])
    assert not torch.equal(before["layer2.0.conv1.weight"], after["layer2.0.conv1.weight"])
    # only trainable parameters are in the optimizer
    in_opt = {id(p) for g in opt.param_groups for p in g["params"]}
    assert in_opt == {id(p) for p in m.parameters() if p.requires_grad}


def test_freeze_none_and_without_adapter():
    m = _model()
    assert freeze_up_to(m, "none") == []
    assert all(p.requires_grad for p in m.parameters())
    names = freeze_up_to(m, "stem", include_adapter=False)
    assert names and all(n.startswith("stem.") for n in names)
    assert all(p.requires_grad for p in m.adapter.parameters())
    with pytest.raises(ValueError):
        freeze_up_to(m, "layer9")
    assert STAGES == ("stem", "layer1", "layer2", "layer3", "layer4")


def test_weights_missing_says_where(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    with pytest.raises(WeightsMissing) as err:
        load_imagenet_backbone(_model())
    msg = str(err.value)
    assert "resnet18-f37072fd.pth" in msg and str(tmp_path / "hub" / "checkpoints") in msg
    assert imagenet_weights_file("resnet18").name == "resnet18-f37072fd.pth"


def test_imagenet_weights_load_from_file(tmp_path):
    ref = torchvision.models.resnet18(weights=None)
    path = tmp_path / "r18.pth"
    torch.save(ref.state_dict(), path)
    m = _model()
    loaded = load_imagenet_backbone(m, path)
    assert "stem.0.weight" in loaded and not any(k.startswith("fc") for k in loaded)
    assert torch.equal(m.stem[0].weight, ref.conv1.weight)
    assert torch.equal(m.layer4[1].bn2.running_var, ref.layer4[1].bn2.running_var)
    torch.save({"junk": torch.zeros(1)}, tmp_path / "bad.pth")
    with pytest.raises(WeightsMissing):
        load_imagenet_backbone(m, tmp_path / "bad.pth")


def test_checkpoint_round_trip_predicts_the_same():
    m = _model().eval()
    buf = io.BytesIO()
    torch.save(model_to_state(m), buf)
    buf.seek(0)
    m2 = model_from_checkpoint(torch.load(buf, weights_only=True))
    x = torch.randn(2, 5, 16, 16)
    with torch.no_grad():
        a, b = m(x), m2(x)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert ModelConfig.from_dict(m.cfg.to_dict()) == m.cfg
