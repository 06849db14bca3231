from vllama.cli.main import main

main()
