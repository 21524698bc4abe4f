"""Model zoo of the book.

``build(name, num_classes, **kw)`` returns an ``nn.Module`` that takes float
images in [0, 1] (NCHW) and returns logits.  Every model also exposes
``features(x)`` (the descriptor fed to the last linear layer: FP&R's G(x),
AELF's f), ``head`` (that ``nn.Linear``, with ``head(features(x)) == model(x)``)
and ``has_attention``.

Registered models (one module per family):

* ``madry_mnist_cnn`` -- :mod:`.mnist_cnn`, Madry et al.'s MNIST CNN (FP&R sec. 4.1)
* ``cnn_b`` -- :mod:`.cnn_b`, AELF Table 1
* ``madry_resnet`` -- :mod:`.madry_resnet`, Madry's CIFAR ResNet (FP&R sec. 4.2,
  RLFAT sec. 5), with FP&R's attention (:mod:`.attention`) via ``attention=``
* ``wrn`` -- :mod:`.wrn`, Wide ResNet (AELF sec. 4.3)
"""

from .base import PerImageStandardize, RobustModel
from .registry import MODELS, build, kwargs_of, names, register

# importing the family modules registers their factories
from . import mnist_cnn, cnn_b, madry_resnet, wrn  # noqa: E402,F401
from .mnist_cnn import MadryMnistCNN
from .cnn_b import CNNB
from .madry_resnet import FILTER_ALIASES, MadryResNet
from .attention import AttentionPool
from .wrn import WideResNet

__all__ = [
    "MODELS",
    "build",
    "names",
    "register",
    "kwargs_of",
    "RobustModel",
    "PerImageStandardize",
    "MadryMnistCNN",
    "CNNB",
    "MadryResNet",
    "FILTER_ALIASES",
    "AttentionPool",
    "WideResNet",
]
