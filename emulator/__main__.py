from ecemu.cli import main

main()
