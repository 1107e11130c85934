import sys

from gridwatch.app.cli import main

sys.exit(main())
