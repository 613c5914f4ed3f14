# %% [markdown]
# # Variational autoencoder (VAE) on MNIST-like images
#
# You will train a VAE (Kingma & Welling, 2014) with a Gaussian encoder and a
# Bernoulli decoder on 28x28 grey images (Fashion-MNIST by default, or MNIST).
#
# * The **encoder** maps an image x (784 grey levels in [0, 1]) to the mean `mu` and
#   the log standard deviation `log_sigma` of q(z|x) = N(mu, diag(sigma^2)).
# * The **reparametrisation trick** draws z = mu + sigma * eps with eps ~ N(0, I),
#   so that gradients flow to `mu` and `sigma` through the sample.
# * The **decoder** maps z to 784 *logits*: p(x_i = 1 | z) = sigmoid(logit_i).
# * The loss is the negative evidence lower bound, in nats per image:
#
#   -ELBO(x) = BCE(x, decoder(z)) + KL( N(mu, sigma^2) || N(0, I) )
#
#   where the binary cross-entropy is **summed** over the 784 pixels and the KL is
#   **summed** over the latent dimensions (and both are averaged over the batch
#   only for the optimiser).
#
# The grader trains your model on the training split, then computes the test-set
# negative ELBO itself from your encoder's (mu, log_sigma) and your decoder's logits,
# drawing eps with its own random numbers. It also checks each function below on
# inputs of its own. Fill in the parts marked `# YOUR CODE HERE`.
#
# [py] Run this file (`python vae.py`) to train and evaluate on your machine.
# [ipynb] To train and evaluate on your machine, set `TRY_IT = True` in the "Try it" cell and run it
# [ipynb] (it trains for minutes, so "Run All" skips it).

# %%
import math
import time
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class Args:
    """Hyperparameters; the grader sets `seed`, `epochs`, `time_budget_s` and `device`."""

    seed: int = 1
    """seed of torch's and numpy's random numbers"""
    latent_dim: int = 20
    """dimension of z"""
    hidden_dim: int = 400
    """width of the single hidden layer of the encoder and of the decoder"""
    learning_rate: float = 1e-3
    """Adam's step size"""
    batch_size: int = 128
    """images per gradient step"""
    epochs: int = 10
    """passes over the training images"""
    time_budget_s: float = 600.0
    """the time the grader allows train() (you need not read it: train for `epochs` epochs)"""
    device: str = "auto"
    """auto (CUDA when available, else CPU), cpu or cuda"""
    threads: int = 2
    """torch CPU threads"""


# %% [markdown]
# ## 1. The reparametrisation trick
#
# Given `mu`, `log_sigma` and standard normal noise `eps` (all of the same shape),
# return the sample z = mu + sigma * eps. The noise is an argument so that the
# caller decides it: in training you pass `torch.randn_like(mu)`, and the grader
# passes its own.

# %%
def reparameterize(mu: torch.Tensor, log_sigma: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    """z = mu + exp(log_sigma) * eps, differentiable in mu and log_sigma."""
    ### BEGIN SOLUTION
    return mu + torch.exp(log_sigma) * eps
    ### END SOLUTION


# %% [markdown]
# ## 2. The KL divergence to the prior
#
# For q = N(mu, diag(sigma^2)) and p = N(0, I), the KL divergence has a closed form.
# Per latent dimension it is  0.5 * (mu^2 + sigma^2 - 1) - log sigma.
# Return one number per row: the sum over the last dimension.

# %%
def gaussian_kl(mu: torch.Tensor, log_sigma: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, sigma^2) || N(0, I)) summed over the last dimension: shape mu.shape[:-1]."""
    ### BEGIN SOLUTION
    return torch.sum(0.5 * (mu**2 + torch.exp(2.0 * log_sigma) - 1.0) - log_sigma, dim=-1)
    ### END SOLUTION


# %% [markdown]
# ## 3. The reconstruction term
#
# The decoder outputs *logits* l (any real numbers), not probabilities. The negative
# log-likelihood of grey levels x in [0, 1] under Bernoulli(sigmoid(l)) is the binary
# cross-entropy  -[x log sigmoid(l) + (1 - x) log(1 - sigmoid(l))], summed over pixels.
# Return one number per row. Two checks, one point each: the value at moderate logits,
# and stability in float32 at large ones (|l| = 40 or 120). Compute it from the logits
# (`F.binary_cross_entropy_with_logits`, or log-sigmoid): the common
# `F.binary_cross_entropy(torch.sigmoid(l), x)` gets the first point but loses the
# second, because in float32 sigmoid(-120) is exactly 0 and log(0) is clamped at -100.

# %%
def bernoulli_nll(logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy of x under Bernoulli(sigmoid(logits)), summed over the last dimension."""
    ### BEGIN SOLUTION
    return F.binary_cross_entropy_with_logits(logits, x, reduction="none").sum(dim=-1)
    ### END SOLUTION


