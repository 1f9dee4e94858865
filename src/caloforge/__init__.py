"""caloforge: machine-learned fast simulation of calorimeter showers."""

from __future__ import annotations

__version__ = "0.1.0"
