"""`python -m eldercare` runs the command line."""

from eldercare.cli import main

raise SystemExit(main())