# %% [markdown]
# ## 4. The model
#
# An MLP encoder 784 -> hidden -> (mu, log_sigma) (one ReLU hidden layer, then two
# linear heads) and an MLP decoder latent -> hidden -> 784 logits (one ReLU hidden
# layer). The decoder returns logits: the loss applies the sigmoid inside
# `bernoulli_nll`, and the grader reads your decoder's outputs as logits.

# %%
class VAE(nn.Module):
    def __init__(self, latent_dim: int = 20, hidden_dim: int = 400, image_dim: int = 784):
        super().__init__()
        self.latent_dim = latent_dim
        ### BEGIN SOLUTION
        self.encoder = nn.Sequential(nn.Linear(image_dim, hidden_dim), nn.ReLU())
        self.to_mu = nn.Linear(hidden_dim, latent_dim)
        self.to_log_sigma = nn.Linear(hidden_dim, latent_dim)
        self.decoder = nn.Sequential(
            nn.Linear(latent_dim, hidden_dim), nn.ReLU(), nn.Linear(hidden_dim, image_dim)
        )
        ### END SOLUTION

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Images (B, 784) in [0, 1] -> (mu, log_sigma), each (B, latent_dim)."""
        ### BEGIN SOLUTION
        h = self.encoder(x)
        return self.to_mu(h), self.to_log_sigma(h)
        ### END SOLUTION

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Latents (B, latent_dim) -> logits (B, 784) of p(x | z): no sigmoid here."""
        ### BEGIN SOLUTION
        return self.decoder(z)
        ### END SOLUTION


# %% [markdown]
# ## 5. The loss: the negative ELBO of each image
#
# Encode x, draw z with the reparametrisation trick using the given `eps`, decode,
# and return reconstruction + KL for each image (shape (B,), in nats).

# %%
def negative_elbo(model: VAE, x: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    """One-sample estimate of -ELBO(x) per image, using the noise eps (B, latent_dim)."""
    ### BEGIN SOLUTION
    mu, log_sigma = model.encode(x)
    z = reparameterize(mu, log_sigma, eps)
    return bernoulli_nll(model.decode(z), x) + gaussian_kl(mu, log_sigma)
    ### END SOLUTION


# %% [markdown]
# ## 6. Training
#
# `train_images` is a float32 array (N, 784) of grey levels in [0, 1]. Shuffle each
# epoch, and for each minibatch take one Adam step on the *mean* over the batch of
# the per-image negative ELBO, for `args.epochs` epochs. You need no clock: the model
# suggested here trains the grader's epochs well inside `args.time_budget_s`.

# %%
def pick_device(name: str) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(name)


def train(args: Args, train_images: np.ndarray) -> VAE:
    """Train a VAE on train_images (N, 784) float32 in [0, 1]; return it."""
    start = time.monotonic()  # only to print how long each epoch took
    torch.manual_seed(args.seed)
    np.random.seed(args.seed)
    torch.set_num_threads(args.threads)
    device = pick_device(args.device)
    data = torch.as_tensor(np.asarray(train_images, dtype=np.float32), device=device)
    model = VAE(args.latent_dim, args.hidden_dim, data.shape[1]).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.learning_rate)
    steps_per_epoch = math.ceil(len(data) / args.batch_size)
    for epoch in range(args.epochs):
        order = torch.randperm(len(data), device=device)
        total = 0.0
        for step in range(steps_per_epoch):
            x = data[order[step * args.batch_size : (step + 1) * args.batch_size]]
            ### BEGIN SOLUTION
            eps = torch.randn(len(x), args.latent_dim, device=device)
            loss = negative_elbo(model, x, eps).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += loss.item() * len(x)
            ### END SOLUTION
        print(f"epoch {epoch + 1}: training -ELBO {total / len(data):.2f} nats/image "
              f"({time.monotonic() - start:.1f} s)")
    return model


# %% [markdown]
# ## 7. Try it
#
# The demo trains on Fashion-MNIST's training split and reports the test-set
# negative ELBO, as the grader will (the grader uses its own noise and seeds).
# It needs the data: `sudo apt-get install dataset-fashion-mnist`, or
# `python -m graders.datasets fetch fashion-mnist` from the course repository.

# %%
if __name__ == "__main__":
    try:
        from graders import datasets
    except ImportError:
        raise SystemExit("load the data from the course repository: pip install -e . there, then run this") from None

    args = Args(epochs=3, threads=1)
    train_split = datasets.load("fashion-mnist", "train", download=True)
    model = train(args, train_split.flat_float())
    test = torch.as_tensor(datasets.load("fashion-mnist", "test", download=True).flat_float())
    model = model.cpu().eval()
    with torch.no_grad():
        eps = torch.randn(len(test), args.latent_dim)
        print(f"test -ELBO: {negative_elbo(model, test, eps).mean().item():.2f} nats/image")
