"""``python -m gridwatch.etr``: ETR accuracy through the service path (see ``_replay``)."""

import sys

from gridwatch.etr._replay import main

sys.exit(main())
