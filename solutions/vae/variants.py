"""Known buggy variants of the VAE reference (graders/variants.py explains the format)."""

from graders.variants import Variant

VARIANTS = [
    Variant(
        "z_equals_mu",
        "z = mu: no noise, so no gradient reaches sigma through the sample",
        edits=[("return mu + torch.exp(log_sigma) * eps", "return mu")],
        loses=(
            "gradients_reach_mu_and_sigma",
            "reparameterize_draws_the_sample",
            "reparameterized_gradients_match_finite_differences",
            "negative_elbo_is_reconstruction_plus_kl",
        ),
    ),
    Variant(
        "kl_wrong_sign",
        "The KL is subtracted: the optimiser maximises it",
        edits=[
            (
                "return torch.sum(0.5 * (mu**2 + torch.exp(2.0 * log_sigma) - 1.0) - log_sigma, dim=-1)",
                "return -torch.sum(0.5 * (mu**2 + torch.exp(2.0 * log_sigma) - 1.0) - log_sigma, dim=-1)",
            )
        ],
        loses=("kl_matches_closed_form_and_monte_carlo", "negative_elbo_is_reconstruction_plus_kl"),
    ),
    Variant(
        "sigma_as_log_sigma",
        "The encoder's log sigma used as if it were sigma",
        edits=[("return mu + torch.exp(log_sigma) * eps", "return mu + log_sigma * eps")],
        loses=(
            "reparameterized_gradients_match_finite_differences",
            "reparameterize_draws_the_sample",
            "gradients_reach_mu_and_sigma",
            "negative_elbo_is_reconstruction_plus_kl",
        ),
    ),
    Variant(
        "kl_mean_over_dims",
        "KL averaged over latent dimensions: 1/latent_dim of its weight",
        edits=[
            (
                "return torch.sum(0.5 * (mu**2 + torch.exp(2.0 * log_sigma) - 1.0) - log_sigma, dim=-1)",
                "return torch.mean(0.5 * (mu**2 + torch.exp(2.0 * log_sigma) - 1.0) - log_sigma, dim=-1)",
            )
        ],
        loses=("kl_matches_closed_form_and_monte_carlo", "negative_elbo_is_reconstruction_plus_kl"),
        messages={"kl_matches_closed_form_and_monte_carlo": "summed (not averaged)"},
    ),
    Variant(
        "logits_as_probabilities",
        "The decoder outputs probabilities and the loss reads them as such",
        edits=[
            ("        return self.decoder(z)\n", "        return torch.sigmoid(self.decoder(z))\n"),
            (
                'return F.binary_cross_entropy_with_logits(logits, x, reduction="none").sum(dim=-1)',
                'return F.binary_cross_entropy(logits, x, reduction="none").sum(dim=-1)',
            ),
        ],
        loses=("bernoulli_nll_from_logits", "bernoulli_nll_is_stable_at_large_logits",
               "negative_elbo_is_reconstruction_plus_kl"),
    ),
    Variant(
        "bce_on_probabilities",
        "BCE on sigmoid(logits): right at moderate logits, log(0) at large ones in float32",
        edits=[
            (
                'return F.binary_cross_entropy_with_logits(logits, x, reduction="none").sum(dim=-1)',
                'return F.binary_cross_entropy(torch.sigmoid(logits), x, reduction="none").sum(dim=-1)',
            ),
        ],
        loses=("bernoulli_nll_is_stable_at_large_logits",),
        messages={"bernoulli_nll_is_stable_at_large_logits": "log(0)"},
    ),
]
