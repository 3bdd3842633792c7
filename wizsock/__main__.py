from wizsock.cli import main

raise SystemExit(main())
