from fake_snyk.server import main

raise SystemExit(main())
