from cifarcam.cli import main

main()
