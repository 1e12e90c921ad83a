"""``EMAVectorQuantizer``: the neural codebook of the tokenizer (paper 3.1.3).

A codebook of ``K`` l2-normalised vectors of width ``d``. Each (l2-normalised) encoder
output ``z`` is replaced by its nearest code by cosine similarity, which on the unit sphere
is the same as the nearest code in euclidean distance::

    k_i = argmax_j <z_i, v_j>  =  argmin_j ||z_i - v_j||^2   (||z_i|| = ||v_j|| = 1)

computed ``chunk_size`` rows at a time (a matmul and an argmax; memory O(chunk_size * K),
never an (N, K, d) tensor).

The codebook is not learned by gradient descent but by exponential moving averages
(VQ-VAE, EEGMirror 3.1.3). With ``n_j`` the number of batch vectors assigned to code ``j``
and ``s_j`` their sum::

    N_j <- decay * N_j + (1 - decay) * n_j                          (cluster_size)
    m_j <- decay * m_j + (1 - decay) * s_j                          (embed_sum)
    v_j  = l2normalise(m_j / N~_j),  N~_j = (N_j + eps) / (sum N + K eps) * sum N

(``N~`` is the Laplace-smoothed count, so an unused code never divides by zero.) A code
whose ``m_j`` has decayed to exactly zero keeps its previous vector.

Two additions against unused codes (LaBraM users report 8191 of 8192 codes unused):

- k-means initialisation: the first training batch runs spherical k-means and sets the
  codebook and the EMA statistics from it.
- dead-code restart: a code assigned no vector for ``dead_code_steps`` consecutive training
  steps is re-seeded with a random recent encoder output (a ring buffer of the last
  ``recent_size`` outputs) and its EMA statistics are reset to zero.

Under ``torch.distributed`` (when a process group is initialised) the counts and sums are
all-reduced, the k-means initialisation and the restarted vectors are broadcast from rank 0,
so every rank keeps an identical codebook. Without a process group these are no-ops.

Eval mode changes no buffer: it only looks codes up.

Codebook health: :meth:`EMAVectorQuantizer.stats` sums the assignments of every training step
(the first one right after the k-means initialisation included), so a codebook that spread
its codes at the start and collapsed later still looks used. The health of the *final*
codebook comes from encoding data after training and passing the code counts to
:func:`code_usage` (``NeuralTokenizer.codebook_health``); :func:`collapse_warning` says
when it has collapsed.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["COLLAPSE_PERPLEXITY", "COLLAPSE_USAGE", "EMAVectorQuantizer", "code_usage", "collapse_warning"]

#: A codebook using fewer than this share of its codes has collapsed (:func:`collapse_warning`).
COLLAPSE_USAGE = 0.05
#: ... or one whose code distribution has a perplexity below this (1: a single code).
COLLAPSE_PERPLEXITY = 2.0


def code_usage(counts) -> dict:
    """Usage and perplexity of a code distribution.

    Parameters
    ----------
    counts : array-like of int, shape (K,)
        Tokens assigned to each of the ``K`` codes.

    Returns
    -------
    dict
        ``usage``: share of the ``K`` codes assigned at least once (``codes_used / K``);
        ``perplexity``: ``exp(H)`` of the code frequencies (``K`` when all codes are used
        equally, 1 when one code takes everything, 0.0 with no token); ``codes_used``;
        ``num_codes`` (``K``); ``tokens`` (the sum of ``counts``).
    """
    if isinstance(counts, torch.Tensor):
        counts = counts.detach().double().cpu().flatten()
    else:  # a copy: numpy views with negative strides (e.g. a reversed sort) are fine
        counts = torch.from_numpy(np.array(counts, dtype=np.float64).reshape(-1))
    total = float(counts.sum())
    if total > 0:
        probs = counts / total
        perplexity = math.exp(float(-(probs * probs.clamp_min(1e-300).log()).sum()))
    else:
        perplexity = 0.0
    used = int((counts > 0).sum())
    return dict(usage=used / max(len(counts), 1), perplexity=perplexity, codes_used=used, num_codes=len(counts),
                tokens=int(round(total)))


def collapse_warning(usage: dict, *, where: str = "the encoded data", min_usage: float = COLLAPSE_USAGE,
                     min_perplexity: float = COLLAPSE_PERPLEXITY) -> str | None:
    """The warning to give when a codebook has collapsed, else None.

    Parameters
    ----------
    usage : dict
        :func:`code_usage` of the codes a data set was encoded into.
    where : str
        What was encoded, for the message.
    min_usage, min_perplexity : float
        The codebook has collapsed when ``usage < min_usage`` or ``perplexity <
        min_perplexity`` (defaults :data:`COLLAPSE_USAGE`, :data:`COLLAPSE_PERPLEXITY`).

    Returns
    -------
    str or None
        None also when nothing was encoded (``tokens == 0``).
    """
    if usage.get("tokens", 0) <= 0 or (usage["usage"] >= min_usage and usage["perplexity"] >= min_perplexity):
        return None
    return (f"the codebook collapsed: on {where}, the {usage['tokens']} tokens take {usage['codes_used']} of the "
            f"{usage['num_codes']} codes ({usage['usage']:.1%}; under {min_usage:.0%} counts as collapsed), "
            f"perplexity {usage['perplexity']:.2f} (under {min_perplexity:g} counts as collapsed): the codes say "
            "little about the patches. Train longer or with a lower learning rate, or check the data")


# ---------------------------------------------------------------------- distributed helpers
def _distributed() -> bool:
    return torch.distributed.is_available() and torch.distributed.is_initialized()


def _all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    """Sum ``tensor`` over all ranks in place (no-op without a process group)."""
    if _distributed():
        torch.distributed.all_reduce(tensor, op=torch.distributed.ReduceOp.SUM)
    return tensor


def _broadcast(tensor: torch.Tensor, src: int = 0) -> torch.Tensor:
    """Copy rank ``src``'s ``tensor`` to every rank in place (no-op without a process group)."""
    if _distributed():
        torch.distributed.broadcast(tensor, src=src)
    return tensor


