"""The theory lab (seeds 000, 001, 004): the GAN identities checked with numbers.

p_data is the 1-D two-peak mixture of seed 002, 1/2 N(-3, 1) + 1/2 N(3, 1).

(a) ``optimal_d_experiment``: for a fixed p_g, a small D trained with the cross-entropy D loss
    approaches D*(x) = p_data(x) / (p_data(x) + p_g(x)). Pass: max |D - D*| < OPTIMAL_D_TOL over
    the region where p_data + p_g > REGION_FRACTION * max(p_data + p_g).
(b) ``value_vs_js``: with D = D*, V(D*, G) = int p_data log D* + p_g log(1 - D*) equals
    2 JS(p_data || p_g) - 2 log 2, minimal (-2 log 2) at p_g = p_data. Pass: the two, computed
    independently on a grid, differ by less than JS_TOL.
(c) ``generator_losses``: J(G) against D(G(z)) for the minimax, non-saturating and
    maximum-likelihood costs, as on the slide "Comparison of generator losses" (seed 004).
(d) ``distance_estimates``: the distance each D loss estimates during training
    (``losses.DISTANCE_ESTIMATES``: JS, total variation, triangular discrimination), logged by
    ``discriminator_stats`` for samples of p_data and p_g judged by that loss's best D, against
    the distance from its definition. Pass: they differ by less than ESTIMATE_TOL.

``write_theory(out_dir)`` draws the four figures and writes the numbers to theory.json.
Everything runs on the CPU in seconds.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ganforge.files import write_text
from ganforge.losses import D_LOSSES, DISTANCE_ESTIMATES, G_LOSSES, discriminator_stats

DATA_MEANS = (-3.0, 3.0)
DATA_STD = 1.0
G_STD = 1.5               # the fixed p_g of (a): N(0, G_STD^2), between and under both peaks

OPTIMAL_D_TOL = 0.05      # (a) max |D(x) - D*(x)| allowed inside the region below
REGION_FRACTION = 1e-3    # (a) D is judged where p_data + p_g > this * max(p_data + p_g)
OPTIMAL_D_STEPS = 600     # (a) Adam steps; measured max error 0.014 to 0.030 (seeds 0-4)
JS_TOL = 1e-4             # (b) max |V(D*, G) - (2 JS - 2 log 2)| allowed
ESTIMATE_TOL = 1e-3       # (d) max |estimate at the best D - distance| allowed
ESTIMATE_SAMPLES = 20000  # (d) samples of each density; measured max difference 7e-5

GENERATOR_COSTS = ("minimax", "non-saturating", "maximum-likelihood")
LOG2 = math.log(2.0)


# ---------------------------------------------------------------- densities (log space, numpy)

def log_normal(x: np.ndarray, mean: float, std: float) -> np.ndarray:
    """log N(x; mean, std^2)."""
    return -0.5 * ((x - mean) / std) ** 2 - math.log(std * math.sqrt(2 * math.pi))


def log_mixture(x: np.ndarray, means: tuple[float, ...], std: float,
                weights: tuple[float, ...]) -> np.ndarray:
    """log sum_k w_k N(x; m_k, std^2), by log-sum-exp so the far tails stay finite
    (exp would underflow to 0 and log D* would become -inf or NaN there)."""
    parts = [math.log(w) + log_normal(x, m, std) for m, w in zip(means, weights) if w > 0]
    return np.logaddexp.reduce(np.stack(parts), axis=0)


def log_p_data(x: np.ndarray) -> np.ndarray:
    """log of p_data = 1/2 N(-3, 1) + 1/2 N(3, 1)."""
    return log_mixture(x, DATA_MEANS, DATA_STD, (0.5, 0.5))


def optimal_d(log_p: np.ndarray, log_q: np.ndarray) -> np.ndarray:
    """D*(x) = p / (p + q) = sigmoid(log p - log q)."""
    return 1.0 / (1.0 + np.exp(log_q - log_p))


def _trapezoid(y: np.ndarray, x: np.ndarray) -> float:
    """Trapezoid rule int y dx (np.trapezoid appeared in numpy 2.0; written out for 1.x)."""
    return float(np.sum((y[1:] + y[:-1]) * np.diff(x)) / 2)


# ---------------------------------------------------------------- (a) learned D vs D*

def optimal_d_experiment(seed: int = 0, steps: int = OPTIMAL_D_STEPS, batch: int = 2048,
                         lr: float = 0.03, g_std: float = G_STD) -> dict[str, Any]:
    """Train D (1 -> 64 -> 64 -> 1 logit) against fixed p_data and p_g = N(0, g_std^2) and compare
    it with D*(x) = p_data(x) / (p_data(x) + p_g(x)).

    Each step draws ``batch`` fresh samples from each density and takes one Adam step on
    D_LOSSES['cross-entropy'] = -1/2 E log D(x_real) - 1/2 E log(1 - D(x_fake)); its minimiser
    over all functions is D*. Returns xs, d_learned, d_star, p_data, p_g, the region mask and
    max_abs_error / mean_abs_error over the region (p_data + p_g > REGION_FRACTION * max).
    Pass when max_abs_error < OPTIMAL_D_TOL (0.05).
    """
    if steps < 1 or batch < 1 or not g_std > 0:
        raise ValueError(f"optimal_d_experiment needs steps >= 1, batch >= 1 and g_std > 0; got "
                         f"steps={steps}, batch={batch}, g_std={g_std}")
    gen = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):  # seeded init without touching the caller's RNG
        torch.default_generator.manual_seed(seed)
        # tanh rather than the LeakyReLU of the project's D: D*'s logit is smooth, and with
        # tanh the same budget fits it 2-3x closer (about 0.015 vs 0.047 max error, measured).
        d = nn.Sequential(nn.Linear(1, 64), nn.Tanh(), nn.Linear(64, 64), nn.Tanh(),
                          nn.Linear(64, 1))
    opt = torch.optim.Adam(d.parameters(), lr=lr)
    # A high rate fits the steep tails of D* quickly; decaying it to 0 removes the minibatch noise.
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    loss_fn = D_LOSSES.get("cross-entropy")
    scale = 0.25  # inputs live in about [-7, 7]; scaled to about [-2, 2] for tanh units
    means = torch.tensor(DATA_MEANS)

    for _ in range(steps):
        real = means[torch.randint(0, 2, (batch, 1), generator=gen)]
        real = real + DATA_STD * torch.randn(batch, 1, generator=gen)
        fake = g_std * torch.randn(batch, 1, generator=gen)
        loss = loss_fn(d(real * scale).squeeze(1), d(fake * scale).squeeze(1))
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()

    xs = np.linspace(-8, 8, 1601)
    with torch.no_grad():
        learned = torch.sigmoid(d(torch.tensor(xs, dtype=torch.float32)[:, None] * scale))
    learned = learned.squeeze(1).double().numpy()
    lp, lq = log_p_data(xs), log_normal(xs, 0.0, g_std)
    d_star = optimal_d(lp, lq)
    total = np.exp(lp) + np.exp(lq)
    region = total > REGION_FRACTION * total.max()
    err = np.abs(learned - d_star)[region]
    return {
        "xs": xs, "d_learned": learned, "d_star": d_star, "p_data": np.exp(lp),
        "p_g": np.exp(lq), "region": region,
        "max_abs_error": float(err.max()), "mean_abs_error": float(err.mean()),
        "seed": seed, "steps": steps, "batch": batch, "lr": lr, "g_std": g_std,
    }


# ---------------------------------------------------------------- (b) V(D*, G) = 2 JS - 2 log 2

def _value_and_js(xs: np.ndarray, lp: np.ndarray, lq: np.ndarray) -> tuple[float, float]:
    """V(D*, G) from D* and JS(p || q) from its definition, each by the trapezoid rule.

    V  = int p log D* + q log(1 - D*), with log D* = -softplus(log q - log p) and
         log(1 - D*) = -softplus(log p - log q);
    JS = 1/2 KL(p || m) + 1/2 KL(q || m), m = (p + q)/2, KL(p || m) = int p (log p - log m).
    """
    p, q = np.exp(lp), np.exp(lq)
    value = _trapezoid(-p * np.logaddexp(0, lq - lp) - q * np.logaddexp(0, lp - lq), xs)
    lm = np.logaddexp(lp, lq) - LOG2
    js = 0.5 * _trapezoid(p * (lp - lm), xs) + 0.5 * _trapezoid(q * (lq - lm), xs)
    return value, js


def _p_g_families() -> dict[str, tuple[np.ndarray, Any]]:
    """The two families of p_g of (b) and (d): name -> (parameters, log p_g(x, parameter))."""
    return {
        "mean": (np.linspace(-8, 8, 161), lambda x, mu: log_normal(x, mu, DATA_STD)),
        "weight": (np.linspace(0, 1, 101),
                   lambda x, w: log_mixture(x, DATA_MEANS, DATA_STD, (w, 1 - w))),
    }


def value_vs_js(n_grid: int = 20001, limit: float = 20.0) -> dict[str, Any]:
    """V(D*, G) and 2 JS(p_data || p_g) - 2 log 2 for two families of p_g:

    - "mean":   p_g = N(mu, 1), mu from -8 to 8. Far from the data, JS -> log 2 and V -> 0:
                the value saturates and says nothing about how far off G is (WGAN's argument).
    - "weight": p_g = w N(-3, 1) + (1 - w) N(3, 1), w from 0 to 1. w = 0.5 is p_g = p_data,
                where V = -2 log 2; w = 0 or 1 is G collapsed onto one peak (seed 002).

    Integrals use the trapezoid rule on n_grid points over [-limit, limit] (step 0.002).
    Pass when max_abs_diff < JS_TOL (1e-4).
    """
    if n_grid < 2 or not limit > 0:
        raise ValueError(f"value_vs_js needs n_grid >= 2 and limit > 0; got n_grid={n_grid}, "
                         f"limit={limit}")
    xs = np.linspace(-limit, limit, n_grid)
    lp = log_p_data(xs)
    out: dict[str, Any] = {}
    for name, (params, log_q) in _p_g_families().items():
        value, js = np.array([_value_and_js(xs, lp, log_q(xs, t)) for t in params]).T
        out[name] = {"param": params, "value": value, "js": js,
                     "two_js_minus_2log2": 2 * js - 2 * LOG2}
    out["max_abs_diff"] = float(max(np.abs(f["value"] - f["two_js_minus_2log2"]).max()
                                    for f in (out["mean"], out["weight"])))
    # p_g = p_data itself, computed directly rather than picked out of the weight family.
    out["value_at_p_data"] = _value_and_js(xs, lp, lp)[0]
    return out


# ---------------------------------------------------------------- (d) what each D loss estimates

def _best_output(loss: str, lp: np.ndarray, lq: np.ndarray) -> np.ndarray:
    """The raw output of ``loss``'s best D at points with log densities lp (data), lq (G)."""
    if loss == "cross-entropy":
        return lp - lq  # the logit of D* = p / (p + q)
    if loss == "hinge":
        return np.sign(lp - lq)
    return optimal_d(lp, lq)  # least squares: p / (p + q) itself


def _quantiles(xs: np.ndarray, lp: np.ndarray, n: int) -> np.ndarray:
    """n points of the density exp(lp) given on the grid xs, at its (i + 1/2)/n quantiles: a
    stratified sample, whose means are the integrals up to O(1/n)."""
    p = np.exp(lp)
    cdf = np.concatenate([[0.0], np.cumsum((p[1:] + p[:-1]) * np.diff(xs) / 2)])
    return np.interp((np.arange(n) + 0.5) / n * cdf[-1], cdf, xs)


def _distances(xs: np.ndarray, lp: np.ndarray, lq: np.ndarray) -> dict[str, float]:
    """JS, total variation 1/2 int |p - q| and triangular discrimination int (p - q)^2 / (p + q),
    each from its definition by the trapezoid rule."""
    p, q = np.exp(lp), np.exp(lq)
    total = p + q
    triangular = np.divide((p - q) ** 2, total, out=np.zeros_like(total), where=total > 0)
    return {"cross-entropy": _value_and_js(xs, lp, lq)[1],
            "hinge": 0.5 * _trapezoid(np.abs(p - q), xs),
            "least-squares": _trapezoid(triangular, xs)}


def distance_estimates(n: int = ESTIMATE_SAMPLES, n_grid: int = 20001,
                       limit: float = 20.0) -> dict[str, Any]:
    """For the p_g families of (b): the estimate ``discriminator_stats`` logs for each D loss
    but the Wasserstein one (whose best critic has no closed form), from n samples of p_data
    and n of p_g judged by that loss's best D, against the distance from its definition.

    With D* the estimate is the distance itself: js_estimate = JS, tv_estimate = total
    variation (D* = sign(p - q)), delta_estimate = triangular discrimination (D* = p / (p + q)).
    The samples are stratified (``_quantiles``) so the comparison is not lost in sampling noise.
    Returns, per family, the parameters and per loss the estimates and distances; and per loss
    max_abs_diff. Pass when each is below ESTIMATE_TOL (1e-3).
    """
    if n < 1 or n_grid < 2 or not limit > 0:
        raise ValueError(f"distance_estimates needs n >= 1, n_grid >= 2 and limit > 0; got "
                         f"n={n}, n_grid={n_grid}, limit={limit}")
    losses = ("cross-entropy", "hinge", "least-squares")  # a best D of closed form each
    xs = np.linspace(-limit, limit, n_grid)
    lp = log_p_data(xs)
    real = _quantiles(xs, lp, n)
    lp_real = log_p_data(real)
    out: dict[str, Any] = {}
    for name, (params, log_q) in _p_g_families().items():
        rows = []
        for t in params:
            lq = log_q(xs, t)
            fake = _quantiles(xs, lq, n)
            # log p_data and log p_g at the real and the fake samples: (lp, lq) for each set
            at = [(lp_real, log_q(real, t)), (log_p_data(fake), log_q(fake, t))]
            row = {"distance": _distances(xs, lp, lq), "estimate": {}}
            for loss in losses:
                outputs = [torch.tensor(_best_output(loss, a, b)) for a, b in at]
                key = DISTANCE_ESTIMATES[loss][0]
                row["estimate"][loss] = discriminator_stats(*outputs, loss)[key].item()
            rows.append(row)
        out[name] = {"param": params, **{
            loss: {"estimate": np.array([r["estimate"][loss] for r in rows]),
                   "distance": np.array([r["distance"][loss] for r in rows])}
            for loss in losses}}
    out["max_abs_diff"] = {
        loss: float(max(np.abs(out[f][loss]["estimate"] - out[f][loss]["distance"]).max()
                        for f in ("mean", "weight")))
        for loss in losses}
    return out


# ---------------------------------------------------------------- (c) generator costs

def generator_losses(d: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """J(G) against D(G(z)) for each registered generator cost in GENERATOR_COSTS.

    Each point is one sample with D(G(z)) = D, passed to G_LOSSES[name] as its logit
    sigma^-1(D) = log(D / (1 - D)):
        minimax              J = 1/2 log(1 - D)
        non-saturating       J = -1/2 log D
        maximum-likelihood   J = -1/2 D / (1 - D)
    (the 1/2 is the tutorial's convention, see losses/adversarial.py). Returns {"d": D, name: J}.
    """
    d = np.linspace(0.001, 0.999, 999) if d is None else np.asarray(d, dtype=np.float64)
    if d.ndim != 1 or not ((d > 0) & (d < 1)).all():
        raise ValueError(f"generator_losses needs a 1-D array of D outputs D(G(z)) in (0, 1); "
                         f"got shape {d.shape}, values {d.ravel()[:6].tolist()}")
    logits = torch.tensor(np.log(d / (1 - d)), dtype=torch.float64)
    out: dict[str, np.ndarray] = {"d": d}
    for name in GENERATOR_COSTS:
        loss = G_LOSSES.get(name)
        # The losses average over a batch; a batch of one gives J at that single D value.
        out[name] = np.array([loss(logit.reshape(1)).item() for logit in logits])
    return out


# ---------------------------------------------------------------- figures and numbers

def _plot_optimal_d(a: dict[str, Any], path: Path) -> None:
    from ganforge.viz.plots import figure, save_figure

    xs, region = a["xs"], a["region"]
    fig, (top, bottom) = figure(2, 1, figsize=(8, 6.5), sharex=True,
                                gridspec_kw={"height_ratios": [1, 1.4]})
    top.plot(xs, a["p_data"], color="tab:blue", label="p_data = N(-3,1)/2 + N(3,1)/2")
    top.plot(xs, a["p_g"], color="tab:orange", label=f"p_g = N(0, {a['g_std']:g}²) (fixed)")
    top.set_ylabel("density")
    top.set_title("Optimal discriminator for a fixed G: D*(x) = p_data / (p_data + p_g)")
    top.legend(fontsize=8)
    top.grid(alpha=0.3)
    lo, hi = xs[region].min(), xs[region].max()
    bottom.axvspan(xs[0], lo, color="grey", alpha=0.15, label="not judged (p_data + p_g tiny)")
    bottom.axvspan(hi, xs[-1], color="grey", alpha=0.15)
    bottom.plot(xs, a["d_star"], color="black", linewidth=2.5, label="D*(x) analytic")
    bottom.plot(xs, a["d_learned"], color="tab:red", linestyle="--", linewidth=1.5,
                label=f"D(x) trained ({a['steps']} Adam steps, cross-entropy)")
    bottom.set_ylim(-0.03, 1.03)
    bottom.set_xlim(xs[0], xs[-1])
    bottom.set_xlabel("x")
    bottom.set_ylabel("D(x)")
    bottom.set_title(f"max |D - D*| = {a['max_abs_error']:.4f} (tolerance {OPTIMAL_D_TOL})",
                     fontsize=10)
    bottom.legend(fontsize=8, loc="center right")
    bottom.grid(alpha=0.3)
    fig.tight_layout()
    save_figure(fig, path, dpi=100)


def _plot_value_vs_js(b: dict[str, Any], path: Path) -> None:
    from ganforge.viz.plots import figure, save_figure

    fig, axes = figure(1, 2, figsize=(11, 4.5), sharey=True)
    labels = {"mean": ("mean μ of p_g = N(μ, 1)", "p_g = one Gaussian sliding across"),
              "weight": ("weight w of p_g = w N(-3,1) + (1-w) N(3,1)",
                         "p_g = the two peaks, reweighted")}
    for ax, name in zip(axes, ("mean", "weight")):
        f = b[name]
        ax.plot(f["param"], f["value"], color="tab:blue", linewidth=2, label="V(D*, G) (integral)")
        ax.plot(f["param"][::4], f["two_js_minus_2log2"][::4], "o", color="tab:red",
                markersize=4, label="2 JS(p_data || p_g) - 2 log 2")
        ax.axhline(-2 * LOG2, color="grey", linestyle="--", linewidth=0.8)
        ax.axhline(0.0, color="grey", linestyle=":", linewidth=0.8)
        ax.set_xlabel(labels[name][0])
        ax.set_title(labels[name][1], fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="lower center" if name == "mean" else "upper center")
    axes[0].set_ylabel("value")
    axes[0].text(4.2, -2 * LOG2 + 0.03, "-2 log 2 (p_g = p_data)", fontsize=8, color="grey")
    axes[0].text(-5, 0.02, "0 (disjoint supports: JS = log 2)", fontsize=8, color="grey")
    fig.suptitle(f"C(G) = max_D V(D, G) = 2 JS - 2 log 2   "
                 f"(max difference {b['max_abs_diff']:.1e}, tolerance {JS_TOL:g})")
    fig.tight_layout()
    save_figure(fig, path, dpi=100)


def _plot_distance_estimates(e: dict[str, Any], path: Path) -> None:
    from ganforge.viz.plots import figure, save_figure

    fig, axes = figure(1, 2, figsize=(11, 4.5), sharey=True)
    labels = {"mean": "mean μ of p_g = N(μ, 1)",
              "weight": "weight w of p_g = w N(-3,1) + (1-w) N(3,1)"}
    names = {"cross-entropy": ("Jensen-Shannon", "tab:blue"),
             "hinge": ("total variation", "tab:green"),
             "least-squares": ("triangular discrimination", "tab:red")}
    for ax, family in zip(axes, ("mean", "weight")):
        f = e[family]
        for loss, (distance, colour) in names.items():
            ax.plot(f["param"], f[loss]["distance"], color=colour, linewidth=2,
                    label=f"{distance} (integral)")
            ax.plot(f["param"][::4], f[loss]["estimate"][::4], "o", color=colour, markersize=3,
                    label=f"{DISTANCE_ESTIMATES[loss][0]}, {loss} D*")
        ax.set_xlabel(labels[family])
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("distance between p_data and p_g")
    axes[1].legend(fontsize=7, loc="upper center")
    worst = max(e["max_abs_diff"].values())
    fig.suptitle(f"What each D loss estimates: its statistic at the best D against the distance "
                 f"(max difference {worst:.1e}, tolerance {ESTIMATE_TOL:g})", fontsize=10)
    fig.tight_layout()
    save_figure(fig, path, dpi=100)


def _plot_generator_losses(c: dict[str, np.ndarray], path: Path) -> None:
    from ganforge.viz.plots import figure, save_figure

    fig, ax = figure(figsize=(7, 5))
    styles = {"minimax": ("tab:blue", "-"), "non-saturating": ("tab:green", "--"),
              "maximum-likelihood": ("tab:red", "-.")}
    for name in GENERATOR_COSTS:
        colour, line = styles[name]
        ax.plot(c["d"], c[name], color=colour, linestyle=line, linewidth=2, label=name)
    ax.axhline(0.0, color="grey", linewidth=0.6)
    ax.set_xlim(0, 1)
    ax.set_ylim(-10, 4)  # maximum-likelihood falls to -500 at D = 0.999
    ax.set_xlabel("D(G(z))")
    ax.set_ylabel("J(G)")
    ax.set_title("Comparison of generator losses (Goodfellow 2016)")
    ax.text(0.02, -9.3, "G's samples start where D(G(z)) ≈ 0: only non-saturating\n"
            "has a steep slope there; minimax and maximum-likelihood are flat.",
            fontsize=8, color="dimgrey")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    save_figure(fig, path, dpi=100)


def write_theory(out_dir: Path, steps: int = OPTIMAL_D_STEPS, seed: int = 0) -> dict[str, Any]:
    """Run (a) to (d); write optimal_d.png, value_vs_js.png, generator_losses.png,
    distance_estimates.png and theory.json (errors against OPTIMAL_D_TOL = 0.05, JS_TOL = 1e-4
    and ESTIMATE_TOL = 1e-3) into out_dir. Returns what theory.json holds."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    a = optimal_d_experiment(seed=seed, steps=steps)
    b = value_vs_js()
    c = generator_losses(np.array([0.01, 0.5, 0.99]))
    e = distance_estimates()
    _plot_optimal_d(a, out_dir / "optimal_d.png")
    _plot_value_vs_js(b, out_dir / "value_vs_js.png")
    _plot_generator_losses(generator_losses(), out_dir / "generator_losses.png")
    _plot_distance_estimates(e, out_dir / "distance_estimates.png")
    numbers = {
        "optimal_d": {
            "max_abs_error": a["max_abs_error"], "mean_abs_error": a["mean_abs_error"],
            "tolerance": OPTIMAL_D_TOL, "passed": a["max_abs_error"] < OPTIMAL_D_TOL,
            "region_fraction": REGION_FRACTION,
            "region": [float(a["xs"][a["region"]].min()), float(a["xs"][a["region"]].max())],
            **{k: a[k] for k in ("seed", "steps", "batch", "lr", "g_std")},
        },
        "value_vs_js": {
            "max_abs_diff": b["max_abs_diff"], "tolerance": JS_TOL,
            "passed": b["max_abs_diff"] < JS_TOL,
            "value_at_p_data": b["value_at_p_data"], "minus_2_log_2": -2 * LOG2,
        },
        "generator_losses": {
            f"D={d:g}": {name: float(c[name][i]) for name in GENERATOR_COSTS}
            for i, d in enumerate(c["d"])
        },
        "distance_estimates": {
            "max_abs_diff": e["max_abs_diff"], "tolerance": ESTIMATE_TOL,
            "passed": max(e["max_abs_diff"].values()) < ESTIMATE_TOL,
            "samples": ESTIMATE_SAMPLES,
        },
    }
    write_text(out_dir / "theory.json", json.dumps(numbers, indent=2) + "\n")
    return numbers
