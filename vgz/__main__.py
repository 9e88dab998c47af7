from vgz.cli.main import main

main()
