"""``python -m caloforge``: the command line (as used by ``torchrun -m caloforge train``)."""

import sys

from caloforge.cli import main

sys.exit(main())
