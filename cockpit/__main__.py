"""`python -m cockpit` runs the command line."""

import sys

from cockpit.entry import main

sys.exit(main())
