"""`python -m medstream_tools.soak`: see medstream_tools/soak/run.py."""

import sys

from medstream_tools.soak.run import main

sys.exit(main())
