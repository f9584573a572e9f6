from ganforge.cli import main

raise SystemExit(main())
