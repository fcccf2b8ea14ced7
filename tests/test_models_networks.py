"""The models: I3D layer sizes as documented, frozen trunk, masking, weight loading, heads."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from facemorphic.errors import InputFileError
from facemorphic.models import (
    CoefficientLSTM,
    CoefficientTransformer,
    I3DClassifier,
    InceptionI3d,
    ResNet18LSTM,
    ResNet18Transformer,
    build_model,
)
from facemorphic.models.backbones import FrozenFrameEncoder
from facemorphic.training.module import AUModule, masked_frame_squared_error


pytestmark = pytest.mark.usefixtures("one_torch_thread")

# The I3D endpoint table for a 75 x 224 x 224 clip (reference notes, measured on the original network).
DOCUMENTED_I3D_75x224 = {
    "Conv3d_1a_7x7": (64, 38, 112, 112),
    "MaxPool3d_2a_3x3": (64, 38, 56, 56),
    "Conv3d_2c_3x3": (192, 38, 56, 56),
    "MaxPool3d_3a_3x3": (192, 38, 28, 28),
    "Mixed_3c": (480, 38, 28, 28),
    "MaxPool3d_4a_3x3": (480, 19, 14, 14),
    "Mixed_4f": (832, 19, 14, 14),
    "MaxPool3d_5a_2x2": (832, 10, 7, 7),
    "Mixed_5c": (1024, 10, 7, 7),
}


def test_i3d_endpoint_sizes_match_the_documented_table():
    trunk = InceptionI3d().to("meta")  # shapes only: no 264 GFLOP forward on a 2-core machine
    endpoints = trunk.endpoints(torch.empty(1, 3, 75, 224, 224, device="meta"))
    for name, shape in DOCUMENTED_I3D_75x224.items():
        assert tuple(endpoints[name].shape[1:]) == shape, name


def test_i3d_parameter_count_matches_the_original_network():
    # documented: 12,311,864 parameters with a 24-class 1x1x1 logits conv (1024*24 + 24 of them)
    trunk_params = sum(p.numel() for p in InceptionI3d().parameters())
    assert trunk_params == 12_311_864 - (1024 * 24 + 24)


def test_i3d_small_clip_sizes_follow_same_padding_and_heads_work():
    torch.manual_seed(0)
    model = I3DClassifier(clip_length=9).eval()
    frames = torch.randint(0, 256, (2, 9, 3, 40, 40), dtype=torch.uint8)
    clip = frames.float().permute(0, 2, 1, 3, 4)
    endpoints = model.trunk.endpoints(clip)
    # TF SAME: each layer gives ceil(size / stride); temporal stride 2 at conv1, pool4a, pool5a
    t, s = 9, 40
    expect_t = math.ceil(math.ceil(math.ceil(t / 2) / 2) / 2)
    expect_s = math.ceil(s / 32)
    assert tuple(endpoints["Mixed_5c"].shape[1:]) == (1024, expect_t, expect_s, expect_s)
    logits, alpha = model(frames)
    assert logits.shape == (2, 24) and alpha.shape == (2, 9, 32)
    with pytest.raises(ValueError, match="9 frames"):
        model(frames[:, :5])


def test_i3d_loads_a_kinetics_state_dict_from_a_path(tmp_path):
    torch.manual_seed(1)
    source = InceptionI3d()
    state = {k: v.clone() for k, v in source.state_dict().items()}
    state["logits.conv3d.weight"] = torch.zeros(400, 1024, 1, 1, 1)  # the Kinetics classifier is dropped
    torch.save(state, tmp_path / "rgb_imagenet.pt")
    model = I3DClassifier(clip_length=4, weights_path=tmp_path / "rgb_imagenet.pt")
    for key, value in source.state_dict().items():
        assert torch.equal(model.trunk.state_dict()[key], value), key
    torch.save({"not": torch.zeros(1)}, tmp_path / "bad.pt")
    with pytest.raises(InputFileError, match="bad.pt"):
        I3DClassifier(clip_length=4, weights_path=tmp_path / "bad.pt")


def test_resnet_weights_load_from_a_path_and_a_missing_path_is_an_error(tmp_path):
    from torchvision.models import resnet18

    torch.manual_seed(123)
    reference = resnet18(weights=None).eval()
    torch.save(reference.state_dict(), tmp_path / "resnet18-f37072fd.pth")
    encoder = FrozenFrameEncoder(tmp_path / "resnet18-f37072fd.pth")
    assert encoder.description == "imagenet:resnet18-f37072fd.pth"
    frames = torch.randint(0, 256, (1, 2, 3, 32, 32), dtype=torch.uint8)
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    reference.fc = torch.nn.Identity()
    with torch.no_grad():
        expected = reference((frames[0].float() / 255 - mean) / std)
    torch.testing.assert_close(encoder(frames)[0], expected, rtol=1e-4, atol=1e-5)
    with pytest.raises(InputFileError, match="not found"):
        FrozenFrameEncoder(tmp_path / "absent.pth")


def test_random_init_backbone_is_the_same_for_every_run_and_warns(caplog):
    a, b = FrozenFrameEncoder(init_seed=5), FrozenFrameEncoder(init_seed=5)
    assert "RANDOMLY INITIALISED" in caplog.text
    for (name, pa), pb in zip(a.trunk.state_dict().items(), b.trunk.state_dict().values()):
        assert torch.equal(pa, pb), name
    c = FrozenFrameEncoder(init_seed=6)
    assert not torch.equal(a.trunk.conv1.weight, c.trunk.conv1.weight)


@pytest.mark.parametrize("model_name", ["resnet18_lstm", "resnet18_transformer"])
def test_frozen_trunk_is_unchanged_by_a_training_step_and_the_rest_learns(model_name):
    torch.manual_seed(0)
    module = AUModule(model_name, clip_length=4, lambda_alpha=1.0)
    module.train()
    before = {k: v.clone() for k, v in module.model.state_dict().items()}
    batch = {
        "frames": torch.randint(0, 256, (3, 4, 3, 32, 32), dtype=torch.uint8),
        "alpha": torch.randn(3, 4, 32), "alpha_valid": torch.ones(3, 4, dtype=torch.bool),
        "label": torch.tensor([0, 5, 23]),
    }
    optimizer = module.configure_optimizers()
    logits, alpha = module(batch)
    module.losses(logits, alpha, batch)["loss"].backward()
    optimizer.step()
    after = module.model.state_dict()
    trunk_keys = [k for k in before if k.startswith("encoder.trunk.")]
    assert any("running_mean" in k for k in trunk_keys)  # BatchNorm statistics are included
    for key in trunk_keys:
        assert torch.equal(before[key], after[key]), key
    changed = [k for k in before if not k.startswith("encoder.") and not torch.equal(before[k], after[k])]
    assert any(k.startswith("projection.") for k in changed)
    assert any(k.startswith("classifier.") for k in changed) and any(k.startswith("regressor.") for k in changed)
    assert not module.model.encoder.trunk.training


def test_forward_equals_heads_on_encoder_features():
    torch.manual_seed(0)
    for model in (ResNet18LSTM(), ResNet18Transformer()):
        model.eval()
        frames = torch.randint(0, 256, (2, 5, 3, 32, 32), dtype=torch.uint8)
        with torch.no_grad():
            direct = model(frames)
            via_features = model.forward_features(model.encoder(frames))
        torch.testing.assert_close(direct[0], via_features[0])
        torch.testing.assert_close(direct[1], via_features[1])


def test_resnet_lstm_structure_is_the_papers():
    model = ResNet18LSTM()
    assert model.projection[1].in_features == 512 and model.projection[1].out_features == 1024
    assert (model.lstm.num_layers, model.lstm.hidden_size, model.lstm.input_size) == (3, 256, 1024)
    assert [m.out_features for m in model.classifier if hasattr(m, "out_features")] == [128, 24]
    assert [m.out_features for m in model.regressor if hasattr(m, "out_features")] == [128, 32]


def test_frame_squared_error_sums_components_ignores_invalid_frames_and_matches_a_loop():
    generator = torch.Generator().manual_seed(0)
    predicted = torch.randn(2, 6, 32, generator=generator)
    target = torch.randn(2, 6, 32, generator=generator)
    valid = torch.tensor([[1, 1, 0, 1, 0, 0], [0, 1, 1, 1, 1, 0]], dtype=torch.bool)
    total, count = 0.0, 0
    for b in range(2):
        for t in range(6):
            if valid[b, t]:
                total += sum(float(predicted[b, t, k] - target[b, t, k]) ** 2 for k in range(32))
                count += 1
    loss = masked_frame_squared_error(predicted, target, valid)
    assert loss.item() == pytest.approx(total / count, rel=1e-6)
    disturbed = predicted.clone()
    disturbed[~valid] += 100.0
    assert masked_frame_squared_error(disturbed, target, valid).item() == pytest.approx(loss.item(), rel=1e-6)
    assert masked_frame_squared_error(predicted, target, torch.zeros_like(valid)).item() == 0.0


@pytest.mark.parametrize("model_class", [CoefficientTransformer, CoefficientLSTM])
def test_coefficient_classifiers_ignore_invalid_frames(model_class):
    torch.manual_seed(0)
    model = model_class().eval()
    coefficients = torch.randn(2, 10, 32)
    valid = torch.ones(2, 10, dtype=torch.bool)
    valid[0, 3:5] = False
    valid[1, 9] = False
    disturbed = coefficients.clone()
    disturbed[~valid] = 50.0 * torch.randn(int((~valid).sum()), 32)
    with torch.no_grad():
        logits, alpha = model(coefficients, valid)
        assert alpha is None and logits.shape == (2, 24)
        torch.testing.assert_close(model(disturbed, valid)[0], logits)
        assert not torch.allclose(model(disturbed, torch.ones_like(valid))[0], logits)


def test_i3d_heads_are_fc128_then_the_outputs():
    model = I3DClassifier(clip_length=6)
    for head, out in ((model.classifier, 24), (model.regressor, 6 * 32)):
        linears = [m for m in head if isinstance(m, torch.nn.Linear)]
        assert [(m.in_features, m.out_features) for m in linears] == [(1024, 128), (128, out)]
        assert any(isinstance(m, torch.nn.ReLU) for m in head)


def test_coefficient_lstm_reads_the_coefficients_magnitude():
    # the paper's Table 2 LSTM has no per-frame normalisation: a frame scaled by 3 is a stronger AU and
    # must reach the LSTM as such; the LSTM's input is the raw (masked) coefficients
    torch.manual_seed(0)
    model = CoefficientLSTM().eval()
    assert not any(isinstance(m, torch.nn.LayerNorm) for m in model.modules())
    coefficients = torch.randn(2, 7, 32)
    valid = torch.ones(2, 7, dtype=torch.bool)
    with torch.no_grad():
        logits, _ = model(coefficients, valid)
        _, (hidden, _) = model.lstm(coefficients)
        torch.testing.assert_close(logits, model.classifier(hidden[-1]))
        assert not torch.allclose(model(3.0 * coefficients, valid)[0], logits, atol=1e-3)


def test_coefficient_transformer_has_the_papers_layers():
    model = CoefficientTransformer()
    assert len(model.transformer.encoder.layers) == 2 and len(model.transformer.decoder.layers) == 2
    assert model.transformer.encoder.layers[0].self_attn.num_heads == 2
    lstm = CoefficientLSTM()
    assert (lstm.lstm.num_layers, lstm.lstm.hidden_size) == (1, 256)


def test_build_model_rejects_unknown_names_and_alpha_on_coefficient_models():
    with pytest.raises(ValueError, match="unknown model"):
        build_model("vgg", 8)
    with pytest.raises(ValueError, match="lambda_alpha"):
        AUModule("coeff_lstm", lambda_alpha=1.0)
    assert np.isclose(AUModule("coeff_lstm").lr, 1e-3)


def test_i3d_input_size_and_frame_step_select_and_area_resize_the_trunk_input():
    frames = torch.randint(0, 256, (2, 6, 3, 8, 8), dtype=torch.uint8)
    model = I3DClassifier(clip_length=6, input_size=4, frame_step=2)
    trunk_input = model.trunk_input(frames)
    # frames 0, 2, 4, each 2x2 block averaged, scaled to [-1, 1], as [B, C, T, H, W]
    scaled = frames.double() * (2.0 / 255.0) - 1.0
    expected = scaled[:, ::2].reshape(2, 3, 3, 4, 2, 4, 2).mean(dim=(4, 6)).permute(0, 2, 1, 3, 4)
    assert trunk_input.shape == (2, 3, 3, 4, 4)
    torch.testing.assert_close(trunk_input.double(), expected, atol=1e-6, rtol=0)
    # 0 and 1: the shard frames exactly as the trunk's input
    plain = I3DClassifier(clip_length=6).trunk_input(frames)
    torch.testing.assert_close(plain.double(), scaled.permute(0, 2, 1, 3, 4), atol=1e-6, rtol=0)
    logits, alpha = model.eval()(frames)
    assert logits.shape == (2, 24) and alpha.shape == (2, 6, 32)
    with pytest.raises(ValueError):
        I3DClassifier(clip_length=6, frame_step=0)


def test_pointwise_units_compute_what_conv3d_computes_in_value_and_gradient():
    from facemorphic.models.i3d import Unit3D

    torch.manual_seed(3)
    unit = Unit3D(12, 7)
    assert unit.pointwise
    assert not Unit3D(12, 7, (3, 3, 3)).pointwise and not Unit3D(12, 7, (1, 1, 1), (2, 2, 2)).pointwise
    x = torch.randn(2, 12, 3, 5, 4, dtype=torch.float64, requires_grad=True)
    unit = unit.double()
    fast = unit(x)
    grads_fast = torch.autograd.grad(fast.square().sum(), (x, unit.conv3d.weight))
    reference = torch.relu(unit.bn(torch.nn.functional.conv3d(x, unit.conv3d.weight)))
    grads_reference = torch.autograd.grad(reference.square().sum(), (x, unit.conv3d.weight))
    torch.testing.assert_close(fast, reference, rtol=1e-12, atol=1e-12)
    for got, expected in zip(grads_fast, grads_reference):
        torch.testing.assert_close(got, expected, rtol=1e-10, atol=1e-10)
