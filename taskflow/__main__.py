from taskflow.cli.main import main

raise SystemExit(main())
