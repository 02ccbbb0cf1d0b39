import sys

from app.auth.cli import main

sys.exit(main())
