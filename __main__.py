from revprompt.core.cli import main

main()
