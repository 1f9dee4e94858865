"""CaloChallenge-grade evaluation of generated showers against Geant4.

``compare`` (showers in memory) and ``evaluate`` (files, with a report) return a typed
:class:`~caloforge.evaluate.results.Comparison`.
"""

from __future__ import annotations

from caloforge.evaluate.report import compare, evaluate
from caloforge.evaluate.results import HEADLINE, Comparison, Measured

__all__ = ["HEADLINE", "Comparison", "Measured", "compare", "evaluate"]
