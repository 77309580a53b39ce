import sys

from vantage.cli import main

sys.exit(main())
