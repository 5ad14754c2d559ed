"""2-D depictions of molecules with atoms highlighted by score (RDKit, extra ``depict``).

Bonds are perceived from the coordinates (``rdDetermineBonds.DetermineBonds``, charge 0:
connectivity, then bond orders); a molecule for which that fails (a radical, atoms too far
apart, an unusual charge state) gets no depiction but a note saying why. Atoms keep their
input order and numbers (hydrogens included), so the depiction's atom numbers are those of
the viewer's table and of ``atoms.csv``. RDKit is imported only here, when a depiction is
made; without it, ``atomlens explain`` writes everything else and says once how to get it.
"""

from __future__ import annotations

import html
import re
import sys
from dataclasses import dataclass

import numpy as np

from atomlens.errors import DataError
from atomlens.explain.attention import Explanation
from atomlens.explain.display import ColourScale, shown_scores

RDKIT_HINT = "2-D depictions of molecules need RDKit: pip install 'atomlens[depict]'"
SIZE = (320, 260)  # pixels of the drawing
HIGHLIGHT_MIN = 0.15  # atoms whose score lies this far (fraction of the half-range) from neutral
NO_BONDS = "bonds could not be perceived from the coordinates (RDKit, charge 0): 3-D view only"

# Style declarations RDKit repeats on every element that only restate the initial value
# (nothing in the drawing sets another one to inherit): left out, a third of the file.
INITIAL_STYLES = re.compile(
    r"(?<=[';])(?:font-style:normal|font-weight:normal|fill-opacity:1|stroke:none|"
    r"stroke-linecap:butt|stroke-linejoin:miter|stroke-opacity:1|text-anchor:start)(?:;|(?='))"
)

_hinted = False


@dataclass(frozen=True)
class Depiction:
    """The 2-D depiction of one molecule, or why there is none.

    Attributes:
        svg: The SVG document, or None.
        note: Why there is no depiction (None when there is one).
        highlighted: Atoms drawn highlighted (index -> RGB 0-255), those whose score is at
            least :data:`HIGHLIGHT_MIN` of the half-range away from the neutral value.
        file: Where the SVG was written, relative to the viewer page (None if not).
    """

    svg: str | None
    note: str | None = None
    highlighted: dict[int, tuple[int, int, int]] | None = None
    file: str | None = None


def have_rdkit() -> bool:
    """True if RDKit can be imported."""
    try:
        import rdkit  # noqa: F401
    except ImportError:
        return False
    return True


def hint_once() -> None:
    """Print :data:`RDKIT_HINT` to stderr, once per process."""
    global _hinted
    if not _hinted:
        print(f"note: {RDKIT_HINT}", file=sys.stderr)
        _hinted = True


def xyz_block(item: Explanation) -> str:
    """The molecule as an XYZ block (element symbols and Cartesian coordinates)."""
    lines = [str(len(item.structure)), ""]
    for symbol, (x, y, z) in zip(item.symbols, item.structure.positions, strict=True):
        lines.append(f"{symbol} {x:.6f} {y:.6f} {z:.6f}")
    return "\n".join(lines) + "\n"


def depict(item: Explanation, scale: ColourScale, size: tuple[int, int] = SIZE) -> Depiction:
    """Draw ``item`` (a molecule) with its atoms highlighted on ``scale``.

    The highlight colour is the diverging colour of the atom's shown score (see
    :func:`atomlens.explain.display.shown_scores`) and its radius grows with the distance
    from neutral. The SVG's title names the structure and the score (escaped).

    Raises:
        ValueError: For a periodic structure.
        DataError: Without RDKit (see :func:`have_rdkit`).
    """
    if item.structure.is_periodic:
        raise ValueError(f"{item.name}: 2-D depictions are for molecules")
    try:
        from rdkit import Chem, RDLogger
        from rdkit.Chem import rdDepictor, rdDetermineBonds
        from rdkit.Chem.Draw import rdMolDraw2D
    except ImportError:
        raise DataError(RDKIT_HINT) from None

    RDLogger.DisableLog("rdApp.*")  # failures become the note, not console noise
    try:
        mol = Chem.MolFromXYZBlock(xyz_block(item))
        if mol is None:
            return Depiction(None, NO_BONDS)
        try:
            rdDetermineBonds.DetermineBonds(mol, charge=0)
        except (ValueError, RuntimeError):
            return Depiction(None, NO_BONDS)
        if mol.GetNumBonds() == 0 and len(item.structure) > 1:
            return Depiction(None, NO_BONDS)
        rdDepictor.Compute2DCoords(mol)
    finally:
        RDLogger.EnableLog("rdApp.*")

    values = shown_scores(item)
    position = scale.position(values)
    colours = scale.colours(values)
    chosen = [int(i) for i in np.flatnonzero(np.abs(position) >= HIGHLIGHT_MIN)]
    highlighted = {i: tuple(int(c) for c in colours[i]) for i in chosen}
    drawer = rdMolDraw2D.MolDraw2DSVG(size[0], size[1], -1, -1, True)  # text as <text>
    drawer.drawOptions().addAtomIndices = True
    drawer.DrawMolecule(
        mol,
        highlightAtoms=chosen,
        highlightAtomColors={i: tuple(c / 255 for c in rgb) for i, rgb in highlighted.items()},
        highlightAtomRadii={i: 0.25 + 0.3 * float(abs(position[i])) for i in chosen},
        highlightBonds=[],
    )
    drawer.FinishDrawing()
    title = html.escape(f"{item.name}: atoms highlighted by {scale.label}", quote=True)
    title = title.encode("ascii", "xmlcharrefreplace").decode("ascii")
    svg = drawer.GetDrawingText()
    svg = re.sub(r"\s*xmlns:(?:rdkit|xlink)='[^']*'", "", svg)  # declared, never used
    svg = INITIAL_STYLES.sub("", svg).replace(";'", "'")
    svg = svg.replace("<!-- END OF HEADER -->", f"<title>{title}</title>", 1)
    return Depiction(svg, None, highlighted)
