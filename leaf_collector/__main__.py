import sys

from leaf_collector.cli import main

sys.exit(main())
