"""Known buggy variants of the VAE reference, as edits of solutions/vae/vae.py.

name: ([(original text, buggy text), ...], the check each must lose). Used by
tests/test_vae.py and bench/vae_reference.py (``--variant NAME``), so the variants
always follow the reference.
"""

from __future__ import annotations

from pathlib import Path

SOLUTION = Path(__file__).resolve().parents[3] / "solutions" / "vae" / "vae.py"

_Z = "return mu + torch.exp(log_sigma) * eps"
_KL = "return torch.sum(0.5 * (mu**2 + torch.exp(2.0 * log_sigma) - 1.0) - log_sigma, dim=-1)"

VARIANTS: dict[str, tuple[list[tuple[str, str]], str]] = {
    # z = mu: no noise, so no gradient reaches sigma through the sample.
    "z_equals_mu": ([(_Z, "return mu")], "gradients_reach_mu_and_sigma"),
    # The KL is subtracted: the optimiser maximises it.
    "kl_wrong_sign": ([(_KL, "return -" + _KL[len("return "):])], "kl_matches_closed_form_and_monte_carlo"),
    # The encoder's log sigma used as if it were sigma.
    "sigma_as_log_sigma": ([(_Z, "return mu + log_sigma * eps")],
                           "reparameterized_gradients_match_finite_differences"),
    # KL averaged over latent dimensions: 1/latent_dim of its weight.
    "kl_mean_over_dims": ([(_KL, _KL.replace("torch.sum(", "torch.mean("))], "kl_matches_closed_form_and_monte_carlo"),
    # The decoder outputs probabilities and the loss reads them as such.
    "logits_as_probabilities": (
        [("        return self.decoder(z)\n", "        return torch.sigmoid(self.decoder(z))\n"),
         ('return F.binary_cross_entropy_with_logits(logits, x, reduction="none").sum(dim=-1)',
          'return F.binary_cross_entropy(logits, x, reduction="none").sum(dim=-1)')],
        "bernoulli_nll_from_logits"),
}


def source(name: str, reference: str | None = None) -> str:
    """The reference with the variant's edits (each must apply exactly once)."""
    text = reference if reference is not None else SOLUTION.read_text()
    for old, new in VARIANTS[name][0]:
        assert text.count(old) == 1, f"variant {name} does not apply: {old!r}"
        text = text.replace(old, new)
    return text
