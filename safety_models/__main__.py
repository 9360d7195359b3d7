"""`python -m safety_models ...`: see safety_models.cli."""

from safety_models.cli import main

raise SystemExit(main())
