from anydepth_edge.cli import main

main()
