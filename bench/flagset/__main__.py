from bench.flagset import main

main()
