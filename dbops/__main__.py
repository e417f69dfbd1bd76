from dbops.cli import main

main()
