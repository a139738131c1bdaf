import sys

from reidcore.cli import main

sys.exit(main())
