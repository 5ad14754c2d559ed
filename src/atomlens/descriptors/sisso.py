"""SISSO: sure-independence screening plus sparsifying (L0) least squares.

The feature space grows from the primary columns by applying operators up to a number of
operators (the *complexity*): level 0 is the primaries; a level-c feature is a unary
operator on a level c-1 feature, or a binary operator on two features whose levels add up to
c-1. All levels below the top one are kept in memory; the top level is streamed in chunks, so
a space of millions of candidates needs memory for one chunk only.

For each descriptor dimension d = 1..D, SIS adds the ``sis_size`` candidates most correlated
(|Pearson r|) with the residual of the (d-1)-dimensional model to the subspace, then SO
solves least squares for every d-subset of the subspace (batched normal equations) and keeps
the subset with the smallest residual. With ``ops=()`` and a subspace that holds every
primary, this is exact best-subset regression.

A fixed ``sis_size`` can miss a term of the true formula: ranked by |r| with the target, a
true term can sit hundreds of places down, behind composites that contain it (with ten
operators at complexity 2, x1*x2 of y = 2.5 x1 x2 - 1.7 x3^2/x4 + 0.3 falls outside the
top 20). By default (``sis_size=None``) each dimension adds the largest number of
candidates whose exact L0 stays within ``MAX_L0_SUBSETS`` (640 for D = 2, 164 for D = 3,
37 for D = 4), and the search is repeated with half as many: when the two disagree, the
models still depend on the screening and a ``ScreeningWarning`` says so.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np

# Formulas are kept in Python syntax over ``f[i]`` (primary column i), so that they can be
# evaluated safely on new data (see ``evaluate``) and shown with the column names.
UNARY = {
    "exp": (np.exp, "exp({})"),
    "log": (np.log, "log({})"),
    "^-1": (lambda x: 1.0 / x, "({})**-1"),
    "^2": (np.square, "({})**2"),
    "^3": (lambda x: x**3, "({})**3"),
    "sqrt": (np.sqrt, "sqrt({})"),
}
BINARY = {
    "+": (np.add, "({} + {})", True),
    "-": (np.subtract, "({} - {})", False),
    "*": (np.multiply, "({} * {})", True),
    "/": (np.divide, "({} / {})", False),
}
DEFAULT_OPS = ("+", "-", "*", "/", "exp", "log", "^-1", "^2", "^3", "sqrt")
MAX_ABS = 1e12  # candidates with larger values are numerically useless
MAX_SIS_SIZE = 640  # most candidates per dimension that the default will add
MAX_L0_SUBSETS = 20_000_000  # exact L0 budget of the default (~1 s for triples)


class ScreeningWarning(UserWarning):
    """The models may depend on the screened subspace size (raise ``sis_size``)."""


def auto_sis_size(max_dim: int, max_subsets: int | None = None) -> int:
    """The default candidates per dimension: the most whose D-dimensional L0 fits the budget.

    The largest k <= ``MAX_SIS_SIZE`` with C(max_dim * k, max_dim) <= ``max_subsets``
    (default ``MAX_L0_SUBSETS``; at least 2); a 1-D model is the top candidate at any
    size, so D = 1 takes 40.
    """
    budget = MAX_L0_SUBSETS if max_subsets is None else max_subsets
    if max_dim == 1:
        return 40
    k = 2
    while k < MAX_SIS_SIZE and math.comb(max_dim * (k + 1), max_dim) <= budget:
        k += 1
    return k


def parse_ops(text: str) -> tuple[str, ...]:
    """Operators from a comma-separated string; ``""`` means none (plain best subset)."""
    ops = tuple(op.strip() for op in text.split(",") if op.strip())
    unknown = [op for op in ops if op not in UNARY and op not in BINARY]
    if unknown:
        known = ", ".join([*BINARY, *UNARY])
        raise ValueError(f"unknown operator(s) {', '.join(unknown)}; known: {known}")
    return ops


@dataclass
class Level:
    """Features with the same number of operators: values (n, m) and their formulas."""

    values: np.ndarray
    names: Sequence[str]


class LazyNames(Sequence[str]):
    """Formulas of a streamed block, written only when asked for (most are never read)."""

    def __init__(
        self,
        template: str,
        left: Sequence[str],
        right: Sequence[str] | None,
        i: np.ndarray,
        j: np.ndarray | None = None,
    ):
        self.template, self.left, self.right, self.i, self.j = template, left, right, i, j

    def __len__(self) -> int:
        return len(self.i)

    def __getitem__(self, k):  # type: ignore[override]
        if isinstance(k, slice):
            return [self[m] for m in range(*k.indices(len(self)))]
        if self.right is None:
            return self.template.format(self.left[int(self.i[k])])
        return self.template.format(self.left[int(self.i[k])], self.right[int(self.j[k])])

    def subset(self, keep: np.ndarray) -> LazyNames:
        """The names of the columns where ``keep`` is True."""
        j = None if self.j is None else self.j[keep]
        return LazyNames(self.template, self.left, self.right, self.i[keep], j)


def _valid(block: np.ndarray) -> np.ndarray:
    """Columns that are finite, bounded and not constant."""
    with np.errstate(invalid="ignore", over="ignore"):
        usable = np.all(np.isfinite(block) & (np.abs(block) < MAX_ABS), axis=0)
    if block.shape[0] == 0 or not usable.any():
        return usable
    clean = np.where(usable, block, 0.0)
    spread = clean.std(axis=0)
    scale = np.abs(clean).max(axis=0)
    return usable & (spread > 1e-10 * np.maximum(scale, 1e-300))


class FeatureSpace:
    """The operator feature space over primary columns, levels 0..complexity."""

    def __init__(
        self,
        primary: np.ndarray,
        names: Sequence[str],
        ops: Sequence[str] = DEFAULT_OPS,
        complexity: int = 1,
        chunk_size: int = 20000,
    ):
        if primary.ndim != 2 or primary.shape[1] != len(names):
            raise ValueError("primary must be (n_samples, n_features) with one name per column")
        if complexity < 0:
            raise ValueError("complexity must be >= 0")
        self.unary = [op for op in ops if op in UNARY]
        self.binary = [op for op in ops if op in BINARY]
        self.complexity = complexity if ops else 0
        self.chunk_size = chunk_size
        primary = np.asarray(primary, dtype=np.float64)
        keep = np.flatnonzero(_valid(primary))
        self.levels = [Level(primary[:, keep], [f"f[{i}]" for i in keep])]
        for level in range(1, self.complexity):
            blocks = list(self._level_blocks(level))
            values = (
                np.concatenate([b.values for b in blocks], axis=1)
                if blocks
                else np.empty((primary.shape[0], 0))
            )
            self.levels.append(
                _deduplicate(Level(values, [n for b in blocks for n in b.names[:]]), self.levels)
            )

    def _level_blocks(self, level: int) -> Iterator[Level]:
        """Chunks of the level-``level`` candidates (computed on the fly, valid only)."""
        below = self.levels[level - 1]
        for op in self.unary:
            function, template = UNARY[op]
            for start in range(0, below.values.shape[1], self.chunk_size):
                with np.errstate(all="ignore"):
                    block = function(below.values[:, start : start + self.chunk_size])
                index = np.arange(start, min(start + self.chunk_size, below.values.shape[1]))
                yield _filtered(block, LazyNames(template, below.names, None, index))
        for a in range(level):
            b = level - 1 - a
            if b < a:
                continue
            left, right = self.levels[a], self.levels[b]
            for op in self.binary:
                function, template, symmetric = BINARY[op]
                yield from self._pairs(
                    left, right, function, template, same=a == b, symmetric=symmetric
                )
                if not symmetric and a != b:
                    yield from self._pairs(
                        right, left, function, template, same=False, symmetric=False
                    )

    def _pairs(
        self, left: Level, right: Level, function, template: str, *, same: bool, symmetric: bool
    ) -> Iterator[Level]:
        m_left, m_right = left.values.shape[1], right.values.shape[1]
        rows = max(1, self.chunk_size // max(m_right, 1))
        for start in range(0, m_left, rows):
            i = np.arange(start, min(start + rows, m_left))
            ii, jj = np.meshgrid(i, np.arange(m_right), indexing="ij")
            ii, jj = ii.ravel(), jj.ravel()
            if same:
                mask = jj > ii if symmetric else jj != ii
                ii, jj = ii[mask], jj[mask]
            if ii.size == 0:
                continue
            with np.errstate(all="ignore"):
                block = function(left.values[:, ii], right.values[:, jj])
            yield _filtered(block, LazyNames(template, left.names, right.names, ii, jj))

    def blocks(self) -> Iterator[Level]:
        """All candidates, level by level; the top level streamed in chunks."""
        yield from self.levels
        if self.complexity > 0:
            yield from self._level_blocks(self.complexity)

    def size(self) -> int:
        """Number of valid candidates (streams the top level once)."""
        return sum(block.values.shape[1] for block in self.blocks())


def _filtered(block: np.ndarray, names: LazyNames) -> Level:
    keep = _valid(block)
    return Level(block[:, keep], names.subset(keep))


def _deduplicate(level: Level, previous: Sequence[Level]) -> Level:
    """Drop features whose standardised values repeat one already seen (e.g. a+b and b+a)."""
    seen = {key for prior in previous for key in _keys(prior.values)}
    keep = []
    for index, key in enumerate(_keys(level.values)):
        if key not in seen:
            seen.add(key)
            keep.append(index)
    return Level(level.values[:, keep], [level.names[k] for k in keep])


def _keys(values: np.ndarray) -> list[bytes]:
    if values.shape[1] == 0:
        return []
    centred = values - values.mean(axis=0)
    z = centred / np.linalg.norm(centred, axis=0)
    z *= np.sign(z[np.argmax(np.abs(z) > 1e-8, axis=0), np.arange(z.shape[1])])
    return [column.tobytes() for column in np.round(z, 8).T.copy()]


def screen(
    space: FeatureSpace, residual: np.ndarray, k: int, existing: Level | None = None
) -> tuple[Level, int]:
    """The ``k`` candidates most correlated with ``residual`` (|Pearson r|), streamed.

    Candidates equal in value to one in ``existing`` (or to a better one) are skipped.

    Returns:
        The selected candidates and the number of candidates the pass went through.
    """
    r = residual - residual.mean()
    r /= max(np.linalg.norm(r), 1e-300)
    taken = set(_keys(existing.values)) if existing is not None else set()
    best_scores = np.empty(0)
    best_values = np.empty((len(r), 0))
    best_names: list[str] = []
    seen = 0
    for block in space.blocks():
        if block.values.shape[1] == 0:
            continue
        seen += block.values.shape[1]
        centred = block.values - block.values.mean(axis=0)
        scores = np.abs(r @ centred) / np.linalg.norm(centred, axis=0)
        scores = np.concatenate([best_scores, scores])
        keep = 4 * k + len(taken)
        if len(scores) > keep:
            top = np.argpartition(-scores, keep - 1)[:keep]
            top = top[np.argsort(-scores[top], kind="stable")]
        else:
            top = np.argsort(-scores, kind="stable")
        n_best = len(best_names)
        best_values = np.concatenate(
            [best_values[:, top[top < n_best]], block.values[:, top[top >= n_best] - n_best]],
            axis=1,
        )
        best_names = [best_names[t] for t in top[top < n_best]] + [
            block.names[t - n_best] for t in top[top >= n_best]
        ]
        best_scores = np.concatenate([scores[top[top < n_best]], scores[top[top >= n_best]]])
        order = np.argsort(-best_scores, kind="stable")
        best_scores, best_values = best_scores[order], best_values[:, order]
        best_names = [best_names[t] for t in order]
    keep = []
    for index, key in enumerate(_keys(best_values)):
        if key not in taken and len(keep) < k:
            taken.add(key)
            keep.append(index)
    return Level(best_values[:, keep], [best_names[i] for i in keep]), seen


def best_subsets(
    x: np.ndarray, y: np.ndarray, dim: int, chunk: int = 200000, *, closed_form: bool = True
) -> tuple[tuple[int, ...], float, int]:
    """Exhaustive L0: the ``dim`` columns of ``x`` with the smallest least-squares residual.

    Every subset is fitted with an intercept. Pairs and triples are solved in closed form
    (``closed_form``), other sizes (or with ``closed_form=False``) by batched normal
    equations over chunks of ``chunk`` subsets.

    Returns:
        (column indices, RSS, number of subsets solved).
    """
    m = x.shape[1]
    if dim > m:
        raise ValueError(f"cannot choose {dim} of {m} features")
    xc = x - x.mean(axis=0)
    yc = y - y.mean()
    gram = xc.T @ xc
    xty = xc.T @ yc
    total = float(yc @ yc)
    if closed_form and dim in (2, 3):
        found = _best_pairs_or_triples(gram, xty, total, dim)
        if found is not None:
            return found
    best, best_rss, solved = (), math.inf, 0
    combos = itertools.combinations(range(m), dim)
    while True:
        batch = np.array(list(itertools.islice(combos, chunk)), dtype=np.int64)
        if batch.size == 0:
            break
        g = gram[batch[:, :, None], batch[:, None, :]]
        b = xty[batch]
        g = g + 1e-12 * np.trace(g, axis1=1, axis2=2)[:, None, None] * np.eye(dim)
        coef = np.linalg.solve(g, b[..., None])[..., 0]
        rss = total - np.einsum("ij,ij->i", coef, b)
        k = int(np.argmin(rss))
        solved += len(batch)
        if rss[k] < best_rss:
            best, best_rss = tuple(int(v) for v in batch[k]), float(rss[k])
    return best, max(best_rss, 0.0), solved


def _best_pair(
    gram: np.ndarray, xty: np.ndarray, reference: np.ndarray
) -> tuple[tuple[int, int], float]:
    """The pair j < k with the largest drop in RSS, b^T G^-1 b in closed form (2 x 2).

    Pairs whose 2 x 2 Gram matrix is (nearly) singular, or with a column that is nearly
    a multiple of what was projected out (diagonal far below ``reference``), are skipped.
    """
    diag = np.diag(gram)
    usable = diag > 1e-9 * reference
    det = diag[:, None] * diag[None, :] - gram**2
    ok = np.triu(det > 1e-10 * np.abs(diag[:, None] * diag[None, :]), 1)
    ok &= usable[:, None] & usable[None, :]
    drop = np.full(gram.shape, -np.inf)
    numerator = (
        xty[:, None] ** 2 * diag[None, :]
        - 2.0 * np.outer(xty, xty) * gram
        + xty[None, :] ** 2 * diag[:, None]
    )
    drop[ok] = numerator[ok] / det[ok]
    k = int(np.argmax(drop))
    j, i = divmod(k, len(xty))
    return (j, i), float(drop.flat[k])


def _best_pairs_or_triples(
    gram: np.ndarray, xty: np.ndarray, total: float, dim: int
) -> tuple[tuple[int, ...], float, int] | None:
    """Exact L0 for 2 or 3 features, vectorised: ~10x faster than batched solves.

    For triples, each first column i is projected out of the columns after it, and the
    best pair of the projected columns is found in closed form. Returns None when every
    subset is (nearly) collinear, for the general solver to handle.
    """
    m = len(xty)
    reference = np.diag(gram).copy()
    if dim == 2:
        pair, drop = _best_pair(gram, xty, reference)
        if not np.isfinite(drop):
            return None
        return pair, max(total - drop, 0.0), math.comb(m, 2)
    best: tuple[int, ...] = ()
    best_drop = -math.inf
    for i in range(m - 2):
        g_i, g_ii = gram[i, i + 1 :], gram[i, i]
        projected = gram[i + 1 :, i + 1 :] - np.outer(g_i, g_i) / g_ii
        b = xty[i + 1 :] - g_i * (xty[i] / g_ii)
        (j, k), drop = _best_pair(projected, b, reference[i + 1 :])
        drop += xty[i] ** 2 / g_ii
        if drop > best_drop:
            best, best_drop = (i, i + 1 + j, i + 1 + k), drop
    if not np.isfinite(best_drop):
        return None
    return best, max(total - best_drop, 0.0), math.comb(m, 3)


@dataclass(frozen=True)
class Model:
    """A d-dimensional SISSO model: ``y = intercept + sum_k coefficients[k] * feature_k``."""

    features: list[str]
    coefficients: np.ndarray
    intercept: float
    rmse: float
    r2: float

    def formula(self, target: str = "y", digits: int = 5) -> str:
        """The model as text."""
        terms = " ".join(
            f"{'-' if c < 0 else '+'} {abs(c):.{digits}g} * {name}"
            for c, name in zip(self.coefficients, self.features, strict=True)
        )
        return f"{target} = {self.intercept:.{digits}g} {terms}"


@dataclass
class SissoResult:
    """Models of dimension 1..D and what it took to find them."""

    models: list[Model]
    n_candidates: int
    subspace: list[str] = field(default_factory=list)
    screening_seconds: float = 0.0
    l0_seconds: float = 0.0
    l0_subsets: int = 0
    sis_size: int = 0
    sis_sizes_tried: list[int] = field(default_factory=list)
    converged: bool | None = None
    warning: str | None = None


def fit_linear(values: np.ndarray, y: np.ndarray, names: list[str]) -> Model:
    """Least squares with intercept on the given descriptor columns."""
    design = np.column_stack([np.ones(len(y)), values])
    solution, *_ = np.linalg.lstsq(design, y, rcond=None)
    residual = y - design @ solution
    rmse = float(np.sqrt(np.mean(residual**2)))
    r2 = 1.0 - float(residual @ residual) / float(((y - y.mean()) ** 2).sum())
    return Model(names, solution[1:], float(solution[0]), rmse, r2)


def _same_models(a: list[Model], b: list[Model], scale: float) -> bool:
    """Whether two model lists fit equally well in every dimension."""
    return len(a) == len(b) and all(
        math.isclose(m.rmse, n.rmse, rel_tol=1e-9, abs_tol=1e-12 * scale)
        for m, n in zip(a, b, strict=True)
    )


def sisso(
    x: np.ndarray,
    y: np.ndarray,
    names: Sequence[str],
    *,
    ops: Sequence[str] = DEFAULT_OPS,
    complexity: int = 1,
    max_dim: int = 3,
    sis_size: int | None = None,
    chunk_size: int = 20000,
) -> SissoResult:
    """Run SISSO for descriptor dimensions 1..max_dim.

    Args:
        x: Primary features (n_samples, n_features).
        y: Target (n_samples,).
        names: Names of the primary features.
        ops: Operators (see ``UNARY`` and ``BINARY``); empty for best subset on primaries.
        complexity: Largest number of operators in one feature.
        max_dim: Largest descriptor dimension D.
        sis_size: Candidates added to the subspace per dimension; None (default):
            ``auto_sis_size(max_dim)``, checked against a search with half as many.
        chunk_size: Candidates computed at once when streaming (bounds memory).

    Warns:
        ScreeningWarning: When, with the default size, the models differ from those found
            with half the subspace (also kept in ``SissoResult.warning``).
    """
    import time
    import warnings

    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if x.shape[0] != y.shape[0] or x.shape[0] < 3:
        raise ValueError("need the same number (at least 3) of rows in x and y")
    if not np.all(np.isfinite(y)):
        raise ValueError("the target has NaN or infinite values")
    if max_dim < 1:
        raise ValueError("max_dim must be >= 1")
    if sis_size is not None and sis_size < 1:
        raise ValueError("sis_size must be >= 1")
    if sis_size is None:
        largest = auto_sis_size(max_dim)
        sizes: tuple[int, ...] = (largest // 2, largest) if max_dim > 1 else (largest,)
    else:
        sizes = (sis_size,)
    start = time.perf_counter()
    space = FeatureSpace(x, names, ops, complexity, chunk_size)
    # Each residual is screened once, keeping enough candidates for the largest size and
    # every dimension; a smaller size takes a prefix. The first pass also counts the space.
    keep = sizes[-1] * max_dim
    first, n_candidates = screen(space, y, keep)
    if n_candidates == 0:
        raise ValueError("no usable feature (all constant or non-finite)")
    screens: dict[tuple[str, ...], Level] = {(): first}
    timing = {"screening": time.perf_counter() - start, "l0": 0.0}

    def ranked(previous: Model, residual: np.ndarray) -> Level:
        key = tuple(previous.features)
        if key not in screens:
            t = time.perf_counter()
            screens[key], _ = screen(space, residual, keep)
            timing["screening"] += time.perf_counter() - t
        return screens[key]

    def run(k: int) -> tuple[list[Model], list[str], int]:
        everything = n_candidates <= k * max_dim  # small space: L0 over all of it
        subspace = Level(first.values, list(first.names))
        if not everything:
            subspace = Level(first.values[:, :k], list(first.names[:k]))
        models: list[Model] = []
        chosen_values = np.empty((len(y), 0))
        solved_total = 0
        for dim in range(1, max_dim + 1):
            if dim > 1 and not everything:
                previous = models[-1]
                residual = y - previous.intercept - chosen_values @ previous.coefficients
                candidates = ranked(previous, residual)
                taken = set(_keys(subspace.values))
                new = [i for i, key in enumerate(_keys(candidates.values)) if key not in taken][:k]
                subspace = Level(
                    np.concatenate([subspace.values, candidates.values[:, new]], axis=1),
                    subspace.names + [candidates.names[i] for i in new],
                )
            if dim > subspace.values.shape[1]:
                break
            t = time.perf_counter()
            chosen, _, solved = best_subsets(subspace.values, y, dim)
            timing["l0"] += time.perf_counter() - t
            solved_total += solved
            names_chosen = [subspace.names[c] for c in chosen]
            chosen_values = subspace.values[:, chosen]
            models.append(fit_linear(chosen_values, y, names_chosen))
        return models, subspace.names, solved_total

    tried: list[int] = []
    subsets = 0
    converged: bool | None = None
    models: list[Model] = []
    subspace_names: list[str] = []
    for k in sizes:
        result = run(k)
        subsets += result[2]
        same = bool(tried) and _same_models(models, result[0], float(np.std(y)) or 1.0)
        models, subspace_names = result[0], result[1]
        tried.append(k)
        if same or n_candidates <= k * max_dim:
            converged = True
            break
    warning = None
    if sis_size is None and converged is None and len(tried) > 1:
        converged = False
        warning = (
            f"SISSO: the models with {tried[-1]} screened candidates per dimension differ "
            f"from those with {tried[-2]} (of {n_candidates:,} candidates): they still depend "
            "on the screening; a larger sis_size (more exact L0 subsets) may find better ones"
        )
        warnings.warn(warning, ScreeningWarning, stacklevel=2)
    elif sis_size is None and converged is None:
        converged = True  # one dimension: the top candidate, whatever the size
    return SissoResult(
        models,
        n_candidates,
        subspace_names,
        timing["screening"],
        timing["l0"],
        subsets,
        tried[-1],
        tried,
        converged,
        warning,
    )


_FUNCTIONS = {"exp": np.exp, "log": np.log, "sqrt": np.sqrt}


def evaluate(formula: str, x: np.ndarray) -> np.ndarray:
    """Values of a SISSO feature (Python syntax over ``f[i]``) on rows of primary features.

    Only the operators SISSO generates are accepted; anything else is an error.
    """
    import ast

    def walk(node: ast.AST) -> np.ndarray | float:
        if isinstance(node, ast.Expression):
            return walk(node.body)
        if isinstance(node, ast.Constant) and isinstance(node.value, int | float):
            return float(node.value)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            return -walk(node.operand)
        if (
            isinstance(node, ast.Subscript)
            and isinstance(node.value, ast.Name)
            and node.value.id == "f"
            and isinstance(node.slice, ast.Constant)
            and isinstance(node.slice.value, int)
        ):
            return x[:, node.slice.value]
        if isinstance(node, ast.BinOp):
            left, right = walk(node.left), walk(node.right)
            operations = {
                ast.Add: np.add,
                ast.Sub: np.subtract,
                ast.Mult: np.multiply,
                ast.Div: np.divide,
                ast.Pow: np.power,
            }
            for kind, function in operations.items():
                if isinstance(node.op, kind):
                    return function(left, right)
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id in _FUNCTIONS
            and len(node.args) == 1
        ):
            return _FUNCTIONS[node.func.id](walk(node.args[0]))
        raise ValueError(f"not a SISSO formula: {formula!r}")

    with np.errstate(all="ignore"):
        return np.asarray(walk(ast.parse(formula, mode="eval")), dtype=np.float64)


def display(formula: str, names: Sequence[str]) -> str:
    """A formula with column names in place of ``f[i]`` and ``^`` for powers."""
    import re

    text = re.sub(r"f\[(\d+)\]", lambda m: names[int(m.group(1))], formula)
    return text.replace("**", "^")


def predict(model: Model, x: np.ndarray) -> np.ndarray:
    """Predictions of a SISSO model on rows of primary features."""
    columns = np.column_stack([evaluate(f, x) for f in model.features])
    return model.intercept + columns @ model.coefficients


def cross_validate(
    x: np.ndarray,
    y: np.ndarray,
    names: Sequence[str],
    folds: list[tuple[np.ndarray, np.ndarray]],
    **settings,
) -> dict[int, list[float]]:
    """Held-out RMSE per descriptor dimension, with SISSO rerun on each training fold.

    Feature construction, screening and L0 all see the training rows only.

    Returns:
        ``{dimension: [RMSE of fold 1, fold 2, ...]}``.
    """
    scores: dict[int, list[float]] = {}
    for train, test in folds:
        result = sisso(x[train], y[train], names, **settings)
        for dim, model in enumerate(result.models, start=1):
            error = predict(model, x[test]) - y[test]
            scores.setdefault(dim, []).append(float(np.sqrt(np.mean(error**2))))
    return scores
