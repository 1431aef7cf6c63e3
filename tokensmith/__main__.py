"""``python -m tokensmith`` (and ``torchrun -m tokensmith train RECIPE.toml``): the CLI."""

import sys

from tokensmith.cli import main

sys.exit(main())