def _is_source_rank() -> bool:
    return not _distributed() or torch.distributed.get_rank() == 0


class EMAVectorQuantizer(nn.Module):
    """Cosine-similarity vector quantiser with an EMA codebook, k-means init and restarts.

    Parameters
    ----------
    num_codes : int
        ``K``, codebook size (2048: the paper's Fig. 6 optimum).
    code_dim : int
        ``d``, width of each code.
    decay : float
        EMA decay in [0, 1).
    eps : float
        Laplace smoothing of the cluster sizes.
    kmeans_iters : int
        Iterations of the spherical k-means that initialises the codebook on the first
        training batch (0: the codebook starts from random batch vectors).
    dead_code_steps : int
        A code unused for this many consecutive training steps is restarted from a recent
        encoder output. ``0`` disables restarts.
    recent_size : int
        Rows of the ring buffer of recent encoder outputs that restarts draw from.
    chunk_size : int
        Rows of ``z`` compared with the codebook at a time by :meth:`nearest`.

    Attributes
    ----------
    codebook : torch.Tensor, shape (K, d)
        The l2-normalised codes.
    cluster_size, embed_sum : torch.Tensor, shapes (K,) and (K, d)
        EMA statistics ``N`` and ``m``.
    initialized : torch.Tensor of bool, shape ()
        Whether k-means has run.
    steps_since_used : torch.Tensor of int64, shape (K,)
        Consecutive training steps each code went unused.
    usage_counts : torch.Tensor of int64, shape (K,)
        Assignments per code since :meth:`reset_stats`, summed over every training step
        (the first one after the k-means initialisation included; eval mode adds nothing).
    restarts_total : torch.Tensor of int64, shape ()
        Codes restarted since creation.
    recent, recent_ptr, recent_filled
        Ring buffer (recent_size, d) of recent encoder outputs, its write position and how
        many rows hold data.

    Examples
    --------
    >>> import torch, torch.nn.functional as F
    >>> vq = EMAVectorQuantizer(num_codes=16, code_dim=8)
    >>> z = F.normalize(torch.randn(100, 8), dim=-1)
    >>> z_q, codes, commitment = vq(z)  # training mode: k-means init, then an EMA update
    >>> z_q.shape, codes.shape, commitment.shape
    (torch.Size([100, 8]), torch.Size([100]), torch.Size([]))
    """

    def __init__(
        self,
        num_codes: int = 2048,
        code_dim: int = 32,
        decay: float = 0.99,
        eps: float = 1e-5,
        kmeans_iters: int = 10,
        dead_code_steps: int = 100,
        recent_size: int = 8192,
        chunk_size: int = 8192,
    ):
        super().__init__()
        if num_codes < 1 or code_dim < 1:
            raise ValueError(f"num_codes and code_dim must be >= 1, got {num_codes=}, {code_dim=}")
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"decay must be in [0, 1), got {decay=}")
        if eps <= 0:
            raise ValueError(f"eps must be > 0, got {eps=}")
        if kmeans_iters < 0 or dead_code_steps < 0:
            raise ValueError(f"kmeans_iters and dead_code_steps must be >= 0, got {kmeans_iters=}, {dead_code_steps=}")
        if recent_size < 1 or chunk_size < 1:
            raise ValueError(f"recent_size and chunk_size must be >= 1, got {recent_size=}, {chunk_size=}")
        self.num_codes = num_codes
        self.code_dim = code_dim
        self.decay = decay
        self.eps = eps
        self.kmeans_iters = kmeans_iters
        self.dead_code_steps = dead_code_steps
        self.recent_size = recent_size
        self.chunk_size = chunk_size
        codebook = F.normalize(torch.randn(num_codes, code_dim), dim=-1)
        self.register_buffer("codebook", codebook)
        self.register_buffer("cluster_size", torch.zeros(num_codes))
        self.register_buffer("embed_sum", codebook.clone())
        self.register_buffer("initialized", torch.tensor(False))
        self.register_buffer("steps_since_used", torch.zeros(num_codes, dtype=torch.long))
        self.register_buffer("usage_counts", torch.zeros(num_codes, dtype=torch.long))
        self.register_buffer("restarts_total", torch.tensor(0, dtype=torch.long))
        self.register_buffer("recent", torch.zeros(recent_size, code_dim))
        self.register_buffer("recent_ptr", torch.tensor(0, dtype=torch.long))
        self.register_buffer("recent_filled", torch.tensor(0, dtype=torch.long))

    def extra_repr(self) -> str:
        return (f"num_codes={self.num_codes}, code_dim={self.code_dim}, decay={self.decay}, "
                f"dead_code_steps={self.dead_code_steps}")

    # ------------------------------------------------------------------ lookup
    def _assign(self, z: torch.Tensor, codebook: torch.Tensor) -> torch.Tensor:
        """Index of the most cosine-similar row of ``codebook`` for each row of ``z``, chunked."""
        codes = torch.empty(z.shape[0], dtype=torch.long, device=z.device)
        codebook_t = codebook.t()  # (d, K), a view
        for start in range(0, z.shape[0], self.chunk_size):
            stop = start + self.chunk_size
            codes[start:stop] = torch.matmul(z[start:stop], codebook_t).argmax(dim=1)  # (chunk, K)
        return codes

    @torch.no_grad()
    def nearest(self, z: torch.Tensor) -> torch.Tensor:
        """Nearest code of each vector by cosine similarity.

        Parameters
        ----------
        z : torch.Tensor, shape (N, d)
            Vectors (l2-normalised for the cosine to equal the euclidean nearest code).

        Returns
        -------
        torch.Tensor of int64, shape (N,)
            ``argmax_j z_i . codebook_j``, computed ``chunk_size`` rows at a time (peak
            memory O(chunk_size * K)).
        """
        if z.ndim != 2 or z.shape[1] != self.code_dim:
            raise ValueError(f"z must have shape (N, {self.code_dim}), got {tuple(z.shape)}")
        return self._assign(z.to(self.codebook.dtype), self.codebook)

    # ------------------------------------------------------------------ training updates
    def _kmeans(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Spherical k-means of ``z`` (N, d) into K centroids; returns (centroids, counts, sums).

        With fewer vectors than codes, the seeds are drawn with replacement and jittered so
        no two codes coincide; a cluster left empty is re-seeded from a random vector.
        """
        n_rows, n_codes = z.shape[0], self.num_codes

        def draw(count: int) -> torch.Tensor:
            if n_rows >= count:
                return z[torch.randperm(n_rows, device=z.device)[:count]]
            picked = z[torch.randint(n_rows, (count,), device=z.device)]
            return F.normalize(picked + 0.01 * torch.randn_like(picked), dim=-1)

        centroids = draw(n_codes)
        for _ in range(self.kmeans_iters):
            codes = self._assign(z, centroids)
            sums = torch.zeros_like(centroids).index_add_(0, codes, z)
            empty = torch.bincount(codes, minlength=n_codes) == 0
            centroids = torch.where(empty[:, None], draw(n_codes), F.normalize(sums, dim=-1))
        codes = self._assign(z, centroids)
        counts = torch.bincount(codes, minlength=n_codes).to(z.dtype)
        sums = torch.zeros_like(centroids).index_add_(0, codes, z)
        return centroids, counts, sums

    def _initialize(self, z: torch.Tensor) -> None:
        """k-means on rank 0's batch sets the codebook, ``cluster_size`` and ``embed_sum``."""
        if _is_source_rank() and z.shape[0] > 0:
            centroids, counts, _ = self._kmeans(z)
            self.codebook.copy_(centroids)
            self.cluster_size.copy_(counts)
            # embed_sum / cluster_size reproduces the centroid direction; an empty cluster
            # gets a zero sum and keeps its centroid until it is assigned vectors.
            self.embed_sum.copy_(centroids * counts[:, None])
        for buffer in (self.codebook, self.cluster_size, self.embed_sum):
            _broadcast(buffer)
        self.initialized.fill_(True)

    def _remember(self, z: torch.Tensor) -> None:
        """Write (up to ``recent_size`` random rows of) ``z`` into the ring buffer."""
        if z.shape[0] > self.recent_size:
            z = z[torch.randperm(z.shape[0], device=z.device)[: self.recent_size]]
        rows = (self.recent_ptr + torch.arange(z.shape[0], device=z.device)) % self.recent_size
        self.recent[rows] = z
        self.recent_ptr.copy_((self.recent_ptr + z.shape[0]) % self.recent_size)
        self.recent_filled.clamp_(max=self.recent_size - z.shape[0]).add_(z.shape[0])

    def _ema_update(self, z: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
        """One EMA step from this batch (all-reduced over ranks); returns the global counts (K,)."""
        counts = torch.bincount(codes, minlength=self.num_codes).to(z.dtype)  # (K,)
        sums = torch.zeros_like(self.embed_sum).index_add_(0, codes, z)  # (K, d)
        _all_reduce_sum(counts)
        _all_reduce_sum(sums)
        self.cluster_size.mul_(self.decay).add_(counts, alpha=1.0 - self.decay)
        self.embed_sum.mul_(self.decay).add_(sums, alpha=1.0 - self.decay)
        total = self.cluster_size.sum()
        smoothed = (self.cluster_size + self.eps) / (total + self.num_codes * self.eps) * total  # (K,)
        means = self.embed_sum / smoothed.clamp_min(torch.finfo(z.dtype).tiny)[:, None]
        alive = means.norm(dim=1, keepdim=True) > 0  # a decayed-to-zero sum keeps its code
        self.codebook.copy_(torch.where(alive, F.normalize(means, dim=-1), self.codebook))
        return counts

    def _restart_dead(self, counts: torch.Tensor) -> None:
        """Track unused codes and re-seed those unused for ``dead_code_steps`` steps."""
        self.steps_since_used.add_(1).masked_fill_(counts > 0, 0)
        if self.dead_code_steps <= 0:
            return
        dead = (self.steps_since_used >= self.dead_code_steps).nonzero().squeeze(1)  # (n_dead,)
        n_dead = dead.numel()  # identical on every rank: the counts were all-reduced
        if n_dead == 0:
            return
        filled = int(self.recent_filled)
        if filled == 0:
            seeds = self.codebook[dead].clone()
        elif filled >= n_dead:
            seeds = self.recent[torch.randperm(filled, device=dead.device)[:n_dead]]
        else:
            seeds = self.recent[torch.randint(filled, (n_dead,), device=dead.device)]
        seeds = _broadcast(F.normalize(seeds, dim=-1).contiguous())
        self.codebook[dead] = seeds
        self.cluster_size[dead] = 0.0
        self.embed_sum[dead] = 0.0
        self.steps_since_used[dead] = 0
        self.restarts_total.add_(n_dead)

    # ------------------------------------------------------------------ forward
    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Quantise, and in training mode update the codebook.

        Parameters
        ----------
        z : torch.Tensor, shape (N, d)
            l2-normalised encoder outputs (padding already removed: every row counts).

        Returns
        -------
        z_q : torch.Tensor, shape (N, d)
            Straight-through quantised vectors ``z + sg(codebook[codes] - z)``: the value of
            the code, the gradient of ``z``.
        codes : torch.Tensor of int64, shape (N,)
            Index of each vector's code.
        commitment : torch.Tensor, shape ()
            ``mean_i ||z_i - sg(codebook[codes_i])||^2`` (the caller applies beta); 0 when N = 0.

        Notes
        -----
        Training mode, in order: k-means initialisation on the first call; the lookup; the
        ring buffer of recent outputs; the EMA update; dead-code restarts. The returned
        ``z_q`` and the commitment use the codebook the codes were looked up in (before
        the update). Usage statistics count training assignments only.
        """
        if z.ndim != 2 or z.shape[1] != self.code_dim:
            raise ValueError(f"z must have shape (N, {self.code_dim}), got {tuple(z.shape)}")
        with torch.autocast(device_type=z.device.type, enabled=False):
            z = z.to(self.codebook.dtype)
            if self.training:
                with torch.no_grad():
                    if not bool(self.initialized):
                        self._initialize(z.detach())
            codes = self.nearest(z.detach())
            z_q = self.codebook[codes]  # (N, d), a copy: later in-place updates leave it alone
            if self.training:
                with torch.no_grad():
                    self._remember(z.detach())
                    counts = self._ema_update(z.detach(), codes)
                    self.usage_counts.add_(counts.round().long())
                    self._restart_dead(counts)
            if z.shape[0] == 0:
                commitment = z.sum() * 0.0
            else:
                commitment = (z - z_q).pow(2).sum(dim=1).mean()
            z_q_st = z + (z_q - z).detach()
        return z_q_st, codes, commitment

    # ------------------------------------------------------------------ statistics
    def reset_stats(self) -> None:
        """Zero the usage counts behind :meth:`stats` (not the restart total)."""
        self.usage_counts.zero_()

    def stats(self) -> dict:
        """Training assignments since the last :meth:`reset_stats`, and the dead-code state.

        ``usage`` and ``perplexity`` count every training assignment since
        :meth:`reset_stats` — the first step after the k-means initialisation (which spreads
        the batch over all codes) included — so they overstate the health of a codebook that
        collapsed later. For the final codebook encode data after training and use
        :func:`code_usage` (``NeuralTokenizer.codebook_health``).

        Returns
        -------
        dict
            ``usage``: fraction of codes assigned at least once; ``perplexity``:
            ``exp(H)`` of the code frequencies (K when all codes are used equally, 1 when
            one code takes everything; 0.0 with no assignment yet); ``dead``: codes unused
            for at least ``dead_code_steps`` consecutive training steps; ``restarts``:
            codes restarted since creation.
        """
        usage = code_usage(self.usage_counts)
        threshold = self.dead_code_steps if self.dead_code_steps > 0 else None
        dead = int((self.steps_since_used >= threshold).sum()) if threshold else 0
        return dict(
            usage=usage["usage"],
            perplexity=usage["perplexity"],
            dead=dead,
            restarts=int(self.restarts_total),
        )
