import sys

from pdelang.cli.main import main

sys.exit(main())
