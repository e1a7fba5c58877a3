"""The PyTorch networks of the deep detectors (imported only to fit: needs torch).

Each network takes windows ``x`` (batch x window x channels, training z units) and has:
``loss(x)``, the training objective, a scalar; and ``forward(x)``, what is exported to ONNX:
each value's error (batch x window x channels, a squared error), higher = more anomalous. ``train_step``
does one optimisation step and returns the loss (the GAN's steps two networks).
"""

from __future__ import annotations

import torch
from torch import nn


class WindowAutoencoder(nn.Module):
    """An MLP through a ``latent``-wide bottleneck over the flattened window; the error is the
    squared reconstruction error of each value."""

    def __init__(self, window: int, channels: int, hidden: int, latent: int) -> None:
        super().__init__()
        size = window * channels
        self.encoder = nn.Sequential(nn.Flatten(), nn.Linear(size, hidden), nn.GELU(),
                                     nn.Linear(hidden, latent))
        self.decoder = nn.Sequential(nn.Linear(latent, hidden), nn.GELU(),
                                     nn.Linear(hidden, size))

    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(x)).reshape(x.shape)

    def loss(self, x: torch.Tensor) -> torch.Tensor:
        return ((self.reconstruct(x) - x) ** 2).mean()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.reconstruct(x)) ** 2


class WindowVAE(nn.Module):
    """A variational autoencoder over the flattened window in the manner of DONUT (Xu et al.,
    WWW 2018): a Gaussian latent, trained on the evidence lower bound (reconstruction error
    plus ``beta`` x the KL divergence from the unit prior, per value). The error uses the
    latent mean (deterministic): each value's squared error plus the window's KL per value."""

    def __init__(self, window: int, channels: int, hidden: int, latent: int,
                 beta: float = 1.0) -> None:
        super().__init__()
        size = window * channels
        self.values, self.beta = size, beta
        self.encoder = nn.Sequential(nn.Flatten(), nn.Linear(size, hidden), nn.GELU(),
                                     nn.Linear(hidden, 2 * latent))
        self.decoder = nn.Sequential(nn.Linear(latent, hidden), nn.GELU(),
                                     nn.Linear(hidden, size))

    def _encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean, log_var = self.encoder(x).chunk(2, dim=-1)
        return mean, log_var.clamp(-12.0, 12.0)

    @staticmethod
    def _kl(mean: torch.Tensor, log_var: torch.Tensor) -> torch.Tensor:
        return 0.5 * (mean**2 + log_var.exp() - 1.0 - log_var).sum(dim=-1)

    def loss(self, x: torch.Tensor) -> torch.Tensor:
        mean, log_var = self._encode(x)
        z = mean + torch.randn_like(mean) * (0.5 * log_var).exp()  # the reparameterisation
        reconstruction = self.decoder(z).reshape(x.shape)
        error = ((reconstruction - x) ** 2).flatten(1).sum(dim=1)
        return ((error + self.beta * self._kl(mean, log_var)) / self.values).mean()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean, log_var = self._encode(x)
        reconstruction = self.decoder(mean).reshape(x.shape)
        kl = self.beta * self._kl(mean, log_var)[:, None, None] / self.values
        return (x - reconstruction) ** 2 + kl


class PatchTransformer(nn.Module):
    """Self-attention over the window for long dependencies, in the spirit of TranAD (VLDB
    2022): the window is cut into patches of ``patch`` rows (one token each, as PatchTST
    does, so attention costs (window / patch)^2, not window^2), encoded by a
    ``TransformerEncoder``, squeezed through a narrow bottleneck per token (so no token can
    copy itself through) and decoded back to its rows. The error is the squared reconstruction
    error of each value."""

    def __init__(self, window: int, channels: int, width: int, layers: int, heads: int,
                 patch: int) -> None:
        super().__init__()
        self.patch, self.tokens = patch, window // patch
        values = patch * channels
        squeeze = max(2, min(8, values // 4))
        self.embed = nn.Linear(values, width)
        self.position = nn.Parameter(torch.zeros(1, self.tokens, width))
        layer = nn.TransformerEncoderLayer(width, heads, dim_feedforward=2 * width, dropout=0.0,
                                           batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.bottleneck = nn.Sequential(nn.Linear(width, squeeze), nn.GELU(),
                                        nn.Linear(squeeze, width))
        self.decode = nn.Linear(width, values)

    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        batch, window, channels = x.shape
        tokens = x.reshape(batch, self.tokens, self.patch * channels)
        hidden = self.encoder(self.embed(tokens) + self.position)
        return self.decode(self.bottleneck(hidden)).reshape(batch, window, channels)

    def loss(self, x: torch.Tensor) -> torch.Tensor:
        return ((self.reconstruct(x) - x) ** 2).mean()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.reconstruct(x)) ** 2


class WindowGAN(nn.Module):
    """Adversarially trained reconstruction with a critic, in the spirit of TadGAN (Geiger et
    al., 2020): an autoencoder (the generator) learns to reconstruct windows that a critic
    cannot tell from real ones, and the critic learns to tell them apart. The error is each
    value's squared reconstruction error plus a tenth of the critic's doubt that the window is
    real (``softplus(-critic)``, 0 for a window it is sure of), as TadGAN combines the two."""

    def __init__(self, window: int, channels: int, hidden: int, latent: int,
                 adversarial: float = 0.1) -> None:
        super().__init__()
        self.generator = WindowAutoencoder(window, channels, hidden, latent)
        self.critic = nn.Sequential(nn.Flatten(), nn.Linear(window * channels, hidden),
                                    nn.LeakyReLU(0.2), nn.Linear(hidden, 1))
        self.adversarial = adversarial

    def loss(self, x: torch.Tensor) -> torch.Tensor:
        return self.generator.loss(x)  # what validation and early stopping watch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        reconstruction = self.generator.reconstruct(x)
        doubt = nn.functional.softplus(-self.critic(x))[:, :, None]  # batch x 1 x 1
        return (x - reconstruction) ** 2 + 0.1 * doubt


def train_step(net: nn.Module, optimisers: list[torch.optim.Optimizer],
               x: torch.Tensor) -> torch.Tensor:
    """One optimisation step on the batch ``x``; returns the training loss (detached)."""
    if isinstance(net, WindowGAN):
        generator_opt, critic_opt = optimisers
        bce = nn.functional.binary_cross_entropy_with_logits
        fake = net.generator.reconstruct(x)
        real_logit, fake_logit = net.critic(x), net.critic(fake.detach())
        critic_loss = bce(real_logit, torch.ones_like(real_logit)) + bce(
            fake_logit, torch.zeros_like(fake_logit))
        critic_opt.zero_grad()
        critic_loss.backward()
        critic_opt.step()
        fooled = net.critic(fake)
        loss = ((fake - x) ** 2).mean()
        total = loss + net.adversarial * bce(fooled, torch.ones_like(fooled))
        generator_opt.zero_grad()
        total.backward()
        generator_opt.step()
        return loss.detach()
    (optimiser,) = optimisers
    loss = net.loss(x)
    optimiser.zero_grad()
    loss.backward()
    optimiser.step()
    return loss.detach()


def optimisers(net: nn.Module, learning_rate: float) -> list[torch.optim.Optimizer]:
    """Adam for the network (the GAN: one for its generator, one for its critic)."""
    if isinstance(net, WindowGAN):
        return [torch.optim.Adam(net.generator.parameters(), learning_rate),
                torch.optim.Adam(net.critic.parameters(), learning_rate)]
    return [torch.optim.Adam(net.parameters(), learning_rate)]
