import sys

from appliance.collector.cli import main

sys.exit(main())
