import sys

from wninit.suite.cli import main

sys.exit(main())
