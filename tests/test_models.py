"""Model factories fit digits by default and adapt to other inputs."""

import pytest
import torch

import workbench as wb


@pytest.mark.parametrize("factory", [wb.models.linear, wb.models.mlp, wb.models.tiny_cnn])
def test_factories_fit_digits(factory, session):
    s = wb.Session(factory, session.train, session.test, root=session.root)
    out = s.new_model()(torch.zeros(4, 1, 8, 8))
    assert out.shape == (4, 10)


def test_tiny_cnn_width_scales_parameters():
    n = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert n(wb.models.tiny_cnn(width=32)) > 3 * n(wb.models.tiny_cnn(width=16))


def test_torchvision_resnet_adapted_to_small_grayscale_inputs():
    m = wb.models.torchvision_model("resnet18", num_classes=10, in_channels=1)
    assert m.conv1.in_channels == 1 and m.conv1.stride == (1, 1) and m.fc.out_features == 10
    m.eval()
    assert m(torch.zeros(2, 1, 8, 8)).shape == (2, 10)


def test_torchvision_weights_from_a_file(tmp_path):
    src = wb.models.torchvision_model("resnet18", num_classes=1000, in_channels=3, small_input=False)
    path = tmp_path / "w.pth"
    torch.save(src.state_dict(), path)
    m = wb.models.torchvision_model("resnet18", num_classes=5, in_channels=3, weights=str(path), small_input=False)
    assert torch.equal(m.layer1[0].conv1.weight, src.layer1[0].conv1.weight)
    assert m.fc.out_features == 5
