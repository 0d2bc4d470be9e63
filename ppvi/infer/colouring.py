"""Two colours for a latent whose elements are coupled through data matrices (docs/derivation.md, section 7,
"Schedule"): the graph with an edge i–j wherever D[i, j] ≠ 0 or D[j, i] ≠ 0 (i ≠ j) for any of the matrices,
coloured by breadth-first search, once per fit.  No two elements of one colour are coupled, so updating a
colour's elements at once is the same as updating them one by one: the sweep stays exact coordinate ascent."""

from __future__ import annotations

import numpy as np


def two_colouring(matrices: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray] | tuple[None, tuple[int, int]]:
    """(elements, starts): every element, colour 0's first (each colour in increasing order), and where colour
    0, colour 1 and the end start (``starts`` = [0, n₀, n]).  When the graph is not bipartite: (None, (i, j)), an
    edge whose two ends the search gave one colour (it closes an odd cycle)."""
    n = matrices[0].shape[0]
    coupled = np.zeros((n, n), dtype=bool)
    for m in matrices:
        coupled |= (m != 0) | (m.T != 0)
    np.fill_diagonal(coupled, False)
    colour = np.full(n, -1, dtype=np.int64)
    for root in range(n):
        if colour[root] >= 0:
            continue
        colour[root] = 0
        frontier = np.array([root])
        while frontier.size:
            reached = np.flatnonzero(coupled[frontier].any(axis=0) & (colour < 0))
            colour[reached] = 1 - colour[frontier[0]]      # (a frontier is one colour: one step from the root)
            frontier = reached
    same = np.argwhere(coupled & (colour[:, None] == colour[None, :]))
    if len(same):
        return None, (int(same[0][0]), int(same[0][1]))
    elements = np.concatenate([np.flatnonzero(colour == 0), np.flatnonzero(colour == 1)]).astype(np.int64)
    return elements, np.array([0, int((colour == 0).sum()), n], dtype=np.int64)
