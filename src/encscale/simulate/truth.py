"""Where both simulators write the planted truth of a subject, beside the simulated dataset
(not part of the source's layout).

Light on purpose (standard library only): the workflow lists these files when it plans the
demos.
"""

from __future__ import annotations

import os
from pathlib import Path


def truth_path(root: str | os.PathLike, subject: str) -> str:
    """``<root>/truth/<subject>.h5``: the planted truth of one simulated subject."""
    return str(Path(root) / "truth" / f"{subject}.h5")
