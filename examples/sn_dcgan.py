"""A model family from outside ganforge: DCGAN with a spectrally normalised D (SN-GAN,
Miyato et al. 2018), registered as ``model.arch=sn-dcgan``.

Every weight of D is divided by its largest singular value, estimated by one power iteration
per training step, so D is (about) 1-Lipschitz layer by layer; D's batch norm is dropped, as in
the paper. G is ganforge's DCGAN G. Use it from the command line with

    GANFORGE_PLUGINS=examples/sn_dcgan.py ganforge train dcgan-mnist model.arch=sn-dcgan \
        loss.discriminator=hinge loss.generator=hinge loss.penalty=none --out runs/sn

or in Python by importing this file before ``ganforge.load_config``.
"""
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from ganforge.models import MODELS, ModelFamily
from ganforge.models import dcgan


def build(cfg):
    g, d = dcgan.build(cfg)  # DCGAN's layers and N(0, 0.02) initialisation
    for i, block in enumerate(d.blocks):
        layers = [m for m in (block if isinstance(block, nn.Sequential) else [block])
                  if not isinstance(m, nn.BatchNorm2d)]  # SN-GAN's D has no batch norm
        for m in layers:
            if isinstance(m, nn.Conv2d):
                spectral_norm(m)  # the power iteration's vectors are buffers: checkpointed
        d.blocks[i] = nn.Sequential(*layers) if isinstance(block, nn.Sequential) else layers[0]
    return g, d


MODELS.register("sn-dcgan")(ModelFamily(build=build, check=dcgan.check))
