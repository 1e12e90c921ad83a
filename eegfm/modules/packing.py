"""Padding tokens dropped from the per-token work on the CPU.

A mixed-montage batch is zero-padded to its largest cap: a batch of 19-, 32- and 64-channel
recordings is 40 % padding. The attention already ignores padded keys (key padding mask), but
the patch embedder, the LayerNorms, the q/k/v and output projections and the MLPs used to run
on every padded token too. On the CPU, where a step is bound by that arithmetic, they now run
on the real tokens only ("packed": a ``(T, D)`` matrix of the ``T`` real tokens); each
attention call scatters its q/k/v back to the padded ``(B, N, ...)`` layout and gathers its
output again. Each token's maths is unchanged, so real tokens' outputs equal the unpacked ones
to float rounding (``tests/test_packing.py``); padded positions come out as if their token were
zero.

On a GPU the packing is not used: the number of real tokens is a shape read from the mask, a
device-to-host sync per step, which the hot path avoids; under ``torch.compile``/``torch.export``
it is not used either (a data-dependent shape). Set :data:`PACK_ON_CPU` to False to turn it off.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

__all__ = ["PACK_ON_CPU", "TokenPacking"]

#: Drop padding tokens from the per-token work on the CPU (see the module docstring).
PACK_ON_CPU = True


@dataclass(frozen=True)
class TokenPacking:
    """Where the real tokens of a padded ``(B, N, ...)`` batch are.

    Attributes
    ----------
    index : torch.Tensor of int64, shape (T,)
        Flat indices (``b * N + n``) of the ``T`` real tokens, in order.
    batch, n_tokens : int
        ``B`` and ``N``.
    """

    index: torch.Tensor
    batch: int
    n_tokens: int

    @classmethod
    def of(cls, keep: torch.Tensor) -> TokenPacking | None:
        """The packing of ``keep`` (B, N) bool (True for real tokens) when it pays, else None.

        None on other devices than the CPU, while compiling or exporting, when
        :data:`PACK_ON_CPU` is False, and when every token is real.
        """
        if not PACK_ON_CPU or keep.device.type != "cpu" or torch.compiler.is_compiling():
            return None
        index = keep.flatten().nonzero().squeeze(1)
        if index.numel() == keep.numel():
            return None
        return cls(index, keep.shape[0], keep.shape[1])

    def rows_of(self, index: torch.Tensor) -> torch.Tensor:
        """Rows in the packed (T, ...) matrix of tokens ``index`` (B, M) of each sample: (B, M).

        The tokens must be real (a padded one has no row: some other row is returned).
        """
        flat = torch.arange(self.batch, device=index.device)[:, None] * self.n_tokens + index  # (B, M)
        return torch.searchsorted(self.index, flat.flatten()).clamp_max(self.index.numel() - 1).view_as(index)

    def pack(self, x: torch.Tensor) -> torch.Tensor:
        """(B, N, ...) -> the real tokens, (T, ...)."""
        return x.flatten(0, 1).index_select(0, self.index)

    def unpack(self, x: torch.Tensor) -> torch.Tensor:
        """(T, ...) -> (B, N, ...), zeros at the padding."""
        full = x.new_zeros(self.batch * self.n_tokens, *x.shape[1:]).index_copy(0, self.index, x)
        return full.view(self.batch, self.n_tokens, *x.shape[1:])
