"""Wang-Landau and replica-exchange Wang-Landau (REWL) over energy, magnetisation or both.

Schedule (Wang & Landau 2001; Belardinelli & Pereyra 2007): every walker starts in the halving
stage with ``ln f = 1``; when all walkers of a window are flat (``min H > flatness * mean H``
over the bins visited so far) their ``ln g`` are aligned and averaged, ``ln f`` is halved and
the histograms reset. Once a halved ``ln f`` falls below ``1/t`` (``t`` = trials per bin of the
window) the window switches to ``ln f = 1/t``; a window is done when ``ln f < lnf_final``.
Never-visited bins stay masked (NaN in every result) and are never used.

REWL (Vogel, Li, Wuest & Landau 2013/2014): overlapping windows with several walkers each;
walkers reject moves that leave their window; after every chunk of trials, walkers of
neighbouring windows swap configurations with probability
``min(1, g_i(X) g_j(Y) / (g_i(Y) g_j(X)))``; windows are joined where ``d ln g / dX`` agree best.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numba
import numpy as np
from tqdm.auto import tqdm

from atomlens.files import atomic_path, dumps_json
from atomlens.spins import kernels
from atomlens.spins.parallel import (
    Communicator,
    LocalCommunicator,
    start_threads,
    window_owner,
)
from atomlens.spins.rng import seed_states
from atomlens.spins.system import SpinModelError, SpinSystem

MODES = {"energy": kernels.MODE_ENERGY, "magnetisation": kernels.MODE_MAGNETISATION}
MODES["joint"] = kernels.MODE_JOINT


@dataclass(frozen=True)
class Binning:
    """Bins of the sampled variable(s).

    Attributes:
        mode: ``"energy"``, ``"magnetisation"`` (at ``temperature``) or ``"joint"``.
        e_lo, e_width, n_e: Lower edge, width and count of the energy bins.
        m_lo, m_width, n_m: Lower edge, width and count of the magnetisation bins.
        temperature: Temperature of the magnetisation mode (k_B = 1).
    """

    mode: str
    e_lo: float = 0.0
    e_width: float = 1.0
    n_e: int = 1
    m_lo: float = 0.0
    m_width: float = 1.0
    n_m: int = 1
    temperature: float = 0.0

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise SpinModelError(f"unknown sampling mode {self.mode!r}; use one of {list(MODES)}")
        if self.e_width <= 0 or self.m_width <= 0 or self.n_e < 1 or self.n_m < 1:
            raise SpinModelError("bin widths and counts must be positive")
        if self.mode == "magnetisation" and not self.temperature > 0:
            raise SpinModelError("the magnetisation mode needs a positive temperature")

    def kernel_bins(self) -> tuple[float, float, int, float, float, int]:
        """``(e_lo, e_width, n_e, m_lo, m_width, n_m)`` as the kernels take them."""
        return (self.e_lo, self.e_width, self.n_e, self.m_lo, self.m_width, self.n_m)

    @property
    def n_bins(self) -> int:
        """Number of global bins."""
        if self.mode == "energy":
            return self.n_e
        if self.mode == "magnetisation":
            return self.n_m
        return self.n_e * self.n_m

    @property
    def energy_centres(self) -> np.ndarray:
        """Centres of the energy bins."""
        return self.e_lo + (np.arange(self.n_e) + 0.5) * self.e_width

    @property
    def magnetisation_centres(self) -> np.ndarray:
        """Centres of the magnetisation bins."""
        return self.m_lo + (np.arange(self.n_m) + 0.5) * self.m_width

    @property
    def centres(self) -> np.ndarray:
        """Centres of the sampled variable (1-D modes); joint mode: energy-major flat index."""
        if self.mode == "energy":
            return self.energy_centres
        if self.mode == "magnetisation":
            return self.magnetisation_centres
        return np.arange(self.n_bins, dtype=float)

    @classmethod
    def ising_energy(cls, system: SpinSystem, step: float = 4.0) -> Binning:
        """One bin per Ising energy level ``-E_max, -E_max + step, ..., E_max``.

        ``step`` is 4 for unit couplings on lattices with even coordination (square, cubic);
        levels the model cannot reach stay unvisited and masked.
        """
        bound = float(np.abs(system.exchange_values).sum() / 2)
        return cls("energy", e_lo=-bound - step / 2, e_width=step, n_e=round(2 * bound / step) + 1)

    @classmethod
    def ising_joint(cls, system: SpinSystem, step: float = 4.0) -> Binning:
        """Bins of every Ising (E, M) pair: energy levels as above, ``M`` in steps of 2."""
        energy = cls.ising_energy(system, step)
        n = system.n_sites
        return cls(
            "joint", e_lo=energy.e_lo, e_width=step, n_e=energy.n_e, m_lo=-n - 1.0, m_width=2.0,
            n_m=n + 1,
        )  # fmt: skip

    @classmethod
    def magnetisation(
        cls,
        system: SpinSystem,
        temperature: float,
        n_bins: int,
        mirror: bool = False,
        m_max: float = 1.0,
    ) -> Binning:
        """``n_bins`` equal bins of ``M`` over ``[-m_max M_s, m_max M_s]`` at ``temperature``.

        With ``mirror`` only the ``n_bins / 2`` bins of ``M >= 0`` are sampled (``n_bins`` must
        be even): the Hamiltonian without the Zeeman term is even in the spins (exchange,
        uniaxial anisotropy and even-order Stevens terms), so ``G_T(-M) = G_T(M)`` exactly.
        ``m_max < 1`` leaves out the nearly saturated states: their phase-space volume vanishes
        as ``(1 - m)^(N - 1)``, so single-spin moves reach the last bin too rarely to flatten it.
        """
        if not 0.0 < m_max <= 1.0:
            raise SpinModelError(f"m_max must lie in (0, 1], got {m_max}")
        ms = system.saturation_moment * m_max
        width = 2 * ms / n_bins
        if mirror:
            if n_bins % 2:
                raise SpinModelError(f"mirrored M bins need an even bin count, got {n_bins}")
            return cls(
                "magnetisation", m_lo=0.0, m_width=width, n_m=n_bins // 2, temperature=temperature
            )
        return cls("magnetisation", m_lo=-ms, m_width=width, n_m=n_bins, temperature=temperature)


@dataclass
class WangLandauSettings:
    """Schedule and parallel layout of a (replica-exchange) Wang-Landau run.

    Attributes:
        windows: Number of overlapping windows (1: plain Wang-Landau).
        walkers_per_window: Walkers sharing one window.
        overlap: Fraction of a window shared with its neighbour.
        flatness: Flatness criterion of the halving stage.
        lnf_final: Stop when ``ln f`` falls below this.
        one_over_t: Switch to ``ln f = 1/t`` when a halving would fall below ``1/t``.
        sweeps_per_check: Trials per walker between checks, in units of the number of spins
            (at least 20,000 trials).
        step_size: Size of the small Heisenberg trial step ``s + step * u`` (0 for uniform
            proposals only).
        seed: Seed of every random stream.
        threads: Numba threads (None keeps numba's default).
        checkpoint_every: Seconds between checkpoints.
        max_seconds: Stop (resumably) after this wall time; None for no limit.
    """

    windows: int = 1
    walkers_per_window: int = 1
    overlap: float = 0.75
    flatness: float = 0.8
    lnf_final: float = 1e-6
    one_over_t: bool = True
    sweeps_per_check: float = 10.0
    step_size: float = 0.5
    seed: int = 0
    threads: int | None = None
    checkpoint_every: float = 30.0
    max_seconds: float | None = None

    def __post_init__(self) -> None:
        if self.windows < 1 or self.walkers_per_window < 1:
            raise SpinModelError("windows and walkers_per_window must be at least 1")
        if not 0.0 < self.overlap < 1.0:
            raise SpinModelError(f"overlap must lie in (0, 1), got {self.overlap}")
        if not 0.0 < self.flatness < 1.0:
            raise SpinModelError(f"flatness must lie in (0, 1), got {self.flatness}")
        if not 0.0 < self.lnf_final < 1.0:
            raise SpinModelError(f"lnf_final must lie in (0, 1), got {self.lnf_final}")


#: Arrays of a REWL checkpoint that restore the sampler's state.
_CHECKPOINT_ARRAYS = (
    "spins", "energy", "magnet", "lng", "hist", "lnf", "trials", "one_over_t", "rng",
)  # fmt: skip


def window_bounds(n_bins: int, n_windows: int, overlap: float) -> list[tuple[int, int]]:
    """Bin ranges ``[lo, hi)`` of ``n_windows`` equal windows overlapping by ``overlap``."""
    if n_windows == 1:
        return [(0, n_bins)]
    width = n_bins / (1 + (n_windows - 1) * (1 - overlap))
    bounds = []
    for k in range(n_windows):
        lo = round(k * width * (1 - overlap))
        hi = n_bins if k == n_windows - 1 else round(lo + width)
        bounds.append((lo, hi))
    for (_, hi_a), (lo_b, _) in itertools.pairwise(bounds):
        if hi_a - lo_b < 2:
            raise SpinModelError(
                f"windows overlap by fewer than 2 bins ({n_bins} bins, {n_windows} windows): "
                "use more bins, fewer windows or a larger overlap"
            )
    return bounds


@dataclass
class WangLandauResult:
    """A joined log density of states; NaN marks bins never visited.

    Attributes:
        binning: The bins.
        log_dos: Joined ``ln g`` (mode energy/joint) or ``ln G_T(M)`` (mode magnetisation).
        window_log_dos: Averaged ``ln g`` of each window over the global bins (NaN outside).
        joins: Bin at which each pair of neighbouring windows was joined.
        trials: Total single-spin trials over all walkers.
        seconds: Wall time of the sampling.
        exchange_acceptance: Accepted / attempted replica exchanges.
        history: Schedule events (window, stage, ln f, trials per bin).
    """

    binning: Binning
    log_dos: np.ndarray
    window_log_dos: np.ndarray
    joins: list[int]
    trials: int
    seconds: float
    exchange_acceptance: float
    history: list[dict] = field(default_factory=list)

    @property
    def visited(self) -> np.ndarray:
        """Bins with an estimate."""
        return np.isfinite(self.log_dos)

    def free_energy(self) -> np.ndarray:
        """``F(M) = -T ln G_T(M)`` shifted to a minimum of 0 (magnetisation mode only)."""
        if self.binning.mode != "magnetisation":
            raise SpinModelError("a free energy in M needs a magnetisation-mode run")
        free = -self.binning.temperature * self.log_dos
        return free - np.nanmin(free)


class ReplicaExchangeWangLandau:
    """Run REWL (or plain WL with one window) for a spin system; resumable from checkpoints.

    Args:
        system: The spin model.
        binning: The sampled variable and its bins.
        settings: Schedule and layout.
        comm: Where the windows run (a :class:`~atomlens.spins.parallel.LocalCommunicator`
            by default; an MPI communicator splits the windows over ranks).
        checkpoint: Directory for this rank's checkpoint; None disables checkpoints.
    """

    def __init__(
        self,
        system: SpinSystem,
        binning: Binning,
        settings: WangLandauSettings | None = None,
        comm: Communicator | None = None,
        checkpoint: Path | str | None = None,
    ) -> None:
        self.system = system
        self.binning = binning
        self.settings = settings or WangLandauSettings()
        self.comm = comm or LocalCommunicator()
        if binning.mode == "joint" and self.settings.windows > 1:
            raise SpinModelError("joint (E, M) sampling uses one window")
        self.bounds = window_bounds(binning.n_bins, self.settings.windows, self.settings.overlap)
        n_windows = len(self.bounds)
        if n_windows < self.comm.size:
            raise SpinModelError(f"{n_windows} windows cannot be split over {self.comm.size} ranks")
        self.local_windows = [
            w
            for w in range(n_windows)
            if window_owner(w, n_windows, self.comm.size) == self.comm.rank
        ]
        per = self.settings.walkers_per_window
        self.walker_ids = np.array([w * per + k for w in self.local_windows for k in range(per)])
        self.walker_window = self.walker_ids // per
        self.checkpoint = Path(checkpoint) if checkpoint else None
        self.history: list[dict] = []
        self.exchange_attempts = 0
        self.exchange_accepted = 0
        self.elapsed = 0.0
        start_threads()  # idle threads sleep between the short parallel calls
        self._initialise_state()

    # ----------------------------------------------------------------------------- state
    def _initialise_state(self) -> None:
        n_walkers = len(self.walker_ids)
        n = self.system.n_sites
        if self.system.ising:
            self.spins = np.ones((n_walkers, n), dtype=np.float64)
        else:
            self.spins = np.zeros((n_walkers, n, 3), dtype=np.float64)
            self.spins[:, :, 2] = 1.0
        self.energy = np.array([self._energy(s) for s in self.spins], dtype=np.float64)
        self.magnet = self.spins_z().sum(axis=1) if n_walkers else np.zeros(0)
        nb = self.binning.n_bins
        self.lng = np.zeros((n_walkers, nb))
        self.hist = np.zeros((n_walkers, nb), dtype=np.int64)
        self.lnf = np.ones(n_walkers)
        self.trials = np.zeros(n_walkers, dtype=np.int64)
        self.one_over_t = np.zeros(n_walkers, dtype=np.bool_)
        self.window_lo = np.array([self.bounds[w][0] for w in self.walker_window], dtype=np.int64)
        self.window_hi = np.array([self.bounds[w][1] for w in self.walker_window], dtype=np.int64)
        self.rng = seed_states(self.settings.seed, n_walkers, 0)
        for k, walker in enumerate(self.walker_ids):
            self.rng[k] = seed_states(self.settings.seed, 1, int(walker))[0]
        self.exchange_rounds = 0

    def spins_z(self) -> np.ndarray:
        """``mu_i s_i^z`` per walker and site."""
        z = self.spins if self.system.ising else self.spins[:, :, 2]
        return z * self.system.moments

    def _energy(self, config: np.ndarray) -> float:
        s = self.system
        if s.ising:
            return kernels.ising_energy(
                config, s.exchange_indptr, s.exchange_indices, s.exchange_values
            )
        return kernels.heisenberg_energy(
            config,
            s.exchange_indptr,
            s.exchange_indices,
            s.exchange_values,
            s.anisotropy,
            s.anisotropy_axes,
            s.crystal_field,
        )

    def fingerprint(self) -> str:
        """A hash of everything that must match for a checkpoint to be resumed."""
        s = self.system
        digest = hashlib.sha256()
        for array in (s.exchange_indptr, s.exchange_indices, s.exchange_values, s.moments):
            digest.update(np.ascontiguousarray(array).tobytes())
        for array in (s.anisotropy, s.anisotropy_axes, s.crystal_field):
            digest.update(np.ascontiguousarray(array).tobytes())
        settings = asdict(self.settings)
        for volatile in ("threads", "checkpoint_every", "max_seconds"):
            settings.pop(volatile)
        payload = {
            "binning": asdict(self.binning),
            "settings": settings,
            "ising": s.ising,
            "rank": self.comm.rank,
            "size": self.comm.size,
        }
        digest.update(json.dumps(payload, sort_keys=True).encode())
        return digest.hexdigest()[:20]

    def _checkpoint_file(self) -> Path | None:
        if self.checkpoint is None:
            return None
        return self.checkpoint / f"rewl_rank{self.comm.rank}.npz"

    def save_checkpoint(self) -> None:
        """Write this rank's state atomically (a kill never leaves a torn file)."""
        path = self._checkpoint_file()
        if path is None:
            return
        meta = {
            "fingerprint": self.fingerprint(),
            "history": self.history,
            "exchange_attempts": self.exchange_attempts,
            "exchange_accepted": self.exchange_accepted,
            "exchange_rounds": self.exchange_rounds,
            "elapsed": self.elapsed,
        }
        with atomic_path(path) as tmp, tmp.open("wb") as handle:
            np.savez(
                handle,
                spins=self.spins,
                energy=self.energy,
                magnet=self.magnet,
                lng=self.lng,
                hist=self.hist,
                lnf=self.lnf,
                trials=self.trials,
                one_over_t=self.one_over_t,
                rng=self.rng,
                meta=np.array(dumps_json(meta, indent=None)),
            )

    def load_checkpoint(self) -> bool:
        """Resume from this rank's checkpoint if it belongs to the same run; returns success."""
        path = self._checkpoint_file()
        if path is None or not path.exists():
            return False
        try:
            with np.load(path) as data:
                meta = json.loads(str(data["meta"]))
                if meta["fingerprint"] != self.fingerprint():
                    raise SpinModelError(
                        f"checkpoint {path} belongs to a different model or settings; "
                        "delete it or use another output directory"
                    )
                arrays = {key: data[key].copy() for key in _CHECKPOINT_ARRAYS}
            state = {
                key: meta[key]
                for key in (
                    "history", "exchange_attempts", "exchange_accepted", "exchange_rounds",
                    "elapsed",
                )
            }  # fmt: skip
        except SpinModelError:
            raise
        except Exception as exc:  # zip, pickle-free npz and json readers raise many types
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise SpinModelError(
                f"checkpoint {path} is corrupt ({type(exc).__name__}: {reason}); delete it to "
                "sample this temperature again"
            ) from None
        for key, value in arrays.items():
            if value.shape != np.shape(getattr(self, key)):
                raise SpinModelError(
                    f"checkpoint {path} is corrupt ({key} has shape {value.shape}); delete "
                    "it to sample this temperature again"
                )
            setattr(self, key, value)
        for key, value in state.items():
            setattr(self, key, value)
        return True

    # ---------------------------------------------------------------------------- kernel
    def _sweep(self, n_steps: int) -> None:
        s = self.system
        steps = np.array(
            [0 if self._window_done(k) else n_steps for k in range(len(self.walker_ids))],
            dtype=np.int64,
        )
        b = self.binning
        args = (
            self.spins,
            self.energy,
            self.magnet,
            self.lng,
            self.hist,
            self.lnf,
            self.trials,
            self.one_over_t,
            self.window_lo,
            self.window_hi,
            self.rng,
            steps,
            MODES[b.mode],
            1.0 / b.temperature if b.temperature > 0 else 0.0,
            *b.kernel_bins(),
            s.exchange_indptr,
            s.exchange_indices,
            s.exchange_values,
            s.moments,
        )
        if s.ising:
            kernels.ising_wang_landau(*args)
        else:
            kernels.heisenberg_wang_landau(
                *args, s.anisotropy, s.anisotropy_axes, s.crystal_field, self.settings.step_size
            )
        if s.ising:  # integer sums: exact
            return
        # refresh the running sums so rounding never drifts across bins
        self.energy = np.array([self._energy(c) for c in self.spins])
        self.magnet = self.spins_z().sum(axis=1)

    def _window_done(self, k: int) -> bool:
        return bool(self.lnf[k] < self.settings.lnf_final)

    def _current_bin(self, k: int) -> int:
        b = self.binning
        return int(
            kernels.bin_index(self.energy[k], self.magnet[k], MODES[b.mode], *b.kernel_bins())
        )

    def finished(self) -> bool:
        """True when every window (on every rank) has reached ``lnf_final``."""
        local = all(self._window_done(k) for k in range(len(self.walker_ids)))
        return self.comm.allreduce_all(local)

    def _inside(self, k: int) -> bool:
        return bool(self.window_lo[k] <= self._current_bin(k) < self.window_hi[k])

    # -------------------------------------------------------------------------- schedule
    def _merge_window(self, members: np.ndarray) -> None:
        """Align the walkers' ``ln g`` on commonly visited bins and replace each by the mean."""
        lo, hi = self.window_lo[members[0]], self.window_hi[members[0]]
        estimate = _window_estimate(self.lng[members], (lo, hi))[lo:hi]
        visited = np.isfinite(estimate)
        merged = np.zeros(hi - lo)
        if visited.any():  # shift so that visited bins stay > 0 (the visited marker)
            merged[visited] = estimate[visited] - estimate[visited].min() + 1.0
        self.lng[members, lo:hi] = merged

    def _flat(self, k: int) -> bool:
        lo, hi = self.window_lo[k], self.window_hi[k]
        visited = self.lng[k, lo:hi] > 0
        counts = self.hist[k, lo:hi][visited]
        return counts.size > 1 and counts.min() > self.settings.flatness * counts.mean()

    def _update_schedule(self) -> None:
        per = self.settings.walkers_per_window
        for start in range(0, len(self.walker_ids), per):
            members = np.arange(start, start + per)
            head = members[0]
            window = int(self.walker_window[head])
            if self._window_done(head) or not all(self._inside(k) for k in members):
                continue
            width = self.window_hi[head] - self.window_lo[head]
            t = self.trials[members].mean() / width
            if self.one_over_t[head]:
                if per > 1:
                    self._merge_window(members)
                if self._window_done(head):
                    self._log(window, "done", float(self.lnf[head]), t)
                continue
            if not all(self._flat(k) for k in members):
                continue
            if per > 1:
                self._merge_window(members)
            new_lnf = self.lnf[head] / 2.0
            self.hist[members] = 0
            if self.settings.one_over_t and new_lnf < 1.0 / t:
                self.one_over_t[members] = True
                self.lnf[members] = min(new_lnf, 1.0 / t)
                self._log(window, "1/t", float(self.lnf[head]), t)
            else:
                self.lnf[members] = new_lnf
                self._log(window, "halve", float(new_lnf), t)
            if self._window_done(head):
                self._log(window, "done", float(self.lnf[head]), t)

    def _log(self, window: int, stage: str, lnf: float, t: float) -> None:
        self.history.append({"window": window, "stage": stage, "lnf": lnf, "t": float(t)})

    # -------------------------------------------------------------------------- exchange
    def _exchange(self) -> None:
        """Swap configurations between neighbouring windows (even pairs, then odd pairs)."""
        n_windows = len(self.bounds)
        if n_windows == 1:
            return
        per = self.settings.walkers_per_window
        local = {
            int(walker): (self._current_bin(k), self.lng[k])
            for k, walker in enumerate(self.walker_ids)
        }
        everyone: dict[int, tuple[int, np.ndarray]] = {}
        for part in self.comm.allgather(local):
            everyone.update(part)
        rng = np.random.default_rng([self.settings.seed, 7919, self.exchange_rounds])
        parity = self.exchange_rounds % 2
        self.exchange_rounds += 1
        swaps: list[tuple[int, int]] = []
        for left in range(parity, n_windows - 1, 2):
            partners = rng.permutation(per)
            uniforms = rng.random(per)
            for k in range(per):
                a = left * per + k
                c = (left + 1) * per + int(partners[k])
                bin_a, lng_a = everyone[a]
                bin_c, lng_c = everyone[c]
                lo_a, hi_a = self.bounds[left]
                lo_c, hi_c = self.bounds[left + 1]
                self.exchange_attempts += 1
                if not (lo_c <= bin_a < hi_c and lo_a <= bin_c < hi_a):
                    continue
                values = (lng_a[bin_a], lng_a[bin_c], lng_c[bin_c], lng_c[bin_a])
                if min(values) <= 0:  # a bin one of the windows never visited
                    continue
                log_p = values[0] - values[1] + values[2] - values[3]
                if log_p >= 0 or uniforms[k] < np.exp(log_p):
                    swaps.append((a, c))
                    self.exchange_accepted += 1
        if not swaps:
            return
        index = {int(walker): k for k, walker in enumerate(self.walker_ids)}
        involved = {w for pair in swaps for w in pair}
        outgoing = {
            w: (self.spins[index[w]].copy(), self.energy[index[w]], self.magnet[index[w]])
            for w in involved
            if w in index
        }
        configs: dict[int, tuple] = {}
        for part in self.comm.allgather(outgoing):
            configs.update(part)
        for a, c in swaps:
            for mine, theirs in ((a, c), (c, a)):
                if mine in index:
                    k = index[mine]
                    self.spins[k], self.energy[k], self.magnet[k] = configs[theirs]

    # ------------------------------------------------------------------------------- run
    def run(
        self,
        progress: bool = True,
        resume: bool = True,
        monitor: Callable[[ReplicaExchangeWangLandau], bool | None] | None = None,
    ) -> WangLandauResult | None:
        """Sample until every window is done; returns the joined result (None if stopped early).

        A run stopped by ``max_seconds`` or a kill resumes from its checkpoint when called
        again with the same model and settings.

        Args:
            progress: Show a progress bar (rank 0 only).
            resume: Continue from this rank's checkpoint when there is one.
            monitor: Called after every chunk of trials (e.g. to record the error against an
                exact result); returning True stops the run as finished.
        """
        if self.settings.threads:
            numba.set_num_threads(min(self.settings.threads, numba.config.NUMBA_NUM_THREADS))
        if resume:
            self.load_checkpoint()
        n_steps = max(20_000, int(self.settings.sweeps_per_check * self.system.n_sites))
        start = time.perf_counter()
        last_checkpoint = start
        elapsed_before = self.elapsed
        done_windows = 0
        bar = tqdm(
            total=len(self.bounds),
            desc=f"REWL {self.binning.mode}",
            unit="window",
            disable=not progress or self.comm.rank != 0,
        )
        try:
            while True:
                if self.finished():
                    break
                if monitor is not None and self.comm.allreduce_all(bool(monitor(self))):
                    break
                self._sweep(n_steps)
                self._update_schedule()
                self._exchange()
                now = time.perf_counter()
                self.elapsed = elapsed_before + now - start
                finished = sum(1 for e in self.history if e["stage"] == "done")
                if finished > done_windows:
                    bar.update(finished - done_windows)
                    done_windows = finished
                bar.set_postfix(ln_f=f"{self.lnf.max():.1e}" if len(self.lnf) else "-")
                if now - last_checkpoint > self.settings.checkpoint_every:
                    self.save_checkpoint()
                    last_checkpoint = now
                limit = self.settings.max_seconds
                if self.comm.allreduce_all(limit is None or self.elapsed < limit) is False:
                    self.save_checkpoint()
                    return None
        finally:
            bar.close()
        self.save_checkpoint()
        return self.result()

    def result(self) -> WangLandauResult:
        """Join the windows' averaged estimates into one log density of states."""
        per = self.settings.walkers_per_window
        local = {}
        for start in range(0, len(self.walker_ids), per):
            members = np.arange(start, start + per)
            window = int(self.walker_window[start])
            local[window] = _window_estimate(self.lng[members], self.bounds[window])
        windows: dict[int, np.ndarray] = {}
        for part in self.comm.allgather(local):
            windows.update(part)
        stacked = np.array([windows[w] for w in range(len(self.bounds))])
        joined, joins = join_windows(stacked)
        totals = self.comm.allgather(
            (int(self.trials.sum()), self.exchange_attempts, self.exchange_accepted, self.history)
        )
        attempts = totals[0][1]  # every rank counts every exchange attempt
        accepted = totals[0][2]
        history = [event for part in totals for event in part[3]]
        return WangLandauResult(
            binning=self.binning,
            log_dos=joined,
            window_log_dos=stacked,
            joins=joins,
            trials=sum(part[0] for part in totals),
            seconds=self.elapsed,
            exchange_acceptance=accepted / attempts if attempts else float("nan"),
            history=history,
        )


def _window_estimate(lng: np.ndarray, bounds: tuple[int, int]) -> np.ndarray:
    """Mean over a window's walkers (aligned on common bins); NaN where no walker visited."""
    lo, hi = bounds
    block = lng[:, lo:hi].astype(float)
    visited = block > 0
    for row in range(1, len(block)):
        common = visited[0] & visited[row]
        if common.any():
            block[row] -= np.mean(block[row, common] - block[0, common])
    counts = visited.sum(axis=0)
    out = np.full(lng.shape[1], np.nan)
    with np.errstate(invalid="ignore"):
        out[lo:hi] = np.where(counts > 0, (block * visited).sum(axis=0) / counts, np.nan)
    return out


def join_windows(window_lng: np.ndarray) -> tuple[np.ndarray, list[int]]:
    """Join per-window ``ln g`` (NaN outside/unvisited) where their slopes agree best.

    Returns:
        The joined ``ln g`` (NaN where unvisited) and the join bin of each neighbouring pair.
    """
    joined = window_lng[0].copy()
    joins: list[int] = []
    for k in range(1, len(window_lng)):
        right = window_lng[k]
        both = np.isfinite(joined) & np.isfinite(right)
        slope_ok = both[:-1] & both[1:]
        if not slope_ok.any():
            raise SpinModelError(
                f"windows {k - 1} and {k} share no two adjacent visited bins: "
                "use a larger overlap or more bins per window"
            )
        mismatch = np.abs(np.diff(joined) - np.diff(right))
        mismatch[~slope_ok] = np.inf
        if joins and np.isfinite(mismatch[joins[-1] + 1 :]).any():
            mismatch[: joins[-1] + 1] = np.inf  # keep every window's share of the range
        at = int(np.argmin(mismatch))
        shifted = right - right[at] + joined[at]
        joined = np.concatenate([joined[: at + 1], shifted[at + 1 :]])
        joins.append(at)
    return joined, joins
